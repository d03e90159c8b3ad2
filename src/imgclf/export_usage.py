"""The page written beside an exported model (`model.onnx.md`): what goes in, what comes out, and the exact
decoding imgclf does before the graph, with a Pillow + onnxruntime example, so that a caller without imgclf gets
the answers `imgclf predict` gives. The graph itself starts at uint8 pixels: everything before them is here."""

from __future__ import annotations

import json
from typing import Any

from .data.decode import INTERPOLATIONS
from .quantize import DISABLED_OPTIMIZERS

MIN_ONNXRUNTIME = "1.20"

_DECODING = '''SIDE, MODE = {side}, "{mode}"
# every format Pillow reads but EPS, which it decodes by running Ghostscript on the file's own PostScript
Image.init()
FORMATS = [name for name in Image.OPEN if name != "EPS"]


def pixels(path):
    """One file -> ({side}, {side}, {channels}) uint8, decoded as imgclf decodes it."""
    with Image.open(path, formats=FORMATS) as img:
        if img.format in ("JPEG", "MPO"):  # MPO: a JPEG with an embedded preview
            img.draft(MODE, (SIDE, SIDE))  # libjpeg scales down while decoding, as imgclf lets it
        limit = Image.MAX_IMAGE_PIXELS  # Pillow only warns up to twice it; imgclf refuses above it
        if limit is not None and img.width * img.height > limit:
            raise ValueError(f"decompression bomb refused: {{img.width * img.height:,}} pixels, above {{limit:,}}")
        raw = img.tile[0].args if img.format == "PNG" and img.tile else None  # the PNG's stored bit depth
        if raw and raw.startswith("RGB;16"):  # read as 8 bits a sample, its 16-bit colour key matches no pixel
            img.info.pop("transparency", None)
        elif raw in ("L;2", "L;4") and isinstance(img.info.get("transparency"), int):  # pixels scaled, not the key
            img.info["transparency"] *= 255 // (2 ** int(raw[2:]) - 1)
        img.load()
        if img.mode == "I":  # 32-bit integers (a PGM deeper than 8 bits, a TIFF): on the 16-bit scale where they fit
            stored = np.asarray(img)
            if stored.size and stored.min() >= 0 and stored.max() <= 65535:
                img = Image.fromarray(stored.astype(np.uint16))
        try:
            img = ImageOps.exif_transpose(img)
        except Exception:  # a damaged EXIF block: used as stored, as imgclf does
            pass
        key = img.info.get("transparency")  # a colour key: pixels of that value are transparent
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit and float: their range into 0..255
            stored = np.asarray(img)
            values = stored.astype(np.float64)
            if img.mode == "F" and values.size and not (np.isfinite(values).all() and values.min() >= -0.1):
                raise ValueError("float pixels hold NaN, infinity or values below -0.1 (readable: [0, 1] or 0..255)")
            if img.mode == "I" and values.size and not (values.min() >= 0 and values.max() <= 65535):
                raise ValueError("32-bit integer pixels outside 0..65535 (readable: 0..255 or 0..65535)")
            high = values.max() if values.size else 0.0
            if img.mode == "F" and high <= 1.1:  # float pixels in [0, 1], a little overshoot clipped
                values = np.rint(values * 255.0)
            elif img.mode.startswith("I;16") or high > 255:  # 16-bit: on the 0..65535 scale
                values = np.rint(values * (255.0 / 65535.0))
            sixteen = img.mode.startswith("I;16")
            img = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), mode="L")
            if sixteen and isinstance(key, int):
                img = Image.merge("LA", (img, Image.fromarray(np.where(stored == key, 0, 255).astype(np.uint8))))
        if img.mode in ("P", "RGB", "L", "1") and "transparency" in img.info:  # a palette's or a colour key's
            img = img.convert("RGBA")
        if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):  # transparency over white
            straight = img.convert("LA") if img.mode == "La" else img  # premultiplied grey: no direct RGBA
            img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), straight.convert("RGBA"))
        try:
            img = img.convert(MODE)
        except ValueError:  # no direct conversion (LAB to L): through RGB, as imgclf converts
            img = img.convert("RGB").convert(MODE)
        img = img.resize((SIDE, SIDE), Image.Resampling.{resample}, reducing_gap=None)
        array = np.asarray(img, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array
'''

_ONNX_EXAMPLE = '''import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

''' + _DECODING + '''

CLASSES = {classes!r}
session = ort.InferenceSession("{file}", providers=["CPUExecutionProvider"]{session_options})


def predict(paths):
    batch = np.stack([pixels(p) for p in paths])  # (N, {side}, {side}, {channels}) uint8, any N
    probabilities, score, unknown = session.run(["probabilities", "score", "unknown"], {{"images": batch}})
{answer}'''

_SINGLE_ANSWER = '''    best = probabilities.argmax(1)
    return [("unknown" if u else CLASSES[b], CLASSES[b], float(p[b]), float(s))
            for b, p, s, u in zip(best, probabilities, score, unknown)]  # label, best class, probability, score
'''
_MULTILABEL_ANSWER = '''    # each label's threshold, in CLASSES order; the labels carried, most probable first, as imgclf lists them
    cutoffs = np.array({thresholds!r})
    return [[(CLASSES[k], float(row[k])) for k in np.argsort(-row, kind="stable") if row[k] >= cutoffs[k]]
            for row in probabilities]
'''
_PT2_EXAMPLE = '''import numpy as np
import torch
from PIL import Image, ImageOps

''' + _DECODING + '''


CLASSES = {classes!r}
model = torch.export.load("{file}").module()  # not torch.jit.load: a torch.export program; built once


def predict(paths):
    batch = torch.from_numpy(np.stack([pixels(p) for p in paths]))  # (N, {side}, {side}, {channels}) uint8, any N
    probabilities, score, unknown = (t.numpy() for t in model(batch))
{answer}'''


# what imgclf's onnx backend passes too (the max-pools stay float32, faster)
_INT8_SESSION = f",\n                               disabled_optimizers={json.dumps(DISABLED_OPTIMIZERS)}"


def _int8(export: dict[str, Any]) -> bool:
    return export.get("quantization") == "int8"


def _precision(export: dict[str, Any], multilabel: bool) -> str:
    if _int8(export):
        from .quantize import agreement_text
        from .records import QuantizationCheck

        check = export.get("quantization_check")
        head = "sigmoid" if multilabel else "softmax and unknown detector"
        source = (check or {}).get("images")
        return ("The graph's convolutions compute in int8 (`imgclf export --quantize int8`: per-channel int8 "
                "weights, uint8 activations whose ranges were set on "
                + (f"the images in `{source}`" if source else "the run's validation images") + "); the rest, "
                f"{head} included, in float32. `imgclf predict RUN IMAGES --backend onnx` gives its answers and "
                "`imgclf evaluate RUN --backend onnx` its test scores; the run's own weights (`--backend torch`) "
                "answer a little otherwise."
                + (" " + agreement_text(QuantizationCheck.model_validate(check)) if check else "")
                + f" onnxruntime runs it faster with `disabled_optimizers={json.dumps(DISABLED_OPTIMIZERS)}`, as "
                "the example and imgclf do (the max-pools then run in float32, not in uint8).")
    return ("The graph computes in float32: `imgclf predict RUN IMAGES --precision 32` gives its answers (to about "
            "1e-5). imgclf's default precision, `auto`, runs the weights in bfloat16 on CPUs with native bf16 "
            "and on GPUs: there its probabilities differ from this file's, by up to about 1e-2 for the small "
            "CNNs measured (fast_resnet, model_s) and by more for deep pretrained backbones (up to 0.15 seen "
            "on MobileNetV2), and an image scored near a threshold or between two classes may be decided "
            "otherwise. Compare with `--precision 32` where the float32 answers matter.")


def usage_page(card: dict[str, Any]) -> str:
    """Markdown for the exported model whose card (`ExportedCard`, as JSON) is `card`."""
    export = card["export"]
    side, channels, classes = card["img_size"], card["in_chans"], list(card["classes"])
    mode = "L" if card["color"] == "grayscale" else "RGB"
    multilabel = card.get("task") == "multilabel"
    unknown = card.get("unknown") or {}
    lines = [f"# {export['file']}: imgclf {card['architecture']}, {len(classes)} "
             f"{'labels' if multilabel else 'classes'}", "",
             f"Written by `imgclf export` (torch {export['torch']}); its model card is `{export['file']}.json`"
             + (" and the ONNX metadata key `imgclf.model_card`" if export['format'] == 'onnx' else
                " and the archive's own `model.json` (`files = {\"model.json\": \"\"}; "
                "torch.export.load(path, extra_files=files)` fills it)") + ".", "",
             "## Input", "",
             f"`{export['input']}`: uint8, shape (N, {side}, {side}, {channels}), channels last "
             f"({'grey' if channels == 1 else 'RGB'}), N any number from 1. Give the pixels as decoded (0-255): "
             "the normalisation (mean and std of the card) is inside the graph.", "",
             "## Outputs", ""]
    if multilabel:
        lines += ["- `probabilities` float32 (N, K): each label's probability, sigmoid of its logit, independent "
                  "of the others;",
                  "- `score` float32 (N,): the highest label probability;",
                  "- `unknown` bool (N,): always false (an image with none of the labels is a valid answer).", "",
                  "A label is predicted when its probability reaches its threshold "
                  + ("(chosen on validation, by F1):" if card.get("thresholds") else "(0.5: none was tuned):"), ""]
        # as the card stores them (6 decimals): at 4, a rule reimplemented from the table carried a label on
        # probabilities in [0.5336, 0.533618), where imgclf does not
        thresholds = card.get("thresholds") or {c: 0.5 for c in classes}
        lines += ["| label | threshold |", "|---|---:|"] + [f"| {_cell(c)} | {thresholds[c]:.6f} |" for c in classes]
    else:
        calibration = card.get("calibration") or {}
        if calibration.get("method") == "temperature" and not calibration.get("skipped"):
            softmax = (f"softmax(logits / {calibration['temperature']:.4g}), the temperature fitted on validation "
                       "(calibrated probabilities)")
        else:
            softmax = f"softmax(logits), no temperature ({calibration.get('skipped') or 'calibrate: none'})"
        lines += [f"- `probabilities` float32 (N, K): {softmax}; columns in the class order below;"]
        if unknown.get("threshold") is not None:
            lines += [f"- `score` float32 (N,): in-distribution score of the `{unknown['detector']}` detector "
                      "(higher: more like the training images);",
                      f"- `unknown` bool (N,): score < {float(unknown['threshold'])!r}, the threshold that accepts "
                      f"{unknown['acceptance']:.0%} of the validation images. imgclf then answers `unknown`, "
                      "with the best class beside it."]
        else:
            lines += ["- `score` float32 (N,): in-distribution score (higher: more like the training images);",
                      "- `unknown` bool (N,): always false (this run has no unknown threshold)."]
        lines += ["", "| index | class |", "|---:|---|"] + [f"| {i} | {_cell(c)} |" for i, c in enumerate(classes)]
    resample = INTERPOLATIONS[card["interpolation"]].name  # the Pillow filter decode.py resizes with
    lines += ["", "## Decoding: what imgclf does before the graph", "",
              "The same file decoded another way (another resize filter, no EXIF rotation, transparency over "
              "black) gives other pixels, so other probabilities and scores, and near a threshold another answer. "
              "imgclf, with Pillow:", "",
              f"1. JPEG files are opened with `img.draft(\"{mode}\", ({side}, {side}))`: libjpeg scales the "
              f"image down by 1/2 to 1/8 while decoding, keeping it at least {side} px a side; an image still "
              "larger than `PIL.Image.MAX_IMAGE_PIXELS` (89,478,485 pixels unless changed) is refused;",
              "2. the EXIF orientation is applied (`ImageOps.exif_transpose`; an image whose EXIF block cannot be "
              "read is used as stored);",
              "3. transparency (RGBA, LA, a palette's transparent colour, a PNG colour key on RGB, grey or 16-bit "
              "grey) is composited over white; 16-bit grey images (a PGM deeper than 8 bits too, which Pillow "
              "scales to 0-65535) are on the 0-65535 scale whatever their content, divided by 257 and rounded "
              "(16-bit RGB is read as Pillow reads it, each sample's high byte); float images whose brightest pixel "
              "is at most 1.1 are multiplied by 255, "
              "rounded and clipped to 0-255; other float and 32-bit integer images are kept as 0-255, or read as "
              "16-bit where their maximum exceeds 255; float images holding NaN, infinity or values below -0.1, and "
              "32-bit integer images outside 0-65535, are refused;",
              f"4. the image is converted to `{mode}` (as Pillow converts: an embedded ICC colour profile is not "
              f"applied) and resized to {side} x {side}, aspect ratio not kept, with "
              f"`img.resize(({side}, {side}), Image.Resampling.{resample}, reducing_gap=None)`;",
              "5. `np.asarray(img, dtype=np.uint8)`, with a channel axis added for grey images.", "",
              ("`imgclf predict RUN IMAGES --backend onnx` (or `imgclf serve RUN --backend onnx`) runs this file "
               "with exactly these steps." if export["format"] == "onnx" else
               "`imgclf predict RUN IMAGES` decodes with exactly these steps (and runs the run's own weights)."), "",
              "## Precision", "", _precision(export, multilabel), ""]
    if export["format"] == "onnx":
        # 1.17 refuses the graph's IR version 10; 1.18 and 1.19 have no ReduceL2 at opset 18 (the default
        # detector's norm): measured by the export review, 1.20.1 runs every detector
        lines[lines.index("## Input"):lines.index("## Input")] = [
            f"Runs on onnxruntime {MIN_ONNXRUNTIME} or later. Run the example from this folder (it opens "
            f"`{export['file']}` by name).", ""]
    else:
        lines[lines.index("## Input"):lines.index("## Input")] = [
            f"Needs torch {export['torch']} (the version that wrote it) or later; run the example from this folder "
            f"(it opens `{export['file']}` by name). Its outputs are the three below, in that order.", ""]
    example = {"side": side, "channels": channels, "mode": mode, "file": export["file"]}
    answer = _MULTILABEL_ANSWER.format(thresholds=[float((card.get("thresholds") or {}).get(c, 0.5))
                                                   for c in classes]) if multilabel else _SINGLE_ANSWER
    if export["format"] == "onnx":
        lines += ["## Example (Python: onnxruntime, Pillow, numpy)", "", "```python",
                  _ONNX_EXAMPLE.format(**example, resample=resample, classes=classes, answer=answer,
                                       session_options=_INT8_SESSION if _int8(export) else "").rstrip(),
                  "```", ""]
    else:
        lines += ["## Example (Python: torch, Pillow, numpy)", "", "```python",
                  _PT2_EXAMPLE.format(**example, resample=resample, classes=classes, answer=answer).rstrip(), "```",
                  ""]
    return "\n".join(lines)


def _cell(name: str) -> str:
    """A class name as a Markdown table cell shows it: a "|" in "cat|dog" ended the cell, and the table then mapped
    column 0 to "cat" with "dog" in a column of its own."""
    return name.replace("\\", "\\\\").replace("|", "\\|")
