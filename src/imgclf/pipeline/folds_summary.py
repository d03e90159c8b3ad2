"""folds.json: the summary of a cross-validation's folds (`folds.fit_folds` writes it; one fold's `calibrate`
refreshes it), apart from the training of the folds so that refitting one fold needs no training code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, get_args

from ..errors import bad_path
from ..io import write_json
from ..records import FoldMetric, FoldsRecord, RunDir
from ..stats import mean_std

FOLDS_FILE = "folds.json"
METRICS: tuple[str, ...] = get_args(FoldMetric)


def fold_dir(out: Path, i: int) -> Path:
    return out / f"fold-{i}"


def _fold_metrics(path: Path) -> dict[str, float | int | None]:
    from ..evaluation.interpret import best_val_accuracy

    run = RunDir(path)
    card, metrics, history = run.read_card(), run.read_metrics(), run.read_history()
    kept = [r for r in history if r.epoch == card.training.best_epoch] or history[-1:]
    on_test = metrics.split == "test"
    test = (lambda v: v if on_test else None)  # noqa: E731  (no test split: metrics.json scored val)
    return {
        "epochs": len(history),
        "val_accuracy": card.metrics.val_accuracy if card.metrics.val_accuracy is not None else
        best_val_accuracy(history, card.training.best_epoch),  # the card's: history.csv keeps 6 digits
        "val_loss": kept[0].val_loss if kept else None,
        "test_accuracy": test(metrics.accuracy),
        "test_loss": test(metrics.loss),
        "test_macro_precision": test(metrics.macro.precision),
        "test_macro_recall": test(metrics.macro.recall),
        "test_macro_f1": test(metrics.macro.f1),
        "test_weighted_f1": test(metrics.weighted.f1),
        "test_ece": test(metrics.ece),
        "test_macro_auc": test(metrics.macro_auc),
        "test_worst_class_recall": test(metrics.worst_class.recall if metrics.worst_class else None),
    }


def refresh_summary(fold_run: Path) -> bool:
    """Write the parent's folds.json again after one fold's scores changed without training (calibrate): it kept
    the fold's earlier test ECE and loss beside the fold's new metrics.json. True where there was one to refresh."""
    out = Path(fold_run).parent
    if not (out / FOLDS_FILE).is_file():
        return False
    runs = [fold_dir(out, i) for i in range(1, read_folds(out).folds + 1)]
    if not all(RunDir(r).has("metrics.json") for r in runs):
        return False
    write_json(out / FOLDS_FILE, summarize_folds(out, runs))
    return True


def summarize_folds(out: str | os.PathLike, runs: list[Path]) -> dict[str, Any]:
    """folds.json: every fold's metrics and, per metric, mean ± sample std over the folds."""
    per_fold = [{"fold": i, "run": p.name, **_fold_metrics(p)} for i, p in enumerate(runs, 1)]
    stats = {}
    for name in METRICS:
        s = mean_std(f[name] for f in per_fold)
        stats[name] = {"mean": s.mean, "std": s.std, "n": s.n}
    dataset = RunDir(runs[0]).read_dataset()
    record = FoldsRecord(folds=len(runs), test_images=dataset.sizes.get("test", 0), metrics=stats,
                         per_fold=per_fold)
    return record.model_dump(mode="json")


def read_folds(out: str | os.PathLike) -> FoldsRecord:
    """OUT/folds.json of a finished cross-validation, checked against its record; a missing, unreadable or
    mismatched file is a one-line error naming OUT, not a traceback."""
    from ..records.base import read_record

    path = Path(out) / FOLDS_FILE
    if not path.is_file():
        raise bad_path("out", out, f"a cross-validation folder holding {FOLDS_FILE}",
                       "no such folder" if not Path(out).exists() else f"no {FOLDS_FILE}: not all folds finished?")
    return read_record(path, FoldsRecord, "out", out, "a folder")
