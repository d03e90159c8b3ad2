"""A multi-label data set from an index file: decode into the same uint8 cache, split by iterative stratification.

The automatic split uses the `iterative-stratification` package (BSD-3, last release 2024-10, pure Python on
numpy / scikit-learn): its MultilabelStratifiedShuffleSplit is Sechidis et al. (2011)'s iterative
stratification, which keeps every label's share close to the requested one in each split, rarest labels first
(a plain random split can leave a rare label out of validation entirely, and then its threshold cannot be tuned).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ..errors import invalid
from .bit_depth import warn_of_unused_bits
from .cache import decode_all
from .color import resolve_color
from .folder import FolderScan
from .groups import UNGROUPED_STREAM, decoded_groups, leaks_between, separated_groups
from .multilabel import is_label_index, primary_labels, read_label_folder, read_label_index, warn_comma_labels
from .prepared import PreparedData, Split
from .select import Selection
from ..file_names import shell_word


def multilabel_holdout(targets: np.ndarray, fraction: float, seed: int, ids: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of a seeded, iteratively stratified hold-out of `fraction` of the rows. ids: one per row, shared
    by the rows of a near-duplicate group (`Grouping.ids`): each group is held out or kept whole. Groups are taken
    first (in a seeded order, while they fit `fraction` of the grouped images), then the images without a copy
    fill the rest, each label towards its share of all the images (`_fill_label_shares`): the split holds
    `fraction` of the images whatever the groups' sizes (a group of ten drawn as one stratification unit weighed as
    one image: 23 % of the images in a test split asked for 10 %). A group larger than that share stays in
    training; where every image is in such groups, the rows are drawn one by one, as without groups."""
    targets = np.asarray(targets, dtype=np.int64)
    n = len(targets)
    mask = np.zeros(n, dtype=bool)
    take = min(int(round(n * fraction)), n - 1)
    if fraction <= 0 or take <= 0:
        return mask
    if ids is None:
        return _stratified(targets, take, seed)
    _, member_of, size = np.unique(ids, return_inverse=True, return_counts=True)
    member_of = member_of.ravel()
    grouped = size[member_of] > 1
    if not grouped.any():
        return _stratified(targets, take, seed)
    rng = np.random.default_rng(seed)
    # the groups' own share of the split, in a seeded order: each drawn with probability `fraction` instead, two
    # groups of ten took 20 of a 30-image split (10 groups of ten among 300 images) and doubled their labels' shares
    budget = min(take, int(round(fraction * grouped.sum())))
    held = 0
    for unit in rng.permutation(np.flatnonzero(size > 1)):
        if held + size[unit] <= budget:
            mask[member_of == unit] = True
            held += int(size[unit])
    singles = np.flatnonzero(~grouped)
    if held == 0 and len(singles) == 0:  # an empty split is worse than divided groups (`separated` counts them)
        return _stratified(targets, take, seed)
    rest = min(take - held, len(singles))
    if rest > 0:
        # each label's share counted over all the images: the groups drawn already hold some of it
        wanted = fraction * targets.sum(0) - targets[mask].sum(0)
        mask[singles[_fill_label_shares(targets[singles], rest, wanted, rng)]] = True
    return mask


def _fill_label_shares(targets: np.ndarray, take: int, wanted: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exactly `take` of the rows, chosen so that each label's count among them comes near `wanted`: Sechidis et
    al. (2011)'s iterative stratification for two subsets (held, kept), with `wanted` as the held subset's desired
    label counts. The rarest label's rows are placed first, each where its label is most wanted (then where more
    rows are wanted); a subset that has its rows takes no more. iterstrat takes no desired counts, and the groups
    held out before this make them other than `take`'s share of each label."""
    n = len(targets)
    rows_left = np.array([take, n - take], dtype=np.int64)
    labels_left = np.stack([wanted, targets.sum(0) - wanted]).astype(np.float64)
    held = np.zeros(n, dtype=bool)
    unplaced = np.ones(n, dtype=bool)
    while unplaced.any():
        counts = targets[unplaced].sum(0)
        rows = np.flatnonzero(unplaced)
        label = None
        if counts.any():
            label = int(np.flatnonzero(counts == counts[counts > 0].min())[0])
            rows = rows[targets[rows, label] > 0]
        for row in rng.permutation(rows):
            if rows_left.min() == 0 or label is None:  # a full subset takes no more; label-less rows fill up
                side = int(np.argmax(rows_left))
            else:
                want = labels_left[:, label]
                sides = np.flatnonzero(want == want.max())
                if len(sides) > 1:
                    sides = sides[rows_left[sides] == rows_left[sides].max()]
                side = int(rng.choice(sides))
            held[row] = side == 0
            unplaced[row] = False
            rows_left[side] -= 1
            labels_left[side] -= targets[row]
    return held


def _stratified(targets: np.ndarray, take: int, seed: int) -> np.ndarray:
    """`take` of the rows held out by iterative stratification (all of them when `take` is their number)."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    mask = np.zeros(len(targets), dtype=bool)
    if take >= len(targets):
        mask[:] = True
        return mask
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=take, random_state=seed)
    _, held = next(splitter.split(np.zeros(len(targets)), targets))
    mask[held] = True
    # iterstrat's test_size is a target, not a count (80 images at 0.1 held out 9; up to 6 off at 2,000): the
    # seeded few rows it is off by are moved, so the split holds its share exactly, as a grouped split does
    rng = np.random.default_rng(seed)
    off = int(mask.sum()) - take
    if off:
        mask[rng.choice(np.flatnonzero(mask if off > 0 else ~mask), abs(off), replace=False)] = off < 0
    return mask


def refuse_folds(folds: int) -> None:
    raise invalid("folds", folds, "unset for multi-label data",
                  note="cross-validation folds are not stratified for label sets yet")


def prepare_index(index: str | os.PathLike, img_size: int, color: str, val_split: float, test_split: float,
                  seed: int, interpolation: str, cache_dir: str | None, cache_budget: int, workers: int,
                  model_in_chans: int | None, selection: Selection | None, fold: tuple[int, int] | None,
                  progress: bool, group_duplicates: bool = True, recorded: Mapping[str, str] | None = None):
    """`prepare_data` for an index file: the images decoded once, test then val held out (iterative
    stratification), the rest train. group_duplicates: as `prepare_data`'s, a drawn split keeps each near-duplicate
    group whole, and splits the index names are checked for leaks. recorded: as `prepare_data`'s, the split an
    earlier run drew, kept where it names every image (a resume keeps its split whichever release drew it). Folds
    and class selection are not applied to multi-label data yet; asking for them is refused rather than ignored."""
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
    color, color_source = resolve_color(color, labelled.files, model_in_chans, new_run=recorded is None)
    if recorded is None:
        warn_of_unused_bits(labelled.files)
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
        named = np.asarray(labelled.splits, dtype=object)
        column = named[ok]
        for name in ("val", "test"):
            # as a val/ or test/ folder of unreadable images is refused: the split vanished (val drawn from
            # train, test left out) with no word
            if (named == name).any() and not (column == name).any():
                raise invalid("data", index, f"an index whose {name} rows include a readable image, if it has any",
                              note=f"none of its {int((named == name).sum())} {name} row(s) could be read "
                                   f"({len(skipped)} file(s) skipped)",
                              hint=f"Mend or replace those images, or remove the {name} rows (val is then drawn "
                                   "from train)" if name == "val" else
                                   f"Mend or replace those images, or remove the {name} rows")
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
    kept = [recorded.get(os.path.abspath(labelled.files[i])) for i in ok] if recorded is not None else [None]
    if None not in kept:  # every image where the earlier run put it (an older release may have drawn otherwise)
        drawn_before = np.asarray(kept, dtype=object)
        splits = {name: split(np.flatnonzero(drawn_before == name)) for name in splits}
    if len(splits["val"]) == 0:
        raise invalid("val_split", val_split, "> 0 with enough images to hold some out",
                      note="the validation split is empty")
    missing = [c for c, n in zip(labelled.classes, splits["train"].targets.sum(0)) if n == 0]
    if missing:
        raise invalid("data", index, "an index where every label is carried by a decodable training image",
                      note=f"no training image carries {missing}; {len(skipped)} file(s) skipped",
                      hint="Mend or replace the images that carry it, or take the label out of the index's rows "
                           f"(`imgclf inspect {shell_word(index)}` lists the files that cannot be read)")
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
