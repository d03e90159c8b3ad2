"""Continuing an interrupted run from its own files: its stored config.yaml and checkpoints/last.ckpt."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import invalid
from ..records import RunDir
from .resolve import resume_config
from .run import Run, train_run


def resume_run(path: str | os.PathLike, *, report: bool = True, **values: Any) -> Run:
    """Continue the run at `path` from its last checkpoint with its stored config (`values` override it, e.g. more
    epochs); a run without a checkpoint trains again from epoch 1."""
    from ..io import remove_temp_files

    cfg = resume_config(path, **values)
    remove_temp_files(path)  # half-written files of the interrupted process are never picked up
    ckpt = _checked_checkpoints(RunDir(path))
    return train_run(cfg, checkpoint=None if ckpt is None else str(ckpt), resume=True, report=report)


def _checked_checkpoints(run: RunDir) -> Path | None:
    """The run's last.ckpt (None when it has none), after reading it and best.safetensors as training would, before
    any data is decoded: a garbage, truncated or crafted file is reported on one line, and nothing in it runs."""
    from ..train.callbacks import checkpoint_problem, weights_problem

    for name, problem_of in (("checkpoints/last.ckpt", checkpoint_problem),
                             ("checkpoints/best.safetensors", weights_problem)):
        path = run.file(name)
        problem = problem_of(path) if path.is_file() else None
        if problem:
            raise invalid("resume", run.path, f"a run directory whose {name} can be read", note=f"{name} {problem}",
                          hint=f"Delete {path} to resume without it" + (" (from epoch 1)" if name.endswith("ckpt")
                                                                        else ""))
    last = run.file("checkpoints/last.ckpt")
    return last if last.is_file() else None
