"""Export a run to a self-contained model file (ONNX or a torch.export program) and load the ONNX one back.

The exported graph takes what `Classifier.decode` produces, uint8 images in NHWC layout at the card's size
and colour mode, and does the rest itself: scale by 1/255, normalise with the card's mean/std, run the
network, then the card's `TrustHead` (the module the torch Classifier runs too): softmax of the logits divided by
the card's temperature, the in-distribution score, and the unknown flag (score below the card's threshold).
Outputs: `probabilities` (N, K), `score` (N,), `unknown` (N,) bool. A caller needs only an image decoder and the
class names in the card written beside it.

Resizing stays outside the graph on purpose: the model was trained on images resized by Pillow with the
card's `interpolation` (antialiased), and no ONNX Resize reproduces that exactly. The card says which
size and interpolation to use.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from pydantic import ValidationError

from .records import (ExportedCard, ExportInfo, ModelCard, QuantizationCheck, dump_json, load_card,
                      validation_problems)
from .records.run_dir import run_path
from .errors import ImgclfError, add_hint, bad_path, invalid, path_argument
from .inference import Classifier, PixelResults
from .export_usage import usage_page
from .io import atomic_write_bytes, atomic_write_text, writable_folder, write_json
from .notices import warn
from .ood import TrustHead, logits_and_features
from .quantize import (DISABLED_OPTIMIZERS, calibration_pixels, calibration_split, check_quantize, compare_graphs,
                       quantize_graph)
from .file_names import shell_word

FORMATS = {"onnx": "model.onnx", "pt2": "model.pt2"}
# the pt2 format's first name, kept for the commands and scripts that use it (it never was a torch.jit archive)
FORMAT_ALIASES = {"torchscript": "pt2"}
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
SCORE_NAME = "score"
UNKNOWN_NAME = "unknown"
OUTPUT_NAMES = (OUTPUT_NAME, SCORE_NAME, UNKNOWN_NAME)
CARD_METADATA_KEY = "imgclf.model_card"


class _WithPreprocessing(torch.nn.Module):
    """uint8 (N, H, W, C) -> (probabilities (N, K), score (N,), unknown (N,)): the card's preprocessing before
    the network and its TrustHead after it."""

    def __init__(self, model: torch.nn.Module, card: ModelCard, head: TrustHead):
        super().__init__()
        self.model = model
        self.head = head
        self.register_buffer("mean", torch.tensor(card.mean, dtype=torch.float32).view(1, -1, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(card.std, dtype=torch.float32).view(1, -1, 1, 1) * 255.0)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = images.permute(0, 3, 1, 2).to(torch.float32)
        # (x/255 - mean)/std == (x - 255*mean)/(255*std): one op fewer, same value to float rounding.
        x = (x - self.mean) / self.std
        logits, features = logits_and_features(self.model, x, self.head.needs_features,
                                               self.head.features)
        return self.head(logits, features)


def export_run(run_dir: str | os.PathLike, format: str = "onnx", out: str | os.PathLike | None = None,
               quantize: str = "none", calibration: str | os.PathLike | None = None) -> Path:
    """Write the run's model with its preprocessing, plus its model card, and return the model file's path.

    format="onnx" writes `model.onnx` (a single file, dynamic batch) with the card embedded in the ONNX
    metadata (key `imgclf.model_card`) and also written beside it as `model.onnx.json`.

    Both formats output (probabilities, score, unknown); see the module's docstring.

    format="pt2" (also accepted by its first name, "torchscript") writes `model.pt2`, a `torch.export` program,
    not a `torch.jit` archive:
    torch.jit.trace/script are deprecated in torch 2.14, a trace freezes the batch size unless handled
    with care, and torch.export is the same capture the ONNX exporter uses, so both formats come from one
    graph. Load it with `torch.export.load("model.pt2").module()`; it needs torch but not imgclf. Like any
    pickle-capable torch archive, load a .pt2 only from a source you trust; ONNX is the format to share.

    Beside the model: its card (`model.onnx.json`, `model.pt2.json`) and a page on how to call it without imgclf
    (`model.onnx.md`, `model.pt2.md`: inputs, outputs, imgclf's exact decoding, an example; `export_usage`).

    out: the folder to write into (default `RUN/export/`). Files are written atomically.

    quantize="int8" (ONNX only): the graph's convolutions run on 8-bit integers, their ranges calibrated on the
    run's validation images, which must still be on disk (`imgclf.quantize`), or on the images in the folder
    `calibration` (images like the run's: its data set on another machine). The card's
    `export.quantization_check` says how often it agrees with the fp32 graph on images it was not calibrated on.
    """
    if format in FORMAT_ALIASES:
        warn(f"format {format} writes {FORMATS[FORMAT_ALIASES[format]]}, a torch.export program: load it with "
             "torch.export.load, not torch.jit.load")
    format = FORMAT_ALIASES.get(format, format)
    if format not in FORMATS:
        raise invalid("format", format, FORMATS)
    quantize = check_quantize(quantize, format)
    if calibration is not None and quantize != "int8":
        raise invalid("calibration", str(calibration), "unset unless the export is quantized (its images set the "
                      "int8 ranges)", hint="Add --quantize int8, or leave out --calibration")
    run_dir = run_path(run_dir, "run_dir")
    # an existing folder, or one named with a trailing slash, is a folder whatever its name
    if isinstance(out, (str, os.PathLike)) and Path(out).suffix.lower() in {Path(n).suffix for n in FORMATS.values()} \
            and not Path(out).is_dir() and not str(out).endswith(("/", os.sep)):
        # `--out deploy/model.onnx` made a folder of that name, with deploy/model.onnx/model.onnx inside
        raise invalid("out", str(out), f"a folder (the file written into it is named {FORMATS[format]})",
                      note="a file name", hint=f"Pass its folder: --out {shell_word(Path(out).parent)} "
                      f"(writes {Path(out).parent / FORMATS[format]}); a folder of that name is taken once it "
                      f"exists (mkdir {shell_word(out)} first)")
    card = load_card(run_dir)
    clf = Classifier.load(run_dir)
    try:
        out_dir = writable_folder("out", out if out is not None else run_dir / "export")
    except ImgclfError as exc:  # a read-only run folder: the error named an --out the user never gave
        if out is not None:
            raise
        raise add_hint(exc, f"out defaults to {run_dir / 'export'}: pass --out (Python: out=) to write "
                            "elsewhere") from None
    target = out_dir / FORMATS[format]
    if target.is_dir():  # what `--out deploy/model.onnx` made of deploy/model.onnx before it was refused
        raise bad_path("out", out_dir, f"a folder where {target.name} can be written",
                       f"{target} is a folder", hint="Remove or rename that folder, or pass another --out")

    # A fresh float32, contiguous-format copy: the Classifier keeps its weights channels-last for speed.
    wrapped = _WithPreprocessing(clf.model.to(memory_format=torch.contiguous_format), card, clf.head).eval()
    # weights that ask for no gradient: the loaded pt2 program's outputs carried grad_fn (and numpy() refused
    # them) unless the caller knew to wrap every call in torch.no_grad()
    wrapped.requires_grad_(False)
    example = torch.zeros((2, card.img_size, card.img_size, card.in_chans), dtype=torch.uint8)
    dynamic = ({0: torch.export.Dim("batch", min=1)},)  # no upper bound: 65,536 was a guard error past it
    info = dict(format=format, file=target.name, input=INPUT_NAME, output=OUTPUT_NAME, outputs=list(OUTPUT_NAMES),
                input_layout="NHWC uint8", torch=torch.__version__)

    if format == "onnx":
        graph = _onnx_graph(wrapped, example, dynamic)
        if quantize == "int8":
            graph, check = _int8_graph(graph, run_dir, clf, calibration)
            info.update(quantization="int8", quantization_check=check)
        card_json = _card_json(card, info)
        data = _with_card(graph, card_json)
    else:
        card_json = _card_json(card, info)
        with torch.no_grad():
            program = torch.export.export(wrapped, (example,), dynamic_shapes=dynamic)
        buf = io.BytesIO()
        with warnings.catch_warnings():
            # torch's note on weights not on the CPU ("No complete tensor found in the group!"): ours are
            warnings.filterwarnings("ignore", message=".*No complete tensor found.*")
            torch.export.save(program, buf, extra_files={"model.json": json.dumps(card_json)})
        data = buf.getvalue()
    page = usage_page(card_json)
    card_path = target.with_name(target.name + ".json")
    # The card and page beside the model describe it: removed before the model is replaced, so that a write that
    # fails part way (a full disk) leaves them missing, never describing the graph that was there before.
    for beside in (card_path, usage_path(target)):
        beside.unlink(missing_ok=True)
    atomic_write_bytes(target, data)
    write_json(card_path, card_json)
    atomic_write_text(usage_path(target), page)
    return target


def usage_path(model_file: Path) -> Path:
    """The page beside an exported model that says how to call it (`export_usage`)."""
    return model_file.with_name(model_file.name + ".md")


def _card_json(card: ModelCard, info: dict[str, Any]) -> dict[str, Any]:
    """The exported card as JSON; an fp32 export's has no quantization keys (`dump_json`)."""
    return dump_json(ExportedCard(**dict(card), export=ExportInfo(**info)))


def _onnx_graph(module: torch.nn.Module, example: torch.Tensor, dynamic: tuple) -> bytes:
    with torch.no_grad():
        program = torch.onnx.export(module, (example,), dynamo=True, dynamic_shapes=dynamic, external_data=False,
                                    input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), verbose=False)
    return program.model_proto.SerializeToString()


def _int8_graph(graph: bytes, run_dir: Path, clf: Classifier, folder: str | os.PathLike | None
                ) -> tuple[bytes, QuantizationCheck]:
    """The graph quantized on part of the run's validation images (or of `folder`'s), and how it agrees with fp32
    on the rest."""
    pixels, unreadable = calibration_pixels(run_dir, clf.decode, folder)
    calibration, checked, overlap = calibration_split(len(pixels))
    int8 = quantize_graph(graph, pixels[calibration], INPUT_NAME)
    return int8, compare_graphs(graph, int8, pixels[checked], INPUT_NAME, len(pixels[calibration]), overlap,
                                unreadable, clf._label_thresholds(None), folder)


def _with_card(graph: bytes, card_json: dict[str, Any]) -> bytes:
    """The graph with the card in its metadata and a one-line description, checked by onnx."""
    import onnx

    proto = onnx.load_from_string(graph)
    entry = proto.metadata_props.add()
    entry.key, entry.value = CARD_METADATA_KEY, json.dumps(card_json)
    proto.doc_string = (f"imgclf {card_json['architecture']}: uint8 NHWC images "
                        f"({card_json['img_size']}x{card_json['img_size']}x{card_json['in_chans']}) -> "
                        f"probabilities over {len(card_json['classes'])} classes, in-distribution score, unknown flag")
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


class OnnxClassifier(Classifier):
    """`Classifier` whose forward pass is an onnxruntime session over the exported model.

    Decoding, labels and `predict()` are inherited, so `--backend onnx` behaves like the torch backend.
    """

    def __init__(self, session: Any, card: ModelCard):  # no torch model: the session replaces it
        self.card = card
        self.session = session
        self.device = torch.device("cpu")
        # the graph is exported in fp32, its convolutions in int8 where it was quantized
        self.precision = "int8" if getattr(card, "export", None) and card.export.quantization == "int8" else "32"
        # exports made before the graph scored images output the probabilities only
        self.outputs = [o.name for o in session.get_outputs()]

    @classmethod
    def from_file(cls, path: str | os.PathLike, threads: int | None = None) -> "OnnxClassifier":
        import onnxruntime as ort

        path = Path(path)
        options = ort.SessionOptions()
        # One forward pass at a time (the server's batcher already serialises them) spread over `threads`
        # intra-op threads; no inter-op pool, whose threads would only compete for the same few cores.
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                           disabled_optimizers=DISABLED_OPTIMIZERS)
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise bad_path("run", path, "an ONNX model that onnxruntime can load", str(exc)) from None
        meta = session.get_modelmeta().custom_metadata_map
        if CARD_METADATA_KEY not in meta:
            raise bad_path("run", path, "an ONNX model exported by imgclf, with its model card in the metadata",
                           "no imgclf model card", hint="Export it with `imgclf export RUN --format onnx`")
        try:
            card = ExportedCard.model_validate_json(meta[CARD_METADATA_KEY])
        except ValidationError as exc:  # bad JSON too: the file's card is not one this version reads
            raise bad_path("run", path, "an ONNX model whose embedded model card this version of imgclf reads",
                           validation_problems(exc)) from None
        return cls(session, card)

    def infer_pixels(self, pixels: np.ndarray | torch.Tensor, batch_size: int = 256, tta: bool = False) -> PixelResults:
        """uint8 (N, H, W, C) -> probabilities, scores and unknown flags, all from the graph. tta averages the
        probabilities over the same views as the torch backend (`Classifier.tta_views`), taken on the uint8
        pixels as training took them on its pixels (the graph normalises inside); score and flag are the
        image's own."""
        self._check_pixels(pixels, batch_size)
        views_of = self.tta_views.require() if tta else None
        pixels = pixels.numpy() if isinstance(pixels, torch.Tensor) else pixels
        scored = SCORE_NAME in self.outputs and UNKNOWN_NAME in self.outputs
        names = list(OUTPUT_NAMES) if scored else [OUTPUT_NAME]
        probs_out, scores_out, unknown_out = [], [], []
        for start in range(0, len(pixels), batch_size):
            chunk = np.ascontiguousarray(pixels[start:start + batch_size], dtype=np.uint8)
            views = _uint8_views(chunk, views_of) if views_of is not None else [chunk]
            first = self.session.run(names, {INPUT_NAME: views[0]})
            probs = np.mean([first[0]] + [self.session.run([OUTPUT_NAME], {INPUT_NAME: v})[0] for v in views[1:]],
                            axis=0)
            probs_out.append(probs.astype(np.float32, copy=False))
            # an older export: its highest probability as the score (what a card without `unknown` means)
            scores_out.append(first[1].astype(np.float32) if scored else first[0].max(1).astype(np.float32))
            unknown_out.append(first[2].astype(bool) if scored else np.zeros(len(chunk), dtype=bool))
        if not probs_out:
            return PixelResults(np.zeros((0, len(self.classes)), dtype=np.float32), np.zeros(0, dtype=np.float32),
                                np.zeros(0, dtype=bool))
        return PixelResults(np.concatenate(probs_out), np.concatenate(scores_out), np.concatenate(unknown_out))


# The card fields that decide what the exported graph and its decoding answer. `created` changes with every
# training, so a run retrained after its export is caught even when nothing else in the card moved.
_GRAPH_FIELDS = ("architecture", "model_args", "classes", "img_size", "in_chans", "color", "mean", "std",
                 "interpolation", "num_params", "created", "calibration", "unknown", "task", "thresholds")


def _refuse_stale(run_dir: str | os.PathLike, exported: ModelCard) -> None:
    """An export older than the run's model.json (retrained, or the temperature or threshold refitted) would answer
    otherwise than the torch backend on the same run: refuse it rather than serve two models under one name."""
    current = load_card(run_dir).model_dump(mode="json")
    embedded = exported.model_dump(mode="json")
    changed = [name for name in _GRAPH_FIELDS if current.get(name) != embedded.get(name)]
    if changed:
        raise bad_path("run", run_dir, "a run directory whose export/model.onnx was made from its current model.json",
                       f"model.json changed since the export: {', '.join(changed)}",
                       hint=f"Re-create it with `imgclf export {shell_word(run_dir)} --format onnx`")


def _uint8_views(chunk: np.ndarray, views_of: Callable[[torch.Tensor], list[torch.Tensor]]) -> list[np.ndarray]:
    x = torch.from_numpy(chunk).permute(0, 3, 1, 2).float()  # exact: views only move pixels around (or zero them)
    return [np.ascontiguousarray(v.permute(0, 2, 3, 1).to(torch.uint8).numpy()) for v in views_of(x)]


def exported_from(onnx_file: str | os.PathLike) -> Path | None:
    """The run whose own export the file is (RUN/export/model.onnx, however it was named), else None: a copy moved
    elsewhere, or written by `export --out FOLDER`, stands alone with the card it carries."""
    # as named (RUN/export a link to another disk), else as the system resolves it (a link to RUN/export/model.onnx)
    for file in (Path(os.path.abspath(onnx_file)), Path(onnx_file).resolve()):
        if file.parent.name == "export" and (file.parent.parent / "model.json").is_file():
            return file.parent.parent
    return None


def load_onnx(run_or_file: str | os.PathLike, threads: int | None = None, precision: str = "auto"
              ) -> OnnxClassifier:
    """A run directory (uses RUN/export/model.onnx), a folder holding model.onnx (`export --out`) or an .onnx
    file -> OnnxClassifier.

    threads: onnxruntime's intra-op threads (default: its own choice, one per physical core).
    precision: auto or 32, both fp32 here: the graph was exported in fp32 (the mixed precisions are the torch
    backend's, and are refused rather than ignored); an int8 export (`export_run(quantize="int8")`) takes auto
    only."""
    if precision not in ("auto", "32"):
        raise invalid("precision", precision, "auto or 32 with the onnx backend (its graph runs in fp32, or its "
                      "convolutions in int8: auto only); bf16-mixed or 16-mixed with the torch backend")
    from .hardware import check_threads

    threads = check_threads(threads)
    path = path_argument("run", run_or_file, "a run directory, a folder holding model.onnx or an .onnx file "
                                             "(str or os.PathLike)")
    named_run = path if path.is_dir() and (path / "model.json").is_file() else None
    if path.is_dir():
        # a run's export is in RUN/export/ (a link to elsewhere, perhaps); the folder `imgclf export RUN --out
        # FOLDER` wrote holds model.onnx itself
        inside, beside = path / "export" / FORMATS["onnx"], path / FORMATS["onnx"]
        path = (inside if inside.is_file() or not beside.is_file() else beside) if named_run else \
            (beside if beside.is_file() else inside)
        if not path.exists():
            is_run = named_run is not None
            raise bad_path("run", run_or_file, "a run directory with an ONNX export, a folder holding model.onnx, "
                           "or an .onnx file", "no export/model.onnx" if is_run else "no model.onnx, no export/",
                           hint=f"Create it with `imgclf export {shell_word(run_or_file)} --format onnx`"
                           if is_run else "Name the run it was exported from, or the folder export --out wrote")
    elif not path.is_file():
        raise bad_path("run", run_or_file, "a run directory or an .onnx file", "not found")
    clf = OnnxClassifier.from_file(path, threads)
    run = named_run or exported_from(path)  # a run named directly is checked for staleness, wherever its file is
    if precision == "32" and clf.precision == "int8":
        raise invalid("precision", precision, "auto with an int8 export (its convolutions run in int8)",
                      hint="Export it again without --quantize to run fp32: " + (
                          f"imgclf export {shell_word(run)} --format onnx" if run is not None else
                          "imgclf export RUN --format onnx --out FOLDER, from the run it was exported from"))
    if run is not None:
        _refuse_stale(run, clf.card)  # as stale named as a file as named through its run
    # shown by repr, as for the torch backend; "~/run" as the shell reads it, as it was loaded
    clf.run_dir = path_argument("run", run_or_file).absolute()
    return clf
