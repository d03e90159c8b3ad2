"""Which images each compared run was scored on (`EvaluationSet`: the files and labels of its metrics' split), and
the sections of groups scored on the same images (or on splits their seeds drew from one folder): `compare` ranks a
group only against the groups of its section."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EvaluationSet:
    """The images a run's metrics.json was scored on. Two runs are ranked against each other only when their
    sets are the same: the same files with the same labels (key)."""

    key: str  # digest of the split's name and (path, label) list; without dataset.json, of its name and count
    split: str  # metrics.split: test, val, or DATA:split (a run evaluated on another folder by an older release)
    count: int
    data: str  # the data folder name(s)
    drawn: bool  # the run drew the split from its folder with its seed (no test/ or val/ folder)

    def describe(self, seeds: list[int] | None = None) -> str:
        where = f"{self.split} split of {self.data}" if ":" not in self.split else f"{short_value(self.split)}"
        text = f"{where}, {self.count:,} images"
        unique = sorted(set(seeds or []))
        if self.drawn and unique:
            text += f", drawn with seed{'s' if len(unique) > 1 else ''} {', '.join(map(str, unique))}"
        return text


@dataclass
class Section:
    """Groups scored on the same images, or on their seeds' draws of one folder: ranked against each other, and only
    against each other."""

    title: str
    groups: list[int]  # indices into Comparison.groups
    val_alike: bool = True  # every group validated on the same images (per seed drawn): val acc is ranked


def evaluation_set(metrics: Any, dataset: Any, data: Any) -> EvaluationSet:
    if dataset is not None:
        folders = list(getattr(dataset, "roots", None) or [dataset.root])
    else:
        folders = data if isinstance(data, list) else [data]
    given = data if isinstance(data, list) else [data]
    # an index file's images are named relative to its folder, which is the data set's root: name the file
    named = given if dataset is not None and dataset.task == "multilabel" and all(given) else folders
    names = ", ".join(Path(str(f)).name or str(f) for f in named)
    if dataset is None or metrics.split not in dataset.splits:
        key = f"{metrics.split}|{metrics.count}|{'|'.join(map(str, folders))}"
        return EvaluationSet(hashlib.sha256(key.encode()).hexdigest()[:16], metrics.split, metrics.count, names, False)
    # a split the run drew from its folder (flat layout, or val taken from train/) differs from seed to seed
    drawn = dataset.split_drawn(metrics.split)
    # the split's name too: a run without a test split scored its validation images, which chose its epoch (and
    # temperature), and were another run's test images under the same seed: never ranked as test scores
    key = hashlib.sha256(f"{metrics.split}|{digest(*dataset.split_answers(metrics.split))}".encode()).hexdigest()[:16]
    return EvaluationSet(key, metrics.split, metrics.count, names, drawn)


def digest(files: list[str], labels: list[Any]) -> str:
    """Which images with which labels: the same files and labels, the same digest."""
    digest = hashlib.sha256()
    for f, y in sorted(zip(files, labels)):
        digest.update(f"{f}\t{y}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


def sectioned(groups: list[Any]) -> tuple[list[Any], list[Section]]:
    """`compare`'s groups (`compare.Group`) ordered by evaluation set (first appearance), and one Section per set."""
    by_set: dict[tuple[Any, ...], list[Any]] = {}
    for g in groups:
        by_set.setdefault(tuple(e.key for e in g.evaluations), []).append(g)
    merged: dict[Any, tuple[Any, ...]] = {}  # drawn key -> the first set of the same draws
    for key in list(by_set):
        drawn = _drawn_key(by_set[key])
        if drawn is not None and drawn in merged:
            by_set[merged[drawn]] += by_set.pop(key)
        elif drawn is not None:
            merged[drawn] = key
    ordered, sections, titles = [], [], []
    for members in by_set.values():
        seeds = [r.seed for g in members for r in g.runs if r.evaluation is not None]
        titles.append(_section_title(tuple({e.key: e for g in members for e in g.evaluations}.values()), seeds))
        if len({tuple(e.key for e in g.evaluations) for g in members}) > 1:
            titles[-1] += "; the groups' seeds drew other splits, so each mean is over its own seeds' draws"
        sections.append(Section(titles[-1], list(range(len(ordered), len(ordered) + len(members)))))
        ordered += members
    for section, (key, members) in zip(sections, by_set.items()):
        if titles.count(section.title) > 1:  # same description, other files (a folder changed in between)
            section.title += f" [images {key[0][:6] if key else '-'}]"
        # validated on other images (another val_split), one group's val acc is no better than another's
        validated = {frozenset(r.val_set for r in g.runs) for g in members}
        if len(members) > 1 and len(validated) > 1:
            section.val_alike = False
            section.title += "; their validation images differ, so val acc is not ranked"
        trained = {r.data_set for g in members for r in g.runs}
        if len(members) > 1 and len(trained) > 1:  # a folder that grew between runs: scores differ by data too
            section.title += "; the groups trained on different images (see their labels), not only settings"
        if any(e.split == "val" for g in members for e in g.evaluations):
            # runs without a test split: val acc 70 % beside "test acc" 65 % on the same 10 images read as two sets
            section.title += ("; no test split, so the test columns score these validation images too, at the "
                              "evaluation's precision (val acc is training's own measure of them: a near tie may "
                              "fall the other way)")
    return ordered, sections


def _drawn_key(groups: list[Any]) -> tuple[Any, ...] | None:
    """Where each of the groups' runs drew its scored split from one folder with its seed: that folder and split
    (name, size), so groups of other seed sets share a section. Each seed's split is a random draw of the same
    images, so a mean over seeds 0-2 and one over seeds 0-1 estimate the same thing: three seeds against two
    ranked nothing. None where any split was not drawn (the same images, or none, are compared), and where a group
    has a single seed: one draw of a few images is no mean, and its noise alone would pick the best."""
    scored = [r for g in groups for r in g.runs if r.evaluation is not None]
    if not scored or not all(r.evaluation.drawn and r.data_set for r in scored):
        return None
    # seeds, not runs: a run resumed with other settings and one trained at them throughout are two runs of one
    # seed (compare keeps both), one draw of the split; so are the folds of one seed, which rotate validation
    # and share the seed's test draw
    if any(len({r.seed for r in g.runs if r.evaluation is not None}) < 2 for g in groups):
        return None
    return ("drawn", frozenset((r.evaluation.split, r.evaluation.count, r.data_set) for r in scored))


def _section_title(sets: tuple[EvaluationSet, ...], seeds: list[int]) -> str:
    """What the groups of a section were scored on; a split drawn per seed names the seeds that drew it."""
    if not sets:
        return "not evaluated (no metrics.json)"
    first = sets[0]
    if all((e.split, e.data, e.count, e.drawn) == (first.split, first.data, first.count, first.drawn) for e in sets):
        return first.describe(seeds)
    return "; ".join(e.describe() for e in sets)


def short_value(v: Any, limit: int | None = 40) -> str:
    """A value as a cell shows it: at most `limit` characters (None: whole), a long path by its folder's name."""
    text = json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)
    if isinstance(v, str) and len(text) > (limit or 40) and ("/" in text or os.sep in text):
        text = Path(text).name  # data folders: the folder name tells them apart
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def resumed_note(resumes: list[Any] | None) -> str | None:
    """'resumed after epoch 2 with batch size, augment changed' for a run whose resumes changed what it trains
    with (epochs alone change no epoch's training), else None."""
    changes = [(r.where, [c.setting.replace("_", " ") for c in r.changed if c.setting != "epochs"])
               for r in resumes or []]
    changes = [(where, names) for where, names in changes if names]
    if not changes:
        return None
    return "; ".join(f"resumed {where} with {', '.join(names)} changed" for where, names in changes)
