"""The run directory's contract: one typed record per file, each with a `schema_version`.

Every stage writes and reads a run directory through these records and `RunDir`, never through raw JSON, so a
key means the same thing everywhere and a run made yesterday on another machine loads (or fails with one clear
line naming the file). JSON Schemas of the records are generated into `docs/schema/` by `write_schemas`.

Version 1 is the first versioned layout. Files written before versioning (no `schema_version`, the model card's
`format_version`, the metrics' `f1-score` averages) are upgraded on read, so older runs still load.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .config import TrainConfig
from .errors import ImgclfError, bad_path, invalid
from .io import (atomic_write_text, checked_row, from_spreadsheet_safe, read_csv, read_json, read_yaml, write_csv,
                 write_json, write_yaml)

SCHEMA_VERSION = 1
# model.json and metrics.json are at version 2: cards carry `calibration` and `unknown`, metrics the matching
# test-split scores. Version-1 files (without them) still load: probabilities are the raw softmax, no image is
# called unknown.
CARD_SCHEMA_VERSION = 2
METRICS_SCHEMA_VERSION = 2
Interpolation = Literal["nearest", "bilinear", "bicubic", "lanczos", "box"]


class Record(BaseModel):
    """A run file's content. Unknown keys are refused: a typo in a writer must fail a test, not drift."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = Field(SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "schema_version" not in data:
            data = {**data, "schema_version": 1}
        return data


# --------------------------------------------------------------------------------------------- dataset.json
class SkippedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    reason: str


class SplitFiles(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: list[str] = Field(description="Paths relative to the data set's root.")
    labels: list[int]
    label_sets: list[list[int]] | None = Field(None, description="Multi-label data: the label ids each image "
                                               "carries (may be empty); `labels` is then its rarest label.")


class LabelStats(BaseModel):
    """One split of a multi-label data set: how many labels an image carries and which go together."""

    model_config = ConfigDict(extra="forbid")
    images: int = Field(ge=0)
    cardinality: float = Field(ge=0, description="Mean number of labels per image.")
    counts: dict[str, int] = Field(description="Images carrying each label.")
    no_label: int = Field(ge=0, description="Images carrying none of the labels.")
    cooccurrence: list[list[int]] = Field(description="Images carrying both labels, in class order; the "
                                          "diagonal is each label's count.")


class ImbalanceStats(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rho: float | None = Field(description="Largest class count / smallest (training split).")
    mu: float | None = Field(description="Share of the classes that are minority classes.")
    minority: list[str]
    imbalanced: bool


class SplitLeak(BaseModel):
    model_config = ConfigDict(extra="forbid")
    split: str = Field(description="The split holding the images (val or test).")
    source: str = Field(description="The earlier split holding their duplicates (train or val).")
    images: int = Field(ge=0, description="Images of `split` with a duplicate in `source`.")
    exact: int = Field(ge=0, description="Of those, byte-identical copies of a file in `source`.")


class DuplicateGrouping(BaseModel):
    """The near-duplicate groups the split was drawn with (`imgclf.data.groups`)."""

    model_config = ConfigDict(extra="forbid")
    method: str
    threshold: float = Field(description="Pixel correlation a near-duplicate pair reaches.")
    groups: int = Field(ge=0)
    images: int = Field(ge=0, description="Images in a group (kept in one split by an automatic split).")
    exact_images: int = Field(ge=0, description="Images with a byte-identical copy among the searched files.")
    seconds: float = Field(ge=0, description="Time the duplicate search took (reading the memo, when reused).")
    reused: bool = Field(False, description="The groups were read from the memo beside the uint8 cache.")
    automatic_splits: list[str] = Field(description="The splits drawn here (the others were given as folders); "
                                        "each group is kept inside one of them.")
    separated: int = Field(ge=0, description="Groups divided between the drawn splits anyway: a class had no "
                           "group small enough to hold out whole (one picture in many copies).")
    leaks: list[SplitLeak] = Field(default_factory=list, description="Duplicates across splits (user-given "
                                   "folders, which are never changed; only a warning).")


class DatasetRecord(Record):
    """dataset.json: what the run trained and was evaluated on."""

    root: str = Field(description="Absolute path of the data folder, which the split file paths are relative to "
                      "(with several data folders: their common parent).")
    roots: list[str] = Field(default_factory=list, description="Every data folder the data set was made from, "
                             "absolute (several when they were merged; empty in older runs, which had one: root).")
    layout: str
    classes: list[str] = Field(min_length=2)
    img_size: int = Field(ge=1)
    color: Literal["rgb", "grayscale"]
    val_source: str
    sizes: dict[str, int]
    counts: dict[str, dict[str, int]]
    imbalance: ImbalanceStats
    cache_key: str | None = None
    streamed: bool = False
    skipped: list[SkippedFile] = Field(default_factory=list)
    duplicates: DuplicateGrouping | None = Field(None, description="Near-duplicate groups the split was drawn "
                                                 "with; null when not searched (streamed data, "
                                                 "--no-group-duplicates, runs before it existed).")
    splits: dict[str, SplitFiles]
    task: Literal["single", "multilabel"] = Field("single", description="multilabel: an image carries a set of "
                                                  "labels (an index file); `counts` are images per label.")
    label_stats: dict[str, LabelStats] | None = Field(None, description="Multi-label data: per split.")

    def split_paths(self, split: str) -> tuple[list[str], list[int]]:
        s = self.splits[split]
        root = Path(self.root)
        return [str(root / f) for f in s.files], list(s.labels)


# --------------------------------------------------------------------------------------------- metrics.json
class ClassScores(BaseModel):
    model_config = ConfigDict(extra="forbid")
    precision: float
    recall: float
    f1: float
    support: int = Field(ge=0)


class AverageScores(BaseModel):
    model_config = ConfigDict(extra="forbid")
    precision: float
    recall: float
    f1: float

    @model_validator(mode="before")
    @classmethod
    def _legacy_f1(cls, data: Any) -> Any:  # before schema 1 the averages said "f1-score", the classes "f1"
        if isinstance(data, dict) and "f1-score" in data:
            data = {k if k != "f1-score" else "f1": v for k, v in data.items()}
        return data


class WorstClass(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    recall: float


class TTAScores(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accuracy: float
    loss: float | None
    macro: AverageScores
    worst_class: WorstClass | None = None
    macro_auc: float | None = None
    transforms: str = ""


class CalibrationScores(BaseModel):
    """The evaluated split before and after temperature scaling (metrics.json `calibration`); `ece` and `loss`
    of the record itself are the calibrated ones."""

    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(gt=0)
    ece_before: float
    loss_before: float | None


class UnknownScores(BaseModel):
    """How the unknown threshold treated the evaluated split (metrics.json `unknown`)."""

    model_config = ConfigDict(extra="forbid")
    detector: str
    threshold: float | None
    flagged: float = Field(ge=0, le=1, description="Share of the images scored below the threshold (unknown).")
    accuracy_kept: float | None = Field(description="Accuracy on the images not flagged.")


class LabelScores(BaseModel):
    """One label of a multi-label evaluation, at the card's threshold for it."""

    model_config = ConfigDict(extra="forbid")
    ap: float | None = Field(description="Average precision (area under the PR curve); None without positives.")
    threshold: float
    precision: float
    recall: float
    f1: float
    support: int = Field(ge=0, description="Images carrying the label.")


class MultiLabelScores(BaseModel):
    """metrics.json `multilabel`: ranking and set scores of a multi-label evaluation."""

    model_config = ConfigDict(extra="forbid")
    map_macro: float | None = Field(description="Mean of the per-label average precisions (labels with positives).")
    map_micro: float | None = Field(description="Average precision over every (image, label) pair.")
    subset_accuracy: float = Field(description="Images whose predicted label set equals the true set.")
    hamming_loss: float = Field(description="Share of (image, label) decisions that are wrong.")
    micro: AverageScores
    samples_f1: float = Field(description="F1 of each image's predicted set against its true set, averaged.")
    per_label: dict[str, LabelScores]
    cardinality_true: float
    cardinality_pred: float


class MetricsRecord(Record):
    """metrics.json: scores of one evaluated split, computed from predictions.csv's probabilities."""

    schema_version: int = Field(METRICS_SCHEMA_VERSION, ge=1, le=METRICS_SCHEMA_VERSION)
    split: str = Field(description="test, val, or DATA:split for another folder.")
    count: int = Field(ge=0)
    accuracy: float
    loss: float | None
    macro: AverageScores
    weighted: AverageScores
    per_class: dict[str, ClassScores]
    worst_class: WorstClass | None = None
    auc: dict[str, float | None]
    macro_auc: float | None = None
    ece: float
    confusion: list[list[int]]
    classes_present: list[str]
    skipped: list[SkippedFile] = Field(default_factory=list)
    tta: TTAScores | None = None
    calibration: CalibrationScores | None = None
    unknown: UnknownScores | None = None
    task: Literal["single", "multilabel"] = Field("single", description="multilabel: accuracy is subset accuracy, "
                                                  "loss the mean binary cross-entropy, per_class / macro / weighted "
                                                  "the labels' P/R/F1 at their thresholds, auc per label, "
                                                  "confusion the label co-occurrence (true x predicted).")
    multilabel: MultiLabelScores | None = None


# --------------------------------------------------------------------------------------------- model.json
class TrainingSummary(BaseModel):
    """How the weights were made (the card's `training`)."""

    model_config = ConfigDict(extra="forbid")
    recipe: str | None = None
    epochs_run: int = Field(0, ge=0)
    best_epoch: int | None = Field(None, description="1-based epoch whose weights were kept.")
    stopped: str = ""
    train_seconds: float = 0.0
    images_per_s: float | None = None
    precision: str = "32"
    optimizer: str = ""
    lr: float | None = None
    batch_size: int | None = None
    schedule: str = ""
    augment: str = ""
    seed: int | None = None
    loss: str = ""
    class_weight: str = ""
    sampler: str = ""
    label_smoothing: float = 0.0
    train_images: int | None = None
    time_budget: dict[str, float | None] | None = None


class HeadlineMetrics(BaseModel):
    """The card's `metrics`: the numbers people quote, copied from metrics.json and history.csv."""

    model_config = ConfigDict(extra="forbid")
    split: str | None = None
    accuracy: float | None = None
    loss: float | None = None
    macro_f1: float | None = None
    macro_recall: float | None = None
    worst_class: WorstClass | None = None
    macro_auc: float | None = None
    val_accuracy: float | None = None


class CalibrationInfo(BaseModel):
    """The card's `calibration`: the temperature every probability is computed with, and what it did on the
    validation split it was fitted on."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["none", "temperature"]
    temperature: float = Field(1.0, gt=0, description="Probabilities are softmax(logits / temperature).")
    split: str = "val"
    images: int = Field(0, ge=0)
    ece_before: float | None = None
    ece_after: float | None = None
    nll_before: float | None = None
    nll_after: float | None = None
    skipped: str = Field("", description="Why no temperature was fitted (it stays 1), if none was.")


class LRFindInfo(BaseModel):
    """The card's `lr_find`, for runs trained with --lr auto: Lightning's LR range test and what it suggested."""

    model_config = ConfigDict(extra="forbid")
    suggestion: float = Field(gt=0, description="The learning rate training used: where the loss fell fastest.")
    min_lr: float = Field(gt=0, description="First learning rate of the sweep.")
    max_lr: float = Field(gt=0, description="Last learning rate the sweep would reach.")
    steps: int = Field(ge=1, description="Training steps swept (fewer than asked when the loss diverged).")
    curve: str = Field("lr_find.png", description="The loss-vs-learning-rate figure, in the run directory.")
    data: str = Field("lr_find.json", description="The sweep's learning rates and losses, in the run directory.")


class SizingCandidate(BaseModel):
    """One model the `fast` sizing probe timed: its settings, measured speed and the epochs the budget buys it."""

    model_config = ConfigDict(extra="forbid")
    model_args: dict[str, Any]
    num_params: int = Field(ge=0)
    images_per_s: float = Field(ge=0, description="Training throughput measured by the probe: forward, backward "
                                "and optimiser step on batches of the run's shape and precision.")
    predicted_epochs: float = Field(ge=0, description="Epochs the training time left after the probe buys at "
                                    "that speed, less the measured overhead of a whole epoch.")


class SizingInfo(BaseModel):
    """The card's `sizing`, for runs with sizing=probe (the `fast` recipe): what the probe measured on this
    machine and which candidate and regularisation the rule chose for the budget."""

    model_config = ConfigDict(extra="forbid")
    budget_seconds: float = Field(gt=0, description="The whole --time-limit; the probe is counted inside it.")
    probe_seconds: float = Field(ge=0)
    counted_seconds: float = Field(ge=0, description="Probe seconds charged to the budget: all of them, unless "
                                   "the probe took over half the budget (a very slow machine): then half, so that "
                                   "training keeps the other half.")
    train_images: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    precision: str
    min_epochs: float = Field(gt=0, description="Epochs a candidate must be predicted to reach to be chosen.")
    candidates: list[SizingCandidate]
    chosen: int = Field(ge=0, description="Index of the chosen candidate in `candidates`.")
    augment: str = Field(description="Augmentation the rule set for the predicted epochs.")
    ema: float | None = Field(None, description="EMA decay of the weights the rule set (None: no averaging).")
    reason: str


class UnknownInfo(BaseModel):
    """The card's `unknown`: how an image is scored and below which score it is reported as unknown."""

    model_config = ConfigDict(extra="forbid")
    detector: Literal["msp", "energy", "mahalanobis", "mahalanobis-l2"]
    acceptance: float = Field(gt=0, lt=1, description="Share of the validation images the threshold was set to "
                              "accept as known.")
    threshold: float | None = Field(description="Scores below it are unknown (higher scores: more like the "
                                    "training images).")
    split: str = "val"
    images: int = Field(0, ge=0)
    accepted: float | None = Field(None, description="Share of the validation images at or above the threshold.")
    score_quantiles: dict[str, float] = Field(default_factory=dict, description="Validation scores at the "
                                              "percentiles named by the keys (p1, p5, p50, ...).")
    statistics: str | None = Field(None, description="File beside the weights holding the detector's tensors "
                                   "(class means and precision for the mahalanobis detectors) and the validation scores.")
    fitted_on: str = Field("", description="Images the detector's statistics come from (mahalanobis detectors).")
    feature_dim: int | None = None


class ModelCard(Record):
    """model.json: everything needed to rebuild, preprocess and label; validated before use."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = Field(CARD_SCHEMA_VERSION, ge=1, le=CARD_SCHEMA_VERSION)

    architecture: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")
    model_args: dict[str, Any] = Field(default_factory=dict)
    classes: list[str] = Field(min_length=2)
    img_size: int = Field(ge=1, le=4096)
    in_chans: int = Field(ge=1, le=4)
    color: Literal["rgb", "grayscale"]
    mean: list[float]
    std: list[float]
    interpolation: Interpolation = "bilinear"
    num_params: int = Field(ge=0)
    metrics: HeadlineMetrics = Field(default_factory=HeadlineMetrics)
    training: TrainingSummary = Field(default_factory=TrainingSummary)
    versions: dict[str, str] = Field(default_factory=dict)
    hardware: dict[str, Any] = Field(default_factory=dict)
    created: str = ""
    calibration: CalibrationInfo | None = Field(None, description="Absent in cards before schema 2: raw softmax.")
    unknown: UnknownInfo | None = Field(None, description="Absent in cards before schema 2: no image is unknown.")
    task: Literal["single", "multilabel"] = Field("single", description="multilabel: one sigmoid per label, and "
                                                  "an image carries every label whose probability reaches its "
                                                  "threshold.")
    thresholds: dict[str, float] | None = Field(None, description="Multi-label: each label's decision threshold, "
                                                "tuned on the validation split (maximum F1).")
    lr_find: LRFindInfo | None = Field(None, description="Set when lr was found by the LR finder (--lr auto); "
                                       "absent otherwise and in older cards.")
    sizing: SizingInfo | None = Field(None, description="Set when the model was sized by the probe (sizing=probe, "
                                      "the fast recipe); absent otherwise and in older cards.")

    @property
    def temperature(self) -> float:
        return self.calibration.temperature if self.calibration is not None else 1.0

    @model_validator(mode="before")
    @classmethod
    def _legacy_format_version(cls, data: Any) -> Any:  # before schema 1 the card said format_version: 1
        if isinstance(data, dict) and "format_version" in data:
            data = {k: v for k, v in data.items() if k != "format_version"}
            data.setdefault("schema_version", 1)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "ModelCard":
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise ValueError(f"mean and std need {self.in_chans} values (one per input channel)")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("class names must be unique")
        if self.thresholds is not None and set(self.thresholds) != set(self.classes):
            raise ValueError("thresholds must name every class, and only those")
        return self


class ExportInfo(BaseModel):
    """How an exported model file was made (the `export` block of its embedded card and of model.onnx.json)."""

    model_config = ConfigDict(extra="forbid")
    format: str
    file: str
    input: str
    output: str
    outputs: list[str] = Field(default_factory=list, description="Every output, in order (exports before card "
                               "schema 2 had `output` only).")
    input_layout: str
    torch: str


class ExportedCard(ModelCard):
    """The model card an export carries: the run's card plus how the file was exported."""

    export: ExportInfo


# --------------------------------------------------------------------------------------------- CSV rows
class HistoryRow(BaseModel):
    """One row of history.csv: one training epoch (1-based). Empty cells read as None."""

    model_config = ConfigDict(extra="forbid")
    COLUMNS: ClassVar[tuple[str, ...]] = ("epoch", "lr", "loss", "acc", "val_loss", "val_acc", "seconds",
                                          "images_per_s", "frozen")
    epoch: int = Field(ge=1)
    lr: float | None = None
    loss: float | None = None
    acc: float | None = None
    val_loss: float | None = None
    val_acc: float | None = None
    seconds: float | None = None
    images_per_s: float | None = None
    frozen: int = 0

    def cells(self) -> list[str]:
        out = []
        for name in self.COLUMNS:
            v = getattr(self, name)
            out.append("" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v))
        return out

    def value(self, name: str) -> float:
        """A column as a float, NaN when empty (what the curves plot)."""
        v = getattr(self, name)
        return math.nan if v is None else float(v)


class PredictionRow(BaseModel):
    """One row of predictions.csv: an evaluated image, or a skipped file (`error` set, no prediction)."""

    model_config = ConfigDict(extra="forbid")
    FIXED: ClassVar[tuple[str, ...]] = ("path", "true", "pred", "prob", "loss", "error")
    # written since card schema 2; files without them still read
    OPTIONAL: ClassVar[tuple[str, ...]] = ("score", "unknown")
    path: str
    true: str = ""
    pred: str = ""
    prob: float | None = None
    loss: float | None = None
    error: str = ""
    score: float | None = Field(None, description="In-distribution score (model.json `unknown`).")
    unknown: bool | None = Field(None, description="Score below the card's threshold.")
    probs: list[float] = Field(default_factory=list, description="One probability per class, in the card's "
                               "class order; written as p_<class> columns.")

    @staticmethod
    def header(classes: Sequence[str]) -> list[str]:
        return [*PredictionRow.FIXED, *PredictionRow.OPTIONAL, *(f"p_{c}" for c in classes)]


RECORDS: dict[str, type[BaseModel]] = {
    "config.yaml": TrainConfig, "dataset.json": DatasetRecord, "model.json": ModelCard,
    "metrics.json": MetricsRecord, "history.csv": HistoryRow, "predictions.csv": PredictionRow,
}


# --------------------------------------------------------------------------------------------- audit.json
AuditFlag = Literal["same_class", "conflicting_labels", "leakage"]
PixelIssue = Literal["dark", "bright", "low_variance", "near_empty"]


class AuditImage(BaseModel):
    """One image as the audit names it: path relative to the audited folder, its split and class."""

    model_config = ConfigDict(extra="forbid")
    path: str
    split: str = Field(description="train, val or test; all for a folder without split folders.")
    label: str


class AuditDuplicateGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["exact", "near"] = Field(description="exact: byte-identical files; near: a verified "
                                           "near-duplicate link joins every member.")
    similarity: float = Field(description="Weakest link in the group (normalised cross-correlation; 1 for exact).")
    flags: list[AuditFlag]
    classes: list[str]
    splits: list[str]
    members: list[AuditImage] = Field(min_length=2)


class AuditLabelIssue(AuditImage):
    suggested: str = Field(description="The class confident learning puts the image in.")
    self_confidence: float = Field(ge=0, le=1, description="Out-of-fold probability of the given label.")
    suggested_probability: float = Field(ge=0, le=1)


class AuditOutlier(AuditImage):
    score: float = Field(description="Robust z-score: distance from every class, or energy outside the "
                         "principal components, whichever is larger.")


class AuditPixelIssue(AuditImage):
    issues: list[PixelIssue] = Field(min_length=1)
    mean: float
    std: float


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    img_size: int = Field(ge=1)
    color: Literal["rgb", "grayscale"]
    interpolation: Interpolation
    run: str | None = Field(None, description="Run whose penultimate features were used; none: pixels.")
    folds: int = Field(ge=2)
    seed: int = Field(ge=0)
    near_threshold: float = Field(gt=0, le=1)
    neighbours: int = Field(ge=1)
    outlier_z: float


class AuditFeatures(BaseModel):
    """What the label-error and outlier checks stood on."""

    model_config = ConfigDict(extra="forbid")
    source: Literal["pixels", "run"]
    description: str
    model: str = Field(description="The quick model fitted per fold for out-of-fold probabilities.")
    folds: int = Field(0, ge=0, description="Folds used (0: label errors not checked, see note).")
    accuracy: float | None = Field(None, description="Out-of-fold accuracy against the given labels.")
    note: str = ""


class AuditCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    images: int = Field(ge=0, description="Usable images audited.")
    skipped: int = Field(ge=0)
    duplicate_groups: int = Field(ge=0)
    exact_groups: int = Field(ge=0)
    near_groups: int = Field(ge=0)
    redundant_images: int = Field(ge=0, description="Images in duplicate groups beyond one per group.")
    conflicting_label_groups: int = Field(ge=0)
    leakage_groups: int = Field(ge=0)
    leaked_images: int = Field(ge=0, description="val/test images with a duplicate in another split.")
    label_issues: int = Field(ge=0)
    outliers: int = Field(ge=0)
    pixel_issues: int = Field(ge=0)


class AuditFingerprint(BaseModel):
    """What the audited folder held (relative path, size, modification time of every file the scan found);
    `imgclf inspect` shows the audit's counts only while the folder still has this fingerprint."""

    model_config = ConfigDict(extra="forbid")
    files: int = Field(ge=0)
    digest: str = Field(min_length=1)


class AuditRecord(Record):
    """audit.json: duplicates, leakage between splits, likely label errors and outliers of an image folder."""

    root: str = Field(description="Absolute path of the audited folder.")
    layout: str
    classes: list[str] = Field(min_length=2)
    created: str
    imgclf_version: str
    fingerprint: AuditFingerprint
    settings: AuditSettings
    features: AuditFeatures
    counts: AuditCounts
    leakage: dict[str, int] = Field(default_factory=dict, description="Duplicate groups with members in both "
                                    "splits, per pair of splits (train-test, ...).")
    duplicate_groups: list[AuditDuplicateGroup]
    label_issues: list[AuditLabelIssue] = Field(description="Most suspicious first.")
    outliers: list[AuditOutlier] = Field(description="Strangest first.")
    pixel_issues: list[AuditPixelIssue]
    skipped: list[SkippedFile] = Field(default_factory=list)
    seconds: dict[str, float] = Field(default_factory=dict, description="Time per stage.")


RECORDS["audit.json"] = AuditRecord  # not a run file: written by `imgclf audit` beside the audit's page


# --------------------------------------------------------------------------------------------- tune.json
class TuneTrial(BaseModel):
    """One trial of a search: what it drew, how it ended, its run directory (relative to the search folder)."""

    model_config = ConfigDict(extra="forbid")
    number: int = Field(ge=0, description="Optuna's trial number; the run is trials/trial-NNN.")
    state: Literal["complete", "pruned", "fail", "running", "waiting"]
    value: float | None = Field(None, description="Validation accuracy of the weights the trial kept (complete "
                                "trials); pruned trials: their last reported epoch's.")
    params: dict[str, Any]
    run: str | None = None
    epochs: int | None = None
    seconds: float | None = Field(None, description="Wall time of the whole trial (data, training, card).")
    stopped: str | None = Field(None, description="Why its training ended (completed, time limit, pruned at "
                                "epoch k, failed: ..., interrupted).")


class TuneBest(BaseModel):
    """The chosen trial: by validation accuracy only; the one trial evaluated on the test split."""

    model_config = ConfigDict(extra="forbid")
    number: int = Field(ge=0)
    value: float
    params: dict[str, Any]
    run: str
    test_accuracy: float | None = None
    test_macro_f1: float | None = None


class TuneRecord(Record):
    """tune.json: a hyper-parameter search (`imgclf tune`): its space, every trial, the best, importances."""

    created: str
    imgclf_version: str
    optuna_version: str
    data: str | list[str]
    model: str
    recipe: str | None = None
    objective: Literal["val_accuracy"] = "val_accuracy"
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


RECORDS["tune.json"] = TuneRecord  # not a run file: written by `imgclf tune` in the search folder


# --------------------------------------------------------------------------------------------- folds.json
# val_* from the fold's card and history at the kept epoch, test_* from its metrics.json (None without a test split)
FoldMetric = Literal["val_accuracy", "val_loss", "test_accuracy", "test_loss", "test_macro_precision",
                     "test_macro_recall", "test_macro_f1", "test_weighted_f1", "test_ece", "test_macro_auc",
                     "test_worst_class_recall"]


class FoldStats(BaseModel):
    """One metric over the folds that have it."""

    model_config = ConfigDict(extra="forbid")
    mean: float | None
    std: float | None = Field(description="Sample standard deviation (ddof=1); None with fewer than two folds.")
    n: int = Field(ge=0, description="Folds with a finite value.")


class FoldRow(BaseModel):
    """One fold's run directory and metrics (one field per FoldMetric; None: that fold has no such number)."""

    model_config = ConfigDict(extra="forbid")
    fold: int = Field(ge=1)
    run: str = Field(description="The fold's run directory, relative to the cross-validation folder (fold-i).")
    val_accuracy: float | None = None
    val_loss: float | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None
    test_macro_precision: float | None = None
    test_macro_recall: float | None = None
    test_macro_f1: float | None = None
    test_weighted_f1: float | None = None
    test_ece: float | None = None
    test_macro_auc: float | None = None
    test_worst_class_recall: float | None = None


class FoldsRecord(Record):
    """folds.json: a k-fold cross-validation (`--folds K`): every fold's metrics and, per metric, mean ± std."""

    folds: int = Field(ge=2, description="K: the number of fold runs summarised.")
    test_images: int = Field(ge=0, description="Images in the test split, the same for every fold.")
    metrics: dict[FoldMetric, FoldStats]
    per_fold: list[FoldRow]


RECORDS["folds.json"] = FoldsRecord  # not a run file: written by `--folds K` beside the fold runs


def _blank_to_none(row: dict[str, str]) -> dict[str, Any]:
    return {k: (None if v == "" else v) for k, v in row.items()}


def validation_problems(exc: ValidationError, limit: int = 5) -> str:
    """A record's validation errors on one line: `field.path: message; ...`."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors()[:limit])


# --------------------------------------------------------------------------------------------- the directory
class RunDir:
    """Typed access to one run directory's files. Readers raise ImgclfError naming the file when it is missing
    or does not match its record."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    # ----- generic ------------------------------------------------------------------------------
    def _load(self, name: str, record: type[BaseModel], data: Any) -> Any:
        try:
            return record.model_validate(data)
        except ValidationError as exc:
            raise invalid("run", self.path, f"a run directory whose {name} matches its record ({record.__name__})",
                          note=validation_problems(exc)) from None

    def _unreadable(self, name: str, exc: BaseException) -> ImgclfError:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return invalid("run", self.path, f"a run directory whose {name} can be read",
                       note=f"{name} cannot be read: {first}")

    def _read_mapping(self, name: str, reader) -> Any:
        path = self.path / name
        if not path.is_file():
            raise bad_path("run", self.path, f"a run directory containing {name}",
                           "no such folder" if not self.path.exists() else f"no {name}: training unfinished?")
        try:
            data = reader(path)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise self._unreadable(name, exc) from None
        except Exception as exc:  # yaml's errors are not ValueErrors
            raise invalid("run", self.path, f"a run directory whose {name} can be read",
                          note=f"{name} cannot be read: {type(exc).__name__}") from None
        if not isinstance(data, dict):
            raise invalid("run", self.path, f"a run directory whose {name} holds a mapping",
                          note=f"{name} holds a {type(data).__name__}")
        return data

    # ----- config.yaml --------------------------------------------------------------------------
    def read_config(self) -> TrainConfig:
        return self._load("config.yaml", TrainConfig, self._read_mapping("config.yaml", read_yaml))

    def write_config(self, config: TrainConfig) -> None:
        write_yaml(self.path / "config.yaml", config.model_dump(mode="json"))

    # ----- dataset.json -------------------------------------------------------------------------
    def read_dataset(self) -> DatasetRecord:
        return self._load("dataset.json", DatasetRecord, self._read_mapping("dataset.json", read_json))

    def write_dataset(self, record: DatasetRecord) -> None:
        write_json(self.path / "dataset.json", record.model_dump(mode="json"))

    # ----- model.json ---------------------------------------------------------------------------
    def read_card(self) -> ModelCard:
        return self._load("model.json", ModelCard, self._read_mapping("model.json", read_json))

    def write_card(self, card: ModelCard) -> None:
        # the layout written is this version's, whatever the card was read as (Record._legacy reads a dict
        # without schema_version as version 1, and a card built in code is such a dict)
        write_json(self.path / "model.json", {**card.model_dump(mode="json"), "schema_version": CARD_SCHEMA_VERSION})

    # ----- metrics.json -------------------------------------------------------------------------
    def read_metrics(self, name: str = "metrics.json") -> MetricsRecord:
        return self._load(name, MetricsRecord, self._read_mapping(name, read_json))

    def write_metrics(self, metrics: MetricsRecord, name: str = "metrics.json") -> None:
        write_json(self.path / name, {**metrics.model_dump(mode="json"), "schema_version": METRICS_SCHEMA_VERSION})

    # ----- history.csv --------------------------------------------------------------------------
    def read_history(self) -> list[HistoryRow]:
        """[] when the run has no history yet."""
        path = self.path / "history.csv"
        if not path.is_file():
            return []
        try:
            rows = read_csv(path)
        except (UnicodeDecodeError, csv.Error, OSError) as exc:
            raise self._unreadable("history.csv", exc) from None
        return [self._load("history.csv", HistoryRow, _blank_to_none(r)) for r in rows]

    def write_history(self, rows: Iterable[HistoryRow]) -> None:
        write_csv(self.path / "history.csv", HistoryRow.COLUMNS, [r.cells() for r in rows])

    # ----- predictions.csv ----------------------------------------------------------------------
    def read_predictions(self, classes: Sequence[str], name: str = "predictions.csv") -> list[PredictionRow]:
        path = self.path / name
        if not path.is_file():
            raise bad_path("predictions", path, f"an existing {name}",
                           hint="Run `imgclf evaluate RUN` to write it")
        try:
            return self._read_prediction_rows(path, classes, name)
        except (UnicodeDecodeError, csv.Error, OSError) as exc:
            raise self._unreadable(name, exc) from None

    def _read_prediction_rows(self, path: Path, classes: Sequence[str], name: str) -> list[PredictionRow]:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            reader.fieldnames = [from_spreadsheet_safe(h) for h in reader.fieldnames or []]
            header = reader.fieldnames
            columns = [f"p_{c}" for c in classes]
            missing = [c for c in (*PredictionRow.FIXED, *columns) if c not in header]
            if missing:
                raise invalid("predictions", path, f"a {name} with the columns "
                              f"{[*PredictionRow.FIXED, *columns]}",
                              note=f"without {missing}")
            out = []
            for raw in reader:
                raw = {k: from_spreadsheet_safe(v or "") for k, v in checked_row(reader, raw).items()}
                row = _blank_to_none({k: raw[k] for k in (*PredictionRow.FIXED, *PredictionRow.OPTIONAL) if k in raw})
                row = {k: ("" if v is None and k in ("true", "pred", "error") else v) for k, v in row.items()}
                row["path"] = raw["path"]
                try:
                    row["probs"] = [float(raw[c]) for c in columns] if not raw.get("error") else []
                except (TypeError, ValueError):
                    raise invalid("predictions", path, "a file with a probability in every p_<class> cell of a "
                                  "predicted row", note=f"row {reader.line_num}, {raw['path']!r}") from None
                out.append(self._load(name, PredictionRow, row))
        return out

    def write_predictions(self, rows: Iterable[PredictionRow], classes: Sequence[str],
                          name: str = "predictions.csv") -> None:
        def cells(r: PredictionRow) -> list[str]:
            num = lambda v: "" if v is None else f"{v:.6f}"  # noqa: E731
            probs = [f"{p:.6f}" for p in r.probs] if r.probs else [""] * len(classes)
            score = "" if r.score is None else f"{r.score:.6g}"
            unknown = "" if r.unknown is None else str(int(r.unknown))
            return [r.path, r.true, r.pred, num(r.prob), num(r.loss), r.error, score, unknown, *probs]

        write_csv(self.path / name, PredictionRow.header(classes), [cells(r) for r in rows])

    # ----- every file ---------------------------------------------------------------------------
    def validate(self) -> list[str]:
        """Read every run file present through its record; returns the names checked."""
        checked = []
        if self.has("config.yaml"):
            self.read_config()
            checked.append("config.yaml")
        for name, reader in (("dataset.json", self.read_dataset), ("metrics.json", self.read_metrics),
                             ("history.csv", self.read_history)):
            if self.has(name):
                reader()
                checked.append(name)
        if self.has("model.json"):
            card = self.read_card()
            checked.append("model.json")
            if self.has("predictions.csv"):
                self.read_predictions(card.classes)
                checked.append("predictions.csv")
        return checked


def load_card(run_dir: str | os.PathLike) -> ModelCard:
    """The validated model card of a run directory."""
    return RunDir(run_dir).read_card()


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every record, keyed by the file name it describes."""
    out = {}
    for name, record in RECORDS.items():
        schema = record.model_json_schema(mode="validation")
        field = record.model_fields.get("schema_version")
        version = field.default if field is not None else SCHEMA_VERSION
        schema["$comment"] = f"imgclf run file {name}, schema_version {version}; generated from imgclf.records"
        out[name] = schema
    return out


def schema_texts() -> dict[str, str]:
    """File name under docs/schema/ -> its text (what `write_schemas` writes and the test compares)."""
    return {f"{name.replace('.', '_')}.schema.json": json.dumps(schema, indent=2, sort_keys=True) + "\n"
            for name, schema in json_schemas().items()}


def write_schemas(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    paths = []
    for name, text in schema_texts().items():
        atomic_write_text(folder / name, text)
        paths.append(folder / name)
    return paths


if __name__ == "__main__":  # python -m imgclf.records docs/schema
    import sys

    for p in write_schemas(sys.argv[1] if len(sys.argv) > 1 else "docs/schema"):
        print(p)
