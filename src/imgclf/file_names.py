"""File names as text: what a record, a CSV or a page can hold of a name the file system gave."""

from __future__ import annotations


def printable_path(path: str) -> str:
    """A path as text any file takes: a name that is not UTF-8 (an old archive's Latin-1 "café") comes from the
    file system as lone surrogates, which no UTF-8 file can hold (UnicodeEncodeError at the end of a run); its
    bytes are shown as \\xNN escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shell_word(path: object) -> str:
    """A path (or any value) as one word of a command to copy into a shell: quoted where it holds a space or
    another character a shell reads ("imgclf train --resume runs/my run" resumed runs/my, with an extra word)."""
    import os
    import shlex

    return shlex.quote(os.fspath(path) if isinstance(path, os.PathLike) else str(path))
