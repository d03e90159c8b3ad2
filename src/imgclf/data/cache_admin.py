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

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..io import STALE_SECONDS
from .cache import CACHE_VERSION, cache_folder

_KEY = re.compile(r"\.?([0-9a-f]{24})\.")  # an entry's files: KEY.npy, KEY.json, KEY.groups-side.npz; .KEY.*.npy
KEPT = ("downloads", "audits", "logs")  # not derived data: counted, never removed


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
        """An incomplete entry touched within the hour: perhaps another process's build, so never removed."""
        return not self.complete and time.time() - self.last_used <= STALE_SECONDS


@dataclass
class CacheContents:
    folder: Path
    entries: list[CacheEntry]  # newest first
    kept: dict[str, int]  # sub-folder name -> bytes, for those of KEPT that exist

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.entries)


def cache_contents(cache_dir: str | os.PathLike | None = None) -> CacheContents:
    """The entries of the cache folder (`cache_dir`, else $IMGCLF_CACHE, else ~/.cache/imgclf), newest first."""
    folder = cache_folder(cache_dir)
    entries = _entries(folder, "images") + _entries(folder / "features", "features")
    entries.sort(key=lambda entry: entry.last_used, reverse=True)
    kept = {name: _tree_size(folder / name) for name in KEPT if (folder / name).is_dir()}
    return CacheContents(folder, entries, kept)


def entries_unused_for(contents: CacheContents, seconds: float | None) -> list[CacheEntry]:
    """The entries neither built nor opened in the last `seconds` (None: all), less builds perhaps in progress."""
    now = time.time()
    return [entry for entry in contents.entries
            if not entry.busy and (seconds is None or now - entry.last_used > seconds)]


@dataclass
class Removal:
    removed: list[CacheEntry]
    freed: int
    failed: list[tuple[Path, str]]  # a file that could not be removed (another user's, in a shared cache), and why


def remove_entries(entries: list[CacheEntry]) -> Removal:
    """Delete the entries' files, the record (KEY.json) last: an entry is never left looking complete without its
    pixels. A file already gone is not an error (another `clear`, or a build that replaced it)."""
    removed, freed, failed = [], 0, []
    for entry in entries:
        ok = True
        for path in sorted(entry.files, key=lambda p: p.suffix == ".json"):
            try:
                size = _disk_bytes(path.stat())
                path.unlink()
                freed += size
            except FileNotFoundError:
                continue
            except OSError as exc:  # its record stays, so a half-removed entry is rebuilt, never served
                failed.append((path, exc.strerror or type(exc).__name__))
                ok = False
                break
        if ok:
            removed.append(entry)
    return Removal(removed, freed, failed)


def _entries(folder: Path, kind: str) -> list[CacheEntry]:
    if not folder.is_dir():
        return []
    found: dict[str, CacheEntry] = {}
    for path in folder.iterdir():
        match = _KEY.match(path.name)
        if match is None:
            continue
        try:
            stat = path.stat()
        except OSError:  # removed meanwhile
            continue
        if not path.is_file() or (path.name.startswith(".") and time.time() - stat.st_mtime <= STALE_SECONDS):
            continue  # a build's temp file, perhaps in progress: its process renames it when done
        entry = found.setdefault(match.group(1), CacheEntry(kind, match.group(1), complete=False))
        entry.files.append(path)
        entry.size += _disk_bytes(stat)
        entry.last_used = max(entry.last_used, stat.st_mtime)
    for entry in found.values():
        _describe(entry, folder / f"{entry.key}.json")
    return list(found.values())


def _describe(entry: CacheEntry, record: Path) -> None:
    try:
        meta = json.loads(record.read_text())
    except (OSError, ValueError):  # no record yet (a build), or a damaged one (rebuilt when next wanted)
        entry.what = "incomplete: a build in progress, or a killed one's" if not record.exists() else "damaged"
        entry.complete = record.exists()
        return
    entry.complete = True
    if not isinstance(meta, dict):
        entry.what = "damaged"
        return
    if entry.kind == "images":
        failed = len(meta.get("failures") or {})
        entry.what = (f"{meta.get('count', 0):,} images at {meta.get('size')}x{meta.get('size')} {meta.get('color')}"
                      + (f" ({failed:,} unreadable)" if failed else "")
                      + (f", from {meta['source']}" if meta.get("source") else ""))
        entry.outdated = meta.get("version") != CACHE_VERSION
    else:
        shape = meta.get("shape") or [0, 0]
        entry.what = f"{meta.get('arch') or 'backbone'} features, {shape[0]:,} x {shape[-1]}"


def _disk_bytes(stat: os.stat_result) -> int:
    """What a file takes on disk: a cache array is reserved whole, then filled (a sparse one would take less)."""
    return stat.st_blocks * 512 if hasattr(stat, "st_blocks") else stat.st_size


def _tree_size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def parse_age(value: str) -> float:
    """--older-than: a duration with its unit (30d, 12h, 1d12h); a bare number is refused, being days to some and
    seconds to others."""
    from ..config_text import parse_seconds
    from ..errors import invalid

    examples = "30d, 12h, 1d12h or 90m"
    if re.fullmatch(r"\s*[0-9.]+\s*", str(value)):
        raise invalid("older_than", value, f"a duration with its unit such as {examples}",
                      note="a bare number could be days or seconds")
    seconds = parse_seconds(value, "older_than", examples)
    assert seconds is not None
    return seconds
