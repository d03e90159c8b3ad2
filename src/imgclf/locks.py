"""Folder locks: one process at a time in a run's (or a search's) folder, and whether one holds it now."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import bad_path


_held_here: set[str] = set()  # the lock files this process holds (`exclusive`), by their real path


def held_elsewhere(path: Path) -> bool:
    """`is_locked`, less a lock this process holds itself (evaluate, holding its run's lock while it reads the run,
    took the run for one training now)."""
    return os.path.realpath(path) not in _held_here and is_locked(path)


def is_locked(path: Path) -> bool:
    """Whether a process holds the lock file `path` (as `exclusive` takes it) right now; False when there is none."""
    from filelock import FileLock, Timeout

    if not path.is_file():
        return False
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


@contextmanager
def exclusive(folder: Path, lock_name: str, argument: str, expected: str, in_use: str, hint: str) -> Iterator[None]:
    """Hold `folder`/`lock_name` while the body runs: a second process asking for the same folder is refused at
    once (naming `argument`), not left to interleave its files with ours. The OS drops the lock when its holder
    dies, so a killed process's folder is free again. The lock file goes on release (filelock keeps it): a folder
    holding nothing else is then empty again. A process that opened it just before is safe, filelock retries a
    lock taken on an unlinked file."""
    from filelock import FileLock, Timeout

    path = folder / lock_name
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise bad_path(argument, folder, expected, in_use, hint=hint) from None
    held, real = _identity(path), os.path.realpath(path)
    _held_here.add(real)
    try:
        yield
    finally:
        _held_here.discard(real)
        try:
            # while held no other process can be holding it, unless the folder was removed meanwhile and another
            # process locked the file now at that path (whose lock this would have taken away)
            if _identity(path) == held:
                path.unlink(missing_ok=True)
        except OSError:  # a system that cannot unlink an open file (Windows): it stays, still a free lock
            pass
        finally:
            lock.release()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino
