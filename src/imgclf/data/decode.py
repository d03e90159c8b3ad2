"""Robust image decoding into uint8 arrays: EXIF orientation, odd modes, bombs and truncation."""

from __future__ import annotations

import functools
import os
import re
import stat
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .file_kinds import special_file_reason

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


# modes whose transparency is a value in img.info (not an alpha band)
COLOUR_KEYED = ("P", "RGB", "L", "1")
PERMISSION_DENIED = "permission denied"  # the one reason a file's stat does not change with (chmod): the cache checks


class DecodeError(Exception):
    """An image that cannot be used; the message is the reason shown to the user."""


def _sixteen_to_eight(values: np.ndarray, rows: int = 1024) -> np.ndarray:
    """16-bit pixels onto 0..255, rint(v * 255 / 65535), as v / 257 rounded (never halfway: 257 is odd), a block of
    rows at a time: a float64 copy of a 9400 x 9400 PNG of 172 KB took 2.4 GB and 14 s (issue found by the serve
    review); this takes the uint16 pixels and a uint8 copy."""
    out = np.empty(values.shape, dtype=np.uint8)
    for start in range(0, values.shape[0], rows):
        out[start:start + rows] = (values[start:start + rows].astype(np.uint32) + 128) // 257
    return out


# A float image up to this bright is on the [0, 1] scale: resampling overshoots 1 a little (a Lanczos ring, a
# rounding 1.0001), which read as 0..255 turned the whole image black; a 0..255 image this dim is black anyway
FLOAT_UNIT_TOP = 1.1


def _to_mode(img: Image.Image, color: str) -> Image.Image:
    """Convert any Pillow mode to 'RGB' or 'L'. Transparency is composited over white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float images: their range into 0..255 rather than clipped. A 16-bit mode is on the 0..65535
        # scale whatever its content (read by its own maximum, two files 1/65535 apart decoded one bright, one
        # black, and a dark photo bright). Float pixels within [0, 1] are scaled by 255 and rounded, as float
        # arrays are read (`inputs.array_to_image`): a float TIFF in [0, 1] read as 0..255 was black; otherwise
        # (floats, 32-bit integers made in memory: a file's are 16-bit by now, `as_stored`) 0..255 stay as they
        # are, and more is read as 16-bit.
        if img.mode.startswith("I;16"):
            values = np.asarray(img)
            grey = Image.fromarray(_sixteen_to_eight(values), mode="L")
            key = img.info.get("transparency")  # a PNG colour key (tRNS) on the 16-bit values
            if isinstance(key, int) and not isinstance(key, bool):
                grey = Image.merge("LA", (grey, Image.fromarray(np.where(values == key, 0, 255).astype(np.uint8))))
            return _to_mode(grey, color)
        arr = np.asarray(img).astype(np.float64)  # asarray(img, dtype=float64) took 3.9 s on 9400 x 9400
        # a little below 0 is a resize's ringing, clipped as arrays' is (inputs.check_array)
        if img.mode == "F" and arr.size and not (np.isfinite(arr).all() and arr.min() >= 1.0 - FLOAT_UNIT_TOP):
            raise DecodeError("float pixels hold NaN, infinity or values below -0.1 (readable: [0, 1] or 0..255)")
        if img.mode == "I" and arr.size and not (arr.min() >= 0 and arr.max() <= 65535):
            # signed (CT scans) or past 16 bits: clipped to 0..255 or scaled as 16-bit, a CT slice read as 0..3
            raise DecodeError(f"32-bit integer pixels from {arr.min():.0f} to {arr.max():.0f} (readable: 0..255 or "
                              "0..65535)")
        hi = arr.max() if arr.size else 0.0
        if img.mode == "F" and hi <= FLOAT_UNIT_TOP:
            arr = np.rint(arr * 255.0)
        elif img.mode.startswith("I;16") or hi > 255:
            arr = np.rint(arr * (255.0 / 65535.0))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
    if img.mode in COLOUR_KEYED and "transparency" in img.info:  # a palette's transparent entry, or a colour key
        img = img.convert("RGBA")  # (PNG tRNS on RGB or grey, as PNG optimisers write it): Pillow applies either
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # premultiplied grey (La) has no direct conversion to RGBA: through its straight form
        img = (img.convert("LA") if img.mode == "La" else img).convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    target = "L" if color == "grayscale" else "RGB"
    if img.mode != target:
        try:
            img = img.convert(target)  # CMYK, YCbCr, P, 1 and the rest
        except ValueError:  # no direct conversion (LAB to L: refused as "LAB to RGB not supported"): through RGB
            img = img.convert("RGB").convert(target)
    return img


def as_stored(img: Image.Image) -> Image.Image:
    """A loaded image as it is meant to be seen, before its mode and size are changed (`image_to_array`), for files
    and for the caller's PIL images alike: turned by its EXIF orientation, and a file's 32-bit integer image ('I':
    a PGM deeper than 8 bits, which Pillow scales to 0..65535; a signed 16-bit or 32-bit TIFF) as the 16-bit image
    it is where its values fit. As 'I' it was read on the 0..255 scale while its brightest pixel stayed below 256:
    two files 1/65535 apart decoded white and black. An 'I' image made in memory (no format: Image.fromarray of
    int32) is read as integer arrays are, 0..255 as 8-bit. (Here, not in `image_to_array`: the turn's copy no
    longer knows its format.)"""
    if img.mode == "I" and img.format is not None:
        values = np.asarray(img)
        if values.size and values.min() >= 0 and values.max() <= 65535:  # else refused by its range (`_to_mode`)
            img = Image.fromarray(values.astype(np.uint16))
    return exif_upright(img)


def _png_colour_key(img: Image.Image) -> None:
    """A PNG colour key as the pixels Pillow reads it (before they are read: the stored bit depth is in the
    tile). A 2- or 4-bit grey image's pixels are scaled to 0..255 and its key is not: a key of 1 hid nothing
    and left its pixels grey. A 16-bit RGB image is read as the high byte of each sample and its key kept whole:
    compared on its low byte, the keyed pixels showed and opaque ones vanished; no pixel can be matched to it
    exactly there, so it is not applied (16-bit grey keeps its values and is keyed in `_to_mode`)."""
    key = img.info.get("transparency")
    raw = img.tile[0].args if img.format == "PNG" and img.tile else None
    if key is None or not isinstance(raw, str):
        return
    if raw.startswith("RGB;16"):
        del img.info["transparency"]
    elif raw in ("L;2", "L;4") and isinstance(key, int):
        img.info["transparency"] = key * (255 // (2 ** int(raw[2:]) - 1))


def _first_bytes(source: object, count: int = 12) -> bytes:
    """The first `count` bytes of a path or a seekable file object (from its start, where Pillow read it: its
    position kept); b"" where unreadable."""
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as handle:
                return handle.read(count)
        if hasattr(source, "seek") and hasattr(source, "read"):
            position = source.tell()
            try:
                source.seek(0)
                return bytes(source.read(count))
            finally:
                source.seek(position)
    except (OSError, ValueError, TypeError):
        pass
    return b""


def _unrecognised_reason(source: object) -> str:
    from .file_kinds import unread_photo_reason, unread_photo_reason_of_bytes
    from .folder import INDEX_SUFFIXES

    if isinstance(source, (str, os.PathLike)) and (photo := unread_photo_reason(os.fspath(source))):
        return photo
    if photo := unread_photo_reason_of_bytes(_first_bytes(source)):  # by content: an upload, a renamed file
        return photo
    if isinstance(source, (str, os.PathLike)) and os.fspath(source).lower().endswith(INDEX_SUFFIXES):
        # predict RUN index.csv: the index of a multi-label data set is scored by evaluate, not predicted
        return ("not an image: a label index? Score a run on one with imgclf evaluate RUN --data INDEX "
                "(Python: imgclf.evaluate(run, data=INDEX))")
    return "not a recognised image format"


def _not_found_reason(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        if os.path.islink(source):
            return "broken symlink (its target is gone)"
        if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://", os.fspath(source)):  # http://, s3://: read as a relative path
            return "a URL, not a file: imgclf reads local files (download it first)"
        if any(c in os.path.basename(os.fspath(source)) for c in "*?["):  # a shell expands them, Python does not
            return "file not found: a pattern is not expanded (pass glob.glob(pattern), or the folder)"
    return "file not found"


def _bomb_reason(pixels: int | None) -> str:
    """One limit in every message: Pillow warns above MAX_IMAGE_PIXELS and raises above twice it, each quoting
    its own limit; imgclf refuses above it."""
    size = f"{pixels:,} pixels" if pixels is not None else "an image"
    return (f"decompression bomb refused: {size}, above the limit of {Image.MAX_IMAGE_PIXELS:,} "
            "(PIL.Image.MAX_IMAGE_PIXELS); scale it down first")


# Formats libjpeg decodes, which it may scale down while decoding (Image.draft). Pillow opens a JPEG that carries
# an MPF index of two or more images (a camera's embedded preview) as "MPO", a JpegImageFile like the others: as
# "JPEG" alone, such photos decoded at full size (121 ms against 9 ms for a 12-megapixel one) and a 108-megapixel
# one was refused as a bomb.
JPEG_FORMATS = ("JPEG", "MPO")
# Formats Pillow decodes by running another program: EPS (PostScript) runs Ghostscript on the file's own code, so an
# upload to `imgclf serve`, or a file named cat.png, made the server run it (Ghostscript has had -dSAFER escapes).
EXTERNAL_PROGRAM_FORMATS = frozenset({"EPS"})


@functools.lru_cache(maxsize=1)
def readable_formats() -> tuple[str, ...]:
    """Every format Pillow opens here but those that run another program: what `Image.open(..., formats=)` is
    given wherever imgclf opens a file or an upload."""
    Image.init()
    return tuple(name for name in Image.OPEN if name not in EXTERNAL_PROGRAM_FORMATS)


def _draft_within(img: Image.Image, limit: int, wanted: tuple[int, int] | None) -> tuple[int, int] | None:
    """The draft size that decodes a JPEG over the pixel limit within it, at 1/2, 1/4 or 1/8 of its sides as
    libjpeg scales (and no larger than `wanted`); None for any other format, or beyond 1/8. A 108-megapixel phone
    photo (12,000 x 9,000) decodes at 1/8 in a tenth of a second: refusing it as a bomb refused a plain photo."""
    if img.format not in JPEG_FORMATS:
        return None
    width, height = img.size
    for k in (2, 4, 8):
        if -(-width // k) * -(-height // k) <= limit:  # libjpeg's output at 1/k, its sides rounded up
            # asked for the sides rounded down: Pillow takes the scale as width // asked, and an odd width asked
            # for its rounded-up 1/k got scale 1 (a 1,201-pixel-wide photo stayed whole, and was refused)
            asked = (width // k, height // k)
            return asked if wanted is None else (min(wanted[0], asked[0]), min(wanted[1], asked[1]))
    return None


def _is_empty(source: str | IO[bytes]) -> bool:
    """A zero-byte file (or stream): said so, as the server says of an empty upload, not "not an image"."""
    try:
        if isinstance(source, (str, os.PathLike)):
            return os.path.getsize(source) == 0
        return source.seek(0, os.SEEK_END) == 0
    except (OSError, AttributeError, ValueError):
        return False


def open_image(source: str | IO[bytes], size: int | None, color: str, interpolation: str = "bilinear") -> np.ndarray:
    """Decode one image to a (H, W, C) uint8 array, C = 3 for rgb and 1 for grayscale.

    Raises DecodeError with a human-readable reason for anything unusable.
    """
    return decode_image(source, size, color, interpolation)[0]


def decode_image(source: str | IO[bytes], size: int | None, color: str,
                 interpolation: str = "bilinear") -> tuple[np.ndarray, dict[str, object]]:
    """`open_image` plus the file's own width, height, mode and format, read from the same open (`inspect`
    reports both without reading a file twice)."""
    try:
        with Image.open(source, formats=readable_formats()) as img:
            limit = Image.MAX_IMAGE_PIXELS  # None: Pillow's documented way to lift the limit
            stored = img.size[0] * img.size[1]
            draft = (size, size) if size is not None and img.format in JPEG_FORMATS else None
            if limit is not None and stored > limit:
                draft = _draft_within(img, limit, draft)
                if draft is None:
                    raise DecodeError(_bomb_reason(stored))
            _png_colour_key(img)  # first: reading a PNG's EXIF (upright_size) reads its pixels, and its tile
            if img.format == "PNG":
                # its pixels read here, where a damaged stream raises: read inside upright_size (for an EXIF
                # chunk after the pixels), the error was taken for bad EXIF and the half-read image, mostly
                # black, was trained on and predicted
                img.load()
            width, height = upright_size(img)
            meta = {"width": width, "height": height, "mode": img.mode, "format": img.format}
            if draft is not None:
                # Let libjpeg downscale by 1/2..1/8 while decoding: much faster for big photos.
                img.draft("L" if color == "grayscale" else "RGB", draft)
                if limit is not None and img.size[0] * img.size[1] > limit:
                    raise DecodeError(_bomb_reason(stored))
            img.load()
            arr = image_to_array(as_stored(img), size, color, interpolation)
    except DecodeError:
        raise
    # over twice the limit, Pillow refuses it while opening; over the limit, where the caller made Pillow's
    # warning an error (a hardening the library leaves as it is)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise DecodeError(_bomb_reason(int(found.group(1)) if found else None)) from None
    except UnidentifiedImageError:
        raise DecodeError("empty file (0 bytes)" if _is_empty(source) else _unrecognised_reason(source)) from None
    except FileNotFoundError:  # a link whose target is gone is listed by ls: "not found" read as a mistake
        raise DecodeError(_not_found_reason(source)) from None
    except PermissionError:
        raise DecodeError(PERMISSION_DENIED) from None
    except IsADirectoryError:
        raise DecodeError("is a folder, not a file") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        message = str(exc) or type(exc).__name__
        if "truncated" in message.lower():
            message = "truncated file (" + message + ")"
        raise DecodeError(message) from None
    except (MemoryError, RecursionError):  # the machine's trouble, not the file's: never a skipped image
        raise
    except Exception as exc:  # a malformed file's own failure inside Pillow (TypeError, struct.error, ...): skipped
        raise DecodeError(f"damaged file ({type(exc).__name__}: {exc})") from None
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise DecodeError("image has no pixels")
    return arr, meta


def refuse_special_file(path: str | os.PathLike) -> None:
    """A named pipe, device or socket given by name (`mkfifo x.png`): opening it waits for a writer that may never
    come, and `imgclf predict` hung. A folder walk skips them, so only a path given on its own is asked (not every
    file of a training's decode pass: one stat more per image there)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # missing, unreadable: Pillow's own open says which
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise DecodeError(special_file_reason(mode))


def image_to_array(img: Image.Image, size: int | None, color: str, interpolation: str = "bilinear") -> np.ndarray:
    """A decoded Pillow image -> (H, W, C) uint8 in the target colour mode and size (the one conversion
    path shared by files and in-memory arrays)."""
    img = _to_mode(img, color)
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), INTERPOLATIONS[interpolation], reducing_gap=None)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def header_sample(paths: list[str], sample: int = 200) -> list[str]:
    """Up to `sample` of `paths`, in their order, drawn at random with a fixed seed, for what is read from
    headers (sizes, modes): an even stride through a folder listing can fall in step with a pattern in it (every
    third file large: the median side of a stride said 100 px where it is 20)."""
    if len(paths) <= sample:
        return list(paths)
    return [paths[i] for i in sorted(np.random.default_rng(0).choice(len(paths), sample, replace=False))]


def median_side(paths: list[str], longer: bool = False, sample: int = 200) -> int | None:
    """The median short (or `longer`) side of a `header_sample` of the images, from their headers (no
    decoding); None when none can be read."""
    sides = []
    for path in header_sample(paths, sample):
        try:
            meta = probe_image(path)
        except Exception:  # unreadable files are reported by the decode pass
            continue
        pick = max if longer else min
        sides.append(pick(int(meta["width"]), int(meta["height"])))
    return int(np.median(sides)) if sides else None


# EXIF orientations that turn the image by 90 degrees (5 to 8): its upright width is the stored height
_QUARTER_TURNS = {5, 6, 7, 8}


def probe_image(path: str) -> dict[str, object]:
    """Size (upright, as decoding turns it by its EXIF orientation), mode and format of an image without decoding
    its pixels (for `inspect` and the median side)."""
    with Image.open(path, formats=readable_formats()) as img:
        width, height = upright_size(img)
        return {"width": width, "height": height, "mode": img.mode, "format": img.format}


def exif_upright(img: Image.Image) -> Image.Image:
    """`img` turned by its EXIF orientation; as it is where the EXIF block is damaged (a tag of the wrong type
    raised TypeError or struct.error from Pillow and failed the request or the run), as `upright_size` reads it."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:
        return img


def upright_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) once the image is turned by its EXIF orientation, as decoding turns it (`inspect` listed a
    portrait photo stored sideways as landscape)."""
    width, height = img.size
    try:
        turned = img.getexif().get(0x0112) in _QUARTER_TURNS
    except Exception:  # a damaged EXIF block: the image decodes as it is (or is skipped), as it will be
        turned = False
    return (height, width) if turned else (width, height)
