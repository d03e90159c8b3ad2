"""Decode every image once into a memory-mapped uint8 array (N, H, W, C), reused across epochs and runs.

The cache file is keyed by a hash of the file list (path, size, mtime), the target size, colour mode and
interpolation, so a changed folder or setting builds a new cache and an unchanged one opens in
milliseconds. Files are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import errno
import hashlib
import multiprocessing as mp
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ImgclfError, invalid
from ..io import default_file_mode, remove_stale_temp_files, write_json
from ..notices import silence_pillow_warnings
from ..progress import StepProgress
from .cache_usage import home_folder, mark_used, say_if_large, tag_as_cache
from .decode import PERMISSION_DENIED, DecodeError, open_image

# Part of every cache key: raised when a decoding rule changes, so no cache keeps pixels the files no longer decode
# to (2: float images within [0, 1] are scaled by 255, commit 4941474; 3: a 16-bit image is on the 0..65535 scale
# whatever its maximum, and rounded; 4: a PNG colour key (tRNS) on RGB, grey or 16-bit grey is transparency,
# composited over white as an alpha band is; 5: a mode with no direct conversion to the target, LAB to grey, is
# converted through RGB instead of being skipped; 6: a JPEG Pillow opens as MPO, one with an embedded preview, is
# scaled down by libjpeg while decoding, as other JPEGs are; 7: a PGM deeper than 8 bits is on the 16-bit scale,
# and a float image's undershoot down to -0.1 is clipped, not refused; 8: a file's 32-bit integer image, a TIFF,
# is on the 16-bit scale wherever its values fit).
CACHE_VERSION = 8
_IN_PROCESS_BELOW = 3000  # starting worker processes costs more than it saves on small sets
_CHUNK = 512


@dataclass
class DecodedImages:
    """Pixels for `paths` (rows of failed files are zero) and the reason each failed file was dropped."""

    paths: list[str]
    pixels: np.ndarray | None  # (N, H, W, C) uint8, memory-mapped; None when streaming
    failures: dict[int, str]
    key: str
    streamed: bool = False

    @property
    def ok_indices(self) -> np.ndarray:
        bad = np.fromiter(self.failures.keys(), dtype=np.int64, count=len(self.failures))
        mask = np.ones(len(self.paths), dtype=bool)
        mask[bad] = False
        return np.flatnonzero(mask)


def default_cache_dir() -> Path:
    # IMGCLF_CACHE set but empty is unset (Path("") is the working folder, which filled with cache files)
    return Path(os.environ.get("IMGCLF_CACHE") or home_folder() / ".cache" / "imgclf")



def cache_argument(cache_dir: str | os.PathLike | None) -> str:
    """What named the cache folder, for an error: the option, else $IMGCLF_CACHE, else the option (its default)."""
    return "cache_dir" if cache_dir else "IMGCLF_CACHE" if os.environ.get("IMGCLF_CACHE") else "cache_dir"


def cache_folder(cache_dir: str | os.PathLike | None = None, sub: str = "") -> Path:
    """The cache folder (`cache_dir`, else $IMGCLF_CACHE, else ~/.cache/imgclf), and `sub` in it, made if need be;
    one that is a file, or that is not there and cannot be made, is the user's error, naming where it came from,
    before any image is decoded (it was an internal error, FileExistsError, from the mkdir). One that is there is
    taken as it is: a shared cache on a read-only disk serves what it holds (a write it lacks says so then)."""
    from ..io import writable_folder

    argument = cache_argument(cache_dir)
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = (folder if folder.is_dir() else writable_folder(argument, folder)) / sub
    if folder.is_dir():
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a race with another process, or a sub folder name taken by a file
        from ..errors import bad_path

        raise bad_path(argument, folder, "a folder to keep decoded images in",
                       exc.strerror or type(exc).__name__) from None
    return folder


def files_stamp(paths: Sequence[str], root: str | os.PathLike) -> str:
    """A digest of each file's path (relative to `root`: a folder moved whole keeps it), size and modification
    time: what tells a resume that images were edited or replaced under the same names. Unlike `cache_key`, it
    does not change with a release, an inode or a change time, so that a data folder copied elsewhere with its
    times (the same images) says nothing; a file replaced at its very size and modification time (cp -p of
    another file) goes unsaid, though the cache decodes it again."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(f"\n{os.path.relpath(path, root)}|{_stamp(path)}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:24]


def _stamp(path: str, exact: bool = False) -> str:
    """A file's size and modification time ("missing" when it cannot be read). exact: its inode and change time
    too, so that a file replaced at its size and modification time (unpacked from an archive, cp -p, rsync -t, a
    fixed-size BMP) reads as changed."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}" + (f":{st.st_ino}:{st.st_ctime_ns}" if exact else "")


def cache_key(paths: list[str], size: int, color: str, interpolation: str) -> str:
    # Pillow's pixel limit decides which images are refused as bombs: a cache made under another limit holds
    # other failures (and quotes that limit)
    limit = Image.MAX_IMAGE_PIXELS
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{color}|{interpolation}|{len(paths)}|{limit}".encode())
    for path in paths:  # exact: a file replaced so was served from the cache with the old pixels
        digest.update(f"\n{path}|{_stamp(path, exact=True)}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:24]


def _decode_chunk(args: tuple[str, int, list[str], int, str, str, bool, int | None]) -> dict[int, str]:
    out_path, start, paths, size, color, interpolation, store, pixel_limit = args
    Image.MAX_IMAGE_PIXELS = pixel_limit  # the caller's: a spawned worker starts with Pillow's default
    pixels = np.load(out_path, mmap_mode="r+") if store else None
    failures: dict[int, str] = {}
    for offset, path in enumerate(paths):
        try:
            arr = open_image(path, size, color, interpolation)
            if pixels is not None:
                pixels[start + offset] = arr
        except DecodeError as exc:
            failures[start + offset] = str(exc)
    if pixels is not None:
        pixels.flush()
    return failures


def _run_chunks(tasks: list[tuple], workers: int, bar: StepProgress, argument: str) -> dict[int, str]:
    failures: dict[int, str] = {}
    n_items = sum(len(t[2]) for t in tasks)
    if workers <= 1 or n_items < _IN_PROCESS_BELOW:
        for task in tasks:
            failures.update(_decode_chunk(task))
            bar.update(len(task[2]))
    else:
        # spawn, not fork: forking a process that already runs torch's thread pools can deadlock.
        try:
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                     initializer=silence_pillow_warnings) as pool:  # imgclf's own processes
                for task, result in zip(tasks, pool.map(_decode_chunk, tasks)):
                    failures.update(result)
                    bar.update(len(task[2]))
        except BrokenProcessPool:
            raise _workers_died(workers, argument) from None
    return failures


def _workers_died(workers: int, argument: str) -> Exception:
    """The usual cause: a script that calls imgclf at its top level. A spawned worker imports the script again
    before it can run anything, so it starts the work again in itself and dies (Python's own message, printed
    above by the worker, says so too). `argument`: the caller's name for the worker count."""
    import __main__

    script = getattr(__main__, "__file__", None)
    died = f"a decode worker process died{f' ({script})' if script else ''}"
    return invalid(argument, workers, "1, or more with a script whose imgclf calls sit under "
                   "`if __name__ == \"__main__\":`", note=died,
                   hint="Each worker imports the script that started it; guard its calls, as multiprocessing's "
                        f"'safe importing of main module' says, or pass {argument}=1")


def _read_cached(meta_path: Path, array_path: Path | None, shape: tuple[int, ...]
                 ) -> tuple[dict[int, str], np.ndarray | None] | None:
    """A finished cache entry's failures and pixels, or None (and a warning) when either file is damaged, a
    truncated array or garbled JSON after a crash of the disk or of a copy: it is derived data, decoded again."""
    from ..notices import warn
    from .cache_records import ImageCacheRecord  # here: spawned decoding workers import this module, not pydantic

    try:
        failures = ImageCacheRecord.read(meta_path).failures
        pixels = np.load(array_path, mmap_mode="r") if array_path is not None else None
        if pixels is not None and (pixels.shape != shape or pixels.dtype != np.uint8):
            raise ValueError(f"holds {pixels.dtype} {pixels.shape}, not uint8 {shape}")
        return failures, pixels
    except FileNotFoundError:  # removed between its record and its array (`imgclf cache clear`): not damaged
        return None
    except (OSError, ValueError) as exc:
        warn(f"decoded-image cache entry {meta_path.with_suffix('')} is damaged ({type(exc).__name__}: "
             f"{str(exc)[:120]}): decoding the images again")
        return None


def _readable_since(paths: list[str], failures: dict[int, str]) -> bool:
    """Whether a file the cache entry failed for want of permission can be read now: a chmod changes neither its
    size nor its time, which key the entry, so the fixed file stayed skipped (and one user's failure was served
    to another who can read it, in a shared IMGCLF_CACHE)."""
    return any(reason == PERMISSION_DENIED and os.access(paths[i], os.R_OK) for i, reason in failures.items())


def _reserve(path: Path, cache_dir: Path, argument: str = "cache_dir") -> None:
    """Claim the array's disk blocks before any pixel is written: a memory-mapped write past the space left kills
    the process with SIGBUS, without a word. argument: what named the folder (`cache_argument`)."""
    if not hasattr(os, "posix_fallocate"):
        return
    size = path.stat().st_size
    try:
        with open(path, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, size)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):  # anything else (no fallocate there): write as before
            return
        path.unlink(missing_ok=True)
        from ..config_text import byte_text

        raise invalid(argument, str(cache_dir), f"a folder with {byte_text(size)} free for the decoded images",
                      note=os.strerror(exc.errno), hint="Free space there (`imgclf cache clear --older-than 30d` "
                      "removes the entries no run opened for 30 days; `imgclf cache list` shows them), or point "
                      "IMGCLF_CACHE (training: --cache-dir) at another disk; training can also decode at every "
                      "epoch, uncached, with --cache-budget 0") from None


def decode_all(
    paths: list[str],
    size: int,
    color: str,
    interpolation: str = "bilinear",
    cache_dir: str | os.PathLike | None = None,
    budget_bytes: int = 4 * 10**9,
    workers: int = 2,
    progress: bool = True,
    workers_argument: str = "num_workers",
) -> DecodedImages:
    """Decode `paths` once into the cache (or only validate them when they exceed the budget). progress: show a
    bar on a terminal, a few lines when redirected, for a build that takes more than a second.
    `workers_argument`: what the caller names `workers`, for the error when they cannot start."""
    channels = 1 if color == "grayscale" else 3
    key = cache_key(paths, size, color, interpolation)
    argument = cache_argument(cache_dir)  # $IMGCLF_CACHE named the folder where the option was not given
    cache_dir = cache_folder(cache_dir)
    array_path = cache_dir / f"{key}.npy"
    meta_path = cache_dir / f"{key}.json"
    store = len(paths) * size * size * channels <= budget_bytes

    shape = (len(paths), size, size, channels)
    if meta_path.exists() and (array_path.exists() or not store):
        cached = _read_cached(meta_path, array_path if store else None, shape)
        if cached is not None and not _readable_since(paths, cached[0]):
            failures, pixels = cached
            mark_used(meta_path)
            tag_as_cache(cache_dir)  # a cache made before the tag existed, which only ever serves hits
            return DecodedImages(list(paths), pixels, failures, key, streamed=not store)

    tmp_path = held = None
    if store:
        # a build killed (kill -9, the OOM killer) left its whole reserved array, which nothing else removes
        remove_stale_temp_files(cache_dir.glob(f".{key}.*.npy"))
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{key}.", suffix=".npy", dir=cache_dir)
        except OSError as exc:  # a cache taken as it was (read-only, another user's) that lacks these images
            raise invalid(argument, str(cache_dir), "a folder this process can write the decoded images in",
                          note=f"these images are not cached there yet and it takes no file: "
                               f"{exc.strerror or type(exc).__name__}",
                          hint="Pass another --cache-dir (or $IMGCLF_CACHE), one this user can write in") from None
        os.close(fd)
        tmp_path = Path(tmp_name)
        np.lib.format.open_memmap(tmp_path, mode="w+", dtype=np.uint8, shape=shape).flush()
        _reserve(tmp_path, cache_dir, argument)
    try:
        tasks = [
            (str(tmp_path), start, paths[start : start + _CHUNK], size, color, interpolation, store,
             Image.MAX_IMAGE_PIXELS)
            for start in range(0, len(paths), _CHUNK)
        ]
        what = f"{size}x{size} {color}" + ("" if store else ", too large to cache: checking only")
        with StepProgress(f"decoding {len(paths):,} images ({what})", len(paths), enabled=progress) as bar:
            failures = _run_chunks(tasks, workers, bar, workers_argument)
            bar.close(f"{len(failures):,} unreadable" if failures else "")
        if tmp_path is not None:
            os.chmod(tmp_path, default_file_mode())  # mkstemp's 0600 kept other users of a shared cache out
            # mapped before the rename: an `imgclf cache clear` taking the new entry at once crashed the run that
            # built it (POSIX keeps a mapped file's blocks; Windows refuses to rename a mapped file)
            held = np.load(tmp_path, mmap_mode="r") if os.name == "posix" else None
            os.replace(tmp_path, array_path)
    except BaseException:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        raise
    from .cache_records import ImageCacheRecord

    record = ImageCacheRecord(version=CACHE_VERSION, size=size, color=color, count=len(paths),
                              source=_common_folder(paths), failures=dict(sorted(failures.items())))
    write_json(meta_path, record.model_dump(mode="json"))
    if store:
        tag_as_cache(cache_dir)
        say_if_large(cache_dir)
    pixels = (held if held is not None else np.load(array_path, mmap_mode="r")) if store else None
    return DecodedImages(list(paths), pixels, failures, key, streamed=not store)


def _common_folder(paths: Sequence[str]) -> str:
    try:
        common = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths]) if paths else ""
    except ValueError:  # paths on different drives
        return ""
    return common[:300]


def readable_blocks(decoded: DecodedImages, size: int, color: str, interpolation: str,
                    batch_size: int) -> Iterator[np.ndarray]:
    """uint8 (n, H, W, C) blocks of the readable images, in order: slices of the cache (several batches each, so
    that a progress bar moves without a call per batch), or one batch at a time decoded from the files."""
    block = 8 * batch_size if decoded.pixels is not None else batch_size
    yield from pixel_blocks(decoded, decoded.ok_indices, size, color, interpolation, block)


def pixel_blocks(decoded: DecodedImages, rows: Sequence[int] | np.ndarray, size: int, color: str,
                 interpolation: str, block: int) -> Iterator[np.ndarray]:
    """uint8 (n, H, W, C) blocks of the images at `rows`, in order, `block` at a time: slices of the cache, or
    decoded from their files (streamed data: decoded here, once)."""
    for start in range(0, len(rows), block):
        part = rows[start:start + block]
        if decoded.pixels is not None:
            yield np.asarray(decoded.pixels[part])
        else:
            yield np.stack([_read_again(decoded.paths[i], size, color, interpolation) for i in part])


class ImageChangedError(ImgclfError):
    """A streamed image that was readable when the command scanned it and is not now (the training pipeline adds
    how to finish its run)."""

    path: str = ""
    reason: str = ""


def _read_again(path: str, size: int, color: str, interpolation: str) -> np.ndarray:
    """A streamed image read again after the scan found it readable: one changed or removed since (during a long
    training) is named, where it was an internal error after the last epoch."""
    try:
        return open_image(path, size, color, interpolation)
    except DecodeError as exc:
        raise changed_image_error(path, str(exc)) from None


def changed_image_error(path: str, reason: str, then: str = "run the command again") -> ImageChangedError:
    """The refusal of a streamed image no longer readable: `then`, what to do once it is back."""
    from ..errors import bad_path

    error = bad_path("data", path, "an image that stays readable while it is read (streamed from disk)",
                     f"it was readable when the command began, now: {reason}",
                     hint=f"Put the file back as it was, then {then}")
    changed = ImageChangedError(str(error), error.argument)
    changed.path, changed.reason = path, reason
    return changed


# Smaller files are compared at this side: the near-duplicate search's border and blur need pixels.
MIN_COMPARISON_SIDE = 8


def comparison_pixels(decoded: DecodedImages, color: str, interpolation: str = "bilinear",
                      cache_dir: str | os.PathLike | None = None, workers: int = 2,
                      native: int | None = None) -> np.ndarray | None:
    """The pixels the near-duplicate search compares, row for row as `decoded.pixels`: those pixels where they
    are at the search's side, else the files decoded at it (cached like any decode): their own side (median
    short side) up to the thumbnails' THUMB_SIDE, not below MIN_COMPARISON_SIDE, whatever size the run decodes.
    Enlarging smooths away what tells two small images apart: scikit-learn's 8 x 8 digits, decoded at 16 px,
    held 48 near-duplicate groups of different writers' digits, at their own 8 px, 16. Shrinking does too:
    Fashion-MNIST decoded at 16 px chained 4,010 different trousers into one group (their ends correlating at
    0.33), where at its own 28 px the largest group held 141. native: that side where the caller has read it."""
    from ..duplicates.thumbnails import THUMB_SIDE
    from .decode import median_side

    if decoded.pixels is None:
        return None
    size = decoded.pixels.shape[1]
    native = native if native is not None else median_side([decoded.paths[i] for i in decoded.ok_indices])
    if native is None:
        return decoded.pixels
    side = max(min(native, THUMB_SIDE), MIN_COMPARISON_SIDE)
    if size == side or size >= side == THUMB_SIDE:  # as decoded, or shrunk to the thumbnails' side anyway
        return decoded.pixels
    other = decode_all(decoded.paths, side, color, interpolation, cache_dir, budget_bytes=2**62, workers=workers,
                       progress=False)
    # the same files must have failed (a file changed between the two passes: compare the decoded pixels)
    return other.pixels if other.failures.keys() == decoded.failures.keys() else decoded.pixels
