"""How much the cache holds and when an entry was last used: stamped by the code that opens entries (data/cache.py,
train/features.py), read by `imgclf cache` (data/cache_admin.py)."""

from __future__ import annotations

import os
import re
from pathlib import Path

# Exactly the names imgclf gives an entry's files (KEY: 24 hex digits): its array, its record, the duplicate groups
# found in it (older releases: KEY.groups.npz, KEY.groups-native.npz); and, hidden, the temp files of their writes
# (mkstemp's ".KEY.<random>.npy", an atomic write's ".KEY.json.<random>.tmp")
_PART = r"(?:npy|json|groups(?:-[a-z]+)?\.npz)"
ENTRY_FILE = re.compile(rf"(?P<key>[0-9a-f]{{24}})\.{_PART}")
ENTRY_TEMP = re.compile(rf"\.(?P<key>[0-9a-f]{{24}})\.(?:[a-z0-9_]+\.npy|{_PART}\.[a-z0-9_]+\.tmp)")
KEPT = ("downloads", "audits", "logs")  # not derived data: counted, never removed
SUB_FOLDERS = (*KEPT, "features")
TAG = "CACHEDIR.TAG"

# A cache past this size says so when a run adds to it, with how to trim it: nothing ever removes an entry by itself,
# and each folder, size and colour mode trained on adds one (60,000 images at 224 px RGB: 9 GB)
LARGE_CACHE_BYTES = 20 * 10**9
_said_large = False  # once a process: one training can add two entries (its size, and the duplicate search's)


def mark_used(record: Path) -> None:
    """Stamp an entry's record with the time it was opened: `imgclf cache clear --older-than` removes what no run
    has opened for that long. Best effort: only the record's owner may stamp it (others' use shows in the array's
    access time, which `cache_admin` reads too), and a read-only shared cache serves as well without."""
    try:
        os.utime(record)
    except OSError:
        pass


def disk_bytes(stat: os.stat_result) -> int:
    """What a file takes on disk: a cache array is reserved whole, then filled (a sparse one would take less)."""
    return stat.st_blocks * 512 if hasattr(stat, "st_blocks") else stat.st_size


def say_if_large(cache_dir: Path) -> None:
    """Warn, once a process, when the cache a run just added to holds more than `LARGE_CACHE_BYTES`, naming the
    commands that trim it."""
    global _said_large
    if _said_large:
        return
    total = 0
    for folder in (cache_dir, cache_dir / "features"):
        try:
            with os.scandir(folder) as entries:
                total += sum(disk_bytes(e.stat(follow_symlinks=False)) for e in entries
                             if e.is_file(follow_symlinks=False))
        except OSError:  # gone, or not listable: nothing to say
            continue
    if total > LARGE_CACHE_BYTES:
        from ..config_text import byte_text
        from ..notices import warn

        _said_large = True
        warn(f"the decoded-image cache in {cache_dir} holds {byte_text(total)}: `imgclf cache list` shows what it "
             "holds and `imgclf cache clear --older-than 30d` removes what no run opened for 30 days (decoded again "
             "if wanted)")


# https://bford.info/cachedir/: backup tools that honour it (tar, borg and restic with --exclude-caches) skip the
# folder, which holds only what imgclf can decode again or download again
CACHEDIR_TAG = ("Signature: 8a477f597d28d172789f06886806bc55\n"
                "# This file is a cache directory tag created by imgclf: decoded images and features, rebuilt when\n"
                "# wanted (see `imgclf cache list`). For information about cache directory tags, see "
                "https://bford.info/cachedir/\n")


def tag_as_cache(cache_dir: Path) -> None:
    """Write CACHEDIR.TAG in the cache folder once, if it holds nothing but imgclf's files: a --cache-dir pointed
    at a project folder, tagged, left the project's data and runs out of every backup that honours the tag. Best
    effort: a read-only shared cache goes untagged."""
    tag = cache_dir / TAG
    if tag.exists() or not only_imgclf_files(cache_dir):
        return
    from ..io import atomic_write_text

    try:
        atomic_write_text(tag, CACHEDIR_TAG)
    except OSError:
        pass


def only_imgclf_files(folder: Path) -> bool:
    """Whether every name in `folder` is one imgclf writes there (entries, their temp files, its sub-folders)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return all(name in SUB_FOLDERS or ENTRY_FILE.fullmatch(name) or ENTRY_TEMP.fullmatch(name)
               or name.startswith(f".{TAG}.") for name in names)


def home_folder() -> Path:
    """The user's home: $HOME, or where it is set but empty the password database's entry (Path.home() read an
    empty HOME as "/", and the cache went to /.cache/imgclf at the root of the disk)."""
    if not os.environ.get("HOME", "x") and hasattr(os, "getuid"):
        import pwd

        try:
            return Path(pwd.getpwuid(os.getuid()).pw_dir)
        except KeyError:  # a user the database does not hold (a container's arbitrary uid)
            pass
    return Path.home()
