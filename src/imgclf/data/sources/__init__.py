"""Built-in data sets, each written as a class-per-folder PNG tree by `fetch(name, out, ...)`.

digits ships with scikit-learn; fashion-mnist, cifar10 and fer2013 are read from a local copy
(`source`) or downloaded into a cache (`url`, `cache_dir`), with the MD5 checked where one is published.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path

from ...errors import bad_path, invalid
from ...io import writable_folder
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


def fetch(name: str, out: str | os.PathLike, **options: object) -> Path:
    """Write data set `name` under `out`; options left as None are not passed, others must apply to `name`."""
    if name not in BUILTIN:
        raise invalid("name", name, BUILTIN)
    writable_folder("out", out)
    refuse_other_content("out", out, TOP_LEVEL[name], f"an earlier fetch of {name}, which it completes")
    export = BUILTIN[name]
    given = {key: value for key, value in options.items() if value is not None}
    takes = [p for p in inspect.signature(export).parameters if p != "out"]
    for key, value in given.items():
        if key not in takes:
            raise invalid(key, value, f"left out: it does not apply to {name}, which takes "
                                      f"{', '.join(takes) or 'no options'}")
    return export(out, **given)


__all__ = [
    "BUILTIN", "CIFAR10_CLASSES", "CIFAR10_MD5", "CIFAR10_URL", "FASHION_CLASSES", "FASHION_DIRS", "FASHION_MD5",
    "FASHION_URL", "FER_CLASSES", "default_download_dir", "download", "export_cifar10", "export_digits",
    "export_fashion_mnist", "export_fer2013", "fetch", "find_fashion_mnist", "load_cifar10", "load_fashion_mnist",
    "load_fer2013", "read_idx",
]
