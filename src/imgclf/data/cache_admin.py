"""What the cache folder holds, and letting it go: `imgclf cache list` and `imgclf cache clear`.

Every data folder, image size and colour mode trained on leaves a decoded-image entry (data/cache.py), and every
backbone whose features were cached leaves a feature entry (train/features.py). Both are derived data: one that is
gone is built again when it is next wanted. Nothing else ever removed them, so the folder grew with every data set
and setting tried (a 224x224 RGB copy of 60,000 images is 9 GB). Downloads, audit pointers and crash logs live in
the same folder but are not derived from anything here: they are counted, never removed.

Safe beside running processes: a process reading an entry keeps its memory map of a removed file (POSIX), and
another process's build in progress (its temp file, or an array whose record is not written yet) is left alone
until it is an hour old, the age after which builds themselves treat such files as a killed build's leftovers.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..io import STALE_SECONDS
from .cache_records import FeatureCacheRecord, ImageCacheRecord
from .cache import CACHE_VERSION, cache_argument, default_cache_dir
from .cache_usage import ENTRY_FILE, ENTRY_TEMP, KEPT, disk_bytes



@dataclass
class CacheEntry:
    kind: str  # "images" (decoded pixels) or "features" (a backbone's pooled features)
    key: str
    files: list[Path] = field(default_factory=list)
    size: int = 0  # bytes on disk, all its files
    last_used: float = 0.0  # when it was built or last opened (seconds since the epoch)
    what: str = ""  # what it holds, for people
    outdated: bool = False  # built under older decoding rules: never opened again
    complete: bool = True  # its record (KEY.json) is written: a build in progress, or a killed one's, has none

    @property
    def busy(self) -> bool:
        """An array without its record, touched within the hour: perhaps a build between the two (it renames the
        array into place, then writes the record), so never removed. A damaged record is no build's, nor a
        duplicate memo without an array."""
        unrecorded = not any(path.name == f"{self.key}.json" for path in self.files)
        array = any(path.suffix == ".npy" for path in self.files)
        return not self.complete and unrecorded and array and time.time() - self.last_used <= STALE_SECONDS


@dataclass
class CacheContents:
    folder: Path
    entries: list[CacheEntry]  # newest first
    kept: dict[str, int]  # sub-folder name -> bytes, for those of KEPT that exist
    building: int = 0  # bytes of builds in progress (temp files touched within the hour): neither listed nor removed

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.entries)


def cache_contents(cache_dir: str | os.PathLike | None = None) -> CacheContents:
    """The entries of the cache folder (`cache_dir`, else $IMGCLF_CACHE, else ~/.cache/imgclf), newest first. Only
    files named as imgclf names them, whose record (or array) is one imgclf writes, are entries: a folder of the
    user's own files given by mistake holds none."""
    folder = _existing_folder(cache_dir)
    building: list[int] = []
    entries = _entries(folder, "images", building) + _entries(folder / "features", "features", building)
    entries.sort(key=lambda entry: entry.last_used, reverse=True)
    kept = {name: _tree_size(folder / name) for name in KEPT if (folder / name).is_dir()}
    return CacheContents(folder, entries, kept, sum(building))


def _existing_folder(cache_dir: str | os.PathLike | None) -> Path:
    """The cache folder, never made here (listing or clearing a mistyped path created it, parents and all)."""
    from ..errors import bad_path

    argument = cache_argument(cache_dir)
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    if folder.is_dir():
        return folder
    if folder.exists():
        raise bad_path(argument, folder, "the cache folder (train's --cache-dir)", "a file")
    if cache_dir or os.environ.get("IMGCLF_CACHE"):
        raise bad_path(argument, folder, "the cache folder (train's --cache-dir)", "not found")
    return folder  # the default one, before anything was cached: it holds nothing


def entries_unused_for(contents: CacheContents, seconds: float | None) -> list[CacheEntry]:
    """The entries neither built nor opened in the last `seconds` (None: all), less builds perhaps in progress."""
    now = time.time()
    return [entry for entry in contents.entries
            if not entry.busy and (seconds is None or now - entry.last_used > seconds)]


@dataclass
class Removal:
    removed: list[CacheEntry]
    freed: int
    failed: list[tuple[Path, OSError]]  # a file that could not be removed (another user's; on Windows, one in use)


def remove_entries(entries: list[CacheEntry]) -> Removal:
    """Delete the entries' files, the record (KEY.json) last: an entry is never left looking complete without its
    pixels. A file already gone is not an error (another `clear`, or a build that replaced it)."""
    removed, freed, failed = [], 0, []
    for entry in entries:
        ok = True
        for path in sorted(entry.files, key=lambda p: p.suffix == ".json"):
            try:
                size = disk_bytes(path.stat())
                path.unlink()
                freed += size
            except FileNotFoundError:
                continue
            except OSError as exc:  # its record stays, so a half-removed entry is rebuilt, never served
                failed.append((path, exc))
                ok = False
                break
        if ok:
            removed.append(entry)
    return Removal(removed, freed, failed)


def _entries(folder: Path, kind: str, building: list[int]) -> list[CacheEntry]:
    if not folder.is_dir():
        return []
    found: dict[str, CacheEntry] = {}
    read: dict[str, float] = {}  # key -> its array's access time
    for path in folder.iterdir():
        match = ENTRY_FILE.fullmatch(path.name) or ENTRY_TEMP.fullmatch(path.name)
        if match is None:
            continue
        try:
            stat = path.stat()
        except OSError:  # removed meanwhile
            continue
        if not path.is_file():
            continue
        if path.name.startswith(".") and time.time() - stat.st_mtime <= STALE_SECONDS:
            building.append(disk_bytes(stat))  # a build's temp file, perhaps in progress: its process renames it
            continue
        entry = found.setdefault(match.group("key"), CacheEntry(kind, match.group("key"), complete=False))
        entry.files.append(path)
        entry.size += disk_bytes(stat)
        entry.last_used = max(entry.last_used, stat.st_mtime)
        if path.name == f"{entry.key}.npy":
            read[entry.key] = stat.st_atime
    entries = [entry for entry in found.values() if _described(entry, folder)]
    for entry in entries:
        # another user of a shared cache cannot stamp the record, but reading the array moves its access time (on
        # relatime mounts, Linux's default: at least once a day). Not for an incomplete entry: its array's header
        # was read by this listing
        if entry.complete and entry.key in read:
            entry.last_used = max(entry.last_used, read[entry.key])
    return entries


def _described(entry: CacheEntry, folder: Path) -> bool:
    """Whether the entry is imgclf's (then described): a record as imgclf writes it; else an array as it writes
    them, or only its temp files (hidden, named by a key), a killed build's. A file that merely has such a name,
    a photo called by its database id with its annotations beside it, is not."""
    record, array = folder / f"{entry.key}.json", folder / f"{entry.key}.npy"
    meta = _record(record, entry.kind) if record in entry.files else None
    if meta is not None:
        entry.complete = True
        if isinstance(meta, ImageCacheRecord):
            failed = len(meta.failures)
            entry.what = (f"{meta.count:,} images at {meta.size}x{meta.size} {meta.color}"
                          + (f" ({failed:,} unreadable)" if failed else "")
                          + (f", from {meta.source}" if meta.source else ""))
            entry.outdated = meta.version != CACHE_VERSION
        else:
            entry.what = f"{meta.arch or 'backbone'} features, {meta.shape[0]:,} x {meta.shape[1]}"
        return True
    if array in entry.files and not _array_of(array, entry.kind):
        return False
    if array not in entry.files and all(".groups" in path.name and path.suffix == ".npz" for path in entry.files):
        # a duplicate search's memo written after a clear took its entry (a run used the entry meanwhile): it was
        # never listed, counted or cleared
        entry.what = "duplicate groups of an entry removed since"
        return True
    if array not in entry.files and not all(path.name.startswith(".") for path in entry.files):
        return False
    entry.what = ("damaged record: built again when next wanted" if record.exists() and array in entry.files
                  else "incomplete: a killed build's")
    return True


def _record(path: Path, kind: str) -> ImageCacheRecord | FeatureCacheRecord | None:
    """The entry's record if it is one imgclf writes (data/cache.py, train/features.py), else None."""
    try:
        return (ImageCacheRecord if kind == "images" else FeatureCacheRecord).read(path)
    except (OSError, ValueError):
        return None


def _array_of(path: Path, kind: str) -> bool:
    """Whether the .npy is an array imgclf writes there: uint8 (N, H, W, C) images, float32 (N, D) features."""
    import numpy as np

    try:
        with open(path, "rb") as handle:
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(np.lib.format.read_magic(handle))
            if read_header is None:
                return False
            shape, _, dtype = read_header(handle)  # the header only: nothing is read or mapped
    except Exception:  # not a .npy at all
        return False
    return (dtype == np.uint8 and len(shape) == 4) if kind == "images" else (dtype == np.float32 and len(shape) == 2)


def _tree_size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += disk_bytes(os.stat(os.path.join(root, name)))  # as the entries are counted
            except OSError:
                continue
    return total


def parse_age(value: str) -> float:
    """--older-than: days and hours (30d, 12h, 1d12h); a bare number is refused, being days to some and seconds to
    others, and so are minutes and seconds."""
    from ..config_text import parse_seconds
    from ..errors import invalid

    examples = "30d, 12h or 1d12h"
    if re.fullmatch(r"\s*[0-9.]+\s*", str(value)):
        raise invalid("older_than", value, f"a duration with its unit such as {examples}",
                      note="a bare number could be days or seconds")
    if re.search(r"[ms]", str(value), re.IGNORECASE):  # 6M reads as six months here, and meant six minutes
        raise invalid("older_than", value, f"days or hours such as {examples}",
                      note="in minutes or seconds every entry is old, and M could be months")
    return parse_seconds(value, "older_than", examples) or 0.0
