"""Static int8 quantization of an exported ONNX graph, calibrated on the run's own validation images.

Only the convolutions are quantized (per-channel int8 weights, uint8 activations, QDQ format, which onnxruntime
fuses into integer kernels, fastest on CPUs with VNNI): they are nearly all of a small CNN's time, and the rest
of the graph stays fp32. The trust head is never quantized: its Mahalanobis distances and the threshold stored with them
are fitted on fp32 features, and the head costs ~1 % of the network. Measured on model_s at 32x32 (2 cores, AMD
EPYC with AVX-512 VNNI, batch 8, 1 thread): the forward pass 0.32 against 0.70 ms per image
(benchmarks/results/onnx_int8_epyc_bf16.json, with `DISABLED_OPTIMIZERS`); quantizing the dense layers as well was
slower and changed more answers.

The export records how often the int8 graph gives the fp32 graph's top-1 class and unknown flag on validation
images it was not calibrated on (`QuantizationCheck` in the card), and warns when it is below `AGREEMENT_WARN`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .config_text import plural
from .errors import bad_path, invalid
from .notices import warn
from .records import QuantizationCheck, RunDir

QUANTIZE = ("none", "int8")
# onnxruntime's QDQ propagation moves each quantize step ahead of the max-pool before it, which then runs on uint8
# in NCHW, unvectorised: on model_s at 32x32 (AMD EPYC, AVX-512 VNNI, batch 8, 1 thread) the int8 graph took
# 0.44 ms per image with it and 0.30 without (fp32: 0.69; a timing outside the repository, model_s 32x32 grey);
# on a graph without QDQ nodes it changes nothing
DISABLED_OPTIMIZERS = ["QDQPropagationTransformer"]
CALIBRATION_IMAGES = 256  # ranges settle well before this on the runs measured; more only slows the export
CHECKED_IMAGES = 1024
MIN_APART = 32  # fewer readable validation images: calibration and check read all of them (16 each is little)
AGREEMENT_WARN = 0.99


def check_quantize(quantize: str, format: str) -> str:
    """Refused before anything is loaded: the flag is wrong whatever the run holds."""
    if quantize not in QUANTIZE:
        raise invalid("quantize", quantize, QUANTIZE)
    if quantize != "none" and format != "onnx":
        raise invalid("quantize", quantize, "none with --format pt2 (int8 is an ONNX export's option)",
                      hint="Pass --format onnx")
    return quantize


def calibration_pixels(run_dir: Path, decode, folder: str | os.PathLike | None = None,
                       limit: int = CALIBRATION_IMAGES + CHECKED_IMAGES, seed: int = 0) -> tuple[np.ndarray, int]:
    """Up to `limit` images drawn at random from the run's validation split, or from `folder` (any folder of images
    like the run's, class sub-folders or not: for a run whose data is not on this machine), decoded as prediction
    decodes them (`decode`: `Classifier.decode`), and how many drawn ones could not be read (passed over, with a
    warning: the ranges are then set on fewer images, or on fewer classes, than the source holds)."""
    if folder is None:
        dataset = RunDir(run_dir).read_dataset()
        files = dataset.split_paths("val")[0] if "val" in dataset.splits else []
        source = "validation images"
    else:
        files = _folder_images(folder)
        source = f"images in {folder}"
    order = np.random.default_rng(seed).permutation(len(files))
    pixels, unreadable = [], []
    first_reason = ""
    for i in order:
        if len(pixels) == limit:
            break
        try:
            pixels.append(decode(str(files[i])))
        except Exception as exc:  # moved, deleted or broken since training; not an image; a bomb
            unreadable.append(str(files[i]))
            if not first_reason:
                first_reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    example = f" (e.g. {unreadable[0]}: {first_reason})" if unreadable else ""
    if not pixels and folder is not None:
        raise bad_path("calibration", folder, "a folder of images like the run's (int8 calibration reads them)",
                       f"none of its {len(files):,} image files could be read{example}")
    if not pixels:
        raise bad_path("run", run_dir, "a run whose validation images are on disk (int8 calibration reads them)",
                       f"none of its {len(files):,} validation images could be read{example}",
                       hint="Restore the data folder named in its dataset.json, pass --calibration FOLDER (images "
                            "like the run's), or export without --quantize")
    if unreadable:
        warn(f"{len(unreadable):,} of the {len(unreadable) + len(pixels):,} {source} drawn for int8 "
             f"calibration could not be read{example}: the ranges are set and checked on the other "
             f"{len(pixels):,}")
    if len(pixels) < MIN_APART:
        warn(f"only {plural(len(pixels), 'readable image')} to set the int8 ranges on ({source}), and the agreement "
             f"check reads the same ones: ranges from so few images may clip other images' activations. Pass "
             f"--calibration FOLDER with {MIN_APART} or more images like the run's, or export without --quantize")
    return np.stack(pixels), len(unreadable)


def _folder_images(folder: str | os.PathLike) -> list[str]:
    from .data.folder import walk_images

    path = Path(folder)
    if not path.is_dir():
        raise bad_path("calibration", folder, "a folder of images like the run's (int8 calibration reads them)",
                       "a file" if path.exists() else "not found")
    files = walk_images(path, [])
    if not files:
        raise bad_path("calibration", folder, "a folder of images like the run's (int8 calibration reads them)",
                       "no image file in it")
    return files


def calibration_split(count: int) -> tuple[slice, slice, bool]:
    """(calibration images, checked images, whether they overlap) out of `count` drawn images: apart
    when there are enough for both, else all of them for both (a tiny split still gets a graph)."""
    if count >= MIN_APART:
        cal = min(CALIBRATION_IMAGES, count // 2)
        return slice(0, cal), slice(cal, count), False
    return slice(0, count), slice(0, count), True


class _FromOnnxruntime(logging.Filter):
    """Drops the records onnxruntime's quantizer logs through the root logger (progress, and advice such as
    "Please consider to run pre-processing", which quant_pre_process has done); anyone else's pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"{os.sep}onnxruntime{os.sep}" not in record.pathname


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """onnxruntime's quantizer logs through the root logger itself (`logging.warning(...)`): a filter on that
    logger sees only those direct calls, not the records other loggers pass up to its handlers, and drops only
    onnxruntime's. Raising the root level instead silenced every other thread's warnings meanwhile."""
    root, quiet = logging.getLogger(), _FromOnnxruntime()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def quantize_graph(model: bytes, pixels: np.ndarray, input_name: str) -> bytes:
    """The fp32 graph `model` with its convolutions quantized to int8, their activation ranges set by running
    `pixels` (uint8 NHWC, the graph's input) through it."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{input_name: pixels[i:i + 32]} for i in range(0, len(pixels), 32)])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(prefix="imgclf-int8-") as tmp, _quiet_quantizer():
        fp32, prepared, int8 = (os.path.join(tmp, n) for n in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        Path(fp32).write_bytes(model)
        # onnx's shape inference and onnxruntime's graph folding; its symbolic shape pass fails on the trust
        # head's reductions, and the shapes here are static but for the batch
        quant_pre_process(fp32, prepared, skip_symbolic_shape=True)
        quantize_static(prepared, int8, Batches(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return Path(int8).read_bytes()


def compare_graphs(fp32: bytes, int8: bytes, pixels: np.ndarray, input_name: str, calibration_images: int,
                   overlap: bool, unreadable_images: int = 0, thresholds: np.ndarray | None = None,
                   folder: str | os.PathLike | None = None) -> QuantizationCheck:
    """Both graphs on `pixels`: how often they agree. Outputs in the export's order: probabilities, score,
    unknown. thresholds: a multi-label run's, one per label (its answer is the labels at or above them).
    folder: where the images came from (`calibration_pixels`), None for the run's validation split."""
    import onnxruntime as ort

    answers = []
    for model in (fp32, int8):
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"],
                                       disabled_optimizers=DISABLED_OPTIMIZERS)
        outputs = [session.run(None, {input_name: pixels[i:i + 256]}) for i in range(0, len(pixels), 256)]
        answers.append([np.concatenate([o[k] for o in outputs]) for k in range(3)])
    (p32, _, u32), (p8, _, u8) = answers
    check = QuantizationCheck(
        calibration_images=calibration_images, checked_images=len(pixels), overlap=overlap,
        unreadable_images=unreadable_images,
        top1_agreement=round(float((p32.argmax(1) == p8.argmax(1)).mean()), 5),
        unknown_agreement=round(float((u32 == u8).mean()), 5),
        labels_agreement=None if thresholds is None else round(float(((p32 >= thresholds) == (p8 >= thresholds))
                                                                     .all(1).mean()), 5),
        max_probability_change=round(float(np.abs(p32 - p8).max()), 5),
        # its name, not its path: the card travels inside the model file ("." said nothing; /home/alice/... too much)
        images=None if folder is None else os.path.basename(os.path.abspath(folder)) or os.path.abspath(folder))
    low = [f"{what} for {round(share * len(pixels)):,} of {len(pixels):,} {_source(check)} ({share:.1%})"
           for what, share in (("the same labels", check.labels_agreement) if thresholds is not None else
                               ("the same top-1 class", check.top1_agreement),
                               ("the same unknown flag", check.unknown_agreement))
           if share is not None and share < AGREEMENT_WARN]
    if low:
        warn(f"the int8 graph gives the fp32 graph's answers below {AGREEMENT_WARN:.0%}: {'; '.join(low)}. "
             "Score it with `imgclf evaluate RUN --backend onnx` against the run's own test scores before serving "
             "it, or export without --quantize")
    return check


def agreement_text(check: QuantizationCheck) -> str:
    """The check in one sentence, as the export command prints it and the model's page gives it."""
    images = (f"{check.checked_images:,} {_source(check)}"
              + (" (its calibration images too: too few readable ones to keep apart)" if check.overlap else "")
              + (f"; {check.unreadable_images:,} unreadable " + ("one" if check.unreadable_images == 1 else "ones")
                 + " passed over" if check.unreadable_images else ""))
    if check.labels_agreement is not None:
        answers = f"the same labels for {check.labels_agreement:.2%}"
    else:
        answers = (f"the same top-1 class for {check.top1_agreement:.2%}, the same unknown flag for "
                   f"{check.unknown_agreement:.2%}")
    return (f"Against the fp32 graph on {images}: {answers}, probabilities within "
            f"{check.max_probability_change:.3f}.")


def _source(check: QuantizationCheck) -> str:
    noun = "image" if check.checked_images == 1 else "images"
    return f"validation {noun}" if check.images is None else f"{noun} of {check.images}"
