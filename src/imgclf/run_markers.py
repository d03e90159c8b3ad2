"""What makes a folder a run directory, known below the records and the data layers (both ask: a run's folder
given where images go, a data set given where a run goes)."""

from __future__ import annotations

import os
from pathlib import Path

# Files whose presence makes a folder a run directory (an interrupted run may have only the first or the last):
# config.yaml only beside dataset.json, which training writes right after it (a data set may keep a config.yaml)
RUN_MARKERS = (("config.yaml", "dataset.json"), ("model.json",), ("checkpoints/last.ckpt",))
# The summaries a group of runs keeps beside them: a cross-validation's, a study's, a search's (folds_summary,
# study.files and records.tune name them; tests/test_runs.py checks they agree). Their folders take no other files.
RUN_GROUP_FILES = ("folds.json", "study.json", "tune.json")
# A run's weights: here, below the models too, which take an earlier run's folder as --weights
WEIGHTS_FILE = "model.safetensors"
# Present while a trained run's weights, card, scores and report are written, and left by a signal there: its
# card and scores may be the run's own, its report or calibration not yet (`imgclf runs` calls it interrupted)
FINISHING_FILE = ".finishing"


def is_run_dir(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a run's own files (finished or not), as opposed to a folder of runs or of data."""
    return any(all((Path(folder) / name).is_file() for name in marker) for marker in RUN_MARKERS)


def holds_runs(folder: str | os.PathLike) -> bool:
    """Runs among `folder`'s subfolders or theirs (runs/, a study's cells): the depth imgclf itself makes them at."""
    children = _subfolders(Path(folder))
    return any(is_run_dir(c) or any(is_run_dir(g) for g in _subfolders(c)) for c in children)


def _subfolders(folder: Path) -> list[Path]:
    """`folder`'s subfolders, none where it cannot be read (--out / met /proc/1/cwd: an internal error)."""
    try:
        return [c for c in folder.iterdir() if c.is_dir()]
    except OSError:
        return []
