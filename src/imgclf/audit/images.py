"""The images an audit looks at, read through the data layer: scan (classes, splits, skipped files), the uint8
decode cache (shared with training: an audit after `imgclf train` at the same size decodes nothing). The small
grey thumbnails the duplicate search and the quick model work on are `imgclf.duplicates.thumbnails`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..data.cache import comparison_pixels, decode_all
from ..data.color import resolve_color
from ..data.decode import median_side
from ..data.folder import FolderScan, scan_folder
from ..io import relative_path


@dataclass
class AuditImages:
    """Every usable image of a folder, in one order: path, split, class id and cache row."""

    scan: FolderScan
    classes: list[str]
    paths: list[str]  # absolute paths of the usable images
    splits: np.ndarray  # str, per image: train / val / test, or "all" for a flat folder
    labels: np.ndarray  # int64 class ids
    pixels: np.ndarray  # (N, S, S, C) uint8, rows of the usable images only (memory-mapped when possible)
    img_size: int
    color: str
    interpolation: str
    skipped: list[dict[str, str]] = field(default_factory=list)
    # what the near-duplicate search reads where it is not `pixels` (`data.cache.comparison_pixels`)
    comparison: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def relative(self, index: int) -> str:
        return relative_path(self.paths[index], self.scan.root)


def auto_size(side: int | None, low: int = 16, high: int = 64) -> int:
    """The decode size when neither the user nor a run chooses one: the images' median short side
    (`median_side`), clipped to [low, high]. Fashion-MNIST keeps its 28 (and so shares the cache of a fast-fmnist
    run); photos are read at 64, enough for thumbnails and the quick model."""
    return int(np.clip(side, low, high)) if side else high


def load_images(data: str | os.PathLike, img_size: int | None = None, color: str = "auto",
                interpolation: str = "bilinear", cache_dir: str | os.PathLike | None = None,
                workers: int = 2, scan: FolderScan | None = None) -> AuditImages:
    """Scan and decode `data` once into the uint8 cache; broken files are listed in `skipped`, not raised."""
    scan = scan or scan_folder(data)
    class_id = {c: i for i, c in enumerate(scan.classes)}
    tagged = [(split, path, class_id[c]) for split, items in scan.files.items() for path, c in items]
    paths = [p for _, p, _ in tagged]
    native = median_side(paths)  # read once: the decode size and the duplicate search's side both follow it
    size = img_size or auto_size(native)
    color, _ = resolve_color(color, paths)
    # the audit needs every pixel in memory anyway, so no streaming budget: the cache always holds them
    decoded = decode_all(paths, size, color, interpolation, cache_dir, budget_bytes=2**62, workers=workers,
                         workers_argument="workers")
    ok = decoded.ok_indices
    # relative to the data folder, as every other path of the audit
    skipped = [{**s, "path": relative_path(s["path"], scan.root)} for s in scan.skipped] + \
        [{"path": relative_path(paths[i], scan.root), "reason": r} for i, r in sorted(decoded.failures.items())]
    pixels = decoded.pixels if len(ok) == len(paths) else np.asarray(decoded.pixels[ok])
    compared = comparison_pixels(decoded, color, interpolation, cache_dir, workers, native=native)
    if compared is decoded.pixels:  # compared as decoded: `pixels` serves
        compared = None
    elif len(ok) < len(paths):
        compared = np.asarray(compared[ok])
    return AuditImages(scan=scan, classes=list(scan.classes), paths=[paths[i] for i in ok],
                       splits=np.array([tagged[i][0] for i in ok], dtype=object).astype(str),
                       labels=np.array([tagged[i][2] for i in ok], dtype=np.int64), pixels=pixels,
                       img_size=size, color=color, interpolation=interpolation, skipped=skipped,
                       comparison=compared)
