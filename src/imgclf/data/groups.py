"""Near-duplicate groups for the split: an automatic split keeps each group inside one split (a copy of a test
image in train inflates test accuracy), and user-given train/ val/ test/ folders are checked for such leaks.

The groups come from the duplicate search (`imgclf.duplicates`) on the uint8 cache, so
the split is drawn after decoding. Without a cache (streamed data) there are no pixels to compare: the split
is then drawn as before and the record says the grouping was not done.
"""

from __future__ import annotations

import io
import zipfile
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .several_classes import NO_MULTILABEL_AUDIT, several_classes_warning

SPLIT_ORDER = ("train", "val", "test")


@dataclass
class Grouping:
    """Duplicate groups over the decoded rows of a data set, and what the split made of them."""

    group_of: np.ndarray  # (N,) over all decoded rows: group index, -1 for an image without a duplicate
    digests: np.ndarray  # (N,) content hash of each searched file, "" for the others
    groups: int
    seconds: float
    threshold: float
    leaks: list[dict] = field(default_factory=list)  # filled by `leaks_between` once the splits exist
    reused: bool = False  # read from the memo beside the cache, not searched again
    automatic: list[str] = field(default_factory=list)  # the splits drawn here (not given as folders)
    separated: int = 0  # groups the automatic split had to divide (`group_holdout`, `stratified_folds`)
    # drawn val/test splits of a class that only its few ungrouped images could fill (`lopsided_holdouts`)
    lopsided: list[dict] = field(default_factory=list)

    def ids(self, rows: np.ndarray) -> np.ndarray:
        """One id per row, shared within a group and unique otherwise (sklearn's `groups` argument)."""
        g = self.group_of[rows]
        return np.where(g >= 0, g, len(self.group_of) + np.asarray(rows))

    def describe(self) -> dict:
        grouped = self.group_of >= 0
        searched = self.digests[self.digests != ""]
        _, counts = np.unique(searched, return_counts=True)
        return {"method": "exact content hash + near-duplicate (perceptual signature, pixel correlation)",
                "threshold": self.threshold, "groups": self.groups, "images": int(grouped.sum()),
                "exact_images": int(counts[counts > 1].sum()), "seconds": round(self.seconds, 3), "reused": self.reused,
                "automatic_splits": self.automatic, "separated": self.separated, "leaks": self.leaks}


# a search over at least this many images says it has started (it reports nothing while it runs: 52 s of
# silence for 40,000 Fashion-MNIST images on 2 cores, between the decode's last line and the first epoch)
ANNOUNCE_FROM = 5000


def find_groups(pixels: np.ndarray, paths: list[str], rows: np.ndarray, memo: Path | None = None,
                progress: bool = False) -> Grouping:
    """Duplicate groups among `rows` of the cache (other rows: no group). memo: a file beside the cache
    (named by its key, which covers every file's size and mtime) that keeps the result, so that the next run
    on the same cache skips the search (about 90 s for 60,000 Fashion-MNIST images on 2 cores). progress: a
    line on stderr as a large search starts and one as it ends."""
    from ..duplicates.search import NEAR_THRESHOLD
    from ..progress import StepProgress

    start = time.perf_counter()
    rows = np.asarray(rows, dtype=np.int64)
    n = len(pixels)
    group_of = np.full(n, -1, np.int64)
    digests = np.full(n, "", dtype=object)
    found = _read_memo(memo, rows, NEAR_THRESHOLD)
    reused = found is not None
    if found is None:
        with StepProgress(f"near-duplicate search over {len(rows):,} images", len(rows), after_seconds=0,
                          enabled=progress and len(rows) >= ANNOUNCE_FROM) as bar:
            bar.announce("started (--no-group-duplicates skips it; its result is kept beside the cache)")
            found = _search(pixels, paths, rows)
            bar.update(len(rows))
            bar.close(f"{int(found[0].max()) + 1 if len(found[0]) else 0:,} groups")
        _write_memo(memo, rows, NEAR_THRESHOLD, *found)
    group_of[rows], digests[rows] = found[0], found[1]
    groups = int(found[0].max()) + 1 if len(rows) and found[0].max() >= 0 else 0
    return Grouping(group_of, digests, groups, time.perf_counter() - start, NEAR_THRESHOLD, reused=reused)


# said once per run: the near-duplicate search reads the cache, so streamed data splits without it
UNGROUPED_STREAM = ["the images are streamed from their files (they exceed --cache-budget), so near-duplicates "
                     "are not looked for: the automatic split may put copies of one picture in both train and "
                     "test, and the split differs from a cached run's; a larger --cache-budget caches them and "
                     "keeps each group of copies in one split"]


def decoded_groups(decoded: Any, color: str, interpolation: str, cache_dir: str | os.PathLike | None, workers: int,
                   progress: bool) -> Grouping | None:
    """`find_groups` over every decoded image of a prepared data set (`cache.DecodedImages`), its result kept beside
    the cache; None where the images are streamed (no pixels to compare)."""
    from .cache import comparison_pixels, default_cache_dir

    if decoded.pixels is None:
        return None
    # "-side": groups compared at the search's own side (`comparison_pixels`), whatever the decode; older memos
    # compared a decode smaller than the files ("-native") or any decode
    memo = (Path(cache_dir) if cache_dir else default_cache_dir()) / f"{decoded.key}.groups-side.npz"
    return find_groups(comparison_pixels(decoded, color, interpolation, cache_dir, workers), decoded.paths,
                       decoded.ok_indices, memo, progress)


def _search(pixels: np.ndarray, paths: list[str], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from ..duplicates.hashing import content_digests, perceptual_signatures
    from ..duplicates.search import find_duplicates
    from ..duplicates.thumbnails import grey_thumbnails

    if len(rows) < 2:
        return np.full(len(rows), -1, np.int64), np.full(len(rows), "", dtype=object)
    thumbs = grey_thumbnails(np.asarray(pixels[rows]))
    digests = content_digests([paths[i] for i in rows])
    found = find_duplicates(thumbs, perceptual_signatures(thumbs), digests)
    return found.group_of, np.array(digests, dtype=object)


def _read_memo(memo: Path | None, rows: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray] | None:
    if memo is None or not memo.is_file():
        return None
    try:
        with np.load(memo, allow_pickle=False) as saved:
            if not np.array_equal(saved["rows"], rows) or float(saved["threshold"]) != threshold:
                return None
            return saved["group_of"].astype(np.int64), saved["digests"].astype(object)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # damaged: searched again, rewritten
        return None


def _write_memo(memo: Path | None, rows: np.ndarray, threshold: float, group_of: np.ndarray,
                digests: np.ndarray) -> None:
    from ..io import atomic_write_bytes

    if memo is None:
        return
    buffer = io.BytesIO()
    np.savez(buffer, rows=rows, threshold=np.float64(threshold), group_of=group_of,
             digests=np.asarray(digests.tolist(), dtype=str))
    try:
        atomic_write_bytes(memo, buffer.getvalue())
    except OSError:  # a read-only cache folder costs the next run the search, nothing more
        pass


def held_out_with_copies(grouping: Grouping, held: np.ndarray, labels: np.ndarray) -> tuple[int, int] | None:
    """(held row, a row of another class in its group) where every row of `held` (a class's images outside the
    training split) sits in a near-duplicate group with an image of another class: a group goes to the class of
    its first member and is held out whole, so a class whose only images are copies of another's loses them all
    to val or test. None otherwise."""
    example = None
    for row in held.tolist():
        group = grouping.group_of[row]
        others = np.flatnonzero((grouping.group_of == group) & (labels != labels[row])) if group >= 0 else []
        if not len(others):
            return None
        example = example or (row, int(others[0]))
    return example


def group_holdout(labels: np.ndarray, ids: np.ndarray, fraction: float, order: np.ndarray) -> np.ndarray:
    """`stratified_holdout` with whole groups: per class, groups (owned by the class of their first member)
    are taken in `order` (`draw_order`'s keys; a group's is its first member's) while they fit the class's
    share, so a group is held out entirely or not at all. A class whose groups are all too large to hold any
    out whole (one picture in many copies) is drawn image by image, as without groups: an empty validation
    class would be worse than a divided group (`Grouping.separated` counts them). With no group larger than
    one image this draws exactly what `stratified_holdout` draws."""
    mask = np.zeros(len(labels), dtype=bool)
    if fraction <= 0:
        return mask
    _, first, member_of = np.unique(ids, return_index=True, return_inverse=True)
    member_of = member_of.ravel()
    size = np.bincount(member_of)
    owner = labels[first]
    # a group's place is its first member's key, not its lowest: the least of k keys comes early, and groups of
    # five were held out at 3x a single image's rate (0.21 against 0.063 at fraction 0.1), filling val and test
    # with repeated pictures
    unit_order = order.astype(np.uint64)[first]
    for cls in np.unique(labels):
        units = np.flatnonzero(owner == cls)
        total = int(size[units].sum())
        take = int(round(total * fraction))
        take = min(max(take, 1 if total >= 2 else 0), total - 1)
        if take >= 1 and not (size[units] <= take).any():
            members = np.flatnonzero(labels == cls)
            mask[members[np.argsort(order[members], kind="stable")[:take]]] = True
            continue
        units = units[np.argsort(unit_order[units], kind="stable")]
        chosen, held = [], 0
        for u in units:
            if held + size[u] <= take:
                chosen.append(u)
                held += size[u]
            if held >= take:
                break
        if held < take:
            chosen = _exact_fill(units, size[units], take) or chosen
        mask[np.isin(member_of, chosen)] = True
    return mask


def _exact_fill(units: np.ndarray, sizes: np.ndarray, take: int, budget: int = 10**7) -> list[int] | None:
    """Units whose sizes add up to exactly `take` (0/1 subset sum, preferring units early in the draw
    order), or None when none do or the table would exceed `budget` cells. Used only when the greedy fill
    falls short, which groups of several sizes can cause on small classes."""
    if len(units) * (take + 1) > budget:
        return None
    reach = np.zeros((len(units) + 1, take + 1), dtype=bool)
    reach[0, 0] = True
    for k, s in enumerate(sizes.tolist()):
        reach[k + 1] = reach[k]
        if s <= take:
            reach[k + 1, s:] |= reach[k, :take + 1 - s]
    if not reach[-1, take]:
        return None
    chosen, t = [], take
    for k in range(len(units) - 1, -1, -1):
        if not reach[k, t]:  # t is reachable only with unit k
            chosen.append(int(units[k]))
            t -= int(sizes[k])
    return chosen


def separated_groups(grouping: Grouping, split_rows: dict[str, np.ndarray]) -> int:
    """Groups with members in more than one of these (automatically drawn) splits."""
    seen: dict[int, set[str]] = {}
    for name, rows in split_rows.items():
        for g in grouping.group_of[rows][grouping.group_of[rows] >= 0].tolist():
            seen.setdefault(g, set()).add(name)
    return sum(len(names) > 1 for names in seen.values())


def leaks_between(grouping: Grouping, split_rows: dict[str, np.ndarray], automatic: list[str]) -> list[dict]:
    """For each later split (val, test) and each earlier one it could leak from, one of them given as a folder:
    how many of its images have a duplicate there, and how many of those are byte-identical copies of a file
    there. (Between two drawn splits a shared group is `separated`, not a leak of the user's folders.)"""
    where = {name: set(grouping.group_of[rows][grouping.group_of[rows] >= 0].tolist())
             for name, rows in split_rows.items()}
    files = {name: set(grouping.digests[rows].tolist()) - {""} for name, rows in split_rows.items()}
    out = []
    names = [s for s in SPLIT_ORDER if s in split_rows]
    for x, into in enumerate(names):
        for source in names[:x]:
            if source in automatic and into in automatic:
                continue
            rows = split_rows[into]
            hit = np.isin(grouping.group_of[rows], list(where[source])) & (grouping.group_of[rows] >= 0)
            if hit.any():
                exact = sum(d in files[source] for d in grouping.digests[rows][hit].tolist())
                out.append({"split": into, "source": source, "images": int(hit.sum()), "exact": int(exact)})
    return out


def audit_command(folders: str | os.PathLike | Sequence[str | os.PathLike], img_size: int,
                  run: str | os.PathLike | None = None) -> str:
    """The audit that finds what training found, ready to paste (each path shell-quoted, control characters
    escaped): with the run, its decode size and its own split (the numbers then match, val carved from train/
    included); without one, the same images at the run's decode size (the audit's own default size can differ,
    and with it which pairs count as near-duplicates). An audit reads one folder: a merged run's is one command
    per folder."""
    import shlex

    from ..io import terminal_safe

    given = [folders] if isinstance(folders, (str, os.PathLike)) else list(folders)
    quoted = [shlex.quote(terminal_safe(str(f))) for f in given]
    # absolute: the report stores it, and `imgclf calibrate runs/x` rewrote it relative to where that ran
    tail = f" --run {shlex.quote(terminal_safe(os.path.abspath(run)))}" if run is not None else \
        f" --img-size {img_size}"
    first = f"imgclf audit {quoted[0]}{tail}"
    return first if len(quoted) == 1 else f"{first} (and the same for {', '.join(quoted[1:])})"


def leak_warning(leak: dict, audit: str | None, drawn: Sequence[str] = ()) -> str:
    """audit: the `imgclf audit` command that lists them (`audit_command`); None for multi-label data. drawn: the
    splits drawn by the run (its automatic ones), which are no folder: a val split carved from train/ was named
    'val/', a folder the data does not have."""
    exact = f" ({leak['exact']} exact cop{'y' if leak['exact'] == 1 else 'ies'})" if leak["exact"] else ""
    verb = "has" if leak["images"] == 1 else "have"
    what = {"test": "test accuracy" if audit is not None else "test scores (mAP, F1, accuracies)",
            "val": "validation scores (early stopping, calibration)" if audit is not None else
            "validation scores (the epoch kept, the labels' thresholds)"}[leak["split"]]
    def named(split: str) -> str:
        if audit is None:
            return f"the {split} rows"
        # (train is drawn too when val is carved from it: what is left of train/)
        return f"the {split} split drawn from train/" if split in drawn and split != "train" else f"{split}/"

    where, source = named(leak["split"]), named(leak["source"])
    listed = f"run `{audit}` for the list" if audit is not None else NO_MULTILABEL_AUDIT
    return (f"{leak['images']} image{'s' if leak['images'] != 1 else ''} in {where} {verb} a "
            f"near-duplicate in {source}{exact}: {what} may be inflated; {listed}")


def recorded_leak_warnings(dataset: Any, run_dir: str | os.PathLike | None, split: str | None = None) -> list[str]:
    """Training's warnings of val/test images with a near-duplicate in an earlier split, from a run's DatasetRecord
    (`duplicates.leaks`: user-given split folders), for `split` alone where given: said again where the scores
    they inflate are read (the report, `evaluate`); and, for the whole run (no `split`), of byte-identical images
    under several classes."""
    grouping = dataset.duplicates if dataset is not None else None
    if grouping is None:
        return []
    audit = audit_command(dataset.roots or [dataset.root], dataset.img_size, run_dir) \
        if dataset.task != "multilabel" else None
    several = grouping.in_several_classes

    conflicting = [several_classes_warning(several.count, several.linked,
                                           [os.path.join(dataset.root, p) for p in several.example], audit,
                                           several.files)] \
        if several is not None and several.count and split is None else []
    return conflicting + [leak_warning(leak.model_dump(), audit, grouping.automatic_splits)
                          for leak in grouping.leaks if split in (None, leak.split)]


def lopsided_holdouts(grouping: Grouping, splits: dict, classes: list[str], share: float = 0.5) -> list[dict]:
    """Drawn val/test splits whose images of a class all come from outside the near-duplicate groups too large to
    hold out whole, where those groups hold at least `share` of the class (burst shots, video frames): whole groups
    kept out of the split leave it only the class's few odd images, so its scores say little about the rest.
    `splits`: name -> Split (decoded rows and labels)."""
    rows = np.concatenate([s.indices for s in splits.values()])
    labels = np.concatenate([s.labels for s in splits.values()])
    found = []
    for name in ("test", "val"):
        if name not in grouping.automatic or name not in splits:
            continue
        split = splits[name]
        for c in np.unique(split.labels):
            members = rows[labels == c]
            held = split.indices[split.labels == c]
            ids = grouping.ids(members)
            _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
            too_large = members[counts[inverse.ravel()] > len(held)]
            if len(too_large) >= share * len(members) and not np.isin(held, too_large).any():
                found.append({"split": name, "class": classes[int(c)], "held": int(len(held)),
                              "images": int(len(members)), "grouped": int(len(too_large))})
    return found


def lopsided_warning(item: dict, audit: str) -> str:
    are = "s are" if item["held"] != 1 else " is"
    return (f"the {item['split']} split's {item['held']} {item['class']!r} image{are} all from outside the "
            f"near-duplicate groups that hold {item['grouped']} of its {item['images']} images "
            f"(too large to hold out whole): {item['split']} scores for {item['class']!r} say little about those. "
            f"See them with {audit}")


def separated_warning(grouping: Grouping) -> str:
    return (f"{grouping.separated} near-duplicate group{'s' if grouping.separated != 1 else ''} divided between "
            f"{'/, '.join(grouping.automatic)}/: some class had no group small enough to hold out whole (or, in a "
            "cross-validation, fewer groups than folds), so its images were drawn one by one")
