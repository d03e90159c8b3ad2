"""Atomic file writes: every file of a run directory is written to a temp file, then renamed."""

from __future__ import annotations

import csv
import errno
import glob
import hashlib
import io
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import ReplaceRefused, bad_path, path_argument


def temp_files_of(path: str | os.PathLike) -> list[Path]:
    """Temp files an interrupted atomic write of `path` left behind (ours are named .<name>.<random>.tmp)."""
    path = Path(path)
    return sorted(path.parent.glob(f"{glob.escape(_temp_prefix(path))}*.tmp")) if path.parent.is_dir() else []


# A temp file untouched this long was left by a killed write; a younger one may be another process's write in
# progress (two trainings on one data folder write one cache entry), which deleting made crash at its rename.
STALE_SECONDS = 3600


def remove_stale_temp_files(paths: Iterable[Path], older_than: float = STALE_SECONDS) -> None:
    """Delete those of `paths` (temp files of a write or a cache build) untouched for `older_than` seconds: a
    killed process's leftovers, never another process's write in progress."""
    now = time.time()
    for tmp in paths:
        try:
            if now - tmp.stat().st_mtime > older_than:
                tmp.unlink(missing_ok=True)
        except OSError:  # gone meanwhile, or not ours to delete
            continue


def remove_temp_files(folder: str | os.PathLike) -> int:
    """Delete every leftover temp file of an interrupted write under `folder` (used by --resume)."""
    removed = 0
    for tmp in Path(folder).rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """`data` into `path` through a temp file and a rename, so a reader never sees half of it. A symlink stays a
    link: its target is what gets replaced. A device, a pipe or a stream's name (/dev/stdout) is appended to as it
    is: there is no file there to replace, and a rename would put a regular file in its place."""
    path = Path(path)
    if is_special_file(path) or names_a_stream(path):
        with open(path, "ab") as f:  # appended: a stream redirected to a file keeps what was written before
            f.write(data)
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(temp_files_of(path))  # a killed earlier write of this file
    fd, tmp = new_temp_file(path)
    try:
        os.fchmod(fd, default_file_mode())  # mkstemp makes 0600; run files should be as readable as any other
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except PermissionError as exc:  # written whole, then refused its place: no read of ours, a user's matter
            raise ReplaceRefused(exc.errno, exc.strerror, str(path)) from exc
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None and exc.errno is not None:  # write() names no file: "the disk written to" was
            raise OSError(exc.errno, exc.strerror, str(path)) from exc  # all a full disk could be told as
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_temp_file(path: Path) -> tuple[int, str]:
    """A new temp file beside `path` (mode 0600 until chmod-ed), named as `temp_files_of` finds them:
    (descriptor, name)."""
    return tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)


def _temp_prefix(path: Path) -> str:
    """"." + the name + ".", the name cut to 200 bytes: a legal name of 242 bytes or more, with the random part and
    ".tmp", went past the 255 a file name may have, and the folder was said to take no new file."""
    name = path.name.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore")
    return f".{name}."


def is_special_file(path: str | os.PathLike) -> bool:
    """Whether `path` (its links followed) is something other than a file or a folder: a device, a pipe, a socket."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # missing, a dangling link, or unreadable: a file to create
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def names_a_stream(path: str | os.PathLike) -> bool:
    """Whether `path` is one of the system's names for a stream (/dev/stdout, /dev/fd/1, /proc/self/fd/1: links
    under /dev or /proc): written in place, since a rename would replace the file the stream was redirected to
    (`... > out.txt`), losing what else the process wrote there. A file of its own there (/dev/shm/out.csv) is
    written as any other."""
    return (Path(os.path.abspath(path)).parts[1:2] in (("dev",), ("proc",)) and os.path.islink(path)
            and os.path.exists(path))


def default_file_mode() -> int:
    """The mode open() would give a new file under the current umask (0644 under the usual 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_yaml(path: str | os.PathLike, obj: Any) -> None:
    import yaml  # here: the CLI imports this module and most of its commands read no YAML

    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def read_yaml(path: str | os.PathLike) -> Any:
    """A YAML file as safe_load reads it, but a key given twice in one mapping is an error (`yaml_keys`)."""
    import yaml

    from .yaml_keys import UniqueKeyLoader  # here: it imports yaml, which most commands never read

    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader)


# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def spreadsheet_safe(cell: Any) -> str:
    """A CSV cell that no spreadsheet runs: OWASP's rule, a leading ' before a formula character. Numbers such as
    -0.5 stay numbers."""
    text = "" if cell is None else str(cell)
    # a value that already starts with ' is guarded too, so that reading it back is never ambiguous
    guard = (text.startswith(FORMULA_START) and not _is_number(text)) or text.startswith("'")
    return "'" + text if guard else text


def from_spreadsheet_safe(text: str) -> str:
    """The value `spreadsheet_safe` was given (what our readers of our own CSV files see)."""
    return text[1:] if text.startswith("'") and text[1:].startswith((*FORMULA_START, "'")) else text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Every CSV imgclf writes goes through here, so user-chosen file and class names are data, never formulas.
    Lines end in LF: the csv module's CRLF left a carriage return in the last column for awk, cut and
    `while read` (`frozen\r`); spreadsheets and CSV readers take either."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    # the csv module quotes a cell holding a character of the line terminator only: with LF, a lone carriage
    # return in a file name went out bare and split its row when read back; such rows are quoted whole
    quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in [header, *rows]:
        cells = [spreadsheet_safe(c) for c in row]
        (quoted if any("\r" in c for c in cells) else writer).writerow(cells)
    return buf.getvalue()


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    atomic_write_text(path, csv_text(header, rows))


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a CSV file written by `write_csv`, with the formula guard taken off again. A row with more cells
    than the header raises csv.Error, as a file that is not CSV does (and UnicodeDecodeError for one not text)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return [{from_spreadsheet_safe(k): from_spreadsheet_safe(v or "") for k, v in checked_row(reader, row).items()}
                for row in reader]


def checked_row(reader: csv.DictReader, row: dict[Any, Any]) -> dict[str, Any]:
    """`row` of `reader`, or csv.Error when it has more cells than the header (DictReader files those under None)."""
    if None in row:
        columns = len(reader.fieldnames or [])
        raise csv.Error(f"line {reader.line_num} has {columns + len(row[None])} cells, the header {columns}")
    return row


def next_free_dir(base: str | os.PathLike, stem: str) -> Path:
    """base/stem-1, base/stem-2, ...: the first that does not exist yet (absolute), for a default output folder."""
    base, n = Path(base).absolute(), 1
    while os.path.lexists(base / f"{stem}-{n}"):  # a dangling link takes the name too
        n += 1
    return base / f"{stem}-{n}"


def make_free_dir(base: str | os.PathLike, stem: str) -> Path:
    """Create and return the first free base/stem-N: two processes started together get a folder each (the
    name is taken by mkdir, which only one of them wins). A base that is a file, or not writable, is the user's
    error naming `out`."""
    writable_folder("out", base)
    for _ in range(1000):
        path = next_free_dir(base, stem)
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:  # another process took it just now: the next call sees it
            continue
    raise bad_path("out", base, "a folder to write into", f"no free {stem}-N could be made in it")


def writable_folder(argument: str, path: str | os.PathLike) -> Path:
    """`path` as a folder to create or write into; the user's error (not NotADirectoryError later, half-way
    through) when it, or a folder it would be made in, is a file."""
    path = path_argument(argument, path, "a folder to write into (str or os.PathLike)")
    for folder in (path, *path.parents):
        problem = _not_a_folder(folder)
        if problem is not None:
            raise bad_path(argument, path, "a folder to write into", problem if folder == path else
                           f"{folder} is {problem}")
    # a trial folder in the nearest existing one: permissions, a read-only disk or a pseudo file system (/proc)
    # refuse it now, not after the work
    existing = next(p for p in (path, *path.parents) if p.exists())
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")  # of the folders still to make: mkdir's error, later
        too_long = [len(os.fsencode(part)) for part in path.relative_to(existing).parts
                    if len(os.fsencode(part)) > name_max]
        if not too_long:
            os.rmdir(tempfile.mkdtemp(prefix=".imgclf-write-test-", dir=existing))
    except OSError as exc:
        raise bad_path(argument, path, "a folder to write into",
                       f"cannot write in {existing}: {exc.strerror or type(exc).__name__}") from None
    if too_long:
        raise bad_path(argument, path, "a folder to write into", f"a name of {too_long[0]} bytes, over the "
                       f"{name_max} this file system takes (File name too long)")
    return path


def _not_a_folder(path: Path) -> str | None:
    """What keeps `path` from being (or becoming) a folder: "a file", a dangling link (a cluster's purged scratch:
    mkdir then failed with FileExistsError for ever), a link loop, a name too long; None when nothing does."""
    try:
        if path.is_symlink() and not path.exists():
            try:
                os.stat(path)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return "a link that leads back to itself"
            return f"a link to {os.readlink(path)}, which does not exist"
        return "a file" if path.exists() and not path.is_dir() else None
    except OSError as exc:  # ENAMETOOLONG: exists() raises it, where it returns False for a missing file
        return f"not a name this system takes ({exc.strerror or type(exc).__name__})"


def outside_data(argument: str, path: str | os.PathLike, data: str | os.PathLike | Sequence[str]) -> None:
    """Refuse an output folder at or inside the image folder `data` (or any of several): the next scan of the data
    would take it for a class folder (or its images for data). The default outputs (runs/, audits/) are made in
    the current folder, so running from inside the data folder would put them there."""
    target = Path(os.path.realpath(path))
    for folder in [data] if isinstance(data, (str, os.PathLike)) else data:
        root = Path(os.path.realpath(folder))
        if root.is_dir() and (target == root or root in target.parents):
            where = "the data folder itself" if target == root else f"inside the data folder {folder}"
            raise bad_path(argument, path, "a folder outside the data folder",
                           f"{where}: the next scan would read it as a class folder",
                           hint="Choose a folder outside the data folder" + (", or run the command from outside "
                                "it (default outputs go in the current folder)" if argument == "out" else ""))


def writable_file(argument: str, path: str | os.PathLike) -> Path:
    """`path` as a file to (over)write: refused when it is a folder, its folder cannot be made, or that folder
    takes no new file (read-only, or /proc), which is checked by making one of the temp files `atomic_write_bytes`
    makes there (and removing it), before the work whose result would then be lost."""
    path = path_argument(argument, path, "a file to write (str or os.PathLike)")
    if path.is_dir():
        raise bad_path(argument, path, "a file to write", "a folder")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise bad_path(argument, path, "a file to write", f"{blocker} is a file")
    if is_special_file(path) or names_a_stream(path):
        return path
    target = Path(os.path.realpath(path))
    if target.parent.is_dir():
        try:
            fd, probe = new_temp_file(target)
        except OSError as exc:
            raise bad_path(argument, path, "a file to write", f"{target.parent} takes no new file "
                           f"({exc.strerror or exc})") from None
        os.close(fd)
        os.unlink(probe)
    return path


def terminal_safe(text: Any) -> str:
    """A name as it may be printed to a terminal: control characters (escape sequences, bidi overrides, bells)
    shown as \\x.. / \\u.. escapes instead of acting on the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def console_text(text: Any) -> str:
    """A user-chosen name (file, class, a note holding them) for a Rich console: terminal control sequences
    escaped (`terminal_safe`) and Rich's markup brackets too (a class folder named [red] is a name, not a colour)."""
    from rich.markup import escape

    return escape(terminal_safe(text))


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in blocks (hashlib.file_digest would do it from Python 3.11 on)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def safetensors_damage(path: str | os.PathLike) -> str | None:
    """Why a .safetensors file cannot be whole, from its header alone (a listing of many runs cannot hash every
    weight file): its length is not the one the header states (a truncated copy), or the header is no JSON.
    None when it is consistent, which a flipped byte inside a tensor still is (the card's digest catches that)."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if length < 0 or length > size - 8:
            return f"truncated: {size:,} bytes, less than its header"
        try:
            header = json.loads(handle.read(length))
            end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return "its header is unreadable"
    if 8 + length + end != size:
        return f"{size:,} bytes where its header needs {8 + length + end:,} (a truncated or damaged copy)"
    return None


def relative_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """`path` relative to `root` (both made absolute first), as records store files; as given where no relative
    path exists (another drive on Windows)."""
    try:
        return os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    except ValueError:
        return os.fspath(path)
