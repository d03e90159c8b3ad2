"""report.html of a multi-label run: headline set and ranking scores, per-label table, PR curves, co-occurrence of
true and predicted labels, per-label reliability, sample grid with true vs predicted label sets. Reads the run's files only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data.groups import recorded_leak_warnings
from ..io import atomic_write_text
from ..multilabel import DEFAULT_THRESHOLD, MIN_TUNING_POSITIVES, decide, is_untuned
from ..notices import warn
from ..pages import embed_png, render
from ..plotting import FIGURE_SLOTS, undrawn_names_note
from ..records import ModelCard, RunDir, epochs_text
from . import plots
from .multilabel_plots import MIN_BIN_IMAGES, plot_label_reliability, plot_label_set_grid
from .interpret import dash_notes, overfitting_onset, scores_shown
from .multilabel import binary_calibration_error, label_sets
from .report_figures import SAMPLES, caption as figure_caption, scored_split
from .seen import stored_validation_scores_note

FIGURES = {  # {split}: the split scored, as in the single-label report's captions
    "training_curves": ("Training curves", "Train vs validation per epoch. Loss: the training loss (binary "
                        "cross-entropy, weighted by --class-weight, or the asymmetric loss) on train, plain binary "
                        "cross-entropy on validation (as single-label runs validate on plain cross-entropy); acc: the "
                        "share of label decisions right at probability 0.5 (1 - Hamming loss)."),
    "pr": ("Precision-recall per label", "One curve per label from the {split} probabilities, with its average "
           "precision (AP); dashed: every (image, label) pair together (micro)."),
    "per_label": ("Per-label precision, recall and F1", "At each label's tuned threshold."),
    "cooccurrence": ("True vs predicted labels", "Row: a true label; column: a predicted label; each cell counts the "
                     "{split} images carrying the row's label that were given the column's. The diagonal counts the "
                     "true positives; off the diagonal, labels predicted alongside (or instead of) the row's: "
                     "wrong ones, or right ones of an image that carries both labels, so a perfect model fills "
                     "cells there too wherever labels occur together."),
    "reliability": ("Reliability per label", "For each label, {split} images grouped into ten bins by the predicted "
                    "probability of that label: the share that carry it against the bins' mean probability. On the "
                    "dashed diagonal the probabilities mean what they say; below it the model is over-confident, "
                    f"above it under-confident. Hollow markers: bins of fewer than {MIN_BIN_IMAGES} images. Each "
                    "panel's ECE is the table's (15 bins)."),
    "gradcam": ("Grad-CAM explanations", "Where the model looked for each image's most probable label, 'Top' "
                "(the same sampled {split} images; predicted only where it reached its threshold, as the sample grid "
                "shows): red = strong evidence, each map scaled to its own range (a colour compares places within one "
                "image, not across images). Red frame: the image's predicted set is wrong."),
    "samples": ("True vs predicted label sets", "A seeded sample of {split} images; red: the predicted set differs "
                "from the true one. Each predicted label carries its probability (it reached its tuned "
                "threshold)."),
}


def write_multilabel_report(run_dir: str | Path, failures: list[str] | None = None, samples: int = SAMPLES) -> Path:
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    card = run.read_card()
    dataset = run.read_dataset()
    metrics = run.read_metrics()
    history = run.read_history()
    rows = run.read_predictions(card.classes)
    targets, probs = label_sets(rows, card.classes)
    plot_dir = run_dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    undrawn = undrawn_names_note(card.classes)
    if undrawn:  # once, where matplotlib said it for each glyph of each figure
        warn(undrawn)
    made: dict[str, dict[str, Any]] = {}
    split = scored_split(run)

    def add(key: str, draw) -> None:
        title, caption = FIGURES[key][0], figure_caption(key, split, FIGURES)
        try:
            path = draw(plot_dir / f"{key}.png")
            made[key] = {"title": title, "caption": caption, **embed_png(path)}
        except Exception as exc:  # a figure that fails is shown as missing, never a report that fails
            reason = f"{type(exc).__name__}: {exc}"[:200]
            made[key] = {"title": title, "caption": f"could not be drawn ({reason})", **embed_png(None)}
            if failures is not None:
                failures.append(f"{key}: {reason}")

    if history:
        # as the single-label report draws them: the overfitting onset, and the kept weights' validation accuracy
        # once their BatchNorm statistics were recomputed (the curve read 0.64 where the model kept scored 0.91)
        onset = overfitting_onset([r.less_penalty("loss") for r in history],
                                  [r.less_penalty("val_loss") for r in history])
        add("training_curves", lambda p: plots.plot_training_curves(history, p, card.training.best_epoch, onset,
                                                                    card.training.val_accuracy_after_batch_norm))
    add("pr", lambda p: plots.plot_pr_curves(targets, probs, card.classes, p))
    ml = metrics.multilabel
    # a label no image carries has no recall or F1, one never predicted no precision: dashes, as the single-label
    # report shows them (scikit-learn's 0.000 read as "always missed" beside that label's dashed AP and AUC)
    counted = decide(probs, np.array([ml.per_label[c].threshold for c in card.classes])).sum(0)  # files before
    predicted = [ml.per_label[c].predicted if ml.per_label[c].predicted is not None else int(counted[i])  # it
                 for i, c in enumerate(card.classes)]
    shown = {c: scores_shown(ml.per_label[c], predicted[i], multilabel=True) for i, c in enumerate(card.classes)}
    add("per_label", lambda p: plots.plot_per_class_metrics(metrics.per_class, p, shown=shown))
    add("cooccurrence", lambda p: plots.plot_confusion_matrix(metrics.confusion, card.classes, p,
                                                                names=("Label co-occurrence", "label")))
    add("reliability", lambda p: plot_label_reliability(targets, probs, card.classes, p))
    shown_samples = _samples(rows, card, samples)
    add("samples", lambda p: plot_label_set_grid(shown_samples, p, split=split))
    _add_gradcam(made, run_dir, card, shown_samples, plot_dir / "gradcam.png", failures, split)
    # a label with too few validation positives kept the default threshold, which the table called tuned
    val_counts = (dataset.counts or {}).get("val", {})
    val_images = (dataset.sizes or {}).get("val", 0)
    # and whose threshold is the default: a run trained before a rule kept its tuned one
    untuned = {c: int(val_counts[c]) for c in card.classes
               if c in val_counts and is_untuned(int(val_counts[c]), val_images)
               and (card.thresholds or {}).get(c, DEFAULT_THRESHOLD) == DEFAULT_THRESHOLD}
    label_rows = [{"name": c, "auc": metrics.auc.get(c), "ece": binary_calibration_error(targets[:, i], probs[:, i]),
                   "untuned": untuned.get(c), **ml.per_label[c].model_dump(), **shown[c]}
                  for i, c in enumerate(card.classes)]
    t = card.training
    kept = t.val_accuracy_after_batch_norm
    kept_line = "" if kept is None else (
        f" The kept weights score {kept:.4f} label-wise validation accuracy (the share of label decisions right "
        f"at 0.5) once their BatchNorm statistics were recomputed on "
        "training images (the diamond on the training curves, where it differs from the curve, measured before).")
    html = render(
        "multilabel_report.html", figures=made, slots=FIGURE_SLOTS, name=run_dir.name, architecture=card.architecture,
        labels=card.classes, split=metrics.split, count=metrics.count, ml=ml, macro=metrics.macro,
        validation_scores=_sentence(stored_validation_scores_note(run, "multilabel")) if metrics.split == "val"
        else None,
        findings=[_sentence(text) for text in recorded_leak_warnings(dataset, run_dir)] + ([f"{undrawn}."] if undrawn
                                                                                          else []),
        loss=metrics.loss, ece=metrics.ece, label_rows=label_rows, skipped=[s.model_dump() for s in metrics.skipped],
        dash_notes=dash_notes(metrics.per_class, dict(zip(card.classes, predicted)), split, "label"),
        data_root=dataset.root, sizes=", ".join(f"{k} {v}" for k, v in dataset.sizes.items()),
        val_source=dataset.val_source, label_counts=_label_counts(dataset, card.classes),
        imbalance=dataset.imbalance,
        untuned=bool(untuned), min_positives=MIN_TUNING_POSITIVES, val_images=val_images,
        training_line=f"{epochs_text(history)}, {t.stopped}, best epoch {t.best_epoch}, loss {_loss_words(t)}, "
                      f"optimizer {t.optimizer}, lr {t.lr}, batch {t.batch_size}, "
                      f"{t.train_seconds:.0f} s." + kept_line
                      + "".join(f" Resumed {r.described()}." for r in t.resumes or []),
        # a transfer run's plan (frozen backbone, when it unfroze, at what rate), as the single-label page gives it
        fine_tuning=t.fine_tuning,
        config_text=run.file("config.yaml").read_text(encoding="utf-8") if run.has("config.yaml") else "",
        run_path=str(run_dir.resolve()))
    path = run_dir / "report.html"
    atomic_write_text(path, html)
    return path


def _gradcam_caption(true: list[str], top: tuple[str, float]) -> str:
    """The label set wrapped whole (cut to 13 characters it read "True: big+even…ound") above the label the map
    explains: the most probable, predicted or not (below its threshold it is not), so "Top", not "Pred", which
    beside the sample grid's predicted sets read as a contradiction."""
    import textwrap

    from ..plotting import short

    lines = textwrap.wrap("True: " + (" + ".join(short(t, 20) for t in true) or "none"), width=26,
                          break_long_words=False, break_on_hyphens=False, subsequent_indent="  ")
    return "\n".join(lines + [f"Top: {short(top[0], 16)} ({top[1]:.2f})"])


def _loss_words(training: Any) -> str:
    """The multi-label loss as trained: `loss: ce`, the setting's default, means per-label binary cross-entropy."""
    if training.loss == "asl":
        return "asymmetric loss (ASL)"
    name = {"ce": "binary cross-entropy", "focal": "focal binary cross-entropy"}.get(training.loss, str(training.loss))
    weight = training.class_weight
    return name + (f", labels weighted ({weight})" if weight not in (None, "", "none") else "")


def _label_counts(dataset: Any, labels: list[str]) -> dict[str, Any]:
    """Images carrying each label, per split (dataset.json's counts): the page said only "train 120, val 15, test
    15", and a label on 2 validation and 2 test images, whose threshold and scores rest on them, went unseen."""
    splits = [s for s in ("train", "val", "test") if s in (dataset.counts or {})]
    return {"splits": splits, "rows": [{"name": c, "counts": [dataset.counts[s].get(c, 0) for s in splits]}
                                       for c in labels]}


def _sentence(text: str) -> str:
    return f"{text[:1].upper()}{text[1:]}."


def _add_gradcam(made: dict[str, dict[str, Any]], run_dir: Path, card: ModelCard, samples: list[dict[str, Any]],
                 path: Path, failures: list[str] | None, split: str = "test") -> None:
    """Grad-CAM of each sampled image's most probable label; where it cannot be drawn (no grad-cam installed, a
    model it cannot read) the slot says why, as single-label reports do."""
    title = FIGURES["gradcam"][0]
    if not any(s["top"] for s in samples):
        return  # no readable test image: the sample grid already says so
    try:
        import pytorch_grad_cam  # noqa: F401
    except ImportError:
        from .explain import GRADCAM_MISSING

        made["gradcam"] = {"title": title, "caption": GRADCAM_MISSING, **embed_png(None)}
        return
    try:
        import torch

        from ..inference import Classifier
        from .explain import gradcam_heatmaps

        model = Classifier.load(run_dir, fold_batch_norm=False).model.to(memory_format=torch.contiguous_format)
        explained = [s for s in samples if s["top"]]
        maps, layer = gradcam_heatmaps(model, np.stack([s["image"] for s in explained]), card.mean, card.std,
                                       classes=[card.classes.index(s["top"][0]) for s in explained])
        # the most probable label, predicted or not (below its threshold it is not): captioned "Top", not "Pred",
        # which beside the sample grid's predicted sets read as a contradiction
        # framed as the sample grid frames the image: its predicted set right or wrong (an image carrying no label,
        # rightly predicted none, was framed red because its most probable label is not among its none)
        shown = [{"image": s["image"], "heatmap": m, "caption": _gradcam_caption(s["true"], s["top"]),
                  "correct": s["correct"]} for s, m in zip(explained, maps)]
        plots.plot_gradcam_grid(shown, path, layer=layer, target="its most probable label", max_cols=4)
        made["gradcam"] = {"title": title, "caption": figure_caption("gradcam", split, FIGURES), **embed_png(path)}
    except Exception as exc:  # a figure that fails is shown as missing, never a report that fails
        reason = f"{type(exc).__name__}: {exc}"[:200]
        made["gradcam"] = {"title": title, "caption": f"could not be drawn ({reason})", **embed_png(None)}
        if failures is not None:
            failures.append(f"gradcam: {reason}")


def _samples(rows, card: ModelCard, count: int = 12, seed: int = 0) -> list[dict[str, Any]]:
    """A seeded sample of evaluated images, decoded as the model saw them, with '+'-joined label sets."""
    from ..data.decode import DecodeError, open_image

    kept = [r for r in rows if not r.error]
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(kept), size=min(count, len(kept)), replace=False)) if kept else []
    out = []
    for i in picked:
        r = kept[i]
        try:
            image = open_image(r.path, card.img_size, card.color, card.interpolation)
        except DecodeError:
            continue
        true, pred = [t for t in r.true.split(";") if t], [p for p in r.pred.split(";") if p]
        probs = dict(zip(card.classes, r.probs or []))
        ranked = sorted(((p, probs.get(p, 0.0)) for p in pred), key=lambda item: -item[1])
        top = max(probs.items(), key=lambda item: item[1]) if probs else None  # carried or not: Grad-CAM's target
        out.append({"image": image, "true": true, "pred": ranked, "correct": set(true) == set(pred), "top": top})
    return out
