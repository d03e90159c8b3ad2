"""`write_report(run_dir)`: the figures under plots/ and ONE self-contained report.html per run.

Everything comes from the run directory's files (model.json, dataset.json, config.yaml, history.csv,
predictions.csv, metrics.json); images are embedded as base64 data URIs, the CSS is inline, and nothing is
fetched from the network, so the page can be mailed, archived or opened offline. The figures are drawn by
`report_figures` and the blocks of facts read from single records by `report_facts`; this module gathers the
findings and the page's context, and writes it.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..data.folder import count_skipped
from ..data.imbalance import IMBALANCE_FLAG_RHO
from ..errors import check_switch
from ..io import atomic_write_text, writable_folder
from ..pages import embed_png, finite, num, pct, render
from ..plotting import FIGURE_SLOTS, undrawn_names_note
from ..records import DatasetRecord, HistoryRow, MetricsRecord, ModelCard, RunDir, cut_epochs_text
from .guessing import guessing_advice, no_better_than_guessing
from .interpret import (
    MISCALIBRATED_ECE,
    OVERFITTING_MIN_EPOCHS,
    OVERFITTING_RULE,
    Interpretation,
    best_val_accuracy,
    calibration_verdict,
    dash_notes,
    detect_divergence,
    detect_overfitting,
    kept_val_accuracy,
    lowest_recall_classes,
    lr_changes,
    mean_recall,
    predicted_counts,
    scores_shown,
)
from .report_facts import (calibration_facts, config_or_none, config_problem, ema_decay, lr_find_caption,
                           recipe_summary, sizing_table, tta_unavailable, unknown_facts)
from .report_figures import (FIGURES, SAMPLES, check_samples, existing_figures,  # noqa: F401  (FIGURES: re-exported)
                             write_figures)
from .seen import few_images_note, stored_validation_scores_note


# ------------------------------------------------------------------------------------------- context
def _leak_findings(dataset: DatasetRecord | None, run_dir: Path) -> list[str]:
    """The terminal's warnings of val/test images with a near-duplicate in an earlier split, as sentences."""
    from ..data.groups import recorded_leak_warnings

    return [text[0].upper() + text[1:] + "." for text in recorded_leak_warnings(dataset, run_dir)]


def _images(count: int) -> str:
    return f"{count:,} image{'s' if count != 1 else ''}"


def _kept_before_unfreezing(history: list, best_epoch: int | None) -> str | None:
    """Said where the epoch kept is a head-only one of a run whose backbone then trained: the model delivered is
    the head on the frozen backbone, which the card's fine-tuning plan alone did not tell."""
    kept = next((row for row in history if row.epoch == best_epoch), None)
    thawed = [row.epoch for row in history if not row.frozen]
    if kept is None or not kept.frozen or not thawed:
        return None
    return (f"The weights kept are those of epoch {best_epoch}, with the backbone still frozen: no epoch after it "
            f"unfroze (from epoch {thawed[0]}) scored better on validation, so the model is the head on the frozen "
            "backbone and the fine-tuning epochs were not kept.")


def _balancing(config: Any) -> str | None:
    """How the run balanced its classes while training (`interpret.balancing_of`), None where config.yaml says
    nothing or cannot be read (`config` None)."""
    from .guessing import balancing_of

    return balancing_of(config) if config is not None else None


def _worst_note(worst_name: str | None, lowest: int, tested: int) -> str:
    """The worst-class card's line: the class, how many share its recall, or that every tested class does."""
    if worst_name is None:
        return "—"
    if lowest <= 1:
        return f"class {worst_name}"
    if lowest == tested:
        return f"all {tested} tested classes alike"
    return f"class {worst_name} and {lowest - 1} more"


def _page_context(run_dir: Path, card: ModelCard, dataset: DatasetRecord | None, metrics: MetricsRecord | None,
             interp: Interpretation, history: list[HistoryRow]) -> dict[str, Any]:
    """The page's context. `m` is recomputed from predictions.csv; `metrics` (metrics.json, None before the run
    is evaluated) adds what predictions cannot tell: the split's name, TTA and the files evaluation skipped."""
    m = interp.metrics
    training = card.training
    best_epoch = training.best_epoch
    # the fit alone: a shrinking L2 penalty inside the losses would hide a rising cross-entropy
    overfit = detect_overfitting([r.less_penalty("loss") for r in history],
                                 [r.less_penalty("val_loss") for r in history]) if history else None
    onset = overfit.onset if overfit is not None else None
    imbalance = dataset.imbalance if dataset is not None else None
    minority = imbalance.minority if imbalance is not None else []
    per_class = m.per_class
    worst = m.worst_class
    worst_name = worst.name if worst is not None else None
    worst_recall = worst.recall if worst is not None else None
    speeds = [r.images_per_s for r in history if finite(r.images_per_s)]
    seconds = sum(r.seconds for r in history if finite(r.seconds))
    tta = metrics.tta if metrics is not None else None
    confusions = interp.most_confused(top=12)
    worst_confusions = [c for c in confusions if c.true == worst_name][:3]
    data_skipped = dataset.skipped if dataset is not None else []
    eval_skipped = metrics.skipped if metrics is not None else []

    findings = _leak_findings(dataset, run_dir)
    split = metrics.split if metrics is not None else "test"
    val_images = len(dataset.splits["val"].files) if dataset and "val" in dataset.splits else 0
    config = config_or_none(RunDir(run_dir))  # read once: the small-split note and the guessing advice both use it
    small = few_images_note(config, card.task, val_images, m.count, split)
    if small:  # training warned of a small validation split on the terminal only
        findings.append(small[0].upper() + small[1:] + ".")
    if split == "val":
        note = stored_validation_scores_note(RunDir(run_dir), card.task)
        findings.insert(0, f"{note[:1].upper()}{note[1:]}.")
    guess = no_better_than_guessing(m)
    if guess is not None:
        advice = guessing_advice(history, m, dataset.counts.get("train") if dataset else None, _balancing(config))
        findings.insert(0, f"Macro recall {pct(m.macro.recall)} cannot be told apart from chance ({pct(guess)}, one "
                           f"class in {round(1 / guess)}) on these {m.count:,} {split} images: this model may not have "
                           f"learnt the task. {advice}")
    diverged = detect_divergence([r.value("loss") for r in history])
    if diverged is not None:
        findings.insert(1 if guess is not None else 0,
                        f"{diverged.text()[:1].upper()}{diverged.text()[1:]}. Lower the learning rate (--lr) or let "
                        "the LR finder choose it (--lr auto).")
    undrawn = undrawn_names_note(card.classes)
    if undrawn:
        findings.append(f"{undrawn}.")
    lowest = lowest_recall_classes(per_class)
    tested = sum(1 for row in per_class.values() if row.support > 0)
    untested = [name for name, row in per_class.items() if row.support == 0]
    if untested:  # the terminal warned; the page's macro cards read as if every class had been scored
        named = ", ".join(untested[:5]) + (", …" if len(untested) > 5 else "")
        # images taken for such a class are false alarms: the macro precision counts its 0 (the table's note says so)
        taken = any(predicted_counts(m).get(name) for name in untested)
        findings.append(f"{len(untested)} of the {len(per_class)} classes {'has' if len(untested) == 1 else 'have'} "
                        f"no {split} image ({named}): the {split} scores say nothing about "
                        f"{'it' if len(untested) == 1 else 'them'}, and the macro "
                        f"{'recall is' if taken else 'averages are'} over the other {tested}"
                        + (" (the macro precision and F1 also count the images taken for "
                           f"{'it' if len(untested) == 1 else 'them'}, at 0)." if taken else "."))
    if worst_name is not None and finite(worst_recall) and worst_recall < 1.0 and len(lowest) == tested > 1:
        findings.append(f"Every class has the same recall, {pct(worst_recall)}: no class is weaker than another.")
    elif worst_name is not None and finite(worst_recall) and worst_recall < 1.0 and len(lowest) > 1:
        named = ", ".join(lowest[:5]) + (", …" if len(lowest) > 5 else "")
        findings.append(f"Weakest classes: {len(lowest)} of the {tested} share the lowest recall, {pct(worst_recall)} "
                        f"({named}).")
    elif worst_name is not None and finite(worst_recall) and worst_recall < 1.0:
        # its support beside it: "recall 50.0 %" of 2 images read as firm as one of 200
        text = f"Weakest class: {worst_name} (recall {pct(worst_recall)} of {_images(per_class[worst_name].support)})"
        if worst_confusions:
            text += ", most often taken for " + ", ".join(f"{c.pred} ({c.count})" for c in worst_confusions)
        findings.append(text + ".")
    if imbalance is not None and imbalance.imbalanced:
        mr = mean_recall(per_class, minority)
        minority_tested = [c for c in minority if c in per_class and per_class[c].support > 0]
        untested = [c for c in minority if c not in minority_tested]
        findings.append(f"Imbalanced training data (ρ = {num(imbalance.rho, 2)}, μ = {num(imbalance.mu, 2)}): "
                        + (f"minority classes {', '.join(minority_tested)} reach a mean recall of {pct(mr)} (on "
                           f"{_images(sum(per_class[c].support for c in minority_tested))}) against an accuracy of "
                           f"{pct(m.accuracy)}" if minority_tested
                           else f"no minority class has a {split} image")
                        + (f" ({', '.join(untested)}: no {split} image, so no recall)"
                           if untested and minority_tested else "")
                        + ". Judge this model by per-class recall, not accuracy.")
    head_only = _kept_before_unfreezing(history, best_epoch)
    if head_only:
        findings.append(head_only)
    if overfit is not None:
        kept = f"; the weights of epoch {best_epoch} were kept" if best_epoch else ""
        findings.append(f"Overfitting from epoch {overfit.onset}: {overfit.text()}{kept}.")
    elif len(history) >= OVERFITTING_MIN_EPOCHS:
        findings.append("No overfitting detected (the rule is under Training).")
    if tta is not None and finite(tta.accuracy):
        delta = tta.accuracy - m.accuracy
        findings.append(f"Test-time augmentation {'raises' if delta > 0 else 'lowers' if delta < 0 else 'leaves'} "
                        f"accuracy {'' if delta == 0 else 'by ' + f'{100 * abs(delta):.1f} points '}"
                        f"({pct(m.accuracy)} → {pct(tta.accuracy)}).")
    ece = m.ece
    confidence = float(np.mean(interp.probs.max(1))) if len(interp.probs) else math.nan
    if finite(ece) and ece > MISCALIBRATED_ECE and finite(confidence):
        findings.append(f"Calibration: expected calibration error {ece:.3f}; mean confidence {pct(confidence)} vs "
                        f"accuracy {pct(m.accuracy)} ({calibration_verdict(confidence - m.accuracy, ece)}).")
    calibrated = metrics.calibration if metrics is not None else None
    if card.calibration is not None and card.calibration.method == "temperature" and calibrated is not None:
        worse = ""
        if finite(ece) and ece > calibrated.ece_before:
            worse = (f" (worse on {split}: the temperature fitted on {card.calibration.images} validation "
                     "images does not carry over; `imgclf calibrate RUN --calibrate none` keeps the raw softmax)")
        findings.append(f"Probabilities are calibrated by temperature scaling (T = {card.temperature:.2f}, fitted "
                        f"on the validation split): {split} ECE {calibrated.ece_before:.3f} → {ece:.3f}{worse}, "
                        "accuracy unchanged.")
    elif card.calibration is not None and card.calibration.skipped:  # asked for, not applied: the raw softmax
        findings.append(f"Probabilities are not calibrated (no temperature): {card.calibration.skipped}.")
    flagged = metrics.unknown if metrics is not None else None
    if card.unknown is not None and flagged is not None and flagged.threshold is not None:
        kept = "" if flagged.accuracy_kept is None else f"; accuracy on the others {pct(flagged.accuracy_kept)}"
        findings.append(f"Unknown inputs: {pct(flagged.flagged)} of the {split} images score below the threshold "
                        f"({card.unknown.detector}, set to keep {pct(card.unknown.acceptance)} of validation images) "
                        f"and would be reported as unknown{kept}.")
    if len(eval_skipped) + len(data_skipped):
        findings.append(f"{count_skipped([s.path for s in [*eval_skipped, *data_skipped]])} could not be used; "
                        "see Skipped files.")

    recalls = [r.recall for r in per_class.values() if finite(r.recall)] or [0.0]

    predicted = predicted_counts(m)

    def row(name: str) -> dict[str, Any]:  # "lowest recall" is tagged only where recalls differ
        r = per_class[name]
        shown = scores_shown(r, predicted.get(name))
        return {"name": name, **shown, "support": r.support,
                "auc": m.auc.get(name), "minority": name in minority,
                # every class sharing the lowest recall (the summary named two, the table tagged one)
                "worst": name in lowest and finite(worst_recall) and worst_recall < max(recalls)}

    tta_rows = []
    if tta is not None:
        def pair(label: str, a: Any, b: Any, higher_better: bool = True, as_pct: bool = True) -> dict[str, Any]:
            d = b - a if finite(a) and finite(b) else None
            good = None if d is None or abs(d) < 1e-12 else (d > 0) == higher_better
            return {"label": label, "without": a, "with": b, "delta": d, "good": good, "as_pct": as_pct}

        tta_rows = [
            pair("accuracy", m.accuracy, tta.accuracy),
            pair("loss", m.loss, tta.loss, higher_better=False, as_pct=False),
            pair("macro recall", m.macro.recall, tta.macro.recall),
            pair("macro F1", m.macro.f1, tta.macro.f1),
            pair("worst-class recall", worst_recall, tta.worst_class.recall if tta.worst_class else None),
            pair("macro AUC", m.macro_auc, tta.macro_auc, as_pct=False),
        ]

    skipped = [{"path": s.path, "reason": s.reason, "stage": "data scan"} for s in data_skipped]
    seen = {s["path"] for s in skipped}
    skipped += [{"path": s.path, "reason": s.reason, "stage": "evaluation"} for s in eval_skipped
                if s.path not in seen]

    hardware = card.hardware
    settings = ("optimizer", "lr", "batch_size", "schedule", "augment", "loss", "focal_gamma",
                "logitnorm_temperature", "label_smoothing", "class_weight",
                "sampler", "precision", "seed", "recipe")
    return {
        "name": run_dir.resolve().name,
        "run_dir": str(run_dir.resolve()),
        "created": card.created,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "split": split,
        "count": m.count,
        "headline": {
            "accuracy": m.accuracy, "macro_recall": m.macro.recall, "macro_f1": m.macro.f1,
            "macro_over": (f"over {tested} of {len(per_class)} classes (the others have no {split} image)"
                           if untested else None),
            "worst_note": _worst_note(worst_name, len(lowest), tested),
            "worst_recall": worst_recall, "macro_auc": m.macro_auc,
            "ece": ece, "loss": m.loss, "val_accuracy": kept_val_accuracy(history, training),
            # the curve's value at that epoch, where the headline's was measured after recomputing the batch norms
            "val_accuracy_in_training": (best_val_accuracy(history, training.best_epoch)
                                         if training is not None and training.val_accuracy_after_batch_norm
                                         is not None else None),
            "tta_accuracy": tta.accuracy if tta is not None else None,
            "loss_without_l2": training.l2_penalty is not None,
        },
        "findings": findings,
        "recipe": recipe_summary(training.recipe, training.recipe_changes),
        "data": {
            "root": dataset.root if dataset else None, "roots": dataset.roots if dataset else [],
            "layout": dataset.layout if dataset else None,
            "classes": dataset.classes if dataset else interp.classes, "sizes": dataset.sizes if dataset else {},
            "val_source": dataset.val_source if dataset else None, "img_size": card.img_size, "color": card.color,
            "streamed": dataset.streamed if dataset else None,
        },
        "imbalance": {"rho": imbalance.rho, "mu": imbalance.mu, "minority": minority, "flag": imbalance.imbalanced,
                      "threshold": IMBALANCE_FLAG_RHO, "minority_recall": mean_recall(per_class, minority)}
        if imbalance is not None else None,
        "model": {"architecture": card.architecture, "model_args": card.model_args, "num_params": card.num_params,
                  "in_chans": card.in_chans, "mean": card.mean, "std": card.std},
        "training": {
            "epochs_run": training.epochs_run or len(history), "cut": cut_epochs_text(history),
            "best_epoch": best_epoch,
            "stopped": training.stopped, "train_seconds": training.train_seconds or seconds or None,
            "images_per_s": training.images_per_s if training.images_per_s is not None
            else float(np.median(speeds)) if speeds else None,
            "onset": onset, "overfitting_rule": OVERFITTING_RULE,
            "overfitting_checked": len(history) >= OVERFITTING_MIN_EPOCHS, "overfitting_min": OVERFITTING_MIN_EPOCHS,
            "history_missing": False,  # write_report knows whether history.csv is there
            "lr_changes": len(lr_changes([r.value("lr") for r in history])),
            "resumes": [r.described() for r in training.resumes or []],
            "fine_tuning": training.fine_tuning,
            "settings": {**{k: getattr(training, k) for k in settings if getattr(training, k) not in (None, "")},
                         # data parallel: each process trained a batch of batch_size a step
                         **({"processes (a step: processes x batch size)": training.processes}
                            if training.processes > 1 else {}),
                         # why the curves' losses sit above the test loss: Keras' kernel L2 is inside them
                         **({"L2 penalty in loss and val loss": training.l2_penalty}
                            if training.l2_penalty is not None else {}),
                         # the curves compare two networks under --ema: say which is which
                         **({"EMA decay (validation and the model kept: the average; training curve: the raw "
                             "weights)": ema} if (ema := ema_decay(RunDir(run_dir))) is not None else {}),
                         # what the scores above were predicted at, beside what training ran at
                         **({"evaluation_precision": metrics.precision}
                            if metrics is not None and metrics.precision else {})},
        },
        "sizing": sizing_table(card.sizing, card.training.epochs_trained or card.training.epochs_run),
        "hardware": {"cpu": hardware.get("cpu"), "cores": hardware.get("cores"), "gpu": hardware.get("gpu"),
                     "threads": hardware.get("torch_threads"), "platform": hardware.get("platform")},
        "versions": card.versions,
        "report_rows": [row(c) for c in interp.classes],
        "dash_notes": dash_notes(per_class, predicted, split),
        "averages": [{"name": f"{name} avg", "precision": avg.precision, "recall": avg.recall, "f1": avg.f1}
                     for name, avg in (("macro", m.macro), ("weighted", m.weighted))],
        "tta": tta_rows,
        "tta_transforms": tta.transforms if tta is not None and tta.transforms
        else "views not recorded by the version that evaluated this run",
        "tta_unavailable": None if tta is not None else tta_unavailable(card),
        "confused": [{"true": c.true, "pred": c.pred, "count": c.count, "rate": c.rate} for c in confusions],
        "calibration": {"ece": ece, "confidence": confidence,
                        "verdict": (calibration_verdict(confidence - m.accuracy, ece)
                                    if finite(confidence) and finite(ece) else "—"),
                        **calibration_facts(card, metrics)},
        "unknown": unknown_facts(card, metrics),
        "slots": FIGURE_SLOTS,
        "skipped": skipped,
        "skipped_count": count_skipped([s["path"] for s in skipped]),  # '6 files and 1 folder', not '7 files'
    }


# The run files the page reads besides model.json and predictions.csv (without which there is no page), and what it
# leaves out without each
RUN_FILES_READ = {"history.csv": "the training curves and the overfitting check",
                  "metrics.json": "the test-time augmentation, unknown-input and evaluation-precision facts",
                  "dataset.json": "the data section: splits, class counts, imbalance and leak checks",
                  "config.yaml": "the settings it was trained with, and the command that repeats the run"}


def write_report(run_dir: str | os.PathLike, explain: bool = True, redraw: bool = True,
                 failures: list[str] | None = None, samples: int = SAMPLES) -> Path:
    """Redraw plots/*.png (`redraw=False`: reuse the figures already there) and write runs/<name>/report.html
    (atomically); returns the report's path. Figures that could not be drawn are shown as such on the page and,
    when `failures` is a list, appended to it as "name: reason" (the train summary prints them). samples: images
    in the grid of sample predictions (S3 shows 20)."""
    run = RunDir(run_dir)  # a path, or named in the error
    run_dir = run.path
    explain, redraw = check_switch("explain", explain), check_switch("redraw", redraw)
    samples = check_samples(samples)
    if not run.has("model.json"):
        raise run.missing("model.json")
    writable_folder("run", run_dir)  # a read-only run: one line, not 13 figures' warnings and an internal error
    card = run.read_card()
    if card.task == "multilabel":  # its own page: label sets, per-label thresholds, no softmax-only sections
        from .multilabel_report import write_multilabel_report

        return write_multilabel_report(run_dir, failures, samples)
    dataset = run.read_dataset() if run.has("dataset.json") else None
    metrics = run.read_metrics() if run.has("metrics.json") else None
    interp = Interpretation.from_run(run_dir)
    made = write_figures(run_dir, interp, explain=explain, n_samples=samples) if redraw else \
        existing_figures(run_dir)
    if failures is not None:
        failures.extend(f"{key}: {f['failed']}" for key, f in made.items() if f.get("failed"))
    figs = {key: {**f, **embed_png(f["path"])} for key, f in made.items()}
    lr_find = card.lr_find
    if lr_find is not None and run.has(lr_find.curve):  # drawn once by --lr auto, before training; not redrawn
        figs["lr_find"] = {"path": run.file(lr_find.curve), "title": "Learning-rate finder",
                           "caption": lr_find_caption(lr_find), **embed_png(run.file(lr_find.curve))}
    context = _page_context(run_dir, card, dataset, metrics, interp, run.read_history())
    missing = [name for name in RUN_FILES_READ if not run.has(name)]
    if missing:  # the page is drawn without them; a section left out must not read as "nothing to show"
        from ..notices import warn

        said = f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing from {run_dir}"
        warn(f"{said}: the report leaves out what {'it holds' if len(missing) == 1 else 'they hold'} "
             f"({'; '.join(RUN_FILES_READ[name] for name in missing)})")
        context["findings"].insert(0, f"Missing from the run folder: {', '.join(missing)}; this page leaves out "
                                      f"{'; '.join(RUN_FILES_READ[name] for name in missing)}.")
        context["training"]["history_missing"] = "history.csv" in missing
    # config.yaml verbatim, comments and all: the page shows the file, it does not interpret it; one that does not
    # read as settings cannot repeat the run, which the page said it did
    context["config_text"] = run.file("config.yaml").read_text(encoding="utf-8") if run.has("config.yaml") else ""
    context["config_problem"] = config_problem(run)
    context["run_path"] = str(run_dir.resolve())
    html = render("report.html", figures=figs, **context)
    path = run_dir / "report.html"
    atomic_write_text(path, html)
    return path
