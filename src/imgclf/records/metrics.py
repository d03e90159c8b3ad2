"""metrics.json: the scores of one evaluated split."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .base import METRICS_SCHEMA_VERSION, OMITTED_AT_DEFAULT, Record
from .dataset import SkippedFile


class ClassScores(BaseModel):
    model_config = ConfigDict(extra="forbid")
    precision: float
    recall: float
    f1: float
    support: int = Field(ge=0)


class AverageScores(BaseModel):
    model_config = ConfigDict(extra="forbid")
    precision: float
    recall: float | None = Field(description="None where no image of the set carries a label (a multi-label set of "
                                 "negatives): there is nothing to recall (files written before 2026-12-08 held 0).")
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


class SeenImages(BaseModel):
    """metrics.json `seen`: evaluated images that the run learnt from (train) or chose its epoch with (val), so
    that their scores are not held-out scores."""

    model_config = ConfigDict(extra="forbid")
    images: int = Field(ge=0, description="Evaluated images that are files of the run's train or val split.")
    by_split: dict[str, int] = Field(description="Of those, how many per split of the run (train, val).")
    exact_copies: int = Field(0, ge=0, description="Of those, found by identical bytes at another path (the "
                              "others are the very files).")
    examples: list[str] = Field(default_factory=list, description="A few of the evaluated paths.")
    unchecked: int = Field(0, ge=0, description="The run's train and val files that could not be read (moved or "
                           "deleted since training): an evaluated image that is one of them was not recognised.")


class LabelScores(BaseModel):
    """One label of a multi-label evaluation, at the card's threshold for it."""

    model_config = ConfigDict(extra="forbid")
    ap: float | None = Field(description="Average precision (area under the PR curve); None without positives.")
    threshold: float
    precision: float
    recall: float
    f1: float
    support: int = Field(ge=0, description="Images carrying the label.")
    predicted: int | None = Field(None, ge=0, description="Images the label was predicted for, at its threshold "
                                  "(None in files written before it was recorded).")


class MultiLabelScores(BaseModel):
    """metrics.json `multilabel`: ranking and set scores of a multi-label evaluation."""

    model_config = ConfigDict(extra="forbid")
    map_macro: float | None = Field(description="Mean of the per-label average precisions (labels with positives).")
    map_micro: float | None = Field(description="Average precision over every (image, label) pair.")
    subset_accuracy: float = Field(description="Images whose predicted label set equals the true set.")
    hamming_loss: float = Field(description="Share of (image, label) decisions that are wrong.")
    micro: AverageScores
    samples_f1: float = Field(description="F1 of each image's predicted set against its true set, averaged; an "
                              "image with no true label and none predicted scores 1 (its empty set is right).")
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
    macro: AverageScores = Field(description="Unweighted means. Recall and F1 over the classes the split holds "
                                             "(classes_present): a class with no image has no recall to average. "
                                             "Precision over those and the classes the model predicted that the "
                                             "split lacks, whose predictions are all false alarms.")
    weighted: AverageScores
    per_class: dict[str, ClassScores] = Field(description="Each class's precision, recall, F1 and support. A score "
                                              "that is undefined is written 0 (scikit-learn's zero_division=0): "
                                              "recall and F1 of a class with no image (support 0), precision of a "
                                              "class never predicted; the macro means leave out the first, and the "
                                              "report shows them as a dash.")
    worst_class: WorstClass | None = None
    auc: dict[str, float | None]
    macro_auc: float | None = None
    ece: float
    confusion: list[list[int]]
    classes_present: list[str]
    skipped: list[SkippedFile] = Field(default_factory=list)
    left_out: dict[str, int] = Field(default_factory=dict, description="Class folders of the evaluated data that "
                                     "the run's training left out by its own choice (its classes / drop_classes), "
                                     "with how many images each held: not scored, as training did not learn them.",
                                     json_schema_extra=OMITTED_AT_DEFAULT)
    tta: TTAScores | None = None
    calibration: CalibrationScores | None = None
    unknown: UnknownScores | None = None
    seen: SeenImages | None = Field(None, description="Evaluated images the run trained on or selected with "
                                    "(its train or val split, or another folder holding their files); null "
                                    "when none are and every train and val file could be compared, and for the "
                                    "run's own test split. `images` 0 with `unchecked` set: none found, but some "
                                    "files could not be compared.")
    task: Literal["single", "multilabel"] = Field("single", description="multilabel: accuracy is subset accuracy, "
                                                  "loss the mean binary cross-entropy, per_class / macro / weighted "
                                                  "the labels' P/R/F1 at their thresholds, auc per label, "
                                                  "confusion the label co-occurrence (true x predicted).")
    multilabel: MultiLabelScores | None = None
    precision: Literal["32", "bf16-mixed", "16-mixed", "int8"] | None = Field(
        None, description="What the network ran at for these predictions: 32 (fp32), or bf16 / fp16 autocast "
                          "(`precision auto` picks bf16 on a CPU with native bf16), or int8 (an ONNX export made "
                          "with --quantize int8); null in files from before it was recorded.")
    backend: Literal["torch", "onnx"] = Field("torch", description="What answered: the run's torch network, or "
                                              "its ONNX export (`imgclf evaluate --backend onnx`, written under "
                                              "evaluations/onnx-*).", json_schema_extra=OMITTED_AT_DEFAULT)
