"""Scan + decode + split: the prepared data set a run trains and evaluates on."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence

import numpy as np

from ..config_text import plural
from ..errors import invalid
from .bit_depth import warn_of_unused_bits
from .cache import decode_all
from .color import resolve_color
from .folder import FolderScan, count_skipped, require_images
from .folder_checks import leave_out_flag
from .groups import (UNGROUPED_STREAM, decoded_groups, group_holdout, held_out_with_copies, leaks_between,
                     lopsided_holdouts, separated_groups)
from .merge import scan_folders
from .prepared import PreparedData, Split
from .select import Selection, cap_per_class, select_classes
from ..file_names import shell_word


def draw_order(paths: Sequence[str], roots: Sequence[str | os.PathLike], seed: int) -> np.ndarray:
    """Each image's place in the order held-out splits take images in: a hash of the seed and the image's path
    relative to its data folder. A class's draw then depends on its own files alone: adding a class, or images to
    another class, leaves its split as it was (one generator drawing class after class moved every class sorted
    after the new one), and images added to a class move only a few of its images, at the edge of each share."""
    # each folder as given and as its links resolve (merged folders are stored resolved), the innermost first
    roots = sorted({form for r in roots for form in (os.path.abspath(r), os.path.realpath(r))}, key=len, reverse=True)
    keys = np.empty(len(paths), dtype=np.uint64)
    for i, path in enumerate(paths):
        name = _relative_name(path, roots)
        digest = hashlib.blake2b(f"{seed}\0{name}".encode("utf-8", "surrogateescape"), digest_size=8).digest()
        keys[i] = int.from_bytes(digest, "big")
    return keys


def _relative_name(path: str, roots: Sequence[str]) -> str:
    """`path` relative to the folder holding it, with '/' between parts: as given, else with its links resolved
    (a folder reached through a link names its images as the folder itself does)."""
    for full in (os.path.abspath(path), os.path.realpath(path)):
        root = next((r for r in roots if full.startswith(r.rstrip(os.sep) + os.sep)), None)
        if root is not None:
            return os.path.relpath(full, root).replace(os.sep, "/")
    return os.path.abspath(path).replace(os.sep, "/")


def stratified_holdout(labels: np.ndarray, fraction: float, order: np.ndarray) -> np.ndarray:
    """Boolean mask of a per-class hold-out of `fraction`, each class's images taken by `order` (`draw_order`'s
    keys, lowest first); every class keeps >= 1 training item."""
    mask = np.zeros(len(labels), dtype=bool)
    if fraction <= 0:
        return mask
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        members = members[np.argsort(order[members], kind="stable")]
        take = int(round(len(members) * fraction))
        take = min(max(take, 1 if len(members) >= 2 else 0), len(members) - 1)
        mask[members[:take]] = True
    return mask


# a held-out split taking this many times its fraction (and 2 points more) is named: the image each class must give
# it did that, which on classes of a few images takes a third of the data or more
ENLARGED_SHARE = 1.5


def enlarged_shares(total: int, taken: dict[str, tuple[int, float]]) -> dict[str, tuple[float, float]]:
    """{split: (share taken, fraction asked)} of the held-out splits that took far more than asked."""
    shares = {name: (n / total, asked) for name, (n, asked) in taken.items() if total and asked > 0}
    return {name: (share, asked) for name, (share, asked) in shares.items()
            if share > ENLARGED_SHARE * asked and share - asked > 0.02}


def _pct(share: float) -> str:
    return f"{100 * share:.0f} %"


def _taken(enlarged: dict[str, tuple[float, float]], name: str) -> str:
    return f" asked, {_pct(enlarged[name][0])} taken: at least one image of each class" if name in enlarged else ""


def enlarged_notes(enlarged: dict[str, tuple[float, float]], pool: np.ndarray, train: int, flat: bool) -> list[str]:
    """The warning for held-out splits far larger than asked, with what training is left: `pool` the labels of
    the images they were drawn from (the folder, or train/), `train` the training images kept."""
    if not enlarged:
        return []
    names, shares = " and ".join(enlarged), " and ".join(_pct(share) for share, _ in enlarged.values())
    asked = " and ".join(_pct(fraction) for _, fraction in enlarged.values())
    plural = "s" if len(enlarged) > 1 else ""
    source = "the images" if flat else "train/"
    smallest = int(np.bincount(pool)[np.bincount(pool) > 0].min())
    fewer = " (--test-split 0: the validation split then scores the model)" if flat and "test" in enlarged else ""
    return [f"the {names} split{plural} took {shares} of {source}, not the {asked} asked: each class gives "
            f"every held-out split at least one image, and the smallest class has {smallest}, so training keeps "
            f"{train} of {len(pool)} images; more images per class, or fewer held-out splits{fewer}, leave "
            "training more"]


def too_many_folds(folds: int, counts: Mapping[str, int], classes: Sequence[str] | None = None,
                   drop_classes: Sequence[str] | None = None) -> Exception | None:
    """The refusal of `folds` where a class has fewer non-test images (`counts`, per class name) than folds, naming
    that class; None where every class has enough. classes, drop_classes: the selection already made, for the hint
    that leaves a class of one image out (no number of folds fits it)."""
    short = {name: n for name, n in counts.items() if n < folds}
    if not short:
        return None
    name = min(short, key=lambda c: (short[c], c))
    smallest = short[name]
    why = "every fold validates on at least one image of each class"
    if smallest < 2:
        return invalid("folds", folds, f"from 2 to the non-test images of the smallest class: {why}",
                       note=f"class {name!r} has {plural(smallest, 'non-test image')}: no number of folds fits",
                       hint=f"Add images to {name!r}, or leave it out: "
                            f"{leave_out_flag([name], list(classes or []), list(drop_classes or []))}")
    return invalid("folds", folds, f"at most {smallest}, the non-test images of the smallest class ({name!r}): {why}")


def stratified_folds(labels: np.ndarray, folds: int, seed: int, groups: np.ndarray | None = None,
                     classes: Sequence[str] = (), selection: Selection | None = None) -> np.ndarray:
    """Fold number (0-based) of each item: scikit-learn's StratifiedKFold, shuffled with `seed`, so every class
    is spread as evenly as possible over the folds and each item is in exactly one. groups: one id per item;
    when some id is shared (near-duplicates), StratifiedGroupKFold, which keeps each group in one fold, except in
    a class with fewer groups than folds (some fold would validate on none of it), whose images are drawn one by
    one: one such class turned the grouping off for every class, and 12 of 14 pairs of the others were divided.
    classes: the name of each label, for the refusal of too many folds; selection: the classes chosen, for its hint."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    counts = np.bincount(labels) if len(labels) else np.zeros(0, dtype=int)
    named = {(classes[c] if c < len(classes) else str(c)): int(n) for c, n in enumerate(counts) if n > 0}
    if not named:
        raise invalid("folds", folds, "folds of the non-test images", note="there are none")
    refusal = too_many_folds(folds, named, selection.classes if selection else None,
                             selection.drop_classes if selection else None)
    if refusal is not None:
        raise refusal
    assignment = np.empty(len(labels), dtype=np.int64)
    if groups is not None:
        groups = np.asarray(groups).copy()
        for c in np.unique(labels):
            if len(np.unique(groups[labels == c])) < folds:  # too few groups to give each fold one: one by one
                inside = np.flatnonzero(labels == c)
                groups[inside] = groups.max() + 1 + np.arange(len(inside))
    grouped = groups is not None and len(np.unique(groups)) < len(groups)
    splitter = (StratifiedGroupKFold if grouped else StratifiedKFold)(n_splits=folds, shuffle=True, random_state=seed)
    for i, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups if grouped else None)):
        assignment[held_out] = i
    return assignment


def prepare_data(
    data: str | os.PathLike | list[str],
    img_size: int,
    color: str = "auto",
    val_split: float = 0.1,
    test_split: float = 0.1,
    seed: int = 0,
    interpolation: str = "bilinear",
    cache_dir: str | None = None,
    cache_budget: int = 4 * 10**9,
    workers: int = 2,
    scan: FolderScan | None = None,
    model_in_chans: int | None = None,
    selection: Selection | None = None,
    fold: tuple[int, int] | None = None,
    group_duplicates: bool = True,
    progress: bool = True,
    task: str = "auto",
    recorded: Mapping[str, str] | None = None,
) -> PreparedData:
    """Scan, decode and split `data` (one folder, or several merged: `data.merge`). model_in_chans: the channels
    the model is built for by default (its registry entry's default_in_chans); with color="auto" a 1-channel
    model gets grayscale (`resolve_color`). selection: the classes kept and the per-class caps (`data.select`);
    the classes are chosen before decoding, the caps applied to the splits once they are drawn.
    fold: (i, K) for cross-validation: the test split is drawn (or read) as without it, then every other image
    (train/ and val/ pooled; a train cap applied to the pool) goes into K stratified folds: fold i (1-based) is
    the validation split, the rest train.
    group_duplicates: find near-duplicate groups in the cache; an automatic split (val/test drawn from a pool,
    folds) keeps each group in one split, and user-given splits are checked for leaks (`data.groups`).
    task: multilabel reads a class-per-folder tree as label sets (a file in several class folders, as hard links,
    carries each: `multilabel.read_label_folder`); an index file (CSV / JSON lines) is multi-label whatever it says.
    recorded: {absolute path: split} as an earlier run drew them (its dataset.json: resume, recalibrate), used in
    place of each draw whose images it all names, so a run keeps its split whichever release drew it."""
    from .multilabel import is_label_index

    if is_label_index(data) or (task == "multilabel" and isinstance(data, (str, os.PathLike))):
        from .index_data import prepare_index

        return prepare_index(data, img_size, color, val_split, test_split, seed, interpolation, cache_dir,
                             cache_budget, workers, model_in_chans, selection, fold, progress, group_duplicates,
                             recorded)
    selection = selection or Selection(seed=seed)
    # empty class folders are refused after the selection, so --drop-classes can leave one out
    scan = require_images(select_classes(scan or scan_folders(data, allow_empty=True), selection),
                          selection.classes, selection.drop_classes)
    classes = scan.classes
    class_id = {c: i for i, c in enumerate(classes)}
    tagged = [(split, path, class_id[c]) for split, items in scan.files.items() for path, c in items]
    paths = [p for _, p, _ in tagged]
    # a recorded split is a finished run's images prepared again (resume, calibrate): its colour was chosen then
    color, color_source = resolve_color(color, paths, model_in_chans, new_run=recorded is None)
    if recorded is None:
        warn_of_unused_bits(paths)
    decoded = decode_all(paths, img_size, color, interpolation, cache_dir, cache_budget, workers, progress=progress)
    skipped = list(scan.skipped) + [{"path": paths[i], "reason": r} for i, r in sorted(decoded.failures.items())]

    ok = decoded.ok_indices
    split_of = np.array([s for s, _, _ in tagged])[ok] if len(ok) else np.array([], dtype=str)
    labels_all = np.array([y for _, _, y in tagged], dtype=np.int64)
    order = draw_order(paths, scan.roots or [scan.root], seed)

    def subset(name: str) -> tuple[np.ndarray, np.ndarray]:
        idx = ok[split_of == name]
        return idx, labels_all[idx]

    grouping = decoded_groups(decoded, color, interpolation, cache_dir, workers, progress) \
        if group_duplicates else None

    def holdout(rows: np.ndarray, y: np.ndarray, fraction: float, name: str) -> np.ndarray:
        kept = [recorded.get(os.path.abspath(paths[r])) for r in rows] if recorded is not None else [None]
        if None not in kept:
            return np.array([split == name for split in kept], dtype=bool)
        if grouping is None:
            return stratified_holdout(y, fraction, order[rows])
        return group_holdout(y, grouping.ids(rows), fraction, order[rows])

    splits: dict[str, Split] = {}
    enlarged: dict[str, tuple[float, float]] = {}
    pool = np.zeros(0, dtype=np.int64)  # the labels of the images automatic held-out splits were drawn from
    if scan.layout == "flat":
        idx, y = subset("all")
        test_mask = holdout(idx, y, test_split, "test")
        rest_idx, rest_y = idx[~test_mask], y[~test_mask]
        val_mask = holdout(rest_idx, rest_y, val_split / max(1e-9, 1 - test_split), "val")
        splits["train"] = Split(rest_idx[~val_mask], rest_y[~val_mask])
        splits["val"] = Split(rest_idx[val_mask], rest_y[val_mask])
        if test_split > 0:
            splits["test"] = Split(idx[test_mask], y[test_mask])
        enlarged = enlarged_shares(len(idx), {"test": (int(test_mask.sum()), test_split),
                                              "val": (int(val_mask.sum()), val_split)})
        pool = y
        val_source = f"{val_split:g} of the folder{_taken(enlarged, 'val')} (stratified, seed {seed})"
    else:
        idx, y = subset("train")
        if "val" in scan.files:
            splits["train"] = Split(idx, y)
            splits["val"] = Split(*subset("val"))
            val_source = "val/ folder"
        else:
            val_mask = holdout(idx, y, val_split, "val")
            splits["train"] = Split(idx[~val_mask], y[~val_mask])
            splits["val"] = Split(idx[val_mask], y[val_mask])
            enlarged = enlarged_shares(len(idx), {"val": (int(val_mask.sum()), val_split)})
            pool = y
            val_source = f"{val_split:g} of train/{_taken(enlarged, 'val')} (stratified, seed {seed})"
        if "test" in scan.files:
            splits["test"] = Split(*subset("test"))

    if fold is not None:
        i, k = fold
        pool_idx = np.concatenate([splits[n].indices for n in ("train", "val")])
        pool_y = np.concatenate([splits[n].labels for n in ("train", "val")])
        order = np.argsort(pool_idx, kind="stable")  # the pool in file order, whatever the val draw was
        uncapped = np.bincount(pool_y)
        pool_idx, pool_y = cap_per_class("train", pool_idx[order], pool_y[order], classes, selection)
        cap = selection.cap("train")
        # the cap, not the class, leaves each fold too few: "the smallest class" blamed classes of 14 images
        if cap is not None and k > cap and len(pool_y) and uncapped[uncapped > 0].min() >= k:
            raise invalid("folds", k, f"at most {cap}, the per_class_max of train each class is cut to: every fold "
                          "validates on at least one image of each class", also={"per_class_max": {"train": cap}})
        held_out = stratified_folds(pool_y, k, seed, grouping.ids(pool_idx) if grouping else None, classes,
                                    selection) == i - 1
        splits["train"] = Split(pool_idx[~held_out], pool_y[~held_out])
        splits["val"] = Split(pool_idx[held_out], pool_y[held_out])
        val_source = f"fold {i} of {k} of the non-test images (stratified, seed {seed})"
        enlarged.pop("val", None)  # the fold is the validation split now, not the draw
    splits = {name: Split(*cap_per_class(name, split.indices, split.labels, classes, selection))
              if fold is None or name == "test" else split for name, split in splits.items()}
    automatic = scan.layout == "flat" or "val" not in scan.files or fold is not None  # a split drawn here
    if grouping is not None:
        grouping.automatic = (["train", "val", "test"] if scan.layout == "flat" else
                              ["train", "val"] if "val" not in scan.files or fold is not None else [])
        grouping.automatic = [name for name in grouping.automatic if name in splits]
        rows = {name: split.indices for name, split in splits.items()}
        grouping.leaks = leaks_between(grouping, rows, grouping.automatic)
        grouping.separated = separated_groups(grouping, {name: rows[name] for name in grouping.automatic})
        grouping.lopsided = lopsided_holdouts(grouping, splits, classes)
    train_counts = np.bincount(splits["train"].labels, minlength=len(classes))
    empty = [classes[i] for i in np.flatnonzero(train_counts == 0)]
    if empty:
        note = f"no usable training image for {empty}; {count_skipped([s['path'] for s in skipped])} skipped"
        leave_out = f"leave the class out: {leave_out_flag(empty, selection.classes, selection.drop_classes)}"
        held = np.concatenate([split.indices[split.labels == classes.index(empty[0])]
                               for name, split in splits.items() if name != "train"])
        copies = held_out_with_copies(grouping, held, labels_all) if grouping is not None and len(held) else None
        if copies is None:
            raise invalid("data", scan.root, "a folder where every class has decodable training images", note=note,
                          hint=f"See `imgclf inspect {shell_word(scan.root)}`, or {leave_out}")
        shown = " is a copy of ".join(repr(os.path.relpath(paths[r], scan.root)) for r in copies)
        raise invalid("data", scan.root, "a folder where every class has decodable training images",
                      note=f"{note}; its images were held out whole with their near-duplicates under other "
                           f"classes ({shown})",
                      hint=f"Give the class images of its own, draw the images one by one with --no-group-duplicates"
                           f" (a copy may then train while its twin is scored), or {leave_out}")
    if len(splits["val"]) == 0 and "val" in scan.files and fold is None:
        raise invalid("data", scan.root, "a val/ folder with at least one readable image",
                      note="val/ holds none", hint="Add images to val/, or remove it (val_split then draws one)")
    if "test" in scan.files and len(splits.get("test", ())) == 0:  # (not one image of test/ decoded)
        raise invalid("data", scan.root, "a test/ folder with at least one readable image",
                      note="test/ holds none", hint="Add readable images to test/, or remove it")
    if len(splits["val"]) == 0:
        if val_split <= 0:
            raise invalid("val_split", val_split, "> 0 when the data has no val/ folder",
                          note="the validation split is empty", hint="Use a val/ folder or val_split > 0")
        # the fraction was fine: no class had an image to spare once training (and test) kept theirs
        before = "the test split and training" if scan.layout == "flat" and test_split > 0 else "training"
        raise invalid("data", scan.root, "a folder with images to spare for validation",
                      also={"val_split": val_split}, note=f"the validation split is empty: {before} kept every image "
                      f"of each class (at most {int(np.bincount(pool if len(pool) else labels_all[ok]).max())} per "
                      "class)",
                      hint="Add images (a class needs 2 to give one to validation"
                           + (", 3 with a test split as well), or set --test-split 0 so that the validation split "
                              "also scores the model" if before != "training" else ")")
                           + ", or add a val/ folder")
    return PreparedData(scan, decoded, classes, img_size, color, splits, skipped, val_source, interpolation,
                        color_source, grouping,
                        split_notes=enlarged_notes(enlarged, pool, len(splits["train"]), scan.layout == "flat")
                        + (UNGROUPED_STREAM if group_duplicates and decoded.pixels is None and automatic else []))
