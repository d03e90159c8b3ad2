"""What a search refuses in its base settings before any trial runs (`imgclf.search.search.tune`)."""

from __future__ import annotations

from ..config import TrainConfig
from ..errors import invalid, whole_number


MIN_TRIAL_SECONDS = 1.0  # a trial's time limit is given in whole seconds


def check_hooks(pruner: object, log: object) -> None:
    """The Python API's objects, refused before the search folder is made: a string for either failed after the
    first trial, in Optuna's pruning or in the first line said, with a bare traceback."""
    if log is not None and not callable(log):
        raise invalid("log", log, "a callable taking one line of text (print, logging.info), or None")
    if pruner is not None:
        from optuna.pruners import BasePruner

        if not isinstance(pruner, BasePruner):
            raise invalid("pruner", pruner, "an Optuna pruner (optuna.pruners.MedianPruner(), NopPruner(), ...) or "
                                            "None for the median pruner")


def check_base(base: TrainConfig, trials: int, budget: float | None) -> int:
    """Refused before the search folder is made: what would make every trial fail, or one that the search
    would silently override. Returns `trials` as an int (numpy's taken)."""
    trials = whole_number("trials", trials, "a whole number >= 1", 1)
    if base.folds:
        raise invalid("folds", base.folds, "unset for tune: each trial is one run, selected on the validation split")
    from ..train.engine_choice import several_processes

    if several_processes(base.devices, base.num_nodes, base.accelerator):
        # each process ran the search's own bookkeeping: the second found the first's study.db and stopped, which
        # killed both
        raise invalid("devices", base.devices, "1 for tune: the search trains its trials in one process",
                      also={"num_nodes": base.num_nodes},
                      hint="Search on one device, then train the chosen settings on several: imgclf train --config "
                           "OUT/best.yaml --devices N --strategy ddp")
    if base.sizing == "probe":
        raise invalid("sizing", "probe", "fixed for tune: each trial's probe would replace the width, batch, learning "
                      "rate and augmentation the search sampled with its own choice",
                      hint="Pass --sizing fixed (and the width to search from with --model-args width=N; Python: "
                           "sizing=\"fixed\", model_args={\"width\": N})")
    if base.lr == "auto" or base.lr_auto:  # recorded in search.yaml, then ignored: each trial sampled a number
        raise invalid("lr", "auto", "a number for tune: a finder run in each trial would replace the rate the "
                      "search samples where its space holds lr (the models' default spaces do), and give each trial "
                      "a rate of its own where it does not, so the trials would not compare the space's settings alone",
                      hint="Pass --lr 0.01 (Python: lr=0.01) or leave it out, or find one first with imgclf "
                           "lr-find DATA")
    if budget is not None and budget <= 0:
        raise invalid("time_limit", budget, "a duration > 0 such as 90s, 10m, 1.5h or 1h30m")
    if budget is not None and budget < MIN_TRIAL_SECONDS * trials:
        # a trial's share is a whole number of seconds, at least one: 4 s over 10 trials ran each for 1 s, 2.5x over
        least = MIN_TRIAL_SECONDS * trials
        raise invalid("time_limit", f"{budget:g}s", f"at least {MIN_TRIAL_SECONDS:g} s a trial, {least:g} s for "
                      f"{trials} trials (each trial gets an equal share of the search's time)",
                      also={"trials": trials},
                      hint="Give a longer --time-limit or fewer --trials (Python: time_limit=, trials=)")
    from ..train.engine_choice import check_engine

    # else every trial fails on it, and failed trials are redrawn
    check_engine(base.accelerator, base.strategy, base.precision)
    return trials
