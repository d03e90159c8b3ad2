"""audit.json: written by `imgclf audit` beside the audit's page (not a run file)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import Interpolation, Record
from .dataset import SkippedFile

AuditFlag = Literal["same_class", "conflicting_labels", "leakage"]
PixelIssue = Literal["dark", "bright", "low_variance", "near_empty", "noise_like"]


class AuditImage(BaseModel):
    """One image as the audit names it: path relative to the audited folder, its split and class."""

    model_config = ConfigDict(extra="forbid")
    path: str
    split: str = Field(description="train, val or test; all for a folder without split folders; with a run whose "
                       "split the audit used (settings.splits: run), unused for an image not in that split.")
    label: str


class AuditDuplicateGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["exact", "near"] = Field(description="exact: byte-identical files; near: a verified "
                                           "near-duplicate link joins every member.")
    similarity: float = Field(description="Weakest link in the group (normalised cross-correlation; 1 for exact).")
    identical: int = Field(0, ge=0, description="Members byte-identical to another member (every one in an exact "
                           "group; a near group may hold exact copies too).")
    flags: list[AuditFlag]
    classes: list[str]
    splits: list[str]
    members: list[AuditImage] = Field(min_length=2)


class AuditLabelIssue(AuditImage):
    suggested: str = Field(description="The class confident learning puts the image in.")
    self_confidence: float = Field(ge=0, le=1, description="Out-of-fold probability of the given label.")
    suggested_probability: float = Field(ge=0, le=1)
    run_label: str | None = Field(None, description="With --run, for an image of the run's val or test split (one it "
                                  "never trained on): the run's own top class.")
    run_probability: float | None = Field(None, ge=0, le=1, description="The run's calibrated probability of "
                                          "run_label.")


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
    splits: Literal["folder", "run"] = Field("folder", description="Whose split the images' splits and leakage "
                                             "are: the folder's train/ val/ test/ folders, or the run's own split "
                                             "(its dataset.json), used where the run holds the audited images.")
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
    near_chance: bool = Field(False, description="That accuracy is near chance (at most the largest class's share "
                              "plus 0.1): the likely label errors say little (note says so).")
    note: str = ""


class AuditCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    images: int = Field(ge=0, description="Usable images audited.")
    skipped: int = Field(ge=0)
    duplicate_groups: int = Field(ge=0)
    exact_groups: int = Field(ge=0)
    near_groups: int = Field(ge=0)
    identical_images: int = Field(0, ge=0, description="Images byte-identical to another image of their group, "
                                  "near groups' included (as dataset.json's exact_images).")
    redundant_images: int = Field(ge=0, description="Images in duplicate groups beyond one per group.")
    conflicting_label_groups: int = Field(ge=0)
    leakage_groups: int = Field(ge=0)
    leaked_images: int = Field(ge=0, description="val/test images with a duplicate in a split before their own (train for val; train or val for test).")
    label_issues: int = Field(ge=0)
    outliers: int = Field(ge=0)
    pixel_issues: int = Field(ge=0)


class AuditFingerprint(BaseModel):
    """What the audited folder held (relative path, size, modification time of every file the scan found);
    `imgclf inspect` shows the audit's counts only while the folder still has this fingerprint."""

    model_config = ConfigDict(extra="forbid")
    files: int = Field(ge=0)
    digest: str = Field(min_length=1)
    run: str | None = Field(None, description=(
        "With --run: a hash of the size and modification time of the run's model.safetensors, model.json and "
        "dataset.json, whose features and split the audit read; a run trained again makes the audit stale. None "
        "without a run, and in audits written before the field."))


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
