"""Built-in data sets, each written as a class-per-folder PNG tree by `fetch(name, out, ...)`.

digits ships with scikit-learn; fashion-mnist, cifar10 and fer2013 are read from a local copy
(`source`) or downloaded into a cache (`url`, `cache_dir`), with the MD5 checked where one is published.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ...errors import bad_path, invalid
from ...io import read_json, writable_folder, write_json
from ..fetch_record import FETCH_RECORD, WRITTEN_NAME
from .cifar10 import CIFAR10_CLASSES, CIFAR10_MD5, CIFAR10_URL, export_cifar10, load_cifar10
from .digits import export_digits
from .download import default_download_dir, download
from .fashion_mnist import (FASHION_CLASSES, FASHION_DIRS, FASHION_MD5, FASHION_URL, export_fashion_mnist,
                            find_fashion_mnist, load_fashion_mnist, read_idx)
from .fer2013 import FER_CLASSES, export_fer2013, load_fer2013

BUILTIN: dict[str, Callable[..., Path]] = {
    "digits": export_digits,
    "fashion-mnist": export_fashion_mnist,
    "cifar10": export_cifar10,
    "fer2013": export_fer2013,
}


# what each export writes at the top of its folder (class folders, or split folders of class folders)
TOP_LEVEL: dict[str, tuple[str, ...]] = {
    "digits": tuple(str(d) for d in range(10)),
    "fashion-mnist": ("train", "test"),
    "cifar10": ("train", "test"),
    "fer2013": ("train", "val", "test"),
}


def refuse_other_content(argument: str, out: str | os.PathLike, written: tuple[str, ...], what: str) -> None:
    """Refuse a folder to write into that holds entries other than `written` (hidden ones aside): data fetched
    into a folder of other images made one data set of both (`data fetch digits --out pets/`: 12 classes)."""
    out = Path(out)
    if not out.is_dir():
        return
    other = sorted(p.name for p in out.iterdir() if p.name not in written and not p.name.startswith("."))
    if other:
        shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
        raise bad_path(argument, out, f"a new or empty folder, or one holding only {what}", f"it holds {shown}",
                       hint="Give another --out")


IDENTITY = ("source", "url", "md5", "per_class", "seed")  # the options a record holds
# the class folders each writes (cifar10's are its archive's own names, these unless the archive says otherwise)
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "digits": TOP_LEVEL["digits"], "fashion-mnist": tuple(FASHION_CLASSES), "cifar10": tuple(CIFAR10_CLASSES),
    "fer2013": tuple(FER_CLASSES),
}


def fetch(name: str, out: str | os.PathLike, **options: object) -> Path:
    """Write data set `name` under `out`; options left as None are not passed, others must apply to `name`."""
    if name not in BUILTIN:
        raise invalid("name", name, BUILTIN)
    out = writable_folder("out", out)  # "~/data" expanded where it is written, not only where it is checked
    export = BUILTIN[name]
    given = {key: value for key, value in options.items() if value is not None}
    takes = [p for p in inspect.signature(export).parameters if p != "out"]
    for key, value in given.items():
        if key not in takes:
            raise invalid(key, value, f"left out: it does not apply to {name}, which takes "
                                      f"{', '.join(takes) or 'no options'}")
    _check_sampling(given)
    if "per_class" in given:
        # the draw the images come from, recorded whether the default seed was given or not: a rerun with
        # --seed 0 was refused as another fetch of the same images
        given.setdefault("seed", 0)
    refuse_other_content("out", out, TOP_LEVEL[name], f"an earlier fetch of {name}, which it completes")
    # what decides the images (where they come from, how many), not where a download is cached
    record = {"name": name, "options": {key: os.path.abspath(value) if key == "source" else str(value)
                                        for key, value in sorted(given.items()) if key in IDENTITY}}
    folder = Path(out)
    earlier = _refuse_another_fetch(folder, record)
    # the outermost folder this call makes (mkdir makes the parents too): a failed fetch removes from there
    created = next((p for p in reversed([folder, *folder.parents]) if not p.exists()), None)
    folder.mkdir(parents=True, exist_ok=True)
    # written first, so a second fetch of other data is refused even while this one runs; complete only at the
    # end, so that a fetch killed part-way is not taken for a whole data set (inspect and train warn). A whole
    # fetch run again keeps its record: that rerun failing (its source moved, offline) leaves every image there.
    if not (isinstance(earlier, dict) and earlier.get("complete") is True):
        write_json(folder / FETCH_RECORD, {**record, "complete": False})
    try:
        path = export(out, **given)
    except BaseException:
        _remove_if_nothing_written(folder, created)
        raise
    write_json(folder / FETCH_RECORD, {**record, "complete": True})
    return path


def _check_sampling(given: dict[str, object]) -> None:
    """per_class and seed as whole numbers in range: per_class=0 wrote every image, -1 all but one per class. A
    seed draws the per-class sample: without per_class it changes nothing, and is refused rather than recorded
    as if it did."""
    if "seed" in given and "per_class" not in given:
        raise invalid("seed", given["seed"], "left out without per_class: it seeds the per-class draw, and a whole "
                      "data set is written the same whatever the seed")
    import numbers

    for key, low in (("per_class", 1), ("seed", 0)):
        if key in given:
            value = given[key]
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise invalid(key, value, f"a whole number >= {low}")


def _remove_if_nothing_written(folder: Path, created: Path | None) -> None:
    """A fetch that failed before its first image (a bad --md5, an unreachable address, a missing source) left an
    --out holding only an "unfinished" record, which inspect then called an unfinished fetch. A folder with any
    image in it is kept, with its record, for the same fetch to complete. `created`: the outermost folder the
    fetch made, removed with all it holds."""
    if any(p.is_file() and not p.name.startswith(".") for p in folder.rglob("*")):
        return
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
        return
    (folder / FETCH_RECORD).unlink(missing_ok=True)
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()


def _written_by(name: str, out: Path) -> bool:
    """Only the folders a fetch of `name` writes, and in them only its class folders: a folder an earlier imgclf
    fetched (it wrote no record), which the same fetch completes. fashion-mnist's and cifar10's class names
    differ, so neither passes for the other."""
    entries = [p for p in out.iterdir() if not p.name.startswith(".")]
    if any(p.name not in TOP_LEVEL[name] or not p.is_dir() for p in entries):
        return False
    if TOP_LEVEL[name] == CLASS_NAMES[name]:  # the top level is the classes themselves
        class_folders = entries
    elif not all({q.name for q in p.iterdir() if not q.name.startswith(".")} <= set(CLASS_NAMES[name])
                 for p in entries):
        return False
    else:
        class_folders = [q for p in entries for q in p.iterdir() if not q.name.startswith(".")]
    # and only files named as a fetch names them: the user's own 0/ ... 9/ of 28x28 scans passed for the digits,
    # and the digits were written among them
    return all(q.is_dir() and all(WRITTEN_NAME.fullmatch(f.name) for f in q.iterdir() if not f.name.startswith("."))
               for q in class_folders)


def _refuse_another_fetch(out: Path, record: dict[str, object]) -> object:
    """A folder that holds images is completed only by the fetch that wrote them: fashion-mnist's and cifar10's
    train/ and test/ passed the check of top-level names and were made one data set of 20 classes, and so were two
    sources of one data set. A folder with the names but no record (the user's own train/ and test/, or a fetch
    by an imgclf that wrote none, if anything but that fetch's own folders is there) is refused too: nothing says
    what its images are. Returns the folder's record (None without one) where the fetch may go on."""
    if not out.is_dir() or not any(not p.name.startswith(".") for p in out.iterdir()):
        return None
    try:
        earlier = read_json(out / FETCH_RECORD)
    except (OSError, ValueError):
        earlier = None
    if isinstance(earlier, dict) and {k: earlier.get(k) for k in record} == record:
        return earlier
    if earlier is None and _written_by(str(record["name"]), out):  # by an imgclf that kept no record
        return None
    if isinstance(earlier, dict) and "name" in earlier:
        options = ", ".join(f"{k}={v}" for k, v in dict(earlier.get("options") or {}).items()) or "no options"
        held = f"it holds a fetch of {earlier['name']} ({options})"
    else:
        held = f"it holds images no fetch recorded (no {FETCH_RECORD})"
    asked = ", ".join(f"{k}={v}" for k, v in dict(record["options"]).items()) or "no options"
    raise bad_path("out", out, f"a new or empty folder, or one holding an earlier fetch of {record['name']} with "
                   f"the same options ({asked}), which it completes", held,
                   hint="Give another --out, or delete the folder to fetch it again")


__all__ = [
    "BUILTIN", "CIFAR10_CLASSES", "CIFAR10_MD5", "CIFAR10_URL", "FASHION_CLASSES", "FASHION_DIRS", "FASHION_MD5",
    "FASHION_URL", "FER_CLASSES", "default_download_dir", "download", "export_cifar10", "export_digits",
    "export_fashion_mnist", "export_fer2013", "fetch", "find_fashion_mnist", "load_cifar10", "load_fashion_mnist",
    "load_fer2013", "read_idx",
]
