"""The report's figures: each drawn from the run's records into plots/<id>.png, with the report's title and caption
(`FIGURES`). A figure that fails is recorded as failed, never stops the report.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration import uncalibrated
from ..errors import ImgclfError, disk_problem, whole_number
from ..ood import STATS_FILE, load_stats
from ..plotting import warn_of_undrawn_names
from ..records import DatasetRecord, ModelCard, RunDir
from . import plots
from .interpret import Interpretation, decode_for_display, overfitting_onset, predicted_counts, scores_shown

# id -> (title, caption): the report's order and words, shared by freshly drawn and reused figures; {split} in a
# caption is the split the run was scored on (`caption`).
FIGURES: dict[str, tuple[str, str]] = {
    "class_distribution": ("Images per class and split", "Training, validation and test images per class."),
    "class_samples": ("One sample per class", "A random training image of each class, as stored on disk."),
    "training_curves": ("Training curves",
                        "Train vs validation per epoch. Green: the epoch whose weights were kept; red: overfitting, "
                        "from the epoch after the validation-loss minimum when validation loss then settles well "
                        "above it while training loss stays flat or falls (rule under Training); grey dotted lines or "
                        "the dash-dot curve: learning-rate changes; grey band: frozen backbone."),
    "confusion_counts": ("Confusion matrix (counts)", "Rows: true class; columns: predicted class."),
    "confusion_normalized": ("Confusion matrix (row-normalised)",
                             "Each row sums to 1; the diagonal is each class's recall, off-diagonal cells show where "
                             "its images go; a row of dashes: no {split} image of that class."),
    "per_class": ("Precision, recall and F1 per class", "n = number of {split} images of the class (support)."),
    "roc": ("ROC curves", "One class against the rest; the area under each curve (AUC) is 1 for a perfect ranking and "
            "0.5 for chance."),
    "pr": ("Precision-recall curves", "More telling than ROC when a class is rare: average precision (AP) falls "
           "quickly when confident predictions are wrong."),
    "reliability": ("Calibration", "Do predicted probabilities mean what they say? Bars below the diagonal: "
                    "over-confident; above: under-confident. ECE is the image-weighted mean gap."),
    "reliability_before": ("Calibration before temperature scaling",
                           "The same {split} images with the raw softmax (temperature 1), for comparison with the "
                           "calibrated probabilities the run gives out."),
    "unknown_scores": ("Unknown-input scores", "Each image's in-distribution score on the validation split (where "
                       "the threshold was set) and the {split} split; images scoring below the dashed line are "
                       "reported as unknown."),
    "samples": ("Sample predictions", "A random mix of right and wrong {split} predictions (up to half wrong); wrong "
                "ones are framed in red. The number is the predicted class's probability."),
    "top_losses": ("Top losses", "The {split} images with the highest loss: confident mistakes, label errors and hard "
                   "cases."),
    "gradcam": ("Grad-CAM explanations", "Where the model looked for the class it predicted: red = strong evidence. "
                "Each map is scaled to its own range (pytorch-grad-cam's display), so a colour compares places "
                "within one image, not across images; a map with evidence everywhere still shows a blue part."),
}


SAMPLES = 12  # images in the grid of sample predictions, unless the report is asked for more (S3 shows 20)
MAX_SAMPLES = 120


def check_samples(samples: object) -> int:
    return whole_number("samples", samples, f"a whole number of images from 1 to {MAX_SAMPLES}", 1, MAX_SAMPLES)


def write_figures(run_dir: str | os.PathLike, interp: Interpretation | None = None, explain: bool = True,
                  n_samples: int = SAMPLES, n_losses: int = 12) -> dict[str, dict[str, Any]]:
    """Write every figure of a run under plots/; returns {id: {"path", "title", "caption"}} in report order.

    Grad-CAM needs the optional `grad-cam` package and the weights; when either is missing the report says so
    instead of failing.
    """
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    card = run.read_card()
    dataset = run.read_dataset() if run.has("dataset.json") else None
    interp = interp or Interpretation.from_run(run_dir)
    out = run_dir / "plots"
    figures: dict[str, dict[str, Any]] = {}
    split = scored_split(run)

    def add(key: str, make, note: str = "") -> None:
        title, text = FIGURES[key][0], caption(key, split) + note
        path = out / f"{key}.png"
        try:
            make(path)
        except ImgclfError:
            raise
        except Exception as exc:  # one broken figure must not cost the user the whole report
            if disk_problem(exc) is not None:  # nor would the next figure fit: the disk's error, once
                raise
            warnings.warn(f"figure {key} failed: {type(exc).__name__}: {exc}", stacklevel=2)
            figures[key] = {"path": None, "title": title, "caption": f"Could not draw this figure: {exc}",
                            "failed": f"{type(exc).__name__}: {exc}"}
            return
        figures[key] = {"path": path, "title": title, "caption": text}

    if dataset is not None and dataset.counts:
        add("class_distribution", lambda p: plots.plot_class_distribution(dataset.counts, p))
        samples = _class_samples(dataset)
        if samples:
            add("class_samples", lambda p: plots.plot_class_samples(samples, p))

    history = run.read_history()
    if history:
        # the fit alone: a shrinking L2 penalty inside the losses would hide a rising cross-entropy
        onset = overfitting_onset([r.less_penalty("loss") for r in history],
                                  [r.less_penalty("val_loss") for r in history])
        best = card.training.best_epoch
        kept = card.training.val_accuracy_after_batch_norm
        add("training_curves", lambda p: plots.plot_training_curves(history, p, best, onset, kept),
            training_loss_note(card.training))

    classes = interp.classes
    warn_of_undrawn_names(classes, "imgclf report RUN")  # once, where matplotlib said it per glyph and figure
    add("confusion_counts", lambda p: plots.plot_confusion_matrix(interp.confusion, classes, p))
    add("confusion_normalized", lambda p: plots.plot_confusion_matrix(interp.confusion, classes, p, normalize=True))
    predicted = predicted_counts(interp.metrics)
    shown = {c: scores_shown(scores, predicted.get(c)) for c, scores in interp.per_class.items()}
    add("per_class", lambda p: plots.plot_per_class_metrics(interp.per_class, p, interp.metrics.macro, shown))
    add("roc", lambda p: plots.plot_roc_curves(interp.y_true, interp.probs, classes, p))
    add("pr", lambda p: plots.plot_pr_curves(interp.y_true, interp.probs, classes, p))
    calibrated = card.calibration is not None and card.temperature != 1.0
    title = f"Calibrated (T = {card.temperature:.2f})" if calibrated else "Reliability"
    add("reliability", lambda p: plots.plot_reliability(interp.y_true, interp.probs, p, title=title))
    if calibrated:
        raw = uncalibrated(interp.probs, card.temperature)
        add("reliability_before", lambda p: plots.plot_reliability(interp.y_true, raw, p, title="Before calibration"))
    scores = _unknown_scores(run, card, split)
    if scores:
        add("unknown_scores", lambda p: plots.plot_score_distributions(scores, card.unknown.threshold,
                                                                        card.unknown.detector, p))

    def grid(indices: list[int]) -> list[dict[str, Any]]:
        images = decode_for_display([interp.paths[i] for i in indices], card.img_size, card.color,
                                    card.interpolation)
        return [dict(interp.describe(i), image=images[j]) for j, i in enumerate(indices) if j in images]

    picked = interp.sample(n_samples)
    sample = grid(picked)
    # every image of a small split: no mix chosen, its red is the error rate (it said "not the error rate")
    whole = split if len(picked) == len(interp.y_true) else None
    if sample:
        add("samples", lambda p: plots.plot_prediction_grid(sample, p, classes=classes, whole_split=whole))
        if whole is not None and figures["samples"]["path"] is not None:
            figures["samples"].update(whole=len(picked), caption=WHOLE_SPLIT_SAMPLES.format(split=split,
                                                                                             images=len(picked)))
    losses = grid(interp.top_losses(n_losses))
    if losses:
        add("top_losses", lambda p: plots.plot_top_losses(losses, p, classes=classes))
    if explain:
        figures.update(_gradcam_figure(run_dir, split))
    return figures


def _unknown_scores(run: RunDir, card: ModelCard, split: str = "test") -> dict[str, np.ndarray]:
    """{"validation": scores, split: scores}: validation's stored beside the weights when the detector was
    fitted, the evaluated split's from predictions.csv (not when that is val: the same images again); {} for a run
    without an unknown detector."""
    if card.unknown is None:
        return {}
    out = {}
    stats = run.file(card.unknown.statistics or STATS_FILE)
    if stats.is_file():
        try:
            out["validation"] = load_stats(stats)["val_scores"]
        except Exception:  # a damaged statistics file costs the figure its validation half, not the report
            pass
    if run.has("predictions.csv") and split != "val":
        scored = [r.score for r in run.read_predictions(card.classes) if r.score is not None and not r.error]
        if scored:
            out[split] = np.asarray(scored)
    return out


def _class_samples(dataset: DatasetRecord, seed: int = 0) -> dict[str, str]:
    """{class: path of one random training image} (the first split when there is no train split)."""
    split = "train" if "train" in dataset.splits else next(iter(dataset.splits), None)
    if split is None:
        return {}
    files, labels = dataset.split_paths(split)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = {}
    for i, name in enumerate(dataset.classes):
        rows = np.flatnonzero(labels == i)
        if len(rows):
            out[name] = files[int(rng.choice(rows))]
    return out


def _gradcam_figure(run_dir: Path, split: str) -> dict[str, dict[str, Any]]:
    title = FIGURES["gradcam"][0]
    try:
        import pytorch_grad_cam  # noqa: F401
    except ImportError:
        from .explain import GRADCAM_MISSING

        return {"gradcam": {"path": None, "title": title, "caption": GRADCAM_MISSING}}
    from .explain import explain_run

    try:
        result = explain_run(run_dir)
    except ImgclfError as exc:  # the run's weights gone or changed: said on the console too, not on the page alone
        return {"gradcam": {"path": None, "title": title, "caption": str(exc), "failed": str(exc)}}
    except Exception as exc:  # an exotic architecture must not cost the user the report
        warnings.warn(f"Grad-CAM failed: {type(exc).__name__}: {exc}", stacklevel=2)
        return {"gradcam": {"path": None, "title": title, "caption": f"Grad-CAM failed: {type(exc).__name__}: {exc}",
                            "failed": f"{type(exc).__name__}: {exc}"}}
    if result is None:
        return {}
    unknown = ""
    if result.get("unknown"):
        of_wrong = result.get("unknown_wrong", 0)
        unknown = (f" ({of_wrong} of the wrong and {result['unknown'] - of_wrong} of the right scored unknown: the "
                   f"class nearest)")
    text = (f"Where the model looked for the class it predicted, on {result['wrong']} wrong (highest loss first) "
            f"and {result['correct']} right {split} images{unknown}: red = strong evidence. The maps are read at the "
            f"network's last convolution that still has a spatial output, or the block around it (its module "
            f"{result['layer']}), so they are as coarse as that layer's grid.")
    return {"gradcam": {"path": result["path"], "title": title, "caption": text}}


def existing_figures(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The figures already under plots/, in report order (for a quick re-render of the page only)."""
    run = RunDir(run_dir)
    split = scored_split(run)
    notes = {"training_curves": training_loss_note(run.read_card().training)} if run.has("model.json") else {}
    whole = _whole_split_drawn(run_dir / "plots" / "samples.png")
    found = {key: {"path": run_dir / "plots" / f"{key}.png", "title": title,
                   "caption": caption(key, split) + notes.get(key, "")}
             for key, (title, _) in FIGURES.items() if (run_dir / "plots" / f"{key}.png").exists()}
    if "samples" in found and whole is not None:
        found["samples"].update(whole=whole, caption=WHOLE_SPLIT_SAMPLES.format(split=split, images=whole))
    return found


def _whole_split_drawn(path: Path) -> int | None:
    """How many images the sample grid at `path` drew where they are every image of its split (its PNG says so),
    else None: a page written from the figures alone guessed it from the split's size, whatever --samples drew."""
    from PIL import Image

    from ..plotting import WHOLE_SPLIT_KEY

    try:
        with Image.open(path) as image:
            drawn = image.info.get(WHOLE_SPLIT_KEY)
    except (OSError, ValueError):
        return None
    return int(drawn) if drawn and drawn.isdigit() else None


# the samples' caption where they are every image of a small split: no mix was drawn, its red is the error rate
WHOLE_SPLIT_SAMPLES = ("Every {split} image, all {images} of them: wrong ones are framed in red. The number is the "
                       "predicted class's probability.")


def scored_split(run: RunDir) -> str:
    """The name of the split the run's metrics.json scored (val where the run has no test split), for captions."""
    split = run.read_metrics().split if run.has("metrics.json") else "test"
    return split if split in ("train", "val", "test") else "evaluated"


# where the run was scored on val (it has no test split), captions that set val beside the scored split
ON_VAL = {"unknown_scores": "Each image's in-distribution score on the validation split, where the threshold was "
                            "set (the run has no test split to show beside it); images scoring below the dashed line "
                            "are reported as unknown."}


def training_loss_note(training: Any) -> str:
    """Where the training loss is not the plain cross-entropy that validation reports (focal, class-weighted,
    smoothed labels), the caption says so: a model at chance read train 1.05 against validation 1.62 under focal
    loss, a gap of definition that the curves showed as overfitting. Empty where the two are alike."""
    if training is None or training.loss == "logitnorm":  # validation reports the logitnorm loss itself
        return ""
    parts = ["focal loss"] if training.loss == "focal" else []
    if training.class_weight not in (None, "", "none"):
        parts.append(f"class weights ({training.class_weight})")
    if training.label_smoothing:
        parts.append(f"label smoothing {training.label_smoothing:g}")
    if not parts:
        return ""
    return (f" The training loss includes {' and '.join(parts)}; the validation loss is plain cross-entropy, so the "
            "two differ by definition as well as by fit: compare each curve's course, not their distance.")


def caption(key: str, split: str, figures: dict[str, tuple[str, str]] = FIGURES) -> str:
    if split == "val" and key in ON_VAL:
        return ON_VAL[key]
    return figures[key][1].format(split=split)
