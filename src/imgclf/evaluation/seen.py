"""Which evaluated images the run has already seen: files of its train or val split, found by path or by
identical bytes at another path. Scores on them are not held-out scores, and `evaluate --data` says so."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

from ..duplicates.hashing import content_digests
from ..records import DatasetRecord, RunDir, SeenImages

LEARNT_FROM = ("train", "val")  # the run fits the first and chooses its epoch, threshold and temperature on the second
_EXAMPLES = 5


def _real(path: str) -> str:
    return os.path.realpath(path)


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:  # moved or deleted since training: it can match nothing
        return None


def seen_in_training(files: list[str], dataset: DatasetRecord) -> SeenImages | None:
    """The evaluated `files` that are the run's train or val files: the same file (after symlinks) or a copy with
    identical bytes. Only same-sized files are read, so a folder with no copies costs one stat per training file.
    Training files that are gone are counted (`unchecked`): with the run's data folder moved, the check found
    nothing and said nothing. None when there are none of either."""
    split_of: dict[str, str] = {}
    by_size: dict[int, list[tuple[str, str]]] = defaultdict(list)
    unchecked = 0
    for split in LEARNT_FROM:
        if split not in dataset.splits:
            continue
        for path in dataset.split_paths(split)[0]:
            real = _real(path)
            split_of.setdefault(real, split)
            size = _size(real)
            if size is not None:
                by_size[size].append((real, split))
            else:
                unchecked += 1
    counts: dict[str, int] = defaultdict(int)
    examples: list[str] = []
    copies = 0
    digests_by_size: dict[int, dict[str, str]] = {}  # the training files of a size, hashed once when first needed
    for path in files:
        real = _real(path)
        split = split_of.get(real)
        if split is None:
            size = _size(real)
            if size is None or size not in by_size:
                continue
            if size not in digests_by_size:
                same = by_size[size]
                known = digests_by_size[size] = {}
                for digest, (_, train_split) in zip(content_digests([p for p, _ in same]), same):
                    if digest:  # "" for a file that cannot be read any more
                        known.setdefault(digest, train_split)  # train before val
            digest = content_digests([real])[0]
            split = digests_by_size[size].get(digest) if digest else None
            if split is None:
                continue
            copies += 1
        counts[split] += 1
        if len(examples) < _EXAMPLES:
            examples.append(path)
    if not counts and not unchecked:
        return None
    return SeenImages(images=sum(counts.values()), by_split=dict(counts), exact_copies=copies, examples=examples,
                      unchecked=unchecked)


def whole_split(split: str, count: int) -> SeenImages | None:
    """The run's own train or val split, evaluated as such: every image seen."""
    if split not in LEARNT_FROM or count == 0:
        return None
    return SeenImages(images=count, by_split={split: count})


def seen_by_run(run: RunDir, files: list[str], other_folder: bool, split: str) -> SeenImages | None:
    """`seen_in_training` for a folder given to evaluate (`other_folder`), else `whole_split` for a split of the
    run's own data (its test split: none seen; its val split, which a run without a test split falls back to:
    all)."""
    if not other_folder:
        return whole_split(split, len(files))
    if not run.file("dataset.json").exists():  # a run without its data set's record: nothing to compare with
        return None
    return seen_in_training(files, run.read_dataset())


def seen_warning(seen: SeenImages, evaluated: int) -> str:
    """One line for the console: how many, from which split, and why it matters; and how many of the run's own
    files could not be compared."""
    parts = ", ".join(f"{split} {n:,}" for split, n in seen.by_split.items())
    copies = f"; {seen.exact_copies:,} of them identical copies at another path" if seen.exact_copies else ""
    said = [f"{seen.images:,} of the {evaluated:,} evaluated images are images the run trained or selected on "
            f"({parts}{copies}): these scores are not held-out scores"] if seen.images else []
    if seen.unchecked:
        said.append(f"{seen.unchecked:,} of the run's train and val files are gone from where it trained (moved or "
                    "deleted), so evaluated images that are those images could not be recognised: put the run's "
                    "data back where it was to check that these scores are held-out scores")
    return "; ".join(said)


FEW_IMAGES = 30  # below this, one image moves a split's accuracy by more than 3 points


def few_images_note(config: Any, task: str, val_images: int, scored: int, split: str) -> str | None:
    """A validation split too small to choose with, or a scored split too small to judge by: what training warns
    of, said again where the scores are read (the report). None where neither is small."""
    notes = []
    if 0 < val_images < FEW_IMAGES:
        chosen = chosen_on_validation(config, task)
        notes.append(f"the validation split holds {val_images} image{'s' if val_images != 1 else ''}: {chosen} "
                     f"{'are' if ' and ' in chosen else 'is'} chosen on them")
    if 0 < scored < FEW_IMAGES and split != "val":
        notes.append(f"the {split} scores rest on {scored} image{'s' if scored != 1 else ''}, so one image moves "
                     f"accuracy by {100 / scored:.1f} points and a class's recall by more")
    return "; ".join(notes) or None


def chosen_on_validation(config: Any, task: str = "single") -> str:
    """What a run's val split chooses: the epoch kept (restore_best, early stopping), the temperature (unless
    calibrate is none), the unknown threshold, or each label's decision threshold; all a run may choose there where
    its settings are unknown (`config` None)."""
    chosen = ["the epoch kept"] if config is None or config.restore_best or config.early_stopping is not None else []
    if task == "multilabel":
        chosen.append("each label's decision threshold")
    else:
        chosen += (["the temperature"] if config is None or config.calibrate != "none" else []) + \
            ["the unknown threshold"]
    return ", ".join(chosen[:-1]) + (" and " if len(chosen) > 1 else "") + chosen[-1]


def validation_scores_note(config: Any, task: str = "single") -> tuple[str, bool]:
    """What the scores of a run without a test split are (its own evaluation falls back to the val split), and
    whether they overstate: the val images chose the epoch kept (best epoch or early stop) and the temperature and
    unknown threshold, or each label's decision threshold. Kept its last epoch, a single-label run's accuracy is
    not chosen on them, only its calibration and unknown-input figures. `config`: the run's TrainConfig."""
    if config is not None and config.test_split == 0:
        cause, fix = "the run has no test split (trained with test_split 0)", "train with a test split (--test-split)"
    else:  # a split folder without test/, or an index whose split column names no test row: test_split is unused
        cause, fix = ("the data has no test split (no test/ folder, or no row of split test)",
                      "give it test images (a test/ folder, or rows of split test)")
    chose = chosen_on_validation(config, task)
    overstates = task == "multilabel" or chose.startswith("the epoch kept")
    consequence = ("so they overstate what new images would score" if overstates else
                   "so its calibration and unknown-input figures overstate (not its accuracy: training kept the last "
                   "epoch)")
    return (f"{cause}: these are its validation scores, on the images that chose {chose}, {consequence}; {fix} "
            "for scores to quote"), overstates


def stored_validation_scores_note(run: RunDir, task: str = "single") -> str:
    """`validation_scores_note` of a finished run, from its config.yaml (the general wording without one)."""
    return validation_scores_note(run.read_config() if run.has("config.yaml") else None, task)[0]
