"""Feature-extraction mode (`--features-only`): backbone features computed once, the head trained on them.

Every decoded image goes through the frozen backbone once (eval mode, no augmentation) and its pooled feature
vector is stored in a memory-mapped float32 cache next to the pixel cache. The cache key hashes the pixel
cache key, the backbone's weights, the pooling, the input size and the normalisation, so a changed folder,
weights file or setting builds a new cache, and a second run with another head starts training at once.

Training then runs the usual Lightning loop (same samplers, losses, schedules, callbacks), with batches of
feature vectors instead of images and the model in its `takes_embeddings` state. The weights saved are those
of the whole joined model (backbone + head), so evaluate, predict, serve and export see an ordinary run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.cache import cache_folder
from ..data.cache_usage import mark_used
from ..data.prepared import PreparedData
from ..data.tensors import channel_stats, to_unit_nchw
from ..io import remove_stale_temp_files, write_json
from ..data.cache_records import FeatureCacheRecord
from .loaders import CachedImages, make_loader
from .module import ImageClassifierModule

FEATURE_CACHE_VERSION = 1


def backbone_digest(model: torch.nn.Module) -> str:
    """Hash of the backbone's tensors: the same architecture with other weights gives other features."""
    digest = hashlib.sha256()
    for name, tensor in model.backbone.state_dict().items():  # type: ignore[attr-defined]
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def feature_key(pixel_key: str, model: torch.nn.Module, img_size: int, mean: list[float], std: list[float]) -> str:
    parts = {"v": FEATURE_CACHE_VERSION, "pixels": pixel_key, "arch": getattr(model, "arch", ""),
             "pool": model.spec.pool, "img_size": img_size, "mean": mean, "std": std,  # type: ignore[attr-defined]
             "backbone": backbone_digest(model)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _pixel_batches(data: PreparedData, rows: np.ndarray, batch_size: int):
    """(rows, their uint8 pixels) a batch at a time."""
    from ..data.cache import pixel_blocks

    blocks = pixel_blocks(data.decoded, rows, data.img_size, data.color, data.interpolation, batch_size)
    for start, pixels in zip(range(0, len(rows), batch_size), blocks):
        yield rows[start:start + batch_size], pixels


@torch.no_grad()  # not inference_mode: parameters moved to a GPU in it could never train again
def compute_features(model: torch.nn.Module, data: PreparedData, mean: list[float], std: list[float],
                     cache_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                     batch_size: int = 64) -> np.ndarray:
    """(N, D) float32 pooled backbone features for every decoded image (rows of skipped files stay zero)."""
    key = feature_key(data.decoded.key, model, data.img_size, mean, std)
    folder = cache_folder(cache_dir, "features")
    path = folder / f"{key}.npy"
    if path.exists():
        try:
            stored = np.load(path, mmap_mode="r")
        except FileNotFoundError:  # removed meanwhile (`imgclf cache clear`): computed again below
            stored = None
        if stored is not None:
            mark_used(folder / f"{key}.json")
            return stored

    device = torch.device(device)
    was_training = model.training
    home = next(model.parameters()).device
    model.eval().to(device)
    m, s = channel_stats(mean, device), channel_stats(std, device)
    rows = data.decoded.ok_indices
    remove_stale_temp_files(folder.glob(f".{key}.*.npy"))  # a killed build's, never removed else
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".npy", dir=folder)
    os.close(fd)
    try:
        out = None
        for chunk, pixels in _pixel_batches(data, rows, batch_size):
            v = model.embed((to_unit_nchw(pixels, device) - m) / s).float().cpu().numpy()  # type: ignore[attr-defined]
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                                shape=(len(data.decoded.paths), v.shape[1]))
            out[chunk] = v
        if out is None:
            raise RuntimeError("no decodable image to extract features from")
        out.flush()
        del out
        # mapped before the rename: `imgclf cache clear` may take the new entry at once (see data/cache.py)
        held = np.load(tmp, mmap_mode="r") if os.name == "posix" else None
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        model.train(was_training).to(home)
    features = held if held is not None else np.load(path, mmap_mode="r")
    record = FeatureCacheRecord(version=FEATURE_CACHE_VERSION, pixels=data.decoded.key,
                                arch=getattr(model, "arch", ""), shape=features.shape)
    write_json(folder / f"{key}.json", record.model_dump(mode="json"))
    return features


class FeatureHeadModule(ImageClassifierModule):
    """The usual training module, fed stored feature vectors: no augmentation, no normalisation (both happened,
    or not, before the features were computed)."""

    def prepare(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        return x.float()

    def on_fit_start(self) -> None:
        self.model.takes_embeddings = True

    def on_fit_end(self) -> None:
        self.model.takes_embeddings = False


def _device(cfg: Any) -> str:
    if cfg.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def use_stored_features(cfg: Any, data: PreparedData, module: ImageClassifierModule, train_loader: DataLoader,
                        val_loader: DataLoader) -> tuple[FeatureHeadModule, DataLoader, DataLoader]:
    """Swap images for cached features: the same samplers over (N, D) vectors, and a module that trains the head
    only. The backbone is frozen (requires_grad False) so the optimiser and L2 penalties leave it alone."""
    model = module.model
    features = compute_features(model, data, module.mean.flatten().tolist(), module.std.flatten().tolist(),
                                cfg.cache_dir, _device(cfg))
    for p in model.backbone.parameters():  # type: ignore[attr-defined]
        p.requires_grad_(False)
    head_module = FeatureHeadModule(model, module.settings, module.mean.flatten().tolist(),
                                    module.std.flatten().tolist(),
                                    None if module.class_weights is None else module.class_weights.tolist(),
                                    module.steps_per_epoch)

    def loader(split: str, like: DataLoader) -> DataLoader:
        s = data.splits[split]
        labels = s.labels if s.targets is None else s.targets  # multi-label: the (N, K) targets, as training's
        return make_loader(CachedImages(features, s.indices, labels), like.sampler)  # type: ignore[arg-type]

    return head_module, loader("train", train_loader), loader("val", val_loader)
