"""Layouts of a class-folder tree that are most likely not what the user meant, found when a folder is scanned
(`folder.scan_folder`), so that train and inspect say the same: imgclf's own output given as data or kept among the
class folders, class names alike but for case or spaces, the classes one level further down."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from ..errors import bad_path
from ..notices import warn
from ..run_markers import holds_runs, is_run_dir
from .file_kinds import INDEX_SUFFIXES, SUBSET_LIST_HINT, is_subset_list
from ..file_names import shell_word


IMGCLF_OUTPUT_REASON = ("imgclf's output (a run, a folder of runs, a cross-validation or a search), not a class "
                        "folder: not read (move it out of the data folder)")


def refuse_imgclf_output(root: Path) -> None:
    """A folder imgclf wrote, given as data: a run's checkpoints/, plots/ and evaluations/, a cross-validation's
    fold-N or a search's trials/ were taken for class folders. A run is known by the pair of files every training
    writes first (a data folder may well keep a config.yaml of its own)."""
    what = imgclf_output(root)
    if what is None:
        return
    hint = f"to continue the run: imgclf train --resume {shell_word(root)}" if what == "a run directory" else \
        "its runs' config.yaml say which"
    raise bad_path("data", root, "a folder of class folders", f"{what}, not an image folder",
                   hint=f"Its images are in the data folder it trained on; {hint}")


def holds_imgclf_output(folder: Path) -> bool:
    """`folder` is imgclf's output, or holds runs (a runs/ folder kept in the data folder)."""
    try:
        return imgclf_output(folder) is not None or holds_runs(folder)
    except OSError:
        return False


def imgclf_output(folder: Path) -> str | None:
    """What imgclf wrote `folder` as (a run, a cross-validation, a search), in words; None for anything else."""
    if is_run_dir(folder):
        return "a run directory"
    if (folder / "folds.json").is_file() or is_run_dir(folder / "fold-1"):
        return "a cross-validation folder"
    if (folder / "search.yaml").is_file() and (folder / "study.db").is_file():
        return "a search folder (imgclf tune)"
    return None


def alike_class_names(classes: list[str]) -> list[list[str]]:
    """Groups of class names that differ only in case or spaces (Cat/ beside cat/, 'cat ' beside 'cat'): each is a
    class of its own, which a user rarely means."""
    alike: dict[str, list[str]] = {}
    for name in classes:
        alike.setdefault(" ".join(name.lower().split()), []).append(name)
    return [names for names in alike.values() if len(names) > 1]


def class_key(name: str) -> str:
    """A class name as folders are read: its NFC form (see `_scan_class_tree`); a run trained before that keeps
    the name as its folder spelt it, NFD perhaps, and is matched to a folder by this key."""
    return unicodedata.normalize("NFC", name)


def class_names_flag(setting: str, names: list[str]) -> str:
    """How to give `names` to --classes / --drop-classes (`setting`): the command line strips the spaces around
    a name and splits at commas, so such names go in a --config file, as a YAML list."""
    import shlex

    if any("," in n or n != n.strip() for n in names):
        return f"{setting}: {names!r} in a --config file (the command line strips spaces and splits at commas)"
    return f"--{setting.replace('_', '-')} {shlex.quote(','.join(names))}"


def leave_out_flag(names: list[str], classes: list[str] | None = None,
                   drop_classes: list[str] | None = None) -> str:
    """How to leave `names` out on top of the choice already made: --drop-classes with the classes dropped already
    (following a hint of the new ones alone brought those back), or --classes without `names` (the two settings
    cannot be given together)."""
    if classes:
        return class_names_flag("classes", [c for c in classes if class_key(c) not in names])
    dropped = list(drop_classes or [])
    return class_names_flag("drop_classes", dropped + [n for n in names if n not in map(class_key, dropped)])


def extra_classes_hint(extra: list[str], classes: list[str], train_name: str, here: str,
                       present: list[str] = ()) -> str:
    """What to do with classes a val/ or test/ holds and train/ lacks: a name alike to one of train/'s but for case
    or spaces is the same class misspelt (test/cat beside train/Cat), which moving the folder out would lose; where
    the split holds that class under train/'s own name too (present: the split's classes), the two merge."""
    def key(name: str) -> str:
        return " ".join(name.lower().split())

    known = {key(c): c for c in classes}
    alike = [name for name in extra if key(name) in known]
    others = [name for name in extra if key(name) not in known]
    steps = []
    if alike:
        said = [f"{here}{name!r} {'into' if known[key(name)] in present else 'to'} {known[key(name)]!r}"
                for name in alike[:3]]
        merged = [known[key(n)] in present for n in alike[:3]]
        verb = "merge" if all(merged) else "rename" if not any(merged) else "rename or merge"
        steps.append(f"Class names differ from {train_name}'s only in case or spaces: {verb} {', '.join(said)}"
                     f"{' ...' if len(alike) > 3 else ''} (or rename the class folder of {train_name}) so that they "
                     "match")
    if others:
        steps.append(f"{'G' if not steps else 'g'}ive {train_name} images of {others[:3]}"
                     f"{' ...' if len(others) > 3 else ''}, or move their folders out of {here}")
    return "; ".join(steps)


def warn_of_alike_class_names(root: Path | str, classes: list[str], within: list[list[str]] = ()) -> None:
    """root: the data folder, or the folders merged, as the warning names them. within: the merged folders'
    classes, each folder's pairs warned of already (by its own scan)."""
    twins = [t for t in alike_class_names(classes) if not any(set(t) <= set(names) for names in within)]
    if twins:
        shown = "; ".join(" and ".join(repr(n) for n in names) for names in twins[:3]) + (" ..." if len(twins) > 3
                                                                                         else "")
        warn(f"class folders of {root} that differ only in case or spaces are different classes ({shown}): "
             "merge each pair into one folder if they are one class")


def _sub_folders(folder: Path) -> tuple[list[str], bool]:
    """The names of `folder`'s visible sub-folders, and whether it holds any file of its own."""
    names, files = [], False
    try:
        for entry in os.scandir(folder):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                names.append(entry.name)
            elif entry.is_file():
                files = True
    except OSError:
        return [], True
    return sorted(names), files


def warn_of_classes_one_level_down(root: Path, class_dirs: list[Path], split_of=lambda name: None) -> None:
    """Class folders that hold no file of their own but the same sub-folders (batch1/{cat,dog}, batch2/{cat,dog}):
    trained as classes batch1 and batch2 without a word (test accuracy at chance). Warned, not refused: cat/{flickr,
    google} and dog/{flickr,google} (images by source) are laid out alike and are what they seem. split_of: the
    split a folder name stands for, or None: sub-folders that are all splits (cat/{train,test}) are a CLASS/SPLIT
    layout, whose test images were trained on, and merging the class folders (the other advice) fails there."""
    if len(class_dirs) < 2:
        return
    layouts = [_sub_folders(folder) for folder in class_dirs]
    subs = {tuple(names) for names, files in layouts}
    if len(subs) != 1 or any(files for _, files in layouts):
        return
    (names,) = subs
    if len(names) < 2:
        return
    shown = ", ".join(f"{n}/" for n in names[:5]) + (" ..." if len(names) > 5 else "")
    folders = ", ".join(f"{folder.name}/" for folder in class_dirs[:3]) + (" ..." if len(class_dirs) > 3 else "")
    if all(split_of(name) for name in names):
        first = class_dirs[0].name
        moves = ", ".join(f"{first}/{name}/ to {name}/{first}/" for name in names[:3])
        held_out = ", ".join(f"{name}/" for name in names if split_of(name) != "train") or "them"
        warn(f"the class folders of {root} ({folders}) each hold the split folders {shown}: imgclf reads SPLIT/CLASS "
             f"folders, not CLASS/SPLIT, so each class's images are one pool it draws its own splits from, and the "
             f"images in {held_out} are drawn into training like any other; to keep your split, move {moves} (and "
             "so on for each class)")
        return
    joined = " ".join(shell_word(folder) for folder in class_dirs[:3]) + (" ..." if len(class_dirs) > 3 else "")
    warn(f"the class folders of {root} ({folders}) each hold the same sub-folders ({shown}) and no image of their "
         f"own: they are trained as the classes {folders}; if {shown} are the classes, give each folder as data "
         f"(imgclf train {joined} merges them)")


def index_file_hint(folder: Path) -> str | None:
    """Where a folder with too few class folders holds an index of label sets, that index is what to give: README
    lists index.csv among the data layouts, and `train ix/` (ix/index.csv, ix/images/) was told of class folders."""
    try:
        found = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in INDEX_SUFFIXES)
    except OSError:
        return None
    if not found:
        return None
    listed = next((name for name in found if is_subset_list(folder / name)), None)
    if listed is not None:  # its images are elsewhere: pointing at the list as an index led to a second refusal
        return (f"It holds {listed}, the file list `imgclf subset --mode list` writes for other tools, and no "
                f"images. {SUBSET_LIST_HINT}")
    # index.csv before the others (a folder of results.csv and index.csv was pointed at results.csv)
    index = next((name for name in found if Path(name).stem.lower() == "index"), found[0])
    others = [name for name in found if name != index]
    besides = f" (or {', '.join(others[:3])}{' ...' if len(others) > 3 else ''})" if others else ""
    return (f"If {index}{besides} in it is an index of label sets (multi-label data), give that file as the data of "
            f"a multi-label run's train, evaluate or inspect (the others read class folders): {folder / index}")
