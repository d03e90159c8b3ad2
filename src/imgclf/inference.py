"""`Classifier`: a trained run loaded from its directory, preprocessing and labels from the model card."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from .records import ModelCard, RunDir, load_card
from .records.run_dir import run_path
from .ood import UNKNOWN_LABEL, TrustHead, logits_and_features
from .data.decode import DecodeError, as_stored, image_to_array, open_image, refuse_special_file
from .data.tensors import channel_stats, to_unit_nchw
from .topk import top_k as top_classes
from .tta import MULTILABEL_TTA, TTAViews
from .errors import bad_path, check_switch, invalid
from .eval_mode import evaluating
from .notices import warn
from .hardware import prediction_device
from .prediction_precision import card_precision, inference_precision
from .card_model import build_from_card, for_prediction, trust_head  # noqa: F401  (re-exported)
from .inputs import ImageInput, array_to_image, check_pixels, decodable, gather_inputs, refuse_image_folder_as_run
from .prediction import Prediction, multilabel_prediction

# Decoding runs in threads: Pillow releases the GIL while it inflates and resizes. Chunks of this many images
# bound the memory held by decoded pixels when predicting a large folder.
_PREDICT_CHUNK = 1024

_AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def _unread_file(img: Image.Image) -> bool:
    """A PIL image opened from a file on disk whose pixels are not read yet (its first frame): the file itself
    can be decoded instead, as a path is. 95-Mpixel PNGs were refused by path and decoded given as Image.open."""
    try:
        if not (getattr(img, "tile", None) and img.tell() == 0 and isinstance(img.filename, str) and img.fp):
            return False
        # the file it was opened from, still: a relative name read after a chdir, or a file replaced since, is
        # another image (the image given is then decoded as it is)
        return os.path.samestat(os.fstat(img.fp.fileno()), os.stat(img.filename))
    except Exception:  # anything odd about it (no file descriptor: a file object): decoded as given
        return False


@dataclass
class PixelResults:
    """What a batch of images gives: calibrated probabilities (averaged over the TTA views when asked), and, for
    each image itself (never a TTA view: the threshold was set on plain images), its score and unknown flag."""

    probabilities: np.ndarray  # (N, K)
    scores: np.ndarray  # (N,)
    unknown: np.ndarray  # (N,) bool


_FORK_GUARDED = False


def _one_thread_in_forked_children() -> None:
    """A process forked after a classifier was made (gunicorn --preload, multiprocessing's fork) runs torch on one
    thread, whatever it does: the parent's OpenMP pool is not in the child, whose first parallel operation waited
    for it for ever (loading alone starts the pool). One thread, as torch's DataLoader sets in its forked workers;
    the child may set more (`torch.set_num_threads`), the parent keeps its own."""
    global _FORK_GUARDED
    if not _FORK_GUARDED and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=lambda: torch.set_num_threads(1))
        _FORK_GUARDED = True


class Classifier:
    """A trained run ready to predict: `imgclf.load(RUN)`, then `.predict(images)` (paths, folders, PIL images,
    arrays, tensors) gives one `Prediction` each. Load once, predict many times, from several threads if need be,
    or in processes forked after the load (gunicorn --preload), which run torch on one thread."""

    def __init__(self, model: torch.nn.Module, card: ModelCard, device: str | torch.device = "cpu",
                 run_dir: str | os.PathLike | None = None, head: TrustHead | None = None, precision: str = "auto"):
        self.card = card
        self.run_dir = Path(run_dir).absolute() if run_dir is not None else None  # where it was loaded from
        self.device = prediction_device(device)
        self.precision = inference_precision(precision, self.device)
        self.model = model.to(self.device).eval().to(memory_format=torch.channels_last)
        self.mean = channel_stats(card.mean, self.device)
        self.std = channel_stats(card.std, self.device)
        # the Mahalanobis distance runs in float64, which Apple's GPUs (MPS) lack: there it stays on the CPU
        self.head_device = torch.device("cpu") if self.device.type == "mps" else self.device
        self.head = (head if head is not None else trust_head(card, run_dir)).to(self.head_device).eval()
        _one_thread_in_forked_children()

    @classmethod
    def load(cls, run_dir: str | os.PathLike, device: str | torch.device = "cpu", plain: bool = False,
             precision: str = "auto", fold_batch_norm: bool = True) -> "Classifier":
        """The run's network and card; plain: with a bare softmax head instead of the card's temperature and unknown
        detector, whose statistics are then not read (refitting them must not need them). precision: `PRECISIONS`
        (`inference_precision`); auto keeps fp32 for a run whose temperature and thresholds were fitted in fp32
        (`card_precision`). fold_batch_norm: fold the batch norms that follow a
        convolution into it (`models.fold.fold_batch_norms`: faster, the same predictions; the network can then
        only predict); False keeps the trained modules as they are (Grad-CAM reads a convolution's own output)."""
        inference_precision(precision, prediction_device(device))  # bad values fail before the weights are read
        asked = precision
        fold_batch_norm = check_switch("fold_batch_norm", fold_batch_norm)
        run_dir = run_path(run_dir)  # "~/runs/a" expanded, once for every file read below
        refuse_image_folder_as_run(run_dir)
        card = load_card(run_dir)
        if precision == "auto":
            precision = card_precision(card)
        weights = RunDir(run_dir).checked_file("model.safetensors", card)
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
        if fold_batch_norm:
            from .models.fold import fold_batch_norms

            fold_batch_norms(model.eval())
        clf = cls(model, card, device, run_dir=run_dir, head=TrustHead() if plain else trust_head(card, run_dir),
                  precision=precision)
        clf._loaded_as = (plain, asked)  # what reload_card keeps
        return clf

    def reload_card(self) -> None:
        """Its run's model.json and unknown-detector statistics as they are on disk now, the network unchanged:
        after `imgclf.calibrate(clf)` refitted them, the loaded classifier went on with the old temperature and
        threshold while `imgclf.evaluate(clf)` read the new ones."""
        if self.run_dir is None:
            return
        plain, asked = getattr(self, "_loaded_as", (False, None))
        card = load_card(self.run_dir)
        self.refuse_other_weights(card)
        if not plain:  # loaded plain (a bare softmax), it stays so
            self.head = trust_head(card, self.run_dir).to(self.head_device).eval()
        if asked == "auto":  # auto follows where the new fit was made, as a fresh load's would
            self.precision = inference_precision(card_precision(card), self.device)
        self.card = card

    def refuse_other_weights(self, card: ModelCard | None = None) -> None:
        """Its run folder (`card`: the model.json there now) must still describe the weights this classifier holds:
        `imgclf.evaluate(clf)` on a folder replaced by another run's scored the other weights, then put the other
        run's card and unknown detector on this network (34 of 36 labels changed, every image unknown)."""
        if self.run_dir is None:
            return
        card = card if card is not None else load_card(self.run_dir)
        held = (self.card.file_sha256 or {}).get("model.safetensors")
        there = (card.file_sha256 or {}).get("model.safetensors")
        if held is not None and there is not None and held != there:
            raise bad_path("run_dir", self.run_dir, "the run folder this classifier was loaded from, describing its "
                           "weights", "its model.json now describes other weights (model.safetensors "
                           f"{there[:12]}, this classifier's {held[:12]}): the folder was replaced or trained again",
                           hint="Load it again (imgclf.load) to use the weights there now")

    def __fspath__(self) -> str:
        """The run it was loaded from, so that a loaded classifier goes where a run's path does
        (`imgclf.evaluate(clf)`, `imgclf.explain(clf, ...)`)."""
        if self.run_dir is None:
            raise TypeError("this Classifier was not loaded from a run directory")
        return str(self.run_dir)

    def __repr__(self) -> str:
        parts = [f"architecture={self.card.architecture!r}", f"classes={len(self.card.classes)}",
                 f"img_size={self.card.img_size}", f"color={self.card.color!r}", f"device={str(self.device)!r}",
                 f"precision={self.precision!r}"]
        run = getattr(self, "run_dir", None)
        if run is not None:
            parts.append(f"run={str(run)!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    @property
    def classes(self) -> list[str]:
        """The class names in output order: a copy (sorting the list returned relabelled every later prediction)."""
        return list(self.card.classes)

    @property
    def tta_views(self) -> TTAViews:
        """The test-time views this run may average over: those its training augmentation made (`tta`)."""
        return TTAViews.for_training(self.card.training.augment, self.card.img_size)

    def _tta_views(self) -> TTAViews:
        """The views TTA averages over, or the refusal: a multi-label run has none (evaluate refuses it alike)."""
        if self.card.task == "multilabel":
            raise invalid("tta", True, MULTILABEL_TTA)
        return self.tta_views.require()

    def decode(self, source: ImageInput) -> np.ndarray:
        """One image -> (H, W, C) uint8 at the card's size and colour mode, converted as files are (EXIF
        orientation, transparency over white, any mode to the card's colour mode); a tensor as predict reads it. A
        PIL image opened from a file and not yet read is decoded from that file, exactly as its path would be."""
        source = decodable(source, "source", self.card.color == "grayscale")
        if isinstance(source, np.ndarray):
            source = array_to_image(source, "source")
        if isinstance(source, Image.Image):
            if source.width == 0 or source.height == 0:
                raise DecodeError(f"image has no pixels ({source.width}x{source.height})")
            if _unread_file(source):  # Image.open(path) as given: decoded as that path is (libjpeg's scaling, the
                return open_image(source.filename, self.card.img_size, self.card.color,  # pixel limit), and the
                                  self.card.interpolation)  # caller's image left unread
            try:
                img = as_stored(source)
                return image_to_array(img, self.card.img_size, self.card.color, self.card.interpolation)
            except DecodeError:
                raise
            except (OSError, ValueError, SyntaxError, EOFError) as exc:  # a lazily loaded image whose file is bad
                raise DecodeError(str(exc) or type(exc).__name__) from None
            except (MemoryError, RecursionError):
                raise
            except Exception as exc:  # Pillow's own failure on a malformed file
                if isinstance(exc, AssertionError) and getattr(source, "fp", False) is None:
                    # Pillow asserts on an image closed before it was read: the file is fine, the object empty
                    raise DecodeError("a PIL image closed before its pixels were read (a `with Image.open(...)` "
                                      "block that ended): call .load() inside it, or pass the path") from None
                raise DecodeError(f"damaged file ({type(exc).__name__}: {exc})") from None
        if isinstance(source, (str, os.PathLike)):
            refuse_special_file(source)
        return open_image(source, self.card.img_size, self.card.color, self.card.interpolation)

    def _try_decode(self, item: tuple[int, ImageInput]) -> tuple[int, np.ndarray | None, str | None]:
        i, source = item
        try:
            return i, self.decode(source), None
        except DecodeError as exc:
            return i, None, str(exc)

    def _label_thresholds(self, threshold: float | None) -> np.ndarray | None:
        return _thresholds_of(self.card, threshold)

    @property
    def threshold(self) -> float | None:
        """Scores below this are unknown (None: the card sets no threshold)."""
        return self.card.unknown.threshold if self.card.unknown is not None else None

    def predict_pixels(self, pixels: np.ndarray | torch.Tensor, batch_size: int = 256, tta: bool = False) -> np.ndarray:
        """uint8 (N, H, W, C) -> calibrated class probabilities (N, K). tta averages over `tta_views` (refused
        for a run whose training made no view but the image itself)."""
        return self.infer_pixels(pixels, batch_size, tta).probabilities

    @torch.inference_mode()
    def infer_pixels(self, pixels: np.ndarray | torch.Tensor, batch_size: int = 256, tta: bool = False) -> PixelResults:
        """uint8 (N, H, W, C) -> probabilities, scores and unknown flags (`PixelResults`)."""
        tta = check_switch("tta", tta)
        self._check_pixels(pixels, batch_size)
        views_of = self._tta_views() if tta else None
        probs_out, scores_out, unknown_out = [], [], []
        for start in range(0, len(pixels), batch_size):
            chunk = pixels[start : start + batch_size]
            x = to_unit_nchw(np.asarray(chunk, dtype=np.uint8), self.device)
            # views before normalising: their fill (zeros for fill=constant) is in pixel values, as in training
            views = views_of(x) if views_of is not None else [x]
            logits, features = self._forward(self._normalised(views[0]), self.head.needs_features)
            probs, score, unknown = self.head(*self._for_head(logits, features))
            if len(views) > 1:
                others = [self.head.probabilities(*self._for_head(self._forward(self._normalised(v))[0]))
                          for v in views[1:]]
                probs = torch.stack([probs, *others]).mean(0)
            probs_out.append(probs.cpu().numpy())
            scores_out.append(score.float().cpu().numpy())
            unknown_out.append(unknown.cpu().numpy())
        if not probs_out:
            return PixelResults(np.zeros((0, len(self.classes)), dtype=np.float32), np.zeros(0, dtype=np.float32),
                                np.zeros(0, dtype=bool))
        return PixelResults(np.concatenate(probs_out), np.concatenate(scores_out), np.concatenate(unknown_out))

    def _check_pixels(self, pixels: np.ndarray | torch.Tensor, batch_size: int) -> None:
        """Decoded images must have the card's size and channels (`decode` makes them so), in batches of one or
        more."""
        check_pixels(pixels, self.card.img_size, self.card.in_chans, batch_size)

    @torch.inference_mode()
    def embed_pixels(self, pixels: np.ndarray | torch.Tensor, batch_size: int = 256,
                     features: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 (N, H, W, C) -> raw logits (N, K), before any temperature, and with features=True the features
        (N, D) the head's detector reads (`feature_source`): what the calibration and the unknown detector are fitted
        on."""
        self._check_pixels(pixels, batch_size)
        logits_out, features_out = [], []
        for start in range(0, len(pixels), batch_size):
            logits, feats = self._forward(self.network_input(pixels[start:start + batch_size]), features)
            logits_out.append(logits.cpu().numpy())
            if feats is not None:
                features_out.append(feats.cpu().numpy())
        k = len(self.classes)
        logits = np.concatenate(logits_out) if logits_out else np.zeros((0, k), dtype=np.float32)
        return logits, np.concatenate(features_out) if features_out else None

    @property
    def feature_source(self) -> str:
        """Which features the head's detector reads (`imgclf.ood.FEATURE_SOURCES`)."""
        return self.head.features

    def network_input(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, C) -> the normalised, channels-last float batch the network reads."""
        return self._normalised(to_unit_nchw(np.asarray(pixels, dtype=np.uint8), self.device))

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context the network's forward pass runs in: autocast at `precision`, or nothing for fp32."""
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        return torch.autocast(self.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def _forward(self, x: torch.Tensor, features: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and, if asked, the detector's features, as float32 whatever precision the network ran at."""
        with self.autocast(), evaluating(self.model):
            logits, feats = logits_and_features(self.model, x, features, self.feature_source)
        return logits.float(), None if feats is None else feats.float()

    def _for_head(self, *tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
        return [t if t is None else t.to(self.head_device) for t in tensors]

    def _normalised(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    def predict(self, images: Sequence[ImageInput] | ImageInput, top_k: int = 3, tta: bool = False,
                unknown: bool = True, threshold: float | None = None) -> list[Prediction]:
        """Files, folders, PIL images or numpy arrays (`ImageInput`) -> one Prediction each, in order.

        A folder gives one per image file in it; a 4-D array one per row. Unreadable files get a Prediction
        with an `error`, not an exception; anything that is not an image input raises ImgclfError before any
        work. In-memory images are named by their place in `images`: `images[2]`, `images[2][5]` (a batch row).
        A JPEG file is decoded as training decoded its images (libjpeg scales a large photo down by 1/2 to 1/8
        while decoding); a PIL image is resized from all its pixels, so the same photo given as an image may score
        slightly otherwise than its path.
        tta averages each prediction over the views of the image that training also made (`tta_views`).
        unknown: label an image scoring below the card's threshold "unknown" (False: always the top class; the
        score is reported either way).
        threshold: multi-label runs only: one decision threshold for every label instead of the card's tuned ones.
        """
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise invalid("top_k", top_k, "a whole number >= 1 (larger than the number of classes lists them all)")
        unknown, tta = check_switch("unknown", unknown), check_switch("tta", tta)
        if tta:
            self._tta_views()  # before any image is decoded
        cutoffs = self._label_thresholds(threshold)
        if cutoffs is not None and not unknown:
            warn("unknown=False (--unknown off) changes nothing for a multi-label run: it labels an image with every label whose "
                 "probability reaches its threshold, and with none when none does; there is no unknown class")
        names, sources = gather_inputs(images, grey=self.card.color == "grayscale", utf8_names=False)
        by_index: dict[int, tuple[np.ndarray, float, bool]] = {}
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
                    out = self.infer_pixels(np.stack([a for _, a in decoded]), tta=tta)
                    by_index.update((i, (p, float(s), bool(u))) for (i, _), p, s, u
                                    in zip(decoded, out.probabilities, out.scores, out.unknown))
        k = max(1, min(top_k, len(self.classes)))
        results = []
        for i, name in enumerate(names):
            if i in errors:
                results.append(Prediction(name, None, None, [], errors[i], unknown=None,
                                          multilabel=cutoffs is not None))
                continue
            probs, score, is_unknown = by_index[i]
            top = top_classes(probs, self.classes, k)
            if cutoffs is not None:
                results.append(multilabel_prediction(name, probs, self.classes, top, cutoffs, score))
                continue
            flagged = unknown and is_unknown
            results.append(Prediction(name, UNKNOWN_LABEL if flagged else top[0][0], top[0][1], top, score=score,
                                      unknown=flagged, best_label=top[0][0]))
        return results


def _thresholds_of(card: ModelCard, threshold: float | None) -> np.ndarray | None:
    """Multi-label: the decision threshold of each label (the card's, or `threshold` for all); None otherwise."""
    if card.task != "multilabel":
        if threshold is not None:
            raise invalid("threshold", threshold, "unset for a single-label run (it applies to multi-label runs, "
                          "whose labels each have a decision threshold)")
        return None
    from .multilabel import threshold_vector

    return threshold_vector(card.classes, card.thresholds, threshold)


def load(run_dir: str | os.PathLike, device: str | torch.device = "cpu", precision: str = "auto",
         fold_batch_norm: bool = True) -> Classifier:
    """Load a trained run for prediction: `clf = imgclf.load("runs/s1"); clf.predict(["cat.jpg"])`.
    precision: auto (bf16 where the CPU has it natively, mixed on a GPU), 32, bf16-mixed or 16-mixed.
    fold_batch_norm: batch norms folded into the convolutions before them (faster; `clf.model` can then only
    predict); False to get the trained network as it is, to train it further."""
    return Classifier.load(run_dir, device, precision=precision, fold_batch_norm=fold_batch_norm)
