"""tune.json: written by `imgclf tune` in the search folder (not a run file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import Record

TUNE_FILE = "tune.json"  # in the search folder, beside trials/


class TuneTrial(BaseModel):
    """One trial of a search: what it drew, how it ended, its run directory (relative to the search folder)."""

    model_config = ConfigDict(extra="forbid")
    number: int = Field(ge=0, description="Optuna's trial number; the run is trials/trial-NNN.")
    state: Literal["complete", "pruned", "fail", "running", "waiting"]
    value: float | None = Field(None, description="The record's objective (validation accuracy, or mAP for "
                                "multi-label data) of the weights the trial kept (complete trials); pruned trials: "
                                "their last reported epoch's.")
    params: dict[str, Any]
    run: str | None = None
    epochs: int | None = None
    seconds: float | None = Field(None, description="Wall time of the whole trial (data, training, card).")
    stopped: str | None = Field(None, description="Why its training ended (completed, time limit, pruned at "
                                "epoch k, failed: ..., interrupted).")


class TuneBest(BaseModel):
    """The chosen trial: by the validation split only (the record's objective); the one trial evaluated on the test
    split."""

    model_config = ConfigDict(extra="forbid")
    number: int = Field(ge=0)
    value: float
    params: dict[str, Any]
    run: str
    test_accuracy: float | None = Field(None, description=(
        "the chosen trial's test accuracy; for multi-label data label-wise (1 - Hamming loss, at the labels' "
        "tuned thresholds), as its validation value is label-wise (at 0.5), not subset accuracy"))
    test_macro_f1: float | None = None
    test_map: float | None = Field(None, description="Multi-label data: the chosen trial's test mAP (the objective's "
                                   "measure on the test split).")


class TuneRecord(Record):
    """tune.json: a hyper-parameter search (`imgclf tune`): its space, every trial, the best, importances."""

    created: str
    imgclf_version: str
    optuna_version: str
    data: str | list[str]
    model: str
    recipe: str | None = None
    objective: Literal["val_accuracy", "val_map"] = Field("val_accuracy", description=(
        "What the trials are ranked and pruned by, on the validation split: accuracy, or for multi-label data the "
        "mAP (mean of the labels' average precision), which a threshold does not decide."))
    sampler: str
    pruner: str
    seed: int
    trials_asked: int = Field(ge=1)
    time_limit_seconds: float | None = None
    seconds_used: float = Field(ge=0, description="Sum of the trials' wall times (the budget's measure).")
    stopped: str = Field(description="Why the search ended: all trials run, or the time limit; 'running: ...' "
                         "while it runs (the file is rewritten after every trial).")
    space: dict[str, dict[str, Any]]
    trials: list[TuneTrial]
    best: TuneBest | None = Field(description="The chosen trial, tested; while the search runs, the best so far "
                                  "(untested); None when no trial has completed.")
    importances: dict[str, float] | None = Field(None, description="Optuna's parameter importances (PED-ANOVA "
                                                 "by default) over the complete trials; None with too few.")


# What `imgclf runs` and compare say of a trial its search was interrupted in: `train --resume` would finish it, and
# test it, outside its search (compare had offered that)
INTERRUPTED_TRIAL = "the search stopped in this trial, which counts as failed: imgclf tune --resume goes on with new ones"


def trial_of_run(path: Path) -> TuneTrial | None:
    """The TuneTrial of a run that is a trial of a search (SEARCH/trials/trial-NNN beside SEARCH/tune.json, which
    the search rewrites after every trial), or None: not a trial, or no readable tune.json yet. A listing never
    fails on a neighbour's file: the run keeps its own status."""
    from ..errors import ImgclfError
    from .base import read_record

    summary = path.parent.parent / TUNE_FILE
    if path.parent.name != "trials" or not summary.is_file():
        return None
    try:
        record = read_record(summary, TuneRecord, "runs", path.parent.parent, "a search folder")
    except ImgclfError:
        return None
    name = f"trials/{path.name}"
    return next((t for t in record.trials if t.run == name), None)
