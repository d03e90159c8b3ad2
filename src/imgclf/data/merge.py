"""Several data folders used as one data set (S5 trains from several directories concatenated).

Classes are merged by folder name and split folders by split name, so DATA1/train/cat and DATA2/train/cat are one
class of one split. Every file is used once: a folder given twice, or one inside another, is refused rather than
read twice, and a file reached again through a link (in the same split and class, within one folder or
across them) is listed as skipped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import invalid
from .folder import SPLIT_NAMES, FolderScan, require_images, scan_folder
from .folder_checks import warn_of_alike_class_names


def scan_folders(roots: str | os.PathLike | Sequence[str | os.PathLike], allow_empty: bool = False) -> FolderScan:
    """One folder: `scan_folder`. Several: their scans merged, with `root` their common parent (the folder
    dataset.json's file paths are relative to) and `roots` every folder. allow_empty: as `scan_folder`'s."""
    if isinstance(roots, (str, os.PathLike)) or len(roots) == 1:
        scan = scan_folder(roots if isinstance(roots, (str, os.PathLike)) else roots[0], allow_empty=allow_empty)
        scan.skipped += each_file_once(scan.files)
        return scan
    given = [str(r) for r in roots]
    _distinct(given)
    scans = [scan_folder(r, min_classes=1, allow_empty=True) for r in given]
    empty = [(name, os.path.join(str(scan.root), folder)) for scan in scans for name, folder in scan.empty]
    elsewhere = [(name, os.path.join(str(scan.root), folder)) for scan in scans
                 for name, folder in scan.empty_elsewhere]
    layouts = {scan.layout for scan in scans}
    if len(layouts) > 1:
        raise invalid("data", given, "folders of one layout: all class-per-folder, or all with train/ (val/, test/)",
                      note="; ".join(f"{scan.root} is {_layout_words(scan.layout)}" for scan in scans))
    classes = sorted({c for scan in scans for c in scan.classes})
    # merging two sources is where Cat/ meets cat/ (a pair within one folder was warned of by its own scan)
    warn_of_alike_class_names(" + ".join(given), classes,
                              within=[scan.classes for scan in scans])
    if len(classes) < 2:
        raise invalid("data", given, "folders that hold at least 2 class folders between them",
                      note=f"only {classes}")
    splits = [s for s in (*SPLIT_NAMES, "all") if any(s in scan.files for scan in scans)]
    files = {split: [(path, c) for c in classes for scan in scans for path, cls in scan.files.get(split, [])
                     if cls == c]
             for split in splits}
    repeated = each_file_once(files)
    # a class only train/ must hold, as in one folder: a val/ or test/ without it scores the others
    missing = sorted(set(classes) - {c for _, c in files.get("train", [])} - {name for name, _ in empty}) \
        if "train" in files else []
    if missing:
        raise invalid("data", given, "folders whose train/ folders, merged, hold every class",
                      note=f"no train/ folder holds {missing}")
    resolved = [Path(r).resolve() for r in given]
    try:
        common = Path(os.path.commonpath(resolved))
    except ValueError:  # different drives: paths in dataset.json stay absolute
        common = resolved[0]
    scan = FolderScan(root=common, layout=scans[0].layout, classes=classes, files=files,
                      skipped=[s for scan in scans for s in scan.skipped] + repeated, roots=resolved, empty=empty,
                      empty_elsewhere=elsewhere)
    return scan if allow_empty else require_images(scan)


REPEATED_REASON = "the same file as one listed already (a symbolic or hard link to it): used once, there"


def each_file_once(files: dict[str, list[tuple[str, str]]]) -> list[dict[str, str]]:
    """Drop, in place, a file listed again in the same split and class (a symbolic or hard link: a folder of links
    beside the folder it links to, an `imgclf subset` beside its source, a link inside the class folder), and
    return them as skipped. Counted twice, every such image weighed double in training and in the scores, and the
    automatic split could put one file in val and test. Another class keeps its link (a multi-label tree); another
    split's is a leak, which training warns of."""
    from .folder import file_identity

    repeated = []
    for split, items in files.items():
        first: dict[tuple[tuple[int, int], str], int] = {}  # -> its place in `kept`
        kept = []
        for path, cls in items:
            try:
                key = (file_identity(path), cls)
            except OSError:  # unreadable: decoding names why
                kept.append((path, cls))
                continue
            if key not in first:
                first[key] = len(kept)
                kept.append((path, cls))
                continue
            earlier = kept[first[key]][0]
            if os.path.islink(earlier) and not os.path.islink(path):  # the file itself is kept, its link named
                kept[first[key]] = (path, cls)
                path = earlier
            repeated.append({"path": path, "reason": REPEATED_REASON})
        items[:] = kept
    return repeated


def _layout_words(layout: str) -> str:
    return "class-per-folder" if layout == "flat" else "split into train/ (val/, test/)"


def _distinct(given: list[str]) -> None:
    resolved = [Path(r).resolve() for r in given]
    for i, a in enumerate(resolved):
        for j, b in enumerate(resolved):
            if i != j and (a == b or b in a.parents):
                relation = "the same folder as" if a == b else "inside"
                raise invalid("data", given, "distinct folders, none inside another (each image is used once)",
                              note=f"{given[i]} is {relation} {given[j]}")
