"""Read chosen members of a tar or zip archive without extracting anything to disk.

Members are looked up by their base name only, and only regular files are read: a path in a
foreign archive (`../x`, `/etc/x`, links) never decides where anything is written.
"""

from __future__ import annotations

import gzip
import tarfile
import zipfile
import zlib
from collections.abc import Collection, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from ...errors import ImgclfError, bad_path

# What a truncated or corrupt tar / zip / gzip raises, while listing members or while reading one.
ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile)


def is_archive(path: Path) -> bool:
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)


def iter_members(archive: Path, wanted: Collection[str]) -> Iterator[tuple[str, IO[bytes]]]:
    """Yield (base name, binary stream) for each regular member whose base name is in `wanted`, in archive order.

    The stream is valid until the next item is requested. A second member with the same base name is an
    error: which one was meant cannot be known.
    """
    seen: set[str] = set()

    def check(name: str) -> None:
        if name in seen:
            raise bad_path("source", archive, "an archive with one copy of each file it needs",
                           f"holds more than one {name!r}", hint="Keep one copy and try again")
        seen.add(name)

    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    name = PurePosixPath(info.filename).name
                    if not info.is_dir() and name in wanted:
                        check(name)
                        with zf.open(info) as f:
                            yield name, f
            return
        # "r|*": one forward pass over a (compressed) stream, no seeking back through gzip.
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                name = PurePosixPath(member.name).name
                if member.isfile() and name in wanted:
                    check(name)
                    f = tar.extractfile(member)
                    if f is not None:
                        yield name, f
    except ARCHIVE_ERRORS as exc:
        raise unreadable(archive, exc) from None


def unreadable(path: Path, exc: BaseException) -> ImgclfError:
    return bad_path("source", path, "a readable archive or file",
                    f"cannot be read: {exc or type(exc).__name__}; it may be truncated or corrupt")
