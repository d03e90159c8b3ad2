"""Continuing an interrupted run from its own files: its stored config.yaml and checkpoints/last.ckpt."""

from __future__ import annotations

import os
from typing import Any

from ..errors import invalid
from ..records import RunDir
from .resolve import resume_config
from .resume_checks import check_batch_size, check_resumable, checked_checkpoints
from .run import Run, train_run


def resume_run(path: str | os.PathLike, *, report: bool = True, **values: Any) -> Run:
    """Continue the run at `path` from its last checkpoint with its stored config (`values` override it, e.g. more
    epochs); a run without a checkpoint trains again from epoch 1."""
    if values.get("out") is not None and os.path.realpath(values["out"]) != os.path.realpath(path):
        raise invalid("out", values["out"], "unset with resume: a resumed run writes into its own folder",
                      also={"resume": path}, hint="Start a new run with --config RUN/config.yaml --out NEW instead")
    cfg = resume_config(path, **values)
    check_resumable(RunDir(path), cfg, values)
    ckpt = checked_checkpoints(RunDir(path))  # (its temp files are removed once training holds the folder)
    if ckpt is not None:
        check_batch_size(RunDir(path), ckpt, cfg, values)
    return train_run(cfg, checkpoint=None if ckpt is None else str(ckpt), resume=True, report=report)
