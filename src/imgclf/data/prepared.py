"""The prepared data set a run trains and evaluates on: decoded images, classes and splits (`dataset.prepare_data`
builds it)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..io import relative_path
from .cache import DecodedImages, files_stamp, pixel_blocks
from .folder import FolderScan
from .groups import Grouping
from .several_classes import files_in_several_classes
from .imbalance import imbalance_stats


@dataclass
class Split:
    indices: np.ndarray  # rows of the decoded array
    labels: np.ndarray  # int64 class ids (multi-label: each image's rarest label, `multilabel.primary_labels`)
    targets: np.ndarray | None = None  # multi-label: (N, K) uint8 multi-hot; None for single-label data

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class PreparedData:
    scan: FolderScan
    decoded: DecodedImages
    classes: list[str]
    img_size: int
    color: str
    splits: dict[str, Split]
    skipped: list[dict[str, str]] = field(default_factory=list)
    val_source: str = ""
    interpolation: str = "bilinear"
    color_source: str = ""  # why this colour mode: "color=rgb", or what color=auto found (see `resolve_color`)
    grouping: Grouping | None = None  # near-duplicate groups the split kept together / found leaking
    task: str = "single"  # or "multilabel": the splits carry `targets`
    split_notes: list[str] = field(default_factory=list)  # warned: held-out splits far larger than asked, streaming

    @property
    def channels(self) -> int:
        return 1 if self.color == "grayscale" else 3

    def paths(self, split: str) -> list[str]:
        return [self.decoded.paths[i] for i in self.splits[split].indices]

    def pixel_mean_std(self, limit: int = 10_000, streamed_limit: int = 2_000) -> tuple[list[float], list[float]]:
        """Per-channel mean/std of (a seeded sample of) the training images, in [0, 1] units. Streamed data (too
        large for the cache) is measured on a smaller sample, decoded from its files: it had a fixed 0.5 / 0.25,
        whatever `normalize: dataset` asked, so the same images streamed and cached trained differently."""
        streamed = self.decoded.pixels is None
        rows = self.splits["train"].indices
        cap = streamed_limit if streamed else limit
        if len(rows) > cap:
            rows = np.sort(np.random.default_rng(0).choice(rows, cap, replace=False))
        if not streamed:
            pixels = np.asarray(self.decoded.pixels[rows], dtype=np.float64) / 255.0
            mean, std = pixels.mean(axis=(0, 1, 2)), np.maximum(pixels.std(axis=(0, 1, 2)), 1e-3)
            return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]
        sums, squares, count = np.zeros(self.channels), np.zeros(self.channels), 0
        for block in pixel_blocks(self.decoded, rows, self.img_size, self.color, self.interpolation, 512):
            pixels = np.asarray(block, dtype=np.float64) / 255.0
            sums += pixels.sum(axis=(0, 1, 2))
            squares += np.square(pixels).sum(axis=(0, 1, 2))
            count += pixels.shape[0] * pixels.shape[1] * pixels.shape[2]
        if not count:
            return [0.5] * self.channels, [0.25] * self.channels
        mean = sums / count
        std = np.maximum(np.sqrt(np.maximum(squares / count - mean**2, 0.0)), 1e-3)
        return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class and split; multi-label: images carrying each label."""
        out = {}
        for name, split in self.splits.items():
            if split.targets is not None:
                out[name] = {cls: int(v) for cls, v in zip(self.classes, split.targets.sum(0))}
                continue
            c = Counter(split.labels.tolist())
            out[name] = {cls: int(c.get(i, 0)) for i, cls in enumerate(self.classes)}
        return out

    def missing_classes(self) -> dict[str, list[str]]:
        """Split (other than train) -> the classes it holds no image of: their recall is not measured there, and
        for val no threshold or epoch is chosen with them in view."""
        return {name: [c for c, n in by_class.items() if n == 0]
                for name, by_class in self.counts().items() if name != "train" and 0 in by_class.values()}

    def _duplicates(self, root: os.PathLike) -> dict[str, object] | None:
        """dataset.json's duplicates block: the groups, and the pictures under several classes that training
        warns of, so that the report says it again."""
        if self.grouping is None:
            return None
        out = self.grouping.describe()
        several = files_in_several_classes(self.grouping, self.splits, self.decoded.paths)
        out["in_several_classes"] = {"count": several.count, "linked": several.linked, "files": several.files,
                                     "example": [relative_path(p, root) for p in several.example]}
        return out

    def describe(self) -> dict[str, object]:
        """The content of dataset.json."""
        counts = self.counts()
        root = self.scan.root.resolve()
        multilabel = {}
        if self.task == "multilabel":
            from .multilabel import label_stats

            multilabel = {"task": "multilabel",
                          "label_stats": {name: label_stats(split.targets, self.classes)
                                          for name, split in self.splits.items()}}
        return {
            "root": str(root),
            "roots": [str(r) for r in self.scan.roots or [root]],
            "layout": self.scan.layout,
            "classes": self.classes,
            "img_size": self.img_size,
            "color": self.color,
            "val_source": self.val_source,
            "sizes": {name: len(split) for name, split in self.splits.items()},
            "counts": counts,
            "imbalance": imbalance_stats(counts["train"]),
            "cache_key": self.decoded.key,
            "files_stamp": files_stamp([self.decoded.paths[i] for split in self.splits.values()
                                        for i in split.indices], root),
            "streamed": self.decoded.streamed,
            "skipped": self.skipped,
            "duplicates": self._duplicates(root),
            "splits": {
                name: {
                    "files": [relative_path(self.decoded.paths[i], root) for i in split.indices],
                    "labels": split.labels.tolist(),
                    **({"label_sets": [np.flatnonzero(row).tolist() for row in split.targets]}
                       if split.targets is not None else {}),
                }
                for name, split in self.splits.items()
            },
            **multilabel,
        }


