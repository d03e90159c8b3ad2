"""With `--run`, leakage is judged on the run's own split (its dataset.json), not the folder's: a run of a flat
folder, or of train/ and test/ folders whose val it carved from train/, scored its test images against the
split training drew, and that is the split whose copies inflate its scores."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

NOT_IN_RUN = "unused"  # an image of the folder that the run's split does not hold (added since, or left out)


@dataclass
class RunSplit:
    splits: np.ndarray | None  # str per audited image: train / val / test, or NOT_IN_RUN; None: not usable
    matched: int  # images found in the run's split
    why_not: str = ""  # where `splits` is None: why the folder's own split is kept
    by_content: bool = False  # found by identical bytes: the folder is a copy of the one the run trained on


def _key(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _named(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def run_split(run: str | os.PathLike, paths: list[str], digests: list[str] | None = None,
              root: str | os.PathLike | None = None) -> RunSplit:
    """The run's split of `paths` (absolute image paths, symbolic links followed); where no path is the run's,
    by the path relative to `root` (the audited folder) where the file's bytes are the run's file's too
    (`digests`: a copy of the folder it trained on, which `evaluate --data` finds by its bytes); `splits` None
    where its dataset.json cannot be read or holds none of them (another folder than the one it trained on)."""
    from ..errors import ImgclfError
    from ..records.run_dir import RunDir

    try:
        dataset = RunDir(run).read_dataset()
    except ImgclfError as exc:
        return RunSplit(None, 0, f"its dataset.json cannot be used ({str(exc).splitlines()[0]})")
    listed = [(split, path) for split in dataset.splits for path in dataset.split_paths(split)[0]]
    by_name = {_named(path): split for split, path in listed}
    # through links (a link to the folder, or the run's): by the file a path leads to, where one listed path
    # leads to it; a file listed twice (test/x.png a link to train/y.png) keeps each path's own split
    leads_to = Counter(_key(path) for _, path in listed)
    by_file = {_key(path): split for split, path in listed if leads_to[_key(path)] == 1}
    splits = np.array([by_name.get(_named(path)) or by_file.get(_key(path), NOT_IN_RUN) for path in paths],
                      dtype=object).astype(str)
    matched = int((splits != NOT_IN_RUN).sum())
    if not matched and digests is not None and root is not None:
        return _in_a_copy(dataset, paths, digests, root)
    if not matched:
        return RunSplit(None, 0, f"none of these images is in its split (it trained on {dataset.root})")
    return RunSplit(splits, matched)


def _in_a_copy(dataset: Any, paths: list[str], digests: list[str], root: str | os.PathLike) -> RunSplit:
    """The run's split of a copy of its data folder: an image at the relative path of one of the run's files, with
    the same bytes (byte-identical copies within the data set keep their own splits, which bytes alone could not
    tell apart)."""
    from ..duplicates.hashing import content_digests

    relative = {os.path.normcase(os.path.relpath(p, root)): i for i, p in enumerate(paths)}
    candidates = [(relative[key], split, path) for split, path, key in _run_files(dataset) if key in relative]
    theirs = content_digests([path for _, _, path in candidates])
    splits = np.full(len(paths), NOT_IN_RUN, dtype=object)
    for (i, split, _), digest in zip(candidates, theirs):
        if digest and digest == digests[i]:
            splits[i] = split
    splits = splits.astype(str)
    matched = int((splits != NOT_IN_RUN).sum())
    if not matched:
        if candidates and not any(theirs):  # the originals are gone: a copy cannot be told from another folder
            return RunSplit(None, 0, f"its own files, under {dataset.root}, cannot be read (moved or deleted?), so "
                                     "this folder cannot be matched to them file by file")
        return RunSplit(None, 0, f"none of these images is in its split, by path or as a copy of its folder (it "
                                 f"trained on {dataset.root})")
    at_its_paths = len({i for i, _, _ in candidates})  # (a merged run's folders may share a relative path)
    if matched * 2 < at_its_paths:
        # two placeholder images alike in two folders of alike names made a "copy" of the run's folder, and the
        # leakage of the other 92 images read as a clean 0
        return RunSplit(None, 0, f"only {matched} of the {at_its_paths} images at its files' paths hold the same "
                                 f"bytes: another folder, not a copy of the one it trained on ({dataset.root})")
    return RunSplit(splits, matched, by_content=True)


def _run_files(dataset: Any) -> list[tuple[str, str, str]]:
    """(split, absolute path, path relative to the data folder holding it) of every file of the run's split. A
    merged run lists its files relative to the folders' common parent (A/cat/0.png); a copy of one folder of it
    holds them relative to that folder (cat/0.png)."""
    roots = {str(r): _key(str(r)).rstrip(os.sep) + os.sep for r in dataset.roots or [dataset.root]}
    found = []
    for split, files in dataset.splits.items():
        for f in files.files:
            path = os.path.join(dataset.root, f)
            key = _key(path)
            inside = [r for r, prefix in roots.items() if key.startswith(prefix)]
            base = max(inside, key=len) if inside else str(dataset.root)
            found.append((split, path, os.path.normcase(os.path.relpath(path, base))))
    return found
