"""Byte-identical images under more than one class of a single-label data set: copies with conflicting labels,
or one file linked into several class folders (how a multi-label tree is laid out). Training warns of them and
records them in dataset.json; the audit lists them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# the audit reads class folders: a multi-label run's warnings cannot name a command that lists its copies or leaks
NO_MULTILABEL_AUDIT = "imgclf audit lists such images for single-label class folders only"


@dataclass(frozen=True)
class SeveralClassesFound:
    """Byte-identical images under more than one class: `count` pictures, held in `files` files (10 copies of one
    placeholder in each of 3 classes: 1 picture, 30 files), `linked` of the pictures one file reached through
    hard or symbolic links, and one picture's paths as the `example`."""

    count: int
    linked: int
    example: list[str]
    files: int


def files_in_several_classes(grouping: Any, splits: dict, paths: list[str]) -> SeveralClassesFound:
    """Byte-identical images under more than one class of a single-label data set, or with different label sets
    in a multi-label one. Links are how a multi-label folder tree is laid out (`--task multilabel` reads it as
    label sets, one row per file); copies are conflicting labels."""
    members: dict[str, list[tuple[int, Any]]] = {}
    for split in splits.values():
        # a multi-label row's label is its set (its `labels` entry is only its rarest label)
        labels = (np.asarray(split.labels).tolist() if split.targets is None
                  else [tuple(np.flatnonzero(row).tolist()) for row in np.asarray(split.targets)])
        for row, label in zip(np.asarray(split.indices).tolist(), labels):
            if grouping.digests[row]:
                members.setdefault(grouping.digests[row], []).append((row, label))
    conflicting = [m for m in members.values() if len({label for _, label in m}) > 1]
    linked = sum(linked_under_several_classes([paths[row] for row, _ in m], [label for _, label in m])
                 for m in conflicting if not isinstance(m[0][1], tuple))
    example = [paths[row] for row in _one_per_class_first(conflicting[0])] if conflicting else []
    return SeveralClassesFound(len(conflicting), linked, example, sum(len(m) for m in conflicting))


def linked_under_several_classes(paths: Sequence[str], labels: Sequence[int]) -> bool:
    """Whether one file among `paths` (reached through hard or symbolic links) sits under more than one of the
    `labels`: how a multi-label folder tree is laid out, not two people's labels. Training's warning and the
    audit's both ask it of a group of identical pictures."""
    from .folder import file_identity

    classes_of: dict[object, set[int]] = {}
    for path, label in zip(paths, labels):
        try:
            key: object = file_identity(path)
        except OSError:  # gone since it was read: its own file
            key = path
        classes_of.setdefault(key, set()).add(int(label))
    return any(len(found) > 1 for found in classes_of.values())


def _one_per_class_first(group: list[tuple[int, int]]) -> list[int]:
    """A group's rows with one of each class first: the warning names the first two, which were two copies under
    one class (a/x.png and a/x_copy.png) where a third, under b, was the conflict."""
    seen: set[int] = set()
    firsts = [row for row, label in group if not (label in seen or seen.add(label))]
    return firsts + [row for row, _ in group if row not in firsts]


def several_classes_warning(count: int, linked: int, example: list[str], audit: str | None,
                            files: int | None = None) -> str:
    """audit: the `imgclf audit` command that lists them (`audit_command`; None for multi-label data, whose copies
    differ in their label sets). files: how many files the `count` pictures are (None: a run recorded before it
    was counted)."""
    shown = " and ".join(repr(p) for p in example[:2]) + (" ..." if len(example) > 2 else "")
    if audit is None:
        return (f"{files or count} files ({count} picture{'s' if count != 1 else ''}) are byte-identical copies "
                f"with different label sets (e.g. {shown}): conflicting labels; {NO_MULTILABEL_AUDIT}")
    if not linked and files is not None:
        pictures = f"{count} picture{'s' if count != 1 else ''}"
        return (f"{files} files ({pictures}) are byte-identical copies under different classes (e.g. {shown}): "
                f"conflicting labels; run `{audit}` for the list")
    if linked:
        return (f"{count} image{'s' if count != 1 else ''} sit{'s' if count == 1 else ''} in several class folders, "
                f"{linked} as links to one file (e.g. {shown}): a single-label run learns each under one class and "
                "counts the others as its errors; if an image may carry several labels, train with --task multilabel")
    return (f"{count} image{'s are' if count != 1 else ' is'} byte-identical under different classes (e.g. {shown}): "
            f"conflicting labels; run `{audit}` for the list")
