"""`write_report(run_dir)`: the figures under plots/ and ONE self-contained report.html per run.

Everything comes from the run directory's files (model.json, dataset.json, config.yaml, history.csv,
predictions.csv, metrics.json); images are embedded as base64 data URIs, the CSS is inline, and nothing is
fetched from the network, so the page can be mailed, archived or opened offline.
"""

from __future__ import annotations

import base64
import math
import os
import struct
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..data.imbalance import IMBALANCE_FLAG_RHO
from ..errors import ImgclfError
from ..io import atomic_write_text
from . import plots
from .interpret import (
    Interpretation,
    best_val_accuracy,
    decode_for_display,
    load_run_files,
    lr_changes,
    minority_recall,
    overfitting_onset,
    read_history,
)


# ------------------------------------------------------------------------------------------- Jinja
def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader(__package__, "templates"), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    env.filters["seconds"] = _seconds
    return env


def render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _pct(x: Any, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f} %" if _finite(x) else "—"


def _num(x: Any, digits: int = 3) -> str:
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    return f"{x:.{digits}f}" if _finite(x) else "—"


def _seconds(x: Any) -> str:
    if not _finite(x):
        return "—"
    if x < 90:
        return f"{x:.1f} s"
    if x < 5400:
        return f"{x / 60:.1f} min"
    return f"{x / 3600:.2f} h"


def data_uri(path: str | os.PathLike) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _embed(path: str | os.PathLike | None) -> dict[str, Any]:
    """{"src": data URI, "width", "height"} of a PNG (size from its IHDR header, so the page reserves the space)."""
    if not path:
        return {"src": None, "width": None, "height": None}
    data = Path(path).read_bytes()
    width, height = struct.unpack(">II", data[16:24]) if data[:8] == b"\x89PNG\r\n\x1a\n" else (None, None)
    return {"src": "data:image/png;base64," + base64.b64encode(data).decode("ascii"), "width": width, "height": height}


# ------------------------------------------------------------------------------------------- figures
# id -> (title, caption): the report's order and words, shared by freshly drawn and reused figures.
FIGURES: dict[str, tuple[str, str]] = {
    "class_distribution": ("Images per class and split", "Training, validation and test images per class."),
    "class_samples": ("One sample per class", "A random training image of each class, as stored on disk."),
    "training_curves": ("Training curves",
                        "Train vs validation per epoch. Green: the epoch whose weights were kept; red: where validation "
                        "loss starts rising while training loss falls (overfitting); grey dotted lines or the dash-dot "
                        "curve: learning-rate changes; grey band: frozen backbone."),
    "confusion_counts": ("Confusion matrix (counts)", "Rows: true class; columns: predicted class."),
    "confusion_normalized": ("Confusion matrix (row-normalised)",
                             "Each row sums to 1; the diagonal is each class's recall, off-diagonal cells show where "
                             "its images go."),
    "per_class": ("Precision, recall and F1 per class", "n = number of test images of the class (support)."),
    "roc": ("ROC curves", "One class against the rest; the area under each curve (AUC) is 1 for a perfect ranking and "
            "0.5 for chance."),
    "pr": ("Precision-recall curves", "More telling than ROC when a class is rare: average precision (AP) falls "
           "quickly when confident predictions are wrong."),
    "reliability": ("Calibration", "Do predicted probabilities mean what they say? Bars below the diagonal: "
                    "over-confident; above: under-confident. ECE is the image-weighted mean gap."),
    "samples": ("Sample predictions", "A random mix of right and wrong test predictions (up to half wrong); wrong ones "
                "are framed in red. The number is the predicted class's probability."),
    "top_losses": ("Top losses", "The test images with the highest loss: confident mistakes, label errors and hard "
                   "cases."),
    "gradcam": ("Grad-CAM explanations", "Where the model looked for the class it predicted: red = strong evidence."),
}


def write_figures(run_dir: str | os.PathLike, interp: Interpretation | None = None, explain: bool = True,
                  n_samples: int = 18, n_losses: int = 12) -> dict[str, dict[str, Any]]:
    """Write every figure of a run under plots/; returns {id: {"path", "title", "caption"}} in report order.

    Grad-CAM needs the optional `grad-cam` package and the weights; when either is missing the report says so
    instead of failing.
    """
    run_dir = Path(run_dir)
    files = load_run_files(run_dir)
    card, dataset = files["card"] or {}, files["dataset"] or {}
    interp = interp or Interpretation.from_run(run_dir)
    out = run_dir / "plots"
    figures: dict[str, dict[str, Any]] = {}

    def add(key: str, make) -> None:
        title, caption = FIGURES[key]
        path = out / f"{key}.png"
        try:
            make(path)
        except ImgclfError:
            raise
        except Exception as exc:  # one broken figure must not cost the user the whole report
            warnings.warn(f"figure {key} failed: {type(exc).__name__}: {exc}", stacklevel=2)
            figures[key] = {"path": None, "title": title, "caption": f"Could not draw this figure: {exc}"}
            return
        figures[key] = {"path": path, "title": title, "caption": caption}

    if dataset.get("counts"):
        add("class_distribution", lambda p: plots.plot_class_distribution(dataset["counts"], p))
        samples = _class_samples(dataset)
        if samples:
            add("class_samples", lambda p: plots.plot_class_samples(samples, p))

    history = read_history(run_dir)
    if history:
        onset = overfitting_onset([r.get("loss", math.nan) for r in history], [r.get("val_loss", math.nan) for r in history])
        best = card.get("training", {}).get("best_epoch")
        add("training_curves", lambda p: plots.plot_training_curves(history, p, best, onset))

    classes = interp.classes
    add("confusion_counts", lambda p: plots.plot_confusion_matrix(interp.confusion, classes, p))
    add("confusion_normalized", lambda p: plots.plot_confusion_matrix(interp.confusion, classes, p, normalize=True))
    add("per_class", lambda p: plots.plot_per_class_metrics(interp.per_class, p, interp.metrics["macro"]))
    add("roc", lambda p: plots.plot_roc_curves(interp.y_true, interp.probs, classes, p))
    add("pr", lambda p: plots.plot_pr_curves(interp.y_true, interp.probs, classes, p))
    add("reliability", lambda p: plots.plot_reliability(interp.y_true, interp.probs, p))

    size, color = int(card.get("img_size", 0)) or None, card.get("color", "rgb")
    interpolation = card.get("interpolation", "bilinear")

    def grid(indices: list[int]) -> list[dict[str, Any]]:
        images = decode_for_display([interp.paths[i] for i in indices], size, color, interpolation)
        return [dict(interp.describe(i), image=images[j]) for j, i in enumerate(indices) if j in images]

    sample = grid(interp.sample(n_samples))
    if sample:
        add("samples", lambda p: plots.plot_prediction_grid(sample, p))
    losses = grid(interp.top_losses(n_losses))
    if losses:
        add("top_losses", lambda p: plots.plot_top_losses(losses, p))
    if explain:
        figures.update(_gradcam_figure(run_dir))
    return figures


def _class_samples(dataset: dict[str, Any], seed: int = 0) -> dict[str, str]:
    splits = dataset.get("splits", {})
    split = splits.get("train") or next(iter(splits.values()), None)
    if not split:
        return {}
    root = Path(dataset.get("root", "."))
    rng = np.random.default_rng(seed)
    files, labels = split.get("files", []), np.asarray(split.get("labels", []))
    out = {}
    for i, name in enumerate(dataset.get("classes", [])):
        rows = np.flatnonzero(labels == i)
        if len(rows):
            out[name] = str(root / files[int(rng.choice(rows))])
    return out


def _gradcam_figure(run_dir: Path) -> dict[str, dict[str, Any]]:
    title = FIGURES["gradcam"][0]
    try:
        import pytorch_grad_cam  # noqa: F401
    except ImportError:
        return {"gradcam": {"path": None, "title": title,
                            "caption": "Install the explain extra (pip install 'imgclf[explain]') for Grad-CAM heatmaps."}}
    from .explain import explain_run

    try:
        result = explain_run(run_dir)
    except ImgclfError as exc:
        return {"gradcam": {"path": None, "title": title, "caption": str(exc)}}
    except Exception as exc:  # an exotic architecture must not cost the user the report
        warnings.warn(f"Grad-CAM failed: {type(exc).__name__}: {exc}", stacklevel=2)
        return {"gradcam": {"path": None, "title": title, "caption": f"Grad-CAM failed: {type(exc).__name__}: {exc}"}}
    if result is None:
        return {}
    caption = (f"Where the model looked for the class it predicted, on {result['wrong']} wrong (highest loss first) "
               f"and {result['correct']} right test images: red = strong evidence. Layer: {result['layer']}, "
               "the last convolution with a spatial output.")
    return {"gradcam": {"path": result["path"], "title": title, "caption": caption}}


# ------------------------------------------------------------------------------------------- context
def _summary(run_dir: Path, files: dict[str, Any], interp: Interpretation, history: list[dict[str, float]]) -> dict[str, Any]:
    card, metrics, dataset = files["card"] or {}, files["metrics"] or {}, files["dataset"] or {}
    m = interp.metrics
    training = card.get("training", {})
    best_epoch = training.get("best_epoch")
    onset = overfitting_onset([r.get("loss", math.nan) for r in history], [r.get("val_loss", math.nan) for r in history]) if history else None
    imbalance = dataset.get("imbalance") or {}
    minority = imbalance.get("minority") or []
    per_class = m["per_class"]
    worst = m.get("worst_class") or {}
    speeds = [r["images_per_s"] for r in history if _finite(r.get("images_per_s"))]
    seconds = sum(r["seconds"] for r in history if _finite(r.get("seconds")))
    lrs = [r.get("lr", math.nan) for r in history]
    tta = metrics.get("tta")
    confusions = interp.most_confused(top=12)
    worst_name = worst.get("name")
    worst_confusions = [c for c in confusions if c.true == worst_name][:3]

    findings = []
    if worst_name is not None and _finite(worst.get("recall")) and worst["recall"] < 1.0:
        text = f"Weakest class: {worst_name} (recall {_pct(worst.get('recall'))})"
        if worst_confusions:
            text += ", most often taken for " + ", ".join(f"{c.pred} ({c.count})" for c in worst_confusions)
        findings.append(text + ".")
    if imbalance.get("imbalanced"):
        mr = minority_recall(per_class, minority)
        findings.append(f"Imbalanced training data (ρ = {_num(imbalance.get('rho'), 2)}, μ = {_num(imbalance.get('mu'), 2)}): "
                        f"minority classes {', '.join(minority)} reach a mean recall of {_pct(mr)} against an accuracy of "
                        f"{_pct(m['accuracy'])}. Judge this model by per-class recall, not accuracy.")
    if onset is not None:
        kept = f"; the weights of epoch {best_epoch} were kept" if best_epoch else ""
        findings.append(f"Overfitting from epoch {onset}: validation loss rises while training loss keeps falling{kept}.")
    elif len(history) >= 4:
        findings.append("No overfitting detected (validation loss did not rise for several epochs while training loss fell).")
    if tta and _finite(tta.get("accuracy")):
        delta = tta["accuracy"] - m["accuracy"]
        findings.append(f"Test-time augmentation {'raises' if delta > 0 else 'lowers' if delta < 0 else 'leaves'} "
                        f"accuracy {'' if delta == 0 else 'by ' + f'{100 * abs(delta):.1f} points '}"
                        f"({_pct(m['accuracy'])} → {_pct(tta['accuracy'])}).")
    ece = m.get("ece")
    if _finite(ece) and ece > 0.05:
        conf = float(np.mean(interp.probs.max(1))) if len(interp.probs) else math.nan
        findings.append(f"Calibration: expected calibration error {ece:.3f}; mean confidence {_pct(conf)} vs accuracy "
                        f"{_pct(m['accuracy'])} ({'over' if conf > m['accuracy'] else 'under'}-confident).")
    skipped_total = len(metrics.get("skipped", [])) + len(dataset.get("skipped", []))
    if skipped_total:
        findings.append(f"{skipped_total} file(s) could not be used; see Skipped files.")

    def row(name: str, r: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "precision": r["precision"], "recall": r["recall"], "f1": r["f1"],
                "support": r["support"], "auc": m["auc"].get(name), "minority": name in minority,
                "worst": name == worst_name}

    tta_rows = []
    if tta:
        def pair(label: str, a: Any, b: Any, higher_better: bool = True, pct: bool = True) -> dict[str, Any]:
            d = b - a if _finite(a) and _finite(b) else None
            good = None if d is None or abs(d) < 1e-12 else (d > 0) == higher_better
            return {"label": label, "without": a, "with": b, "delta": d, "good": good, "pct": pct}

        tta_rows = [
            pair("accuracy", m["accuracy"], tta.get("accuracy")),
            pair("loss", m["loss"], tta.get("loss"), higher_better=False, pct=False),
            pair("macro recall", m["macro"]["recall"], (tta.get("macro") or {}).get("recall")),
            pair("macro F1", m["macro"]["f1-score"], (tta.get("macro") or {}).get("f1-score")),
            pair("worst-class recall", worst.get("recall"), (tta.get("worst_class") or {}).get("recall")),
            pair("macro AUC", m.get("macro_auc"), tta.get("macro_auc"), pct=False),
        ]

    skipped = [dict(s, stage="data scan") for s in dataset.get("skipped", [])]
    seen = {s["path"] for s in skipped}
    skipped += [dict(s, stage="evaluation") for s in metrics.get("skipped", []) if s["path"] not in seen]

    hardware = card.get("hardware", {})
    return {
        "name": run_dir.resolve().name,
        "run_dir": str(run_dir.resolve()),
        "created": card.get("created", ""),
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "split": metrics.get("split", "test"),
        "count": m["count"],
        "headline": {
            "accuracy": m["accuracy"], "macro_recall": m["macro"]["recall"], "macro_f1": m["macro"]["f1-score"],
            "worst_name": worst_name, "worst_recall": worst.get("recall"), "macro_auc": m.get("macro_auc"),
            "ece": ece, "loss": m["loss"], "val_accuracy": best_val_accuracy(history, best_epoch),
            "tta_accuracy": (tta or {}).get("accuracy"),
        },
        "findings": findings,
        "data": {
            "root": dataset.get("root"), "layout": dataset.get("layout"), "classes": dataset.get("classes", interp.classes),
            "sizes": dataset.get("sizes", {}), "val_source": dataset.get("val_source"),
            "img_size": card.get("img_size"), "color": card.get("color"), "streamed": dataset.get("streamed"),
        },
        "imbalance": {"rho": imbalance.get("rho"), "mu": imbalance.get("mu"), "minority": minority,
                      "flag": bool(imbalance.get("imbalanced")), "threshold": IMBALANCE_FLAG_RHO,
                      "minority_recall": minority_recall(per_class, minority)} if imbalance else None,
        "model": {"architecture": card.get("architecture"), "model_args": card.get("model_args", {}),
                  "num_params": card.get("num_params"), "in_chans": card.get("in_chans"),
                  "mean": card.get("mean"), "std": card.get("std")},
        "training": {
            "epochs_run": training.get("epochs_run", len(history)), "best_epoch": best_epoch,
            "stopped": training.get("stopped"), "train_seconds": training.get("train_seconds", seconds or None),
            "images_per_s": training.get("images_per_s", float(np.median(speeds)) if speeds else None),
            "onset": onset, "lr_changes": len(lr_changes(lrs)),
            "settings": {k: training.get(k) for k in ("optimizer", "lr", "batch_size", "schedule", "augment", "loss",
                                                        "label_smoothing", "class_weight", "sampler", "precision",
                                                        "seed", "recipe") if training.get(k) not in (None, "")},
        },
        "hardware": {"cpu": hardware.get("cpu"), "cores": hardware.get("cores"), "gpu": hardware.get("gpu"),
                     "threads": hardware.get("torch_threads"), "platform": hardware.get("platform")},
        "versions": card.get("versions", {}),
        "report_rows": [row(c, per_class[c]) for c in interp.classes],
        "averages": [{"name": f"{avg} avg", **{k: m[avg][key] for k, key in
                                                (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"))}}
                     for avg in ("macro", "weighted")],
        "tta": tta_rows,
        "tta_transforms": (tta or {}).get("transforms", "horizontal flip, averaged with the plain prediction"),
        "confused": [{"true": c.true, "pred": c.pred, "count": c.count, "rate": c.rate} for c in confusions],
        "skipped": skipped,
    }


def write_report(run_dir: str | os.PathLike, explain: bool = True, figures: bool = True) -> Path:
    """Regenerate plots/*.png and write runs/<name>/report.html (atomically); returns the report's path."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.json").exists():
        raise ImgclfError(f"run must be a run directory with model.json. Received: run={str(run_dir)!r}")
    files = load_run_files(run_dir)
    interp = Interpretation.from_run(run_dir)
    history = read_history(run_dir)
    made = write_figures(run_dir, interp, explain=explain) if figures else _existing_figures(run_dir)
    figs = {key: {**f, **_embed(f["path"])} for key, f in made.items()}
    context = _summary(run_dir, files, interp, history)
    config_path = run_dir / "config.yaml"
    context["config_text"] = config_path.read_text(encoding="utf-8") if config_path.exists() else ""
    html = render("report.html", figures=figs, **context)
    path = run_dir / "report.html"
    atomic_write_text(path, html)
    return path


def _existing_figures(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The figures already under plots/, in report order (for a quick re-render of the page only)."""
    return {key: {"path": run_dir / "plots" / f"{key}.png", "title": title, "caption": caption}
            for key, (title, caption) in FIGURES.items() if (run_dir / "plots" / f"{key}.png").exists()}
