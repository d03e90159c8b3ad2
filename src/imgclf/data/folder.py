"""Scan class-per-folder image trees into a `FolderScan`: classes, files per split, skipped files."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..config_text import plural
from ..errors import ImgclfError, bad_path, invalid
from ..file_names import is_utf8_name, printable_path, shell_word
from .fetch_record import warn_of_an_unfinished_fetch
from .folder_checks import (IMGCLF_OUTPUT_REASON, holds_imgclf_output, imgclf_output,  # noqa: F401 (run_folder's)
                            class_key, extra_classes_hint, index_file_hint, leave_out_flag, refuse_imgclf_output,
                            warn_of_alike_class_names, warn_of_classes_one_level_down)
from .file_kinds import (IMAGE_EXTENSIONS, INDEX_SUFFIXES, NOT_AN_IMAGE_NAME, NOT_UTF8_NAME,  # noqa: F401
                         left_out_by_name, special_file_reason, unread_photo_reason)


SPLIT_NAMES = ("train", "val", "test")
# Kaggle's trees name them training/ and testing/ (Brain Tumor MRI) or training_set/ and test_set/ (cats and
# dogs): read as anything else, each split folder became one class of the other's class folders flattened
_SPLIT_ALIASES = {"train": "train", "training": "train", "train_set": "train", "training_set": "train",
                  "val": "val", "valid": "val", "validation": "val", "val_set": "val", "valid_set": "val",
                  "validation_set": "val",
                  "test": "test", "testing": "test", "test_set": "test", "testing_set": "test"}
SPLIT_FOLDER_NAMES = ("train, val, valid, validation and test (also training, testing and each with _set, such as "
                      "training_set)")  # any case


@dataclass
class FolderScan:
    """What is on disk: one list of (path, class name) per split folder found, plus skipped entries."""

    root: Path
    layout: str  # "flat" or "splits"
    classes: list[str]
    files: dict[str, list[tuple[str, str]]]  # split -> [(absolute path, class name)]
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}
    roots: list[Path] = field(default_factory=list)  # the folders merged into this scan; empty: just `root`
    # class folders holding no image: (class, folder relative to root). Refused by `require_images` unless the
    # class is left out (--classes / --drop-classes); `inspect` lists them with a count of 0.
    empty: list[tuple[str, str]] = field(default_factory=list)
    # the same in val/ or test/: that class missing there, as a missing folder is; listed by inspect, not refused
    empty_elsewhere: list[tuple[str, str]] = field(default_factory=list)


# what systems and tools leave in folders (any other name, `__background__` included, is the user's): Windows' recycle
# bin and restore points; macOS's folder icon (Icon + CR); Synology's @eaDir (thumbnails of each image), #recycle
SYSTEM_NAMES = frozenset({"__MACOSX", "__pycache__", "Thumbs.db", "ehthumbs.db", "desktop.ini", "$RECYCLE.BIN",
                          "System Volume Information", "Icon\r", "@eaDir", "#recycle", "#snapshot"})
_SYSTEM_KEYS = frozenset(name.casefold() for name in SYSTEM_NAMES)  # in any case: $Recycle.Bin on NTFS since Vista


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name.casefold() in _SYSTEM_KEYS


def split_folders(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        alias = _SPLIT_ALIASES.get(entry.name.lower())
        if alias and entry.is_dir() and alias in found and \
                os.path.realpath(entry.path) != os.path.realpath(found[alias]):
            # train/ beside Training/: the first by name was read, the other listed as "not a split"
            raise invalid("data", root, "a folder with one folder per split",
                          note=f"{found[alias].name}/ and {entry.name}/ both name the {alias} split",
                          hint="Merge them into one, or rename or move the other")
        if alias and entry.is_dir() and alias not in found:  # (valid -> val: one folder, read once)
            found[alias] = Path(entry.path)
    return {split: found[split] for split in SPLIT_NAMES if split in found}  # tables list them in this order


def _other_folders(root: Path, split_dirs: dict[str, Path]) -> list[str]:
    """Folders beside the split folders that are none of them (holdout/, testing/, a stray class): never read,
    so listed with the skipped files rather than left out without a word."""
    # by what they are: test/ read through a Testing -> test link was listed as a folder not read
    used = {os.path.realpath(path) for path in split_dirs.values()}
    return [str(folder) + os.sep for folder in _class_dirs(root) if os.path.realpath(folder) not in used]


def count_skipped(paths: list[str]) -> str:
    """'3 files', '1 folder', '2 files and 1 folder': skipped entries, folders being those ending in a separator."""
    folders = sum(1 for path in paths if path.endswith(("/", os.sep)))
    files = len(paths) - folders
    parts = [f"{n} {word}{'' if n == 1 else 's'}" for n, word in ((files, "file"), (folders, "folder")) if n]
    return " and ".join(parts) or "0 files"


SKIPPED_SHOWN = 10  # skipped files a terminal lists one by one; the rest are counted by reason


def skipped_lines(items: list[tuple[str, str]], all_listed_in: str) -> list[str]:
    """The terminal's lines for skipped (path, reason) pairs: the first SKIPPED_SHOWN by name, the rest counted by
    reason (300 annotation files kept beside the images ran past the screen, a line each)."""
    lines = [f"  {path}: {reason}" for path, reason in items[:SKIPPED_SHOWN]]
    rest = Counter(reason for _, reason in items[SKIPPED_SHOWN:])
    if rest:
        lines.append(f"  ... and {sum(rest.values()):,} more ({all_listed_in} lists them all):")
        lines += [f"    {n:,} × {reason}" for reason, n in rest.most_common()]
    return lines


def _class_dirs(root: Path, skipped: list[dict[str, str]] | None = None) -> list[Path]:
    dirs = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if is_hidden(entry.name):
            continue
        try:
            if not entry.is_dir():
                if entry.is_symlink() and skipped is not None and not os.path.exists(entry.path) \
                        and not Path(entry.name).suffix:  # (a link to a file: the loose files' business)
                    # an unmounted drive's class: the class was gone from the run without a word
                    skipped.append({"path": printable_path(entry.path) + os.sep,
                                    "reason": f"broken symlink (its target, {os.readlink(entry.path)}, is not there): "
                                              "the class it holds is not read"})
                continue
        except OSError:
            continue
        real, here = os.path.realpath(entry.path), os.path.realpath(root)
        if skipped is not None and (real == here or here.startswith(real + os.sep)):
            # a link to the data folder (or above it) read every other class into a class of its own
            skipped.append({"path": printable_path(entry.path) + os.sep,
                            "reason": "symlink loop (a link back to a folder it is in)"})
            continue
        if skipped is not None and holds_imgclf_output(Path(entry.path)):
            # a run's plots/*.png, a folder of runs kept beside the classes, trained as classes of their own
            skipped.append({"path": printable_path(entry.path) + os.sep, "reason": IMGCLF_OUTPUT_REASON})
            continue
        if is_utf8_name(entry.name):
            dirs.append(Path(entry.path))
        elif skipped is not None:  # a class name no record could hold
            skipped.append({"path": printable_path(entry.path) + os.sep, "reason": NOT_UTF8_NAME})
    return dirs


def file_identity(path: str | os.PathLike) -> tuple[int, int]:
    """(device, inode): the same for every hard or symbolic link to one file. OSError when it cannot be read."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def walk_images(class_dir: Path, skipped: list[dict[str, str]], utf8_names: bool = True) -> list[str]:
    """All image files under class_dir (recursively, symlinks followed once), sorted; what cannot be used is added
    to `skipped` with the reason. utf8_names: leave out non-UTF-8 names, which no run's record holds (predict: kept)."""
    out: list[str] = []
    first_path: dict[str, Path] = {}  # real folder -> the path it was read through
    # A folder and the real folders above it, starting from those holding the class: a link back to one of them
    # read the other classes into this one. Both the folders the system goes up to (L/../data goes up from L's
    # target, and a class folder linked into a sibling data set from there) and the folder the class was named in
    # (lexically, "." and "../cat" had "." above them).
    joined = os.path.realpath(Path.cwd() / class_dir / os.pardir)
    given = os.path.realpath(os.path.dirname(os.path.abspath(class_dir)))
    parents = frozenset({joined, os.path.dirname(joined), given, os.path.dirname(given)})
    stack: list[tuple[Path, frozenset[str]]] = [(class_dir, parents)]
    while stack:
        directory, above = stack.pop()
        try:
            real = os.path.realpath(directory)
        except OSError as exc:
            skipped.append({"path": str(directory) + os.sep, "reason": f"cannot resolve folder: {exc.strerror or exc}"})
            continue
        if real in first_path or real in above:
            skipped.append({"path": str(directory) + os.sep, "reason": "symlink loop (a link back to a folder it is in)"
                            if real in above else f"the same folder as {first_path[real]} (read once, there)"})
            continue
        first_path[real] = directory
        below = above | {real}
        links: list[tuple[Path, frozenset[str]]] = []  # pushed first, so that a folder's own sub-folders are read
        folders: list[tuple[Path, frozenset[str]]] = []  # before links to them (popped last in, first out)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            skipped.append({"path": str(directory) + os.sep, "reason": f"cannot list folder: {exc.strerror or exc}"})
            continue
        for entry in entries:
            if is_hidden(entry.name):
                continue
            if utf8_names and not is_utf8_name(entry.name):
                skipped.append({"path": printable_path(entry.path), "reason": NOT_UTF8_NAME})
                continue
            try:
                is_dir = entry.is_dir()
                is_file = entry.is_file()
            except OSError as exc:
                skipped.append({"path": entry.path, "reason": f"cannot stat: {exc.strerror or exc}"})
                continue
            if is_dir:
                (links if entry.is_symlink() else folders).append((Path(entry.path), below))
            elif is_file:
                if entry.name.lower().endswith(IMAGE_EXTENSIONS):
                    out.append(entry.path)
                else:
                    skipped.append({"path": entry.path, "reason": unread_photo_reason(entry.name) or NOT_AN_IMAGE_NAME})
            else:  # a named pipe, socket or device (given by name, predict names it too), or a broken link
                try:
                    reason = special_file_reason(os.stat(entry.path).st_mode)  # a link's: its target's
                except OSError:
                    reason = "broken symlink or symlink loop"
                skipped.append({"path": entry.path, "reason": reason})
        stack += links[::-1] + folders[::-1]  # in name order within each kind
    return sorted(out)


def _loose_images(folder: Path) -> list[str]:
    """Image files directly in `folder` (not in a class folder): they have no class. Sorted."""
    out = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if is_hidden(entry.name) or not entry.name.lower().endswith(IMAGE_EXTENSIONS):
            continue
        try:
            if entry.is_file():
                out.append(entry.path)
        except OSError:
            continue
    return out


LOOSE_REASON = "not in a class folder, so it has no class: not used (move it into a class folder to train on it)"
OUTSIDE_SPLITS_REASON = "not in train/, val/ or test/: not used (move it into SPLIT/<class>/ to use it)"
OTHER_FOLDER_REASON = ("a folder beside train/ that is not a split (val/ or test/, or another name of one, such "
                       "as validation/ or testing/): not read (rename it val/ or test/ to use it as that split, or "
                       "move its class folders into train/)")


def _scan_class_tree(root: Path, skipped: list[dict[str, str]], empty: list[tuple[str, str]],
                     prefix: str = "") -> dict[str, list[str]]:
    # a class is known by its name's NFC form: macOS (and zips made there) write NFD, so a val/café/ from a Mac
    # beside a train/café/ from elsewhere was "a class train/ lacks", and two merged folders two classes café
    per_class: dict[str, list[str]] = {}
    for folder in _class_dirs(root, skipped):
        per_class.setdefault(class_key(folder.name), []).extend(walk_images(folder, skipped))
    per_class = {name: sorted(paths) for name, paths in per_class.items()}
    # loose images beside class folders, or in a split folder: listed, not ignored (no class folder: scan_folder)
    if per_class or prefix:
        skipped += [{"path": path, "reason": LOOSE_REASON} for path in _loose_images(root)]
    empty += [(name, prefix + name) for name, paths in per_class.items() if not paths]
    return per_class


def require_images(scan: FolderScan, classes: list[str] | None = None,
                   drop_classes: list[str] | None = None) -> FolderScan:
    """The scan, refused when a class it keeps has a class folder with no image in it, or when a val/ or test/
    holds no image of the classes it keeps (a test/ of unlabelled images, a common Kaggle layout, was trained past,
    and the run failed at its end for want of a test image). classes, drop_classes: the choice the scan was
    made with, which the hint to leave a class out keeps."""
    if scan.layout == "splits":
        for split, items in scan.files.items():
            if split != "train" and not items:
                folder = None if scan.roots else split_folders(scan.root).get(split)
                raise _split_without_images(scan.root, split, folder, scan.skipped)
    empty = [(name, folder) for name, folder in scan.empty if name in scan.classes]
    if empty:  # every one at once: named one a run, three empty classes took three runs to find
        names, one = list(dict.fromkeys(n for n, _ in empty)), len(empty) == 1
        folders = ", ".join(repr(f) for _, f in empty)
        raise invalid("data", scan.root, f"a folder whose class folders each hold at least one image with an "
                                         f"extension in {', '.join(IMAGE_EXTENSIONS)}",
                      note=f"class folder{'' if one else 's'} {folders} hold{'s' if one else ''} no image",
                      hint=f"Add {'its' if one else 'their'} images or remove the folder{'' if one else 's'} "
                           f"(imgclf train can also leave {'the class' if len(names) == 1 else 'the classes'} out: "
                           f"{leave_out_flag(names, classes, drop_classes)})")
    return scan



def _what_file(path: Path) -> str:
    """What a file given where a folder goes is, so that an index in the wrong place, or an index of a suffix not
    read, is not left at "a file". Said without the caller's context: where an index is read at all, it is read
    on its own, as a multi-label run's data."""
    suffix = path.suffix.lower()
    if suffix in INDEX_SUFFIXES:
        return ("an index file of label sets, which only a multi-label run's train, evaluate and inspect read, "
                "each on its own")
    if suffix in (".json", ".tsv", ".tab", ".txt", ".xlsx", ".parquet"):
        return f"a file; an index of label sets (a multi-label run's data) is a {', '.join(INDEX_SUFFIXES)} file"
    return "a file"


def scan_folder(root: str | os.PathLike, min_classes: int = 2, allow_empty: bool = False,
                without_train: bool = False) -> FolderScan:
    """Scan `root`: either class folders directly, or train/ (val/, test/) each holding class folders.
    min_classes: 1 for one of several folders that are merged (`data.merge`), which may hold a single class.
    allow_empty: keep a class folder with no image as a class with no files (`FolderScan.empty`), for a caller
    that leaves classes out first or only reports (then `require_images`); otherwise it is refused here.
    without_train: for an evaluation, which trains on none of them: split folders without train/ are splits too
    (test/ alone), and the classes are those of all of them; otherwise training needs train/, whose classes the
    others must keep to, and a folder without it is refused."""
    root = Path(root)
    if not root.exists():
        raise bad_path("data", root, "an existing folder", "no such path")
    if not root.is_dir():
        raise bad_path("data", root, "a folder of class folders", _what_file(root))
    refuse_imgclf_output(root)
    skipped: list[dict[str, str]] = []
    empty: list[tuple[str, str]] = []
    empty_elsewhere: list[tuple[str, str]] = []
    split_dirs = split_folders(root)
    if "train" in split_dirs or (split_dirs and without_train):
        trees = {split: _scan_class_tree(path, skipped, empty if split == "train" or without_train else
                                         empty_elsewhere, f"{path.name}/")
                 for split, path in split_dirs.items()}
        classes = sorted(set().union(*trees.values()) if without_train else trees["train"])
        for split, tree in trees.items():
            # a val/ or test/ without some class of train/ is scored on the others (training warns which); a
            # class train/ lacks has no output of the model to score it with
            extra = sorted(set(tree) - set(classes))
            if extra:
                train_name, here = f"{split_dirs['train'].name}/", f"{split_dirs[split].name}/"
                nested = [p.name for p in split_dirs.values() if [d.name for d in _class_dirs(p)] == [p.name]]
                raise invalid("data", root, f"a folder whose split folders hold only classes of {train_name}, "
                                            f"{classes}",
                              note=f"{here} has {extra}, which {train_name} lacks",
                              hint=f"{nested[0]}/ holds one folder of its own name, as some archives unpack: move "
                                   f"the class folders of {nested[0]}/{nested[0]}/ up one level" if nested else
                                   extra_classes_hint(extra, classes, train_name, here, list(tree)))
            for missing in set(classes) - set(tree):
                tree[missing] = []
            if split != "train" and not allow_empty and not any(tree.values()):  # (inspect reports it as it is)
                raise _split_without_images(root, split, split_dirs[split], skipped)
        files = {split: [(p, c) for c in classes for p in tree[c]] for split, tree in trees.items()}
        skipped += [{"path": path, "reason": OUTSIDE_SPLITS_REASON} for path in _loose_images(root)]
        skipped += [{"path": path, "reason": OTHER_FOLDER_REASON} for path in _other_folders(root, split_dirs)]
        layout = "splits"
    else:
        if split_dirs:
            names = ", ".join(f"{path.name}/" for path in split_dirs.values())
            raise invalid("data", root, "a folder of class folders, or one that contains train/ (and val/, test/)",
                          note=f"{names} but no train/",
                          hint=f"If {names} {'is a class' if len(split_dirs) == 1 else 'are classes'}, rename "
                               f"{'it' if len(split_dirs) == 1 else 'them'}: {SPLIT_FOLDER_NAMES} name split "
                               "folders; otherwise add train/ beside it")
        tree = _scan_class_tree(root, skipped, empty)
        classes = sorted(tree)
        files = {"all": [(p, c) for c in classes for p in tree[c]]}
        layout = "flat"
    if len(classes) < min_classes:
        raise _too_few_classes(root, split_dirs.get("train"), classes, min_classes)
    # (split folders without train/, an evaluation's: each holds the classes, and is no class itself)
    class_root = split_dirs.get("train") if layout == "splits" else root
    if class_root is not None:
        warn_of_classes_one_level_down(class_root, _class_dirs(class_root),
                                       lambda name: _SPLIT_ALIASES.get(name.lower()))
        warn_of_alike_class_names(class_root, classes)
    # every listed path as text a record can hold: a loose image or a folder beside train/ named in Latin-1 went
    # into the report as lone surrogates, which no UTF-8 file takes (the run ended in UnicodeEncodeError)
    skipped = [{**item, "path": printable_path(item["path"])} for item in skipped]
    scan = FolderScan(root=root, layout=layout, classes=classes, files=files, skipped=skipped, empty=empty,
                      empty_elsewhere=empty_elsewhere)
    warn_of_an_unfinished_fetch(root)
    return scan if allow_empty else require_images(scan)


def _split_without_images(root: Path, split: str, folder: Path | None,
                          skipped: list[dict[str, str]]) -> ImgclfError:
    """A val/ or test/ with no image to score: where the images it holds lie loose, says they have no label."""
    loose = sum(1 for item in skipped if item["reason"] == LOOSE_REASON and folder is not None
                and Path(item["path"]).parent == folder)
    where = f"{folder.name}/" if folder is not None else f"{split}/"
    redraw = " (val_split then draws one from train/)" if split == "val" else ""
    unlabelled = (f"; {plural(loose, 'image')} lie{'s' if loose == 1 else ''} loose in it, with no class folder "
                  "and so no label to score against") if loose else ""
    return invalid("data", root, f"a folder whose {where} holds images in class folders, if it has one",
                   note=f"{where} holds no image in its class folders{unlabelled}",
                   hint=f"Put its images in {where}<class>/, or remove {where}{redraw}"
                        + ("; imgclf predict labels images that have no class" if loose else ""))


def _too_few_classes(root: Path, train: Path | None, classes: list[str], min_classes: int = 2) -> ImgclfError:
    """Fewer class folders than asked for; says how many images lie loose in the folder and how to arrange them."""
    where = train or root
    loose = len(_loose_images(where))
    found = plural(len(classes), "class folder") + (f" ({', '.join(map(repr, classes))})" if classes else "")
    if train is not None:
        found = f"train/ holds {found}"
    if loose:
        found += f"; {plural(loose, 'image')} directly in {'train/' if train is not None else 'it'}, " \
                 f"outside any class folder"
    # the one class folder by its name on disk (the class is its NFC form)
    wrapper = next((d for d in _class_dirs(where) if class_key(d.name) == classes[0]), None) \
        if len(classes) == 1 and not loose else None
    inner = [d.name for d in _class_dirs(wrapper)] if wrapper is not None else []
    if len(inner) >= 2:  # data/images/{cat,dog}: the one class folder holds the classes
        shown = ", ".join(f"{n}/" for n in inner[:4]) + (" ..." if len(inner) > 4 else "")
        hint = (f"move the class folders of each split's {wrapper.name}/ up one level" if train is not None else
                f"give {wrapper} as the data folder")
        return invalid("data", root, f"a folder with at least {plural(min_classes, 'class folder')}",
                       note=found, hint=f"{wrapper.name}/ holds the class folders ({shown}): {hint}")
    return invalid("data", root, f"a folder with at least {plural(min_classes, 'class folder')}, each holding "
                                 "that class's images "
                                 "(DATA/<class>/*.png), or with train/ (and val/, test/) laid out that way "
                                 "(DATA/train/<class>/*.png)",
                   note=found,
                   # an index beside the images (ix/index.csv, ix/*.png) is the data set: that, before class folders
                   hint=index_file_hint(where) or (
                       f"Move each image into a folder named after its class, {where}{os.sep}<class>{os.sep}; "
                       f"to classify unlabelled images instead, use `imgclf predict RUN {shell_word(where)}`"
                       + (f"; if {train.name}/ is a class, rename it: {SPLIT_FOLDER_NAMES} name split folders"
                          if train is not None else "")
                       if loose else None))
