"""A study's cells: training one (or finishing it, or finding it finished), and reading a finished one back
from its run directory: the numbers study.json keeps of it."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RUNTIME_ONLY
from ..records import RunDir
from ..errors import invalid
from .configurations import configuration_settings, held_out


def read_cell(run_dir: Path, minority: Sequence[str], protocol: str = "standard") -> dict[str, Any] | None:
    """One finished run's numbers (plain values, for study.json), or None while it has no metrics.json.

    The held-out curves are named for what they are: val_loss / val_acc, or test_loss / test_acc under protocol
    s4 (history.csv's val_* columns, whose split is the test split there); `sizes` likewise."""
    from ..evaluation.interpret import mean_recall, overfitting_onset

    run = RunDir(run_dir)
    if not run.has("metrics.json"):
        return None
    metrics = run.read_metrics()
    training = run.read_card().training if run.has("model.json") else None
    history = run.read_history()
    per_class = metrics.per_class
    # how often each class was predicted (the confusion matrix's columns): a class never predicted has no precision
    predicted = np.asarray(metrics.confusion).sum(0) if len(metrics.confusion) == len(per_class) else None
    majority = [c for c in per_class if c not in minority]
    held = held_out(protocol)
    curves = {name: [r.value(column) for r in history]
              for name, column in (("loss", "loss"), ("acc", "acc"), (f"{held}_loss", "val_loss"),
                                   (f"{held}_acc", "val_acc"))}
    dataset = run.read_dataset() if run.has("dataset.json") else None
    sizes = dataset.sizes if dataset else {}
    train_counts = [n for n in (dataset.counts.get("train", {}) if dataset else {}).values()]
    if protocol == "s4":
        sizes = {"test" if k == "val" else k: v for k, v in sizes.items()}
    return {
        "accuracy": metrics.accuracy,
        "macro_recall": metrics.macro.recall,
        "minority_recall": mean_recall(per_class, minority),
        "majority_recall": mean_recall(per_class, majority),
        "worst_class": metrics.worst_class.model_dump() if metrics.worst_class else None,
        "test_images": metrics.count,
        # under s4 the held-out split is the test split, which metrics.json (written by the run) calls val
        "split": held if metrics.split == "val" else metrics.split,
        "sizes": dict(sizes),
        "per_class": {c: {"precision": v.precision, "recall": v.recall, "support": v.support,
                          "predicted": int(predicted[i]) if predicted is not None else None}
                      for i, (c, v) in enumerate(per_class.items())},
        "epochs": len(history),
        # s4 keeps the last epoch, as S4 did: its column is the epoch of the lowest test loss, which the kept one is not
        "best_epoch": _lowest(curves["test_loss"]) if protocol == "s4" else training.best_epoch if training else None,
        "train_seconds": training.train_seconds if training else None,
        "final_train_acc": _last(curves["acc"]),
        f"final_{held}_acc": _last(curves[f"{held}_acc"]),
        "overfitting_onset": overfitting_onset(curves["loss"], curves[f"{held}_loss"]),
        "batch_norm_images": training.batch_norm_images if training else None,
        "train_rho": (round(max(train_counts) / min(train_counts), 4) if train_counts and min(train_counts) > 0
                      else None),
        "curves": {k: [None if not math.isfinite(v) else round(v, 6) for v in vals] for k, vals in curves.items()},
    }


def _lowest(values: list[float]) -> int | None:
    """The 1-based epoch of the lowest finite value (the first of a tie), None without one."""
    finite = [(v, i) for i, v in enumerate(values, 1) if math.isfinite(v)]
    return min(finite)[1] if finite else None


def _last(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return finite[-1] if finite else None


def refuse_cells_configured_otherwise(out: Path, cells: list[tuple[str, Path]], model: str) -> None:
    """A study extended with more seeds kept its finished cells: cells an earlier release trained with model
    arguments its configurations now set otherwise (model_s's 'none' with its L2, before a6652e9) were averaged
    with new ones trained without, under one configuration's name. cells: (configuration, run folder)."""
    for config, folder in cells:
        run = RunDir(folder)
        if not run.has("config.yaml"):
            continue
        expected = configuration_settings(config, model)[1]
        stored = run.read_config().model_args
        if any(k not in stored or stored[k] != v for k, v in expected.items()):
            raise invalid("out", out, "a folder whose cells were trained with the configurations as they are now",
                          note=f"{run.path.name} was trained with model_args {stored}, where {config} now sets "
                               f"{expected} (an earlier release's configuration)",
                          hint="Use a new --out for the study; its cells would be averaged with the new ones")


def _finished(run_dir: Path) -> bool:
    """A cell whose scores can be read and that no process stopped while finishing it (its weights, card, scores
    and report are written one after the other: killed in between, metrics.json was there, so the cell was
    skipped as finished for good, without the report asked for, and `imgclf runs` kept calling it interrupted)."""
    from ..errors import ImgclfError
    from ..run_markers import FINISHING_FILE

    run = RunDir(run_dir)
    if not run.has("metrics.json") or run.has(FINISHING_FILE):
        return False
    try:
        run.read_metrics()
    except ImgclfError:  # an empty or damaged file: its run is finished again by a resume, as `imgclf runs` says
        return False
    return True


def _finishing_epochs(run_dir: Path) -> dict[str, int]:
    """A cell that stopped early and was not finished is finished at the epochs it ran: resumed for its whole
    --epochs, the same patience would stop it again at once, which the resume refuses."""
    run = RunDir(run_dir)
    try:
        training = run.read_card().training if run.has("model.json") else None
    except Exception:
        return {}
    if training is not None and training.stopped not in ("", "completed") and training.epochs_run:
        return {"epochs": training.epochs_run}
    return {}


def run_cell(fit: Callable[..., Any], run_dir: Path, data: Path, model: str, seed: int, train: dict[str, Any],
             model_args: dict[str, Any], overrides: dict[str, Any]) -> str:
    """Train one cell unless it is finished; 'skipped', 'resumed' or 'trained'."""
    if _finished(run_dir):
        return "skipped (finished)"
    if (run_dir / "checkpoints" / "last.ckpt").exists():
        # how it runs as this re-run asks (--checkpoint-every, --logger to finish it): the rest is the cell's own
        fit(None, resume=str(run_dir), **_finishing_epochs(run_dir),
            **{k: v for k, v in overrides.items() if k in RUNTIME_ONLY})
        return "resumed"
    values = {"progress": False, **overrides, **train, "data": str(data), "out": str(run_dir), "seed": seed,
              "model": model, "model_args": {**(overrides.get("model_args") or {}), **model_args}}
    # A cell is not the recipe it started from (the configuration replaced its regularisation); study.json's
    # request keeps the recipe's name.
    values.pop("recipe", None)
    # A folder without a checkpoint died before its first epoch ended: nothing to keep, start it again.
    fit(values, overwrite=run_dir.exists())
    return "trained"
