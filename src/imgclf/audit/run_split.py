"""With `--run`, leakage is judged on the run's own split (its dataset.json), not the folder's: a run of a flat
folder, or of train/ and test/ folders whose val it carved from train/, scored its test images against the
split training drew, and that is the split whose copies inflate its scores."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

NOT_IN_RUN = "unused"  # an image of the folder that the run's split does not hold (added since, or left out)


@dataclass
class RunSplit:
    splits: np.ndarray | None  # str per audited image: train / val / test, or NOT_IN_RUN; None: not usable
    matched: int  # images found in the run's split
    why_not: str = ""  # where `splits` is None: why the folder's own split is kept


def _key(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def run_split(run: str | os.PathLike, paths: list[str]) -> RunSplit:
    """The run's split of `paths` (absolute image paths, symbolic links followed); `splits` None where its
    dataset.json cannot be read or holds none of them (another folder than the one it trained on)."""
    from ..errors import ImgclfError
    from ..records.run_dir import RunDir

    try:
        dataset = RunDir(run).read_dataset()
    except ImgclfError as exc:
        return RunSplit(None, 0, f"its dataset.json cannot be used ({str(exc).splitlines()[0]})")
    where = {_key(path): split for split in dataset.splits for path in dataset.split_paths(split)[0]}
    splits = np.array([where.get(_key(path), NOT_IN_RUN) for path in paths], dtype=object).astype(str)
    matched = int((splits != NOT_IN_RUN).sum())
    if not matched:
        return RunSplit(None, 0, f"none of these images is in its split (it trained on {dataset.root})")
    return RunSplit(splits, matched)
