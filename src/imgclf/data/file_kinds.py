"""Which files a folder's walk takes for images, and the reasons it gives for the ones it leaves out by name."""

from __future__ import annotations

import os
import stat


def _reads_avif() -> bool:
    """Pillow reads AVIF where it was built with libavif (its wheels since 11.2): elsewhere an .avif is no image."""
    from PIL import features

    try:
        return bool(features.check("avif"))
    except Exception:  # a Pillow that does not know the feature's name
        return False


# What a multi-label run's data may be besides folders (data.multilabel reads them).
INDEX_SUFFIXES = (".csv", ".jsonl", ".ndjson")
# The header of the file list `imgclf subset` writes (subset.csv), which --mode list leaves alone, without images.
SUBSET_LIST_HEADER = ("split", "class", "path", "link")
SUBSET_LIST_HINT = "Make a subset imgclf reads with --mode symlink or --mode hardlink"


def is_subset_list(path: os.PathLike | str) -> bool:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            first = handle.readline(200)
    except OSError:
        return False
    return tuple(cell.strip().lower() for cell in first.split(",")) == SUBSET_LIST_HEADER
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
                    ".jfif", ".jpe") + ((".avif",) if _reads_avif() else ())
NOT_AN_IMAGE_NAME = "not an image file extension"  # the reason a file beside the images is skipped
# a name whose bytes are not UTF-8: its path could be written into no record (dataset.json, predictions.csv)
NOT_UTF8_NAME = "name is not UTF-8 (rename it, e.g. convmv -f latin1 -t utf8 -r --notest FOLDER)"
# photos of formats Pillow cannot open, named as such: "not an image file extension" read as a broken phone photo
_UNREAD_PHOTOS = {".heic": "HEIC", ".heif": "HEIF", ".avif": "AVIF", ".dng": "raw", ".cr2": "raw", ".cr3": "raw",
                  ".nef": "raw", ".arw": "raw", ".raf": "raw", ".orf": "raw", ".rw2": "raw"}
UNREAD_PHOTO = "photos are not read (Pillow cannot open them); convert them to JPEG or PNG first"


def unread_photo_reason(name: str) -> str | None:
    """Why a photo of a format imgclf cannot read is left out, and what to do; None for other files."""
    kind = _UNREAD_PHOTOS.get(os.path.splitext(name)[1].lower())
    if kind is None or name.lower().endswith(IMAGE_EXTENSIONS):
        return None
    return f"{kind} {UNREAD_PHOTO}"


# ISO base media file brands (the 4 bytes after "ftyp" at offset 4) of the photo formats Pillow cannot open here
_UNREAD_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"hevx": "HEIC", b"heim": "HEIC",
                  b"heis": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}


def unread_photo_reason_of_bytes(head: bytes) -> str | None:
    """As `unread_photo_reason`, from a file's first 12 bytes: an upload has no name to go by, and an iPhone photo
    renamed .jpg is still HEIC ("not a recognised image format" said nothing of what to do)."""
    kind = _UNREAD_BRANDS.get(head[8:12]) if head[4:8] == b"ftyp" else None
    if kind is None or (kind == "AVIF" and ".avif" in IMAGE_EXTENSIONS):
        return None
    return f"{kind} {UNREAD_PHOTO}"


def left_out_by_name(reason: str) -> bool:
    """Whether a skipped file was left out for its name (an extension imgclf does not read, a name not in UTF-8)
    rather than for its contents."""
    return reason in (NOT_AN_IMAGE_NAME, NOT_UTF8_NAME) or reason.endswith(UNREAD_PHOTO)


def special_file_reason(mode: int) -> str:
    """Why a file of this st_mode is not read: a named pipe, socket or device (opening a pipe waits for a writer
    that may never come)."""
    kind = "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f"not a regular file ({kind})"
