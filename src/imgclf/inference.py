"""`Classifier`: a trained run loaded from its directory, preprocessing and labels from the model card."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from .records import ModelCard, load_card
from .data.decode import DecodeError, image_to_array, open_image
from .data.folder import IMAGE_EXTENSIONS, is_hidden
from .data.tensors import channel_stats, to_unit_nchw
from .topk import top_k as top_classes
from .errors import bad_path, invalid

ImageInput = str | os.PathLike | np.ndarray
# Decoding runs in threads: Pillow releases the GIL while it inflates and resizes. Chunks of this many images
# bound the memory held by decoded pixels when predicting a large folder.
_PREDICT_CHUNK = 1024


def build_from_card(card: ModelCard) -> torch.nn.Module:
    from .models import create_model, get_model_info

    info = get_model_info(card.architecture)
    args = dict(card.model_args)
    if info.pretrained:
        args["pretrained"] = False  # the run's own weights follow; never fetch anything here
        args.pop("weights", None)
    return create_model(card.architecture, len(card.classes), card.in_chans, card.img_size, **args)


def expand_inputs(items: Iterable[str | os.PathLike]) -> list[str]:
    """Files as given; folders expanded to their image files (recursively, hidden entries skipped)."""
    out: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not is_hidden(d))
                out += [os.path.join(root, f) for f in sorted(files)
                        if not is_hidden(f) and f.lower().endswith(IMAGE_EXTENSIONS)]
        else:
            out.append(str(path))
    return out


TTA_TRANSFORMS = "identity, horizontal flip, shifts of 1/16 of the side (right-down, left-up)"


def tta_views(x: torch.Tensor) -> list[torch.Tensor]:
    """Test-time augmentation views: the image, its mirror and two small shifts (edges replicated)."""
    s = max(1, x.shape[-1] // 16)
    padded = torch.nn.functional.pad(x, (s, s, s, s), mode="replicate")
    h, w = x.shape[-2:]
    return [x, x.flip(3), padded[..., : h, : w].contiguous(memory_format=torch.channels_last),
            padded[..., 2 * s :, 2 * s :].contiguous(memory_format=torch.channels_last)]


@dataclass
class Prediction:
    path: str
    label: str | None
    probability: float | None
    top: list[tuple[str, float]]
    error: str | None = None


class Classifier:
    def __init__(self, model: torch.nn.Module, card: ModelCard, device: str | torch.device = "cpu"):
        self.card = card
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().to(memory_format=torch.channels_last)
        self.mean = channel_stats(card.mean, self.device)
        self.std = channel_stats(card.std, self.device)

    @classmethod
    def load(cls, run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> "Classifier":
        card = load_card(run_dir)
        weights = Path(run_dir) / "model.safetensors"
        if not weights.exists():
            raise bad_path("run", run_dir, "a run directory containing model.safetensors", "no model.safetensors")
        model = build_from_card(card)
        try:
            model.load_state_dict(load_file(str(weights)))
        except Exception as exc:  # mismatched keys or shapes: the card does not describe these weights
            reason = " ".join(str(exc).split())  # torch lists every mismatched tensor on its own line
            raise bad_path("run", run_dir, "a run directory whose weights fit its model card",
                           f"model.safetensors does not match its model.json: "
                           f"{reason if len(reason) <= 300 else reason[:296] + ' ...'}") from None
        return cls(model, card, device)

    @property
    def classes(self) -> list[str]:
        return self.card.classes

    def decode(self, source: ImageInput) -> np.ndarray:
        """One image -> (H, W, C) uint8 at the card's size and colour mode."""
        if isinstance(source, np.ndarray):
            from PIL import Image

            arr = source if source.dtype == np.uint8 else np.clip(source, 0, 255).astype(np.uint8)
            img = Image.fromarray(arr.squeeze(-1) if arr.ndim == 3 and arr.shape[-1] == 1 else arr)
            return image_to_array(img, self.card.img_size, self.card.color, self.card.interpolation)
        return open_image(source, self.card.img_size, self.card.color, self.card.interpolation)

    def _try_decode(self, item: tuple[int, ImageInput]) -> tuple[int, np.ndarray | None, str | None]:
        i, source = item
        try:
            return i, self.decode(source), None
        except DecodeError as exc:
            return i, None, str(exc)

    @torch.inference_mode()
    def predict_pixels(self, pixels: np.ndarray | torch.Tensor, batch_size: int = 256, tta: bool = False) -> np.ndarray:
        """uint8 (N, H, W, C) -> class probabilities (N, K). tta averages over `tta_views`."""
        if batch_size < 1:
            raise invalid("batch_size", batch_size, ">= 1")
        out = []
        for start in range(0, len(pixels), batch_size):
            chunk = pixels[start : start + batch_size]
            x = to_unit_nchw(np.asarray(chunk, dtype=np.uint8), self.device)
            x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
            views = tta_views(x) if tta else [x]
            probs = torch.stack([torch.softmax(self.model(v).float(), dim=1) for v in views]).mean(0)
            out.append(probs.cpu().numpy())
        if not out:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return np.concatenate(out)

    def predict(self, images: Sequence[ImageInput] | ImageInput, top_k: int = 3, tta: bool = False) -> list[Prediction]:
        """Files, folders or arrays -> one Prediction each; unreadable files get an error, not an exception."""
        if top_k < 1:
            raise invalid("top_k", top_k, "a whole number >= 1 (larger than the number of classes lists them all)")
        if isinstance(images, (str, os.PathLike, np.ndarray)):
            images = [images]
        sources: list[ImageInput] = []
        for item in images:
            sources += expand_inputs([item]) if isinstance(item, (str, os.PathLike)) else [item]
        names = [str(src) if not isinstance(src, np.ndarray) else f"array[{i}]" for i, src in enumerate(sources)]
        by_index: dict[int, np.ndarray] = {}
        errors: dict[int, str] = {}
        workers = max(1, min(4, os.cpu_count() or 1, len(sources) // 32))
        with ThreadPoolExecutor(workers) as pool:
            # chunks bound the memory of decoded pixels on large folders
            for start in range(0, len(sources), _PREDICT_CHUNK):
                chunk = list(enumerate(sources[start:start + _PREDICT_CHUNK], start))
                decoded = []
                for i, pixels, error in pool.map(self._try_decode, chunk):
                    if error is None:
                        decoded.append((i, pixels))
                    else:
                        errors[i] = error
                if decoded:
                    probs = self.predict_pixels(np.stack([a for _, a in decoded]), tta=tta)
                    by_index.update((i, p) for (i, _), p in zip(decoded, probs))
        k = max(1, min(top_k, len(self.classes)))
        results = []
        for i, name in enumerate(names):
            if i in errors:
                results.append(Prediction(name, None, None, [], errors[i]))
                continue
            top = top_classes(by_index[i], self.classes, k)
            results.append(Prediction(name, top[0][0], top[0][1], top))
        return results


def load(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> Classifier:
    """Load a trained run for prediction: `clf = imgclf.load("runs/s1"); clf.predict(["cat.jpg"])`."""
    return Classifier.load(run_dir, device)
