"""Continuing an interrupted run from its own files: its stored config.yaml and checkpoints/last.ckpt."""

from __future__ import annotations

import os
from typing import Any

from ..errors import check_switch, invalid
from ..file_names import shell_word
from ..notices import warn
from ..records import RunDir
from .resolve import resume_config
from .resume_checks import (check_batch_size, check_config_unedited, check_history, check_resumable,
                            checked_checkpoints, nothing_left_to_train, time_budget_spent)
from .run import Run, train_run
from .same_data import check_data_in_place, refuse_missing_data


def resume_run(path: str | os.PathLike, *, report: bool = True, **values: Any) -> Run:
    """Continue the run at `path` from its last checkpoint with its stored config (`values` override it, e.g. more
    epochs); a run without a checkpoint trains again from epoch 1."""
    report = check_switch("report", report)
    if values.get("out") is not None and os.path.realpath(values["out"]) != os.path.realpath(path):
        raise invalid("out", values["out"], "unset with resume: a resumed run writes into its own folder",
                      also={"resume": path}, hint="Start a new run with --config RUN/config.yaml --out NEW instead")
    cfg = resume_config(path, **values)
    # the run's own data, not a DATA given beside --resume: a mistyped one read "the run's data is no longer
    # there" (the data check below refuses another folder as what it is)
    check_data_in_place(RunDir(path), RunDir(path).read_config() if values.get("data") is not None else cfg,
                        "resume", "a resume")
    if values.get("data") is not None:  # a typo: not offered in the fold's hint as the data to train every fold on
        refuse_missing_data(values["data"])
    _refuse_a_fold_changed_alone(RunDir(path), cfg, values)
    check_resumable(RunDir(path), cfg, values)
    ckpt = checked_checkpoints(RunDir(path))  # (its temp files are removed once training holds the folder)
    if ckpt is not None:
        check_history(RunDir(path), ckpt)
        check_config_unedited(RunDir(path), ckpt)
        check_batch_size(RunDir(path), ckpt, cfg, values)
    # once it can go ahead
    if (finished := nothing_left_to_train(RunDir(path), cfg.epochs) or time_budget_spent(RunDir(path), cfg)):
        warn(finished)
    return train_run(cfg, checkpoint=None if ckpt is None else str(ckpt), resume=True, report=report)


def _refuse_a_fold_changed_alone(run: RunDir, cfg: Any, values: dict[str, Any]) -> None:
    """A fold of a cross-validation resumed with other settings (more epochs) differs from its siblings: folds.json
    kept the old figures, and the next `--folds` run refused the folder ("fold-1 differs in epochs"). Resumed
    with its own settings (an interrupted fold) it stays one of them. Compared as that `--folds` run compares."""
    from .experiment import experiment_settings
    from .folds_summary import fold_dir

    stored = run.read_config()
    if stored.fold is None:
        return
    # a fold trained alone into a folder of its own name (--fold 2 --out cv/f2) has no siblings to differ from: the
    # folder holding it was blamed. A cross-validation's folds are fold-I (cut in its first fold, it has no other).
    if run.path.name != fold_dir(run.path.parent, stored.fold).name:
        return
    old, new = experiment_settings(stored), experiment_settings(cfg)
    changed = sorted(k for k, v in values.items() if v is not None and k in new and new.get(k) != old.get(k))
    if changed:
        name = changed[0]
        # the data is train's positional argument, and --folds is in the command already: the new value there
        # (--data was no option, and --folds 3 ... --folds 2 said it twice)
        shown = new["data"] if name == "data" else stored.data
        data = " ".join(map(shell_word, shown)) if isinstance(shown, list) else shell_word(shown)
        folds = new["folds"] if name == "folds" else stored.folds
        changed_flag = "" if name in ("data", "folds") else f" {_flag(name, new[name])}"
        # "the other folds" only where there are some: cut in its first fold, it is the folder's only one so far
        others = [p for i in range(1, (stored.folds or 0) + 1) if i != stored.fold
                  and (p := fold_dir(run.path.parent, i)).is_dir()]
        whose = f"as the other folds of {run.path.parent} were trained" if others else \
            f"as the cross-validation of {run.path.parent} trains its folds"
        raise invalid(name, new[name], f"{old[name]!r}, {whose}",
                      where=f"--resume {run.path} (fold {stored.fold})",
                      hint=f"Train every fold with it: imgclf train {data} --folds {folds} --out "
                           f"{shell_word(run.path.parent)} --overwrite{changed_flag} (and the other settings of the "
                           "cross-validation)")


def _flag(name: str, value: Any) -> str:
    """The command-line spelling of a setting: --epochs 2, --no-restore-best, --model-args ... for a mapping."""
    flag = f"--{name.replace('_', '-')}"
    if isinstance(value, bool):
        return flag if value else f"--no-{flag[2:]}"
    return f"{flag} {shell_word(value)}" if isinstance(value, (str, int, float)) else f"{flag} ..."


