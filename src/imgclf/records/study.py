"""study.json: written by `imgclf study imbalance` beside its cells' run directories (not a run file).

While the grid trains the file holds only what was asked (`request`, `cells`, state "running", or "interrupted"
once its training was stopped); the finished study adds every cell's numbers read back from its run directory and
the means over seeds.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .base import Record
from .metrics import WorstClass

Protocol = Literal["standard", "s4"]
Curve = list[float | None]  # one value per epoch; None where it was not finite


class StudyRequest(BaseModel):
    """What was asked; a study can be extended (more rhos, configs, seeds) only with the same request."""

    model_config = ConfigDict(extra="forbid")
    data: str = Field(description="The balanced source folder, absolute.")
    mu: float | None = Field(description="Share of the classes made minority classes.")
    per_class: int = Field(ge=1, description="Images per majority class in every subset.")
    minority: list[str] | None = Field(description="The minority classes asked for by name; None: drawn.")
    model: str
    subset_seed: int
    overrides: dict[str, Any] = Field(description="Settings every cell shares (a recipe's name included).")
    protocol: Protocol = Field("standard", description="Absent in studies from before protocols: standard.")


class StudyCell(BaseModel):
    """One (rho, configuration, seed) of the grid and its run directory, relative to the study folder."""

    model_config = ConfigDict(extra="forbid")
    rho: float = Field(ge=1)
    config: str
    seed: int = Field(ge=0)
    run: str


class StudyProtocol(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Protocol
    description: str
    held_out: Literal["val", "test"] = Field(description="The split the curves were scored on.")
    settings: dict[str, Any] = Field(description="Run settings the protocol fixes in every cell.")


class SubsetSummary(BaseModel):
    """One ratio's step-imbalanced subset (`imgclf.data.subset`)."""

    model_config = ConfigDict(extra="forbid")
    counts: dict[str, int]
    total: int = Field(ge=0)
    rho_actual: float
    minority_count: int = Field(ge=0)
    majority_count: int = Field(ge=0)
    exact: bool = Field(description="The counts are exactly per_class and per_class / rho.")
    layout: Literal["flat", "splits"] = Field("flat", description="flat: the subset holds every image it has and "
                                              "the runs draw val and test from it; splits: only train/ was "
                                              "imbalanced, val/ and test/ are the data's own.")
    other_splits: dict[str, int] = Field(default_factory=dict, description="Images of the data's own val/ and "
                                         "test/, linked untouched (a splits layout).")
    notes: list[str] = Field(default_factory=list, description="How the subset differs from what was asked (its "
                             "ratio or total moved by whole images), as `imgclf subset` says it.")


class ConfigurationSettings(BaseModel):
    """What a configuration (such as reg+bn) sets in a cell."""

    model_config = ConfigDict(extra="forbid")
    train: dict[str, Any]
    model_args: dict[str, Any]


class SeedStats(BaseModel):
    """One metric over the seeds that finished."""

    model_config = ConfigDict(extra="forbid")
    mean: float | None
    std: float | None = Field(description="Sample standard deviation (ddof=1); None below two seeds.")
    n: int = Field(ge=0)


class SummaryRow(BaseModel):
    """Mean ± std over seeds of one (rho, configuration)."""

    model_config = ConfigDict(extra="forbid")
    rho: float
    config: str
    seeds: list[int] = Field(description="The seeds whose cells finished.")
    accuracy: SeedStats
    macro_recall: SeedStats
    minority_recall: SeedStats
    majority_recall: SeedStats
    final_train_acc: SeedStats
    overfitting_onset: SeedStats
    train_seconds: SeedStats


class CellCurves(BaseModel):
    """Per-epoch curves; the held-out ones are named for their split (val_*, or test_* under protocol s4)."""

    model_config = ConfigDict(extra="forbid")
    loss: Curve
    acc: Curve
    val_loss: Curve | None = None
    val_acc: Curve | None = None
    test_loss: Curve | None = None
    test_acc: Curve | None = None

    @model_validator(mode="after")
    def _one_held_out_split(self) -> CellCurves:
        val, test = (self.val_loss, self.val_acc), (self.test_loss, self.test_acc)
        if not ((None not in val and test == (None, None)) or (None not in test and val == (None, None))):
            raise ValueError("curves need the held-out split's loss and accuracy under one name: val_loss and "
                             "val_acc, or test_loss and test_acc")
        return self


class ConfigCurves(CellCurves):
    """A configuration's curves at one ratio averaged over seeds epoch by epoch (S4's overlaid figure)."""

    seeds: list[int]
    seeds_per_epoch: list[int] = Field(description="How many seeds reached each epoch (early stopping).")


class ClassRecall(BaseModel):
    """One class's scores: of one cell, or (S4's per-class table) of a (configuration, rho) averaged over seeds."""

    model_config = ConfigDict(extra="forbid")
    precision: float | None = Field(description="None in S4's table where no seed's scored split held the class, "
                                    "or no seed predicted it (a seed that never predicted it has no precision).")
    recall: float | None = Field(description="None in S4's table where no seed's scored split held the class.")
    support: int = Field(ge=0)
    predicted: int | None = Field(None, ge=0, description=(
        "A cell's: how many scored images it predicted as the class; absent in S4's table and in cells written "
        "before the field."))


class StudyRun(BaseModel):
    """One cell of the grid; a finished one (metrics.json written) carries its numbers, read from its run."""

    model_config = ConfigDict(extra="forbid")
    rho: float
    config: str
    seed: int
    run: str
    finished: bool
    accuracy: float | None = None
    macro_recall: float | None = None
    minority_recall: float | None = None
    majority_recall: float | None = None
    worst_class: WorstClass | None = None
    test_images: int | None = None
    split: str | None = None
    sizes: dict[str, int] | None = None
    per_class: dict[str, ClassRecall] | None = None
    epochs: int | None = None
    best_epoch: int | None = Field(None, description=(
        "The epoch whose weights the run kept; under protocol s4, which keeps the last, the epoch of the lowest "
        "test loss."))
    train_seconds: float | None = None
    final_train_acc: float | None = None
    final_val_acc: float | None = None
    final_test_acc: float | None = None
    overfitting_onset: int | None = None
    train_rho: float | None = Field(None, description=(
        "the training split's realised imbalance ratio: its largest class count over its smallest (dataset.json), "
        "which drifts from the cell's rho where the held-out splits take one image of a class that has few"))
    batch_norm_images: int | None = Field(None, ge=0, description=(
        "training images the run's BatchNorm statistics were recomputed on after training (model.json's "
        "training.batch_norm_images): its scores read the recomputed statistics, its curves each epoch's running "
        "ones; 0 or null: none were recomputed, the last point of the held-out curve is the final weights' score"))
    curves: CellCurves | None = None

    @model_validator(mode="after")
    def _finished_has_numbers(self) -> StudyRun:
        if self.finished and (self.accuracy is None or self.curves is None or self.per_class is None):
            raise ValueError(f"finished run {self.run} needs accuracy, per_class and curves")
        if self.final_val_acc is not None and self.final_test_acc is not None:
            raise ValueError(f"run {self.run} has one held-out split: final_val_acc or final_test_acc, not both")
        return self


UNSUMMARISED = ("running", "interrupted")  # states whose file holds only the request and the grid


class StudyRecord(Record):
    """study.json: an imbalance study's grid, every cell's numbers and the means over seeds."""

    request: StudyRequest
    state: Literal["running", "interrupted", "partial", "complete"] = Field(
        description="running: the grid is being trained (only request and cells); interrupted: its training was "
                    "stopped (Ctrl-C, a signal) and the same command continues it (only request and cells); "
                    "partial: some cells have not finished; complete: all have.")
    cells: list[StudyCell]
    protocol: StudyProtocol | None = Field(None, description="Absent in studies from before protocols, which ran "
                                           "the standard one.")
    classes: list[str] | None = None
    minority: list[str] | None = None
    majority: list[str] | None = None
    subsets: dict[str, SubsetSummary] | None = Field(None, description="Keyed by rho as written (\"1\", \"7.5\").")
    configs: dict[str, ConfigurationSettings] | None = None
    model_keeps: list[str] | None = Field(None, description="Regularisation the study's model keeps in every "
                                          "configuration, having no argument to switch it off (model_s: dropout "
                                          "and batch norm), so 'none' is not free of it; empty for caltech_cnn; "
                                          "absent in older studies.")
    scored: Literal["test", "validation"] | None = Field(None, description="The split the cells' scores were "
                                                         "measured on: validation where the data gave the standard "
                                                         "protocol no test split; absent in older studies (test).")
    summary: list[SummaryRow] | None = None
    table: dict[str, dict[str, dict[str, ClassRecall]]] | None = Field(
        None, description="configuration -> rho -> class -> precision, recall, support (mean over seeds).")
    curves_by_config: dict[str, dict[str, ConfigCurves]] | None = Field(None, description="rho -> configuration "
                                                                        "-> mean curves; absent in studies from "
                                                                        "before protocols.")
    runs: list[StudyRun] | None = None
    finished_runs: int | None = Field(None, ge=0)
    seconds: float | None = Field(None, description="Wall time of the last call's training (None: not timed).")
    hardware: dict[str, Any] | None = None
    versions: dict[str, str] | None = None

    @model_validator(mode="after")
    def _summarised_unless_running(self) -> StudyRecord:
        # protocol and curves_by_config came later: a study written before them still loads and can be extended
        needed = ("classes", "minority", "majority", "subsets", "configs", "summary", "table", "runs",
                  "finished_runs")
        missing = [k for k in needed if getattr(self, k) is None]
        if self.state not in UNSUMMARISED and missing:
            raise ValueError(f"a {self.state} study needs {', '.join(missing)}")
        held = self.protocol.held_out if self.protocol else "val"
        other = "test" if held == "val" else "val"
        stray = [r.run for r in self.runs or []
                 if r.curves is not None and getattr(r.curves, f"{other}_loss") is not None]
        if stray:
            raise ValueError(f"the protocol's held-out split is {held}, but run {stray[0]} has {other}_* curves")
        if self.runs is not None and self.finished_runs != sum(r.finished for r in self.runs):
            raise ValueError("finished_runs must count the finished runs")
        return self
