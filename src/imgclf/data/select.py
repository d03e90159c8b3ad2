"""Which images a run uses: a choice of classes, and a cap on the images of each class per split.

S3 prepared its data by hand (FER-2013 without `disgust`, then at most 2,999 train and 599 test images per class);
here that is `--drop-classes disgust --per-class-max train=2999,test=599`.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import invalid
from .folder import FolderScan, class_key, split_folders
from .folder_checks import class_names_flag


@dataclass(frozen=True)
class Selection:
    classes: list[str] | None = None  # keep only these
    drop_classes: list[str] | None = None  # or leave these out
    per_class_max: int | dict[str, int] | None = None  # every split, or {split: cap}
    seed: int = 0

    def cap(self, split: str) -> int | None:
        if isinstance(self.per_class_max, dict):
            return self.per_class_max.get(split)
        return self.per_class_max


def select_classes(scan: FolderScan, selection: Selection) -> FolderScan:
    """The scan without the classes left out; an unknown name is refused, listing the classes found."""
    name, asked = ("classes", selection.classes) if selection.classes else ("drop_classes", selection.drop_classes)
    if not asked:
        return scan
    asked = [class_key(cls) for cls in asked]  # as folder names are read: the NFD a macOS shell types is the class
    for cls in asked:
        if cls not in scan.classes:
            # 'empty ' or 'a,b' cannot come through the command line, which strips and splits names
            meant = [c for c in scan.classes if c.strip() == cls.strip() or (c != c.strip() or "," in c)
                     and cls in c.replace(",", " ").split()]
            raise invalid(name, cls, scan.classes, note=f"no class folder of that name in {scan.root}",
                          hint=f"For {meant[0]!r}: {class_names_flag(name, [meant[0]])}" if meant else None)
    kept = [c for c in scan.classes if (c in asked) == (name == "classes")]
    if len(kept) < 2:
        raise invalid(name, asked, "a choice that leaves at least 2 classes", note=f"leaves {kept}")
    files = {split: [(path, c) for path, c in items if c in kept] for split, items in scan.files.items()}
    left_out = set(scan.classes) - set(kept)
    bases = [base for root in scan.roots or [scan.root]
             for base in ([root] if scan.layout == "flat" else split_folders(root).values())]
    skipped = [item for item in scan.skipped if _class_folder_of(item["path"], bases) not in left_out]
    return dataclasses.replace(scan, classes=kept, files=files, skipped=skipped)


def without_empty_classes(scan: FolderScan, done: str) -> FolderScan:
    """The scan (`scan_folder(..., allow_empty=True)`) less the classes it holds no image of, said in a warning
    ("class folder 'x' holds no image: `done` without it"), for the commands that take no --drop-classes (audit,
    study): they refused such a folder with a hint to a --drop-classes only training takes. An empty val/ or test/
    class folder is that class missing there, as everywhere; fewer than 2 classes with images left is refused as
    before."""
    from collections import Counter

    from ..notices import warn
    from .folder import require_images

    held = Counter(name for items in scan.files.values() for _, name in items)
    empty = [name for name in scan.classes if not held[name]]
    if not empty:
        return scan
    if len(scan.classes) - len(empty) < 2:  # the folder's own refusal, naming an empty class folder
        require_images(dataclasses.replace(scan, empty=[(name, folder) for name, folder in scan.empty
                                                        if name in empty]))
    many = len(empty) > 1
    warn(f"class folder{'s' if many else ''} {', '.join(map(repr, empty))} hold{'' if many else 's'} no image: "
         f"{done} without {'them' if many else 'it'}")
    return select_classes(scan, Selection(drop_classes=empty))


def _class_folder_of(path: str, bases: list[Path]) -> str | None:
    """The class (NFC) whose folder holds a skipped entry, None for one outside every class folder (a folder beside
    the splits): a left-out class's unreadable files are no concern of the run, and were listed as if they were."""
    for base in bases:
        relative = os.path.relpath(path, base)
        if relative != "." and not relative.startswith(".."):
            return class_key(relative.split(os.sep)[0])
    return None


def cap_per_class(split: str, indices: np.ndarray, labels: np.ndarray, classes: list[str],
                  selection: Selection) -> tuple[np.ndarray, np.ndarray]:
    """At most the split's cap of each class, a seeded random choice kept in the split's order. Each class draws
    from its own stream (seed, split, class name), so dropping one class does not change the others' images."""
    cap = selection.cap(split)
    if cap is None:
        return indices, labels
    keep = np.ones(len(labels), dtype=bool)
    for class_id in np.unique(labels):
        members = np.flatnonzero(labels == class_id)
        if len(members) > cap:
            stream = [selection.seed, zlib.crc32(split.encode()), zlib.crc32(classes[class_id].encode())]
            chosen = np.random.default_rng(stream).choice(members, size=cap, replace=False)
            keep[members] = False
            keep[chosen] = True
    return indices[keep], labels[keep]
