"""A multi-label data set from an index file: decode into the same uint8 cache, split by iterative stratification.

The automatic split uses the `iterative-stratification` package (BSD-3, last release 2024-10, pure Python on
numpy / scikit-learn): its MultilabelStratifiedShuffleSplit is Sechidis et al. (2011)'s iterative
stratification, which keeps every label's share close to the requested one in each split, rarest labels first
(a plain random split can leave a rare label out of validation entirely, and then its threshold cannot be tuned).
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import invalid
from .cache import decode_all
from .color import resolve_color
from .folder import FolderScan
from .groups import UNGROUPED_STREAM, decoded_groups, leaks_between, separated_groups
from .multilabel import is_label_index, primary_labels, read_label_folder, read_label_index, warn_comma_labels
from .prepared import PreparedData, Split
from .select import Selection


def multilabel_holdout(targets: np.ndarray, fraction: float, seed: int, ids: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of a seeded, iteratively stratified hold-out of `fraction` of the rows. ids: one per row, shared
    by the rows of a near-duplicate group (`Grouping.ids`): a group is held out or kept whole, drawn as one unit
    that carries every label of its members (about `fraction` of the units, so of the images on average)."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    targets = np.asarray(targets, dtype=np.int64)
    unit_of = np.arange(len(targets)) if ids is None else np.unique(ids, return_inverse=True)[1].ravel()
    units = int(unit_of.max()) + 1 if len(unit_of) else 0
    unit_targets = np.zeros((units, targets.shape[1]), dtype=np.int64)
    np.maximum.at(unit_targets, unit_of, targets)
    held_units = np.zeros(units, dtype=bool)
    take = int(round(units * fraction))
    if fraction <= 0 or take == 0 or units < 2:
        return held_units[unit_of]
    take = min(take, units - 1)
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=take, random_state=seed)
    _, held = next(splitter.split(np.zeros(units), unit_targets))
    held_units[held] = True
    return held_units[unit_of]


def refuse_folds(folds: int) -> None:
    raise invalid("folds", folds, "unset for multi-label data",
                  note="cross-validation folds are not stratified for label sets yet")


def prepare_index(index: str | os.PathLike, img_size: int, color: str, val_split: float, test_split: float,
                  seed: int, interpolation: str, cache_dir: str | None, cache_budget: int, workers: int,
                  model_in_chans: int | None, selection: Selection | None, fold: tuple[int, int] | None,
                  progress: bool, group_duplicates: bool = True):
    """`prepare_data` for an index file: the images decoded once, test then val held out (iterative
    stratification), the rest train. group_duplicates: as `prepare_data`'s, a drawn split keeps each near-duplicate
    group whole, and splits the index names are checked for leaks. Folds and class selection are not applied to
    multi-label data yet; asking for them is refused rather than ignored."""
    if fold is not None:
        refuse_folds(fold[1])
    if selection is not None and (selection.classes or selection.drop_classes or selection.per_class_max):
        given = next(name for name in ("classes", "drop_classes", "per_class_max") if getattr(selection, name))
        source, hint = ("an index file", "Leave the labels out of the index file instead") if is_label_index(index) \
            else ("a folder whose images are linked into several class folders",
                  "Leave those class folders out of the data instead")
        raise invalid(given, getattr(selection, given), f"unset for multi-label data ({source})",
                      note="class choice and per-class caps apply to single-label data only", hint=hint)
    labelled = read_label_index(index) if is_label_index(index) else read_label_folder(index)
    warn_comma_labels(labelled)
    color, color_source = resolve_color(color, labelled.files, model_in_chans)
    decoded = decode_all(labelled.files, img_size, color, interpolation, cache_dir, cache_budget, workers,
                         progress=progress)
    skipped = [{"path": labelled.files[i], "reason": r} for i, r in sorted(decoded.failures.items())]
    ok = decoded.ok_indices
    targets = labelled.targets[ok]
    grouping = decoded_groups(decoded, color, interpolation, cache_dir, workers, progress) \
        if group_duplicates else None

    def ids(rows: np.ndarray) -> np.ndarray | None:  # rows index `targets`; the grouping counts decoded rows
        return grouping.ids(ok[rows]) if grouping is not None else None

    def split(rows: np.ndarray) -> Split:
        rows = np.sort(rows)
        return Split(ok[rows], primary_labels(targets[rows]), targets[rows])

    stratified = f"iterative multi-label stratification, seed {seed}"
    if labelled.splits is not None:  # the index names the splits: val drawn from train only when it has none
        column = np.asarray(labelled.splits, dtype=object)[ok]
        train_rows = np.flatnonzero(column == "train")
        if (column == "val").any():
            splits = {"train": split(train_rows), "val": split(np.flatnonzero(column == "val"))}
            val_source = f"val rows of {labelled.path.name}"
        else:
            held = multilabel_holdout(targets[train_rows], val_split, seed + 1, ids(train_rows))
            splits = {"train": split(train_rows[~held]), "val": split(train_rows[held])}
            val_source = f"{val_split:g} of the train rows of {labelled.path.name} ({stratified})"
        if (column == "test").any():
            splits["test"] = split(np.flatnonzero(column == "test"))
    else:
        test_mask = multilabel_holdout(targets, test_split, seed, ids(np.arange(len(targets))))
        rest = np.flatnonzero(~test_mask)
        val_in_rest = multilabel_holdout(targets[rest], val_split / max(1e-9, 1 - test_split), seed + 1, ids(rest))
        splits = {"train": split(rest[~val_in_rest]), "val": split(rest[val_in_rest])}
        if test_split > 0:
            splits["test"] = split(np.flatnonzero(test_mask))
        val_source = f"{val_split:g} of {labelled.path.name} ({stratified})"
    if len(splits["val"]) == 0:
        raise invalid("val_split", val_split, "> 0 with enough images to hold some out",
                      note="the validation split is empty")
    missing = [c for c, n in zip(labelled.classes, splits["train"].targets.sum(0)) if n == 0]
    if missing:
        raise invalid("data", index, "an index where every label is carried by a decodable training image",
                      note=f"no training image carries {missing}; {len(skipped)} file(s) skipped")
    automatic = ["train", "val", "test"] if labelled.splits is None else \
        ["train", "val"] if not (column == "val").any() else []
    if grouping is not None:
        grouping.automatic = [name for name in automatic if name in splits]
        rows = {name: part.indices for name, part in splits.items()}
        grouping.leaks = leaks_between(grouping, rows, grouping.automatic)
        grouping.separated = separated_groups(grouping, {name: rows[name] for name in grouping.automatic})
    scan = FolderScan(root=labelled.path if labelled.path.is_dir() else labelled.path.parent,
                      layout="index" if is_label_index(index) else "folders (multi-label)", classes=labelled.classes,
                      files={"all": [(f, "") for f in labelled.files]})
    streamed = group_duplicates and decoded.pixels is None and bool(automatic)
    return PreparedData(scan, decoded, labelled.classes, img_size, color, splits, skipped, val_source,
                        interpolation, color_source, grouping, task="multilabel",
                        split_notes=UNGROUPED_STREAM if streamed else [])
