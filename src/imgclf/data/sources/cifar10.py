"""CIFAR-10 from its *binary* version (cifar-10-binary.tar.gz): a local archive or folder, else the official download.

The python version of the archive holds pickles; imgclf never unpickles data it did not write, so
that version is refused with a pointer to the binary one.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from ...errors import Described, ImgclfError, bad_path, invalid
from .archive import ARCHIVE_ERRORS, iter_members, unreadable
from .download import default_download_dir, download
from .tree import write_tree

log = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # published on https://www.cs.toronto.edu/~kriz/cifar.html
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SPLITS = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
META = "batches.meta.txt"
PICKLED = ("data_batch_1", "test_batch", "batches.meta")  # members of the python (pickle) version
SIDE = 32
RECORD = 1 + 3 * SIDE * SIDE  # label byte, then the R, G and B planes, row-major


def _pickled_version(source: Path) -> ImgclfError:
    return bad_path("source", source, "the binary version (cifar-10-binary.tar.gz, data_batch_1.bin ...)",
                    "the python version, whose files are pickles; imgclf never unpickles data it did not write",
                    where="cifar10", hint=f"Get {CIFAR10_URL}")


def read_members(source: Path) -> dict[str, bytes]:
    """The batch files and batches.meta.txt, by base name, from the .tar.gz or an extracted folder."""
    names = [n for files in SPLITS.values() for n in files] + [META]
    found: dict[str, bytes] = {}
    if source.is_dir():
        for folder in (source, source / "cifar-10-batches-bin"):
            if any((folder / p).is_file() for p in PICKLED):
                raise _pickled_version(source)
            for name in names:
                if name not in found and (folder / name).is_file():
                    found[name] = (folder / name).read_bytes()
    elif source.is_file():
        try:
            for name, stream in iter_members(source, set(names) | set(PICKLED)):
                if name in PICKLED:
                    raise _pickled_version(source)
                found[name] = stream.read()
        except ARCHIVE_ERRORS as exc:
            raise unreadable(source, exc) from None
    else:
        raise bad_path("source", source, "cifar-10-binary.tar.gz or its extracted folder", "no such path",
                       where="cifar10")
    missing = [n for n in names[:-1] if n not in found]
    if missing:
        raise bad_path("source", source, "the binary version, cifar-10-binary.tar.gz or its extracted folder",
                       f"lacks {', '.join(missing)}", where="cifar10")
    return found


def parse_batch(data: bytes, name: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32, 3) RGB uint8 and (N,) labels; records with a label outside the classes are skipped."""
    if not data or len(data) % RECORD:
        raise invalid("source", Described(f"{name} of {len(data)} bytes, not a whole number of {RECORD}-byte records"),
                      f"whole {RECORD}-byte records in each batch file", where="cifar10", note="it may be truncated")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
    labels = records[:, 0]
    ok = labels < num_classes
    if not ok.all():
        log.warning("cifar10: skipped %d of %d records of %s whose label is not in 0..%d",
                    int((~ok).sum()), len(labels), name, num_classes - 1)
    planes = records[ok, 1:].reshape(-1, 3, SIDE, SIDE)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), labels[ok]


def class_names(meta: bytes | None) -> list[str]:
    """The names in batches.meta.txt when they are ten plain folder names; else the published ten."""
    names = [line.strip() for line in (meta or b"").decode("utf-8", "replace").splitlines() if line.strip()]
    # The names become folder names, so anything that could be a path or hidden folder is not taken.
    if len(names) == 10 and len(set(names)) == 10 and all(re.fullmatch(r"[A-Za-z0-9][\w-]*", n) for n in names):
        return names
    if meta is not None:
        log.warning("cifar10: %s does not list ten plain class names; using %s", META, ", ".join(CIFAR10_CLASSES))
    return list(CIFAR10_CLASSES)


Splits = dict[str, tuple[np.ndarray, np.ndarray]]


def load_cifar10(source: str | os.PathLike | None = None, url: str | None = None,
                 cache_dir: str | os.PathLike | None = None) -> tuple[Splits, list[str]]:
    """({split: (images, labels)}, class names) from `source`, else from a verified download."""
    if source is None:
        source = download(url or CIFAR10_URL, Path(cache_dir or default_download_dir()) / "cifar10", CIFAR10_MD5)
    members = read_members(Path(source))
    classes = class_names(members.get(META))
    splits = {}
    for split, files in SPLITS.items():
        # named with the source, which the error's "Received" then shows
        parts = [parse_batch(members[name], f"{source}:{name}" if Path(source).is_file() else str(Path(source) / name),
                             len(classes)) for name in files]
        splits[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return splits, classes


def export_cifar10(out: str | os.PathLike, source: str | os.PathLike | None = None, url: str | None = None,
                   cache_dir: str | os.PathLike | None = None) -> Path:
    """CIFAR-10 as out/train/<class>/*.png (data_batch_1..5) and out/test/<class>/*.png (test_batch)."""
    out = Path(out)
    splits, classes = load_cifar10(source, url, cache_dir)
    present = {int(y) for _, labels in splits.values() for y in labels}
    for split, (images, labels) in splits.items():
        write_tree(out, split, images, labels, classes, present=present)
    return out
