"""Whether the images a run was trained on are still the ones the data lists: the checks a resume, a
cross-validation's re-run, a search's resume and calibrate make before they read a run's data again."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import bad_path, invalid
from ..io import relative_path
from ..records import RunDir
from ..file_names import shell_word


def refuse_missing_data(data: str | list[str] | None) -> None:
    """A DATA that is not there (a typo), refused before anything is written: with --overwrite the folds' summary
    was removed and the folder marked as an overwrite begun, so the right command then read as "an --overwrite
    with other settings was interrupted there" though no fold had trained."""
    for given in [data] if isinstance(data, (str, os.PathLike)) else list(data or []):
        if not os.path.exists(given):
            raise bad_path("data", given, "an existing folder or index file", "no such path")


def data_listing(cfg: Any) -> Any:
    """The data folders as a run of `cfg` lists them (layout, classes chosen), without decoding an image."""
    from ..data.merge import scan_folders
    from ..data.select import Selection, select_classes

    return select_classes(scan_folders(cfg.data, allow_empty=True),
                          Selection(cfg.classes, cfg.drop_classes, None, cfg.seed))


def labelled_images(cfg: Any, scan: Any = None) -> set[tuple[str, str | None]] | None:
    """(real path, label) of every image the data lists now, one pair per label an image carries ((path, None) for
    an image of an index that carries none): real paths, as data given through a link, or a subset's tree of
    links, is the same images; labels too, as a link added under another class is a new labelled image. scan: the
    folder listing where the caller made it (`data_listing`). None where it cannot be told without reading the
    run's way (an index whose labels are chosen with classes or drop_classes)."""
    from ..data.multilabel import is_label_index, read_label_index

    if scan is None and is_label_index(cfg.data):
        if cfg.classes or cfg.drop_classes:
            return None
        index = read_label_index(cfg.data)
        items: set[tuple[str, str | None]] = set()
        for path, row in zip(index.files, index.targets):
            real = os.path.realpath(path)
            items |= {(real, index.classes[j]) for j in row.nonzero()[0]} or {(real, None)}
        return items
    scan = scan if scan is not None else data_listing(cfg)
    return {(os.path.realpath(p), label) for items in scan.files.values() for p, label in items}


def images_changed(run: RunDir, images: set[tuple[str, str | None]], capped: bool) -> str | None:
    """How the labelled images a finished run was split from differ from `images` (`labelled_images`): "3 added,
    1 relabelled, 1 gone", None where they do not: the runs of a cross-validation or a search are compared on their
    splits, which other images redraw. capped: per_class_max, under which the run lists what its caps kept, so
    images added are not counted."""
    record = run.read_dataset()
    root = Path(record.root)
    recorded: dict[str, set[str | None]] = {}
    for split in record.splits.values():
        sets = split.label_sets if split.label_sets is not None else [[label] for label in split.labels]
        for file, ids in zip(split.files, sets):
            recorded.setdefault(os.path.realpath(root / file), set()).update(record.classes[j] for j in ids)
    now: dict[str, set[str | None]] = {}
    for path, label in images:
        now.setdefault(path, set()).add(label)
    unreadable = {os.path.realpath(s.path) for s in record.skipped}  # listed by the folder, in no split
    gone = recorded.keys() - now.keys()
    added = set() if capped else {path for path in now.keys() - recorded.keys() if path not in unreadable}
    relabelled = set()
    multilabel = any(split.label_sets is not None for split in record.splits.values())
    for path in recorded.keys() & now.keys():
        was, is_now = recorded[path] - {None}, now[path] - {None}  # an image of no label is listed with None
        if was == is_now:
            continue
        if multilabel or not (was < is_now or is_now < was):  # a label set changed: one image, relabelled
            relabelled.add(path)
        elif was < is_now:  # one file under one more class folder (a link): one more labelled image
            added |= set() if capped else {path}
        else:
            gone.add(path)
    counts = ((len(added), "added"), (len(relabelled), "relabelled"), (len(gone), "gone"))
    said = ", ".join(f"{n} {word}" for n, word in counts if n)
    return said or None


def check_data_in_place(run: RunDir, cfg: Any, argument: str, command: str) -> None:
    """The data the run trained on (config.yaml's data: folders, or a multi-label index file) still where it was:
    else a command that reads it again (a resume, calibrate) said "data must be an existing folder", naming a
    setting the user never gave it."""
    datas = [cfg.data] if isinstance(cfg.data, (str, os.PathLike)) else list(cfg.data or [])
    gone = [d for d in datas if not os.path.exists(d)]
    if gone:
        raise invalid(argument, run.path, "a run whose data is where it was trained (config.yaml's data)",
                      note=f"{gone[0]} is no longer there",
                      hint=f"Put it back at {gone[0]}; {command} reads the run's own images again")


def check_same_images(run: RunDir, now: Any, cfg: Any) -> None:
    """Refuse to resume on images other than the run's: a file added to or gone from the data folder draws other
    splits, and the resumed epochs would train on images the earlier ones held out (`now`: the resumed run's
    DatasetRecord, before anything is written)."""
    stored = run.read_dataset()
    changes = []
    for split in sorted(set(stored.splits) | set(now.splits), key=["train", "val", "test"].index):
        old, new = dict(zip(*_files(stored, split))), dict(zip(*_files(now, split)))
        if old != new:
            relabelled = sum(old[f] != new[f] for f in old.keys() & new.keys())
            counts = ((len(new.keys() - old.keys()), "added"), (len(old.keys() - new.keys()), "gone"),
                      (relabelled, "relabelled"))
            changes.append(f"{split}: " + ", ".join(f"{n} {word}" for n, word in counts if n))
    if stored.streamed != now.streamed:
        # near-duplicate groups draw a split only from a cached decode, and streamed images' mean and std are
        # measured on fewer of them: the resumed epochs would see other inputs than the earlier ones
        was, now_is = ("cached", "streamed") if now.streamed else ("streamed", "cached")
        why = (f"the split drawn otherwise ({'; '.join(changes)})" if changes else
               "their mean and std measured on another sample of the training images")
        raise invalid("cache_budget", cfg.cache_budget, f"a budget that keeps its images {was}, as when it was "
                      "trained", where=f"--resume {run.path}", note=f"they would be {now_is}, and {why}",
                      hint="Resume with the --cache-budget the run was trained with")
    if not changes and stored.files_stamp and now.files_stamp and stored.files_stamp != now.files_stamp:
        from ..notices import warn

        warn("the images of this run's splits changed since it last trained (the same files and labels, but sizes "
             "or modification times differ: edited, re-encoded or replaced, or copied without their times): the "
             "resumed epochs train on them as they are now")
    if changes:
        raise invalid("data", cfg.data, "the images this run was trained on, as its dataset.json lists them",
                      where=f"--resume {run.path}", note=_folder_changes(stored, now, changes),
                      hint=f"Put the folder back as it was (if it is, an older release drew this run's split), or "
                           "train a new run on it: imgclf train DATA --config "
                           f"{shell_word(run.file('config.yaml'))} --out NEW")


def _folder_changes(stored: Any, now: Any, by_split: list[str]) -> str:
    """What changed in the folder, then what that did to the splits: 104 images deleted from one class read as
    "train: 220 added, 304 gone; val: ..." (the split is drawn again from what is left)."""
    splits = ("train", "val", "test")
    old = {f: y for split in splits for f, y in zip(*_files(stored, split))}
    new = {f: y for split in splits for f, y in zip(*_files(now, split))}
    gone, added = sorted(old.keys() - new.keys()), sorted(new.keys() - old.keys())
    relabelled = sorted(f for f in old.keys() & new.keys() if old[f] != new[f])
    # a listed image that is still there but no longer decodes is not "gone": say what is wrong with it
    from ..data.merge import REPEATED_REASON

    unreadable = {relative_path(s.path, now.root): s.reason for s in now.skipped}
    # a second link to a file listed already is used once now (since 2026-12-07): not unreadable, not gone
    repeated = [f for f in gone if unreadable.get(f) == REPEATED_REASON]
    broken = [f for f in gone if f in unreadable and f not in repeated]
    gone = [g for g in gone if g not in unreadable]
    said = []
    if repeated:
        links = "is a link" if len(repeated) == 1 else "are links"
        said.append(f"{len(repeated):,} of the images dataset.json lists {links} to a file listed already, which "
                    f"imgclf now uses once (e.g. {repeated[0]}; trained before, such a run cannot be resumed)")
    if broken:
        said.append(f"{len(broken):,} of the images dataset.json lists cannot be read now (e.g. {broken[0]}: "
                    f"{unreadable[broken[0]]})")
    if gone:
        said.append(f"{len(gone):,} of the images dataset.json lists {'is' if len(gone) == 1 else 'are'} gone "
                    f"(e.g. {gone[0]})")
    if relabelled:
        said.append(f"{len(relabelled):,} {'is' if len(relabelled) == 1 else 'are'} labelled otherwise now "
                    f"(e.g. {relabelled[0]})")
    if added:
        said.append(f"{len(added):,} image{' is' if len(added) == 1 else 's are'} new (e.g. {added[0]})")
    if not said:
        return "the same images, split otherwise (" + "; ".join(by_split) + ")"
    return ", ".join(said) + "; the splits drawn from the folder now differ (" + "; ".join(by_split) + ")"


def _files(record: Any, split: str) -> tuple[list[str], list[Any]]:
    """A split's files and class names (label sets of names for multi-label data) from a DatasetRecord; empty when
    absent. Names, not ids: a class added to the folder shifts the ids after it, which read as every later class's
    images relabelled."""
    if split not in record.splits:
        return [], []
    files, names = record.splits[split], record.classes
    if files.label_sets is not None:
        return files.files, [tuple(sorted(names[j] for j in s)) for s in files.label_sets]
    return files.files, [names[y] for y in files.labels]
