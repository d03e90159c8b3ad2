"""What training says of its splits before it trains: near-duplicates shared between user-given splits, a validation
split too small to choose with, a split lacking a class, a class named like the unknown verdict. Warnings with
counts, never refusals: the folders are the user's choice."""

from __future__ import annotations

from pathlib import Path

from ..config import TrainConfig
from ..data.prepared import PreparedData
from ..evaluation.seen import FEW_IMAGES as FEW_VALIDATION_IMAGES, chosen_on_validation
from ..notices import warn



# the kind of the warning that the val split is too small to choose with (`notices.hold_back` takes it); each
# count is said once (a study's cells, a search's trials)
FEW_VALIDATION_WARNING = "few validation images"


def more_validation_images(cfg: TrainConfig) -> str:
    """How to give a run's validation split more images: a cross-validation validates on a fold, where
    --val-split changes nothing (its own warning says so)."""
    if cfg.folds:  # (2 is the fewest: then only more images help)
        return "fewer --folds, each fold a larger share, or more images" if cfg.folds > 2 else "more images"
    return "--val-split, or more images"


def warn_about_splits(data: PreparedData, folders: list[str], run_dir: Path, cfg: TrainConfig) -> None:
    """User-given splits that share near-duplicates, a validation split too small to choose with, and val or test
    splits lacking a class (an automatic split of a class with fewer images than splits): a warning with counts
    (stderr, even without progress), never a refusal: the folders are the user's choice."""
    from ..data.groups import audit_command, leak_warning, lopsided_warning, separated_warning
    from ..data.several_classes import files_in_several_classes, several_classes_warning
    from ..io import terminal_safe

    for note in data.split_notes:
        warn(note)
    val = len(data.splits["val"]) if "val" in data.splits else 0
    if 0 < val < FEW_VALIDATION_IMAGES:
        chosen = chosen_on_validation(cfg, data.task)
        verb = "are" if " and " in chosen else "is"
        warn(f"the val split holds {val} image{'s' if val != 1 else ''}: {chosen} {verb} chosen on them; give it "
             f"more ({more_validation_images(cfg)})", key=f"{FEW_VALIDATION_WARNING}: {val}")
    from ..ood import UNKNOWN_LABEL

    if data.task != "multilabel" and UNKNOWN_LABEL in data.classes:
        warn(f"a class is named {UNKNOWN_LABEL!r}, the label predictions give an image like none of the "
              f"classes: predict, serve and predictions.csv tell the two apart by their 'unknown' field (true for "
              f"the verdict), or rename the class folder")
    kind = ("label", "labels") if data.task == "multilabel" else ("class", "classes")
    for split, classes in data.missing_classes().items():
        names = ", ".join(repr(c) for c in classes[:10]) + (" ..." if len(classes) > 10 else "")  # repr escapes
        many = len(classes) > 1
        warn(f"the {split} split holds no image of {len(classes)} {kind[many]} ({names}): {split} scores "
              f"say nothing about {'them' if many else 'it'}; give {'those' if many else 'that'} {kind[many]} more "
              "images")
    if data.grouping is None:  # streamed, or --no-group-duplicates: no content hashes to find such files by
        return
    # the run's own audit once it has trained: its size and its split, so the counts match these
    audit = audit_command(folders, data.img_size, run_dir) if data.task != "multilabel" else None

    def warn_naming_run(text: str) -> None:  # the same warning in each trial of a search, whose runs differ
        warn(text, key=text.replace(audit, "") if audit else text)
    several = files_in_several_classes(data.grouping, data.splits, data.decoded.paths)
    if several.count:
        shown = [terminal_safe(p) for p in several.example]
        warn_naming_run(several_classes_warning(several.count, several.linked, shown, audit, several.files))
    for leak in data.grouping.leaks:
        warn_naming_run(leak_warning(leak, audit, data.grouping.automatic))
    if data.grouping.separated:
        warn(separated_warning(data.grouping))
    for item in data.grouping.lopsided:
        warn_naming_run(lopsided_warning(item, audit))
