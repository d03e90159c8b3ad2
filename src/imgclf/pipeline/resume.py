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
    _refuse_a_fold_changed_alone(RunDir(path), cfg, values)
    check_resumable(RunDir(path), cfg, values)
    ckpt = checked_checkpoints(RunDir(path))  # (its temp files are removed once training holds the folder)
    if ckpt is not None:
        check_batch_size(RunDir(path), ckpt, cfg, values)
    return train_run(cfg, checkpoint=None if ckpt is None else str(ckpt), resume=True, report=report)


def _refuse_a_fold_changed_alone(run: RunDir, cfg: Any, values: dict[str, Any]) -> None:
    """A fold of a cross-validation resumed with other settings (more epochs) differs from its siblings: folds.json
    kept the old figures, and the next `--folds` run refused the folder ("fold-1 differs in epochs"). Resumed
    with its own settings (an interrupted fold) it stays one of them."""
    from ..config import RUNTIME_ONLY

    stored = run.read_config()
    if stored.fold is None:
        return
    old, new = stored.model_dump(mode="json"), cfg.model_dump(mode="json")
    changed = sorted(k for k, v in values.items() if v is not None and k not in RUNTIME_ONLY and k != "out"
                     and new.get(k) != old.get(k))
    if changed:
        name = changed[0]
        data = " ".join(stored.data) if isinstance(stored.data, list) else stored.data
        raise invalid(name, new[name], f"{old[name]!r}, as the other folds of {run.path.parent} were trained",
                      where=f"--resume {run.path} (fold {stored.fold})",
                      hint=f"Train every fold with it: imgclf train {data} --folds {stored.folds} --out "
                           f"{run.path.parent} --overwrite --{name.replace('_', '-')} {new[name]} (and the other "
                           "settings of the cross-validation)")
