"""model.json: the model card, everything needed to rebuild, preprocess and label; and the card an export carries."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .base import CARD_SCHEMA_VERSION, Interpolation, Record
from .metrics import WorstClass


class SettingChange(BaseModel):
    """A setting a resume trained at other than the process before it."""

    model_config = ConfigDict(extra="forbid")
    setting: str
    before: Any = None
    after: Any = None


class ResumeInfo(BaseModel):
    """One `--resume` of the run: the later epochs trained at `after` of each change, the earlier ones at `before`
    (config.yaml holds the last process's settings only)."""

    model_config = ConfigDict(extra="forbid")
    after_epochs: int = Field(ge=0, description="Whole epochs the checkpoint it continued from held (0 without "
                              "one: training began again).")
    batches_into_epoch: int = Field(0, ge=0, description="Batches of the next epoch that checkpoint also held "
                                    "(--checkpoint-every): they trained at the earlier settings.")
    from_checkpoint: bool = Field(True, description="False: no checkpoint was saved, so training began again.")
    changed: list[SettingChange] = Field(default_factory=list)
    started: str = Field("", description="When the resumed process started (UTC, ISO 8601).")

    @property
    def where(self) -> str:
        """'after epoch 5', 'after epoch 5 and 40 batches of epoch 6', or 'from the start (no checkpoint was saved)'."""
        if not self.from_checkpoint:
            return "from the start (no checkpoint was saved)"
        if self.batches_into_epoch:
            return (f"after epoch {self.after_epochs} and " if self.after_epochs else "after ") + \
                f"{self.batches_into_epoch} batches of epoch {self.after_epochs + 1}"
        return f"after epoch {self.after_epochs}"

    def described(self) -> str:
        """'after epoch 5: batch size 64 → 32, epochs 10 → 20', or 'after epoch 5, no setting changed'."""
        where = self.where
        if not self.changed:
            return f"{where}, no setting changed"
        return f"{where}: " + ", ".join(f"{c.setting.replace('_', ' ')} {_setting_text(c.before)} → "
                                        f"{_setting_text(c.after)}" for c in self.changed)


def _setting_text(value: Any) -> str:
    return "none" if value is None or value == "" else f"{value:g}" if isinstance(value, float) else str(value)


class TrainingSummary(BaseModel):
    """How the weights were made (the card's `training`)."""

    model_config = ConfigDict(extra="forbid")
    recipe: str | None = None
    recipe_changes: dict[str, dict[str, Any]] | None = Field(None, description=(
        "Settings the recipe sets that this run trained otherwise: {setting: {recipe, run}} (the sizing probe's "
        "choices left out); {} when none differ; absent without a recipe and in cards written before it."))
    epochs_run: int = Field(0, ge=0)
    epochs_trained: float | None = Field(None, ge=0, description=(
        "The epochs trained, one cut by the time limit counted by its share of batches: 5.54 "
        "where epochs_run is 6. Absent in cards written before it."))
    best_epoch: int | None = Field(None, description="1-based epoch whose weights were kept.")
    batch_norm_images: int | None = Field(None, ge=0, description=(
        "Training images (un-augmented) whose pass through the kept weights set the statistics of every BatchNorm "
        "layer that trained (in a run of several processes, rank 0's pass over the images one process reads); 0: "
        "none did, or the pass was skipped (a features_only run), and the statistics are training's running averages, as in cards written before the field."))
    val_accuracy_after_batch_norm: float | None = Field(None, description=(
        "Validation accuracy of the kept weights with the recomputed statistics (history.csv's val_acc is "
        "training's, with its running averages); the card's metrics.val_accuracy quotes it."))
    val_map_after_batch_norm: float | None = Field(None, ge=0, le=1, description=(
        "Multi-label runs: the same weights' validation mAP (history.csv's val_map is training's); the card's "
        "metrics.val_map quotes it."))
    stopped: str = ""
    train_seconds: float = 0.0
    images_per_s: float | None = None
    precision: str = "32"
    optimizer: str = ""
    lr: float | None = None
    batch_size: int | None = None
    processes: int = Field(1, ge=1, description="Data-parallel processes (devices x nodes): each trained "
                           "batch_size images a step, so a step took processes x batch_size.")
    schedule: str = ""
    augment: str = ""
    seed: int | None = None
    loss: str = ""
    focal_gamma: float | None = Field(None, description="loss focal: the focusing exponent (absent for other losses).")
    logitnorm_temperature: float | None = Field(
        None, description="loss logitnorm: the logits' length is 1 / this in the loss (absent for other losses).")
    class_weight: str = ""
    sampler: str = ""
    label_smoothing: float = 0.0
    l2_penalty: float | None = Field(None, description=(
        "Keras-style L2 penalty of the kept weights (C x sum of w**2 over the layers that carry one, the `l2` "
        "setting or a reference model's own), which history.csv's loss and val_loss include, as Keras' do. "
        "None: no layer carries one, or a card written before it."))
    train_images: int | None = None
    time_budget: dict[str, float | None] | None = None
    fine_tuning: str | None = Field(None, description=(
        "A transfer model's fine-tuning plan: what of it trains when, at which rate ('head only for epochs 1-2 "
        "(164,484 of 3,535,492 parameters), then head and the whole backbone from epoch 3 (3,535,492), at 0.1 x "
        "lr'); the plan as set, with '; the run ended at epoch K, before the backbone unfroze' where it did. "
        "None for a network trained whole from the start."))
    resumes: list[ResumeInfo] | None = Field(None, description="Each --resume of the run, in order, with the settings "
                                             "it changed (None: trained in one go).")


class HeadlineMetrics(BaseModel):
    """The card's `metrics`: the numbers people quote, copied from metrics.json and history.csv."""

    model_config = ConfigDict(extra="forbid")
    split: str | None = None
    accuracy: float | None = Field(None, description=(
        "On `split`: top-1 accuracy; multi-label runs, subset accuracy (every label of an image right), and none "
        "on a card without a test evaluation (a search trial)."))
    loss: float | None = None
    macro_f1: float | None = None
    macro_recall: float | None = None
    worst_class: WorstClass | None = None
    macro_auc: float | None = None
    val_accuracy: float | None = Field(None, description=(
        "The kept weights' validation accuracy (history.csv's val_acc, or the one after recomputed BatchNorm "
        "statistics); multi-label runs, label-wise at probability 0.5 (1 - Hamming loss), not subset accuracy."))
    val_map: float | None = Field(None, description=(
        "Multi-label runs: the kept weights' validation mAP, what `imgclf tune` ranks their trials by."))


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


def tenth_of(lowest_loss_lr: float | None) -> float | None:
    """A tenth of the rate at an LR sweep's lowest loss: Smith's rule for the largest rate to train at (fastai's
    `minimum` suggestion), the usual other pick beside the suggestion."""
    return None if lowest_loss_lr is None else lowest_loss_lr / 10


class LRFindInfo(BaseModel):
    """The card's `lr_find`, for runs trained with --lr auto: Lightning's LR range test and what it suggested."""

    model_config = ConfigDict(extra="forbid")
    suggestion: float = Field(gt=0, description="The learning rate training used, found by `rule`.")
    rule: Literal["end_of_fall", "steepest"] = Field("steepest", description=(
        "How the suggestion was read off the sweep. end_of_fall: the first rate whose centred mean loss (over "
        "`window` steps) came within `fall_left` of the whole fall of its lowest point; steepest: the steepest fall "
        "of a 50-step running mean (cards from before 2026-12-02, which lack the field)."))
    window: int | None = Field(None, ge=1, description=(
        "end_of_fall: steps in the centred mean the rule reads (9 in the cards of 2026-12-02, which lack the "
        "field); None for the steepest rule."))
    fall_left: float | None = Field(None, gt=0, lt=1, description=(
        "end_of_fall: the share of the whole fall still left where the suggestion sits (0.05 in the cards of "
        "2026-12-02, which lack the field); None for the steepest rule."))
    lowest_loss_lr: float | None = Field(None, gt=0, description=(
        "The learning rate at the sweep's lowest loss. A tenth of it is Smith's rule for the largest rate to train "
        "at (fastai's `minimum`), shown beside the suggestion, not used. None in runs from before it was kept."))
    min_lr: float = Field(gt=0, description="First learning rate of the sweep.")
    max_lr: float = Field(gt=0, description="Last learning rate the sweep would reach.")
    steps: int = Field(ge=1, description="Training steps swept (fewer than asked when the loss diverged).")
    still_falling: bool = Field(False, description=(
        "The loss was still falling at the sweep's end: the curve was cut short, so the suggestion is low and a "
        "tenth of the lowest point is no pick (False in runs from before it was kept)."))
    cautions: list[str] = Field(default_factory=list, description=(
        "What to doubt in the suggestion, as lr_find.json and the terminal said it (empty in runs from before it "
        "was kept)."))
    curve: str = Field("lr_find.png", description="The loss-vs-learning-rate figure, in the run directory.")
    data: str = Field("lr_find.json", description="The sweep's learning rates and losses, in the run directory.")

    @model_validator(mode="after")
    def _first_end_of_fall_settings(self) -> "LRFindInfo":
        """The end_of_fall cards written before the rule's settings were kept used a 9-step mean and 5 %."""
        if self.rule == "end_of_fall":
            self.window = 9 if self.window is None else self.window
            self.fall_left = 0.05 if self.fall_left is None else self.fall_left
        return self

    @property
    def tenth_of_lowest(self) -> float | None:
        return tenth_of(self.lowest_loss_lr)


class SizingCandidate(BaseModel):
    """One model the `fast` sizing probe timed: its settings, measured speed and the epochs the budget buys it."""

    model_config = ConfigDict(extra="forbid")
    model_args: dict[str, Any]
    num_params: int = Field(ge=0)
    images_per_s: float = Field(ge=0, description="Training throughput measured by the probe (its fastest "
                                "reading): forward, backward and optimiser step on batches of the run's shape and "
                                "precision.")
    predicted_epochs: float = Field(ge=0, description="Epochs the training time left after the probe buys at "
                                    "that speed, less the measured overhead of a whole epoch.")
    readings: list[float] = Field(default_factory=list, description="Every reading of the probe, in the order "
                                  "taken (the candidates were read in turn, round after round); images_per_s is the "
                                  "fastest, as a neighbour's load on a shared machine only slows a reading (empty: "
                                  "runs sized before the probe kept them).")


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
    min_steps: int | None = Field(None, ge=1, description="Optimiser steps a candidate must also be predicted to "
                                  "reach (None: runs sized before the rule had it).")
    candidates: list[SizingCandidate]
    chosen: int = Field(ge=0, description="Index of the chosen candidate in `candidates`.")
    augment: str = Field(description="Augmentation the rule set for the predicted epochs.")
    ema: float | None = Field(None, description="EMA decay of the weights the rule set (None: no averaging).")
    reason: str
    train_batch_size: int | None = Field(None, ge=1, description="The batch the chosen model trains at: "
                                         "`batch_size`, on a CPU halved while the predicted epochs give fewer "
                                         "than `min_steps` steps, on an accelerator doubled while the probe reads "
                                         "the doubled batch at 1.5x the images/s of the batch below (None: runs "
                                         "sized before the rule had it).")
    lr: float | None = Field(None, gt=0, description="The learning rate at that batch: the configured one scaled "
                             "by the batches' real sizes (no larger than the training split), train_batch_size / "
                             "batch_size for a halved batch, its square root for a grown one (None: --lr auto, or "
                             "runs sized before).")
    train_images_per_s: float | None = Field(None, gt=0, description="The chosen model's probe speed at "
                                             "train_batch_size: its candidate's where the batch stayed, else the "
                                             "halving's or doubling's own timing (None: runs sized before it was "
                                             "kept).")
    train_epochs: float | None = Field(None, ge=0, description="The epochs the rule predicted for the chosen model "
                                       "at that speed, within --epochs: what `augment` and `ema` were set for "
                                       "(None: runs sized before it was kept).")
    requested: dict[str, Any] | None = Field(None, description="The settings the probe replaced, as the run was "
                                             "asked for them (config.yaml holds what it chose): what a re-run of "
                                             "the same command compares against (None: runs sized before).")
    resumed_with: dict[str, Any] | None = Field(None, description="Sized settings (batch_size, lr, augment, "
                                                "time_limit) that a resume of the run trained at other than the "
                                                "probe chose, with the values the last process trained at (None: "
                                                "trained as chosen).")


# the detectors that read class means and a precision from the statistics file (`ood`, `card_model.trust_head`);
# here, where the quick commands that list runs can read it without torch
FEATURE_DETECTORS = ("mahalanobis", "mahalanobis-l2", "msp+mahalanobis-l2")


class UnknownInfo(BaseModel):
    """The card's `unknown`: how an image is scored and below which score it is reported as unknown."""

    model_config = ConfigDict(extra="forbid")
    detector: Literal["msp", "energy", "mahalanobis", "mahalanobis-l2", "msp+mahalanobis-l2"]
    acceptance: float = Field(gt=0, lt=1, description="Share of the validation images the threshold was set to "
                              "accept as known.")
    threshold: float | None = Field(description="Scores below it are unknown (higher scores: more like the "
                                    "training images).")
    split: str = "val"
    images: int = Field(0, ge=0)
    accepted: float | None = Field(None, description="Share of the validation images at or above the threshold.")
    rejection_range: list[float] | None = Field(None, min_length=2, max_length=2, description="The 90 % range of "
                                                "the share of new images like the validation ones that the "
                                                "threshold rejects (the fewer the validation images, the wider).")
    score_quantiles: dict[str, float] = Field(default_factory=dict, description="Validation scores at the "
                                              "percentiles named by the keys (p1, p5, p50, ...).")
    statistics: str | None = Field(None, description="File beside the weights holding the detector's tensors "
                                   "(class means and precision for the feature detectors, and the mean and standard "
                                   "deviation of each part for msp+mahalanobis-l2) and the validation scores.")
    fitted_on: str = Field("", description="Images the detector's statistics come from (mahalanobis detectors).")
    feature_dim: int | None = None
    features: Literal["pre-logits", "map-mean-max"] = Field(
        "pre-logits", description="What the mahalanobis detectors read: the vector the last linear layer reads, or "
        "the last feature map's per-channel mean and max side by side (where the head pools that map). Cards "
        "written before this field read pre-logits.")


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
    file_sha256: dict[str, str] | None = Field(None, description=(
        "SHA-256 of the run's weight files (model.safetensors, the unknown detector's statistics) as they were when "
        "model.json was written; checked when they are loaded, so that a damaged copy is an error rather than "
        "wrong predictions. Absent in older cards (nothing is checked)."))
    sizing: SizingInfo | None = Field(None, description="Set when the model was sized by the probe (sizing=probe, "
                                      "the fast recipe); absent otherwise and in older cards.")
    fitted_precision: Literal["32", "bf16-mixed", "16-mixed"] | None = Field(
        None, description="The precision the network ran at when the temperature, the unknown threshold or the "
        "multi-label thresholds were fitted; `precision auto` predicts in fp32 where it is 32. Absent in cards "
        "written before it, whose fits ran in fp32.")

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
        outside = {k: v for k, v in (self.thresholds or {}).items() if not 0.0 <= v <= 1.0}
        if outside:  # -2 predicted the label for every image, 1.5 for none, and nothing said so
            raise ValueError(f"thresholds must be probabilities from 0 to 1; {outside} are not")
        return self
