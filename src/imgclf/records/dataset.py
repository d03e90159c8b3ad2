"""dataset.json: what a run trained and was evaluated on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import Record


class SkippedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    reason: str


class SplitFiles(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: list[str] = Field(description="Paths relative to the data set's root.")
    labels: list[int]
    label_sets: list[list[int]] | None = Field(None, description="Multi-label data: the label ids each image "
                                               "carries (may be empty); `labels` is then its rarest label, and 0 "
                                               "for an image with none: read `label_sets` for what it carries.")


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


class SeveralClasses(BaseModel):
    """Byte-identical images under more than one class: conflicting labels, or a multi-label tree of links; in a
    multi-label run, byte-identical copies with different label sets."""

    model_config = ConfigDict(extra="forbid")
    count: int = Field(ge=0, description="Pictures under more than one class.")
    linked: int = Field(ge=0, description="Of them, one file reached through hard or symbolic links.")
    example: list[str] = Field(default_factory=list, description="One such picture's files, relative to root.")
    files: int | None = Field(None, ge=0, description="The files those pictures are (10 copies of one placeholder "
                              "in each of 3 classes: 1 picture, 30 files); null in runs recorded before it was "
                              "counted.")


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
    in_several_classes: SeveralClasses | None = Field(None, description="Byte-identical images under more than "
                                                      "one class, or with different label sets (multi-label runs, since 2026-12-07); None before "
                                                      "it was recorded.")


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
    files_stamp: str | None = Field(None, description="Digest of the split files' paths, sizes and modification "
                                    "times: a resume on images edited in place says so (null in older runs).")
    streamed: bool = False
    skipped: list[SkippedFile] = Field(default_factory=list)
    duplicates: DuplicateGrouping | None = Field(None, description="Near-duplicate groups the split was drawn "
                                                 "with; null when not searched (streamed data, "
                                                 "--no-group-duplicates, runs before it existed).")
    splits: dict[str, SplitFiles]
    task: Literal["single", "multilabel"] = Field("single", description="multilabel: an image carries a set of "
                                                  "labels (an index file); `counts` are images per label.")
    label_stats: dict[str, LabelStats] | None = Field(None, description="Multi-label data: per split.")

    def split_of_files(self) -> dict[str, str]:
        """{absolute path: split} of every file the splits list: what a resumed or recalibrated run draws again."""
        root = Path(self.root)
        return {os.path.abspath(root / f): name for name, split in self.splits.items() for f in split.files}

    def split_paths(self, split: str) -> tuple[list[str], list[int]]:
        s = self.splits[split]
        root = Path(self.root)
        return [str(root / f) for f in s.files], list(s.labels)

    def split_answers(self, split: str) -> tuple[list[str], list[int | tuple[int, ...]]]:
        """split_paths with what each image carries: its class, or on multi-label data its label set (`labels`
        is then the rarest label within the split, which depends on the split the seed drew)."""
        files, labels = self.split_paths(split)
        sets = self.splits[split].label_sets
        return files, (labels if sets is None else [tuple(sorted(ids)) for ids in sets])

    def split_drawn(self, split: str) -> bool:
        """Whether `split` was drawn here (its images vary with the seed), not given as a folder or index rows."""
        if self.layout == "flat":
            return True
        given_by_index = self.val_source.startswith("val rows of ") or " of the train rows of " in self.val_source
        if split == "val":
            return self.val_source != "val/ folder" and not self.val_source.startswith("val rows of ")
        return self.task == "multilabel" and not given_by_index
