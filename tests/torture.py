"""A folder of everything that breaks image pipelines, next to enough good images to train on."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import make_image_folder

# name -> expected reason fragment (None: decodable and must be used)
BROKEN = {
    "zero.jpg": "empty file (0 bytes)",
    "truncated.jpg": "truncated",
    "truncated.png": "truncated",
    # bytes flipped inside the compressed pixels (bit rot, a bad copy): decoded mostly black, without an error
    "damaged_stream.png": "broken data stream",
    # signed 32-bit pixels (a CT slice): clipped, half of them read black and the rest as 0..3
    "signed.tif": "32-bit integer pixels from -100 to 530",
    "text.jpg": "not a recognised image format",
    "bomb.png": "decompression bomb",
    # a fuzzed TIFF whose tag of the wrong type makes Pillow raise TypeError while loading it (it crashed predict)
    "damaged_ifd.tif": "damaged file (TypeError",
}
DECODABLE = ["bmp_named.jpg", "cmyk.jpg", "sixteen_bit.png", "palette_transparent.png", "la.png", "rgba.png",
             "exif_rotated.jpg", "damaged_exif.jpg", "one_pixel.png", "with space ünïcødé.png"]
FIXTURES = Path(__file__).parent / "fixtures"


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid PNG header announcing 900 M pixels (well past Pillow's limit) with one tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def keyed_png(width: int, depth: int, colour_type: int, row: bytes, key: tuple[int, ...]) -> bytes:
    """A one-row PNG written byte by byte (Pillow writes no 2-, 4- or 16-bit colour PNG): bit `depth`, colour
    type 0 (grey) or 2 (RGB), and a tRNS colour key of one value per channel."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, 1, depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"tRNS", struct.pack(f">{len(key)}H", *key))
            + chunk(b"IDAT", zlib.compress(b"\0" + row)) + chunk(b"IEND", b""))


def exif_rotated_jpeg() -> bytes:
    """A 20x10 image, left half black, right half white, stored with EXIF orientation 6 (rotate 90 CW)."""
    arr = np.zeros((10, 20, 3), dtype=np.uint8)
    arr[:, 10:] = 255
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    return buf.getvalue()


def damaged_exif_jpeg() -> bytes:
    """A sound JPEG whose EXIF block has orientation 6 and a tag of the wrong type (text under Compression's id):
    Pillow decodes its pixels, but reading its orientation raised struct.error, which failed a request, predict
    and train (found by the serve review). It is used as stored."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x9003] = "2020:01:01 00:00:00"
    raw = exif.tobytes()
    assert raw.count(b"\x90\x03") == 1
    buf = io.BytesIO()
    Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))).convert("RGB").save(
        buf, format="JPEG", exif=raw.replace(b"\x90\x03", b"\x01\x03"))
    return buf.getvalue()


def make_torture_corpus(root: Path) -> Path:
    make_image_folder(root, classes=("cat", "dog"), per_class=12, size=16)
    bad = root / "cat"
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    jpeg = io.BytesIO()
    photo.save(jpeg, format="JPEG")
    png = _png_bytes(photo)
    (bad / "zero.jpg").write_bytes(b"")
    (bad / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (bad / "truncated.png").write_bytes(png[: len(png) // 2])
    damaged = bytearray(png)
    damaged[len(png) * 3 // 10: len(png) * 3 // 10 + 8] = bytes(b ^ 0xFF for b in png[len(png) * 3 // 10:][:8])
    (bad / "damaged_stream.png").write_bytes(bytes(damaged))
    Image.fromarray((np.arange(64).reshape(8, 8) * 10 - 100).astype(np.int32)).save(bad / "signed.tif")
    (bad / "text.jpg").write_text("this is not an image\n")
    (bad / "bomb.png").write_bytes(_bomb_png())
    bmp = io.BytesIO()
    photo.save(bmp, format="BMP")
    (bad / "bmp_named.jpg").write_bytes(bmp.getvalue())
    photo.convert("CMYK").save(bad / "cmyk.jpg", format="JPEG")
    Image.fromarray((rng.integers(0, 65535, (16, 16))).astype(np.uint16)).save(bad / "sixteen_bit.png")
    pal = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal.save(bad / "palette_transparent.png", transparency=0)
    photo.convert("LA").save(bad / "la.png")
    photo.convert("RGBA").save(bad / "rgba.png")
    (bad / "exif_rotated.jpg").write_bytes(exif_rotated_jpeg())
    (bad / "damaged_exif.jpg").write_bytes(damaged_exif_jpeg())
    (bad / "damaged_ifd.tif").write_bytes((FIXTURES / "damaged_ifd.tif").read_bytes())
    Image.new("RGB", (1, 1), (200, 10, 10)).save(bad / "one_pixel.png")
    photo.save(bad / "with space ünïcødé.png")
    (bad / ".hidden.png").write_bytes(png)
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".ipynb_checkpoints" / "x.png").write_bytes(png)
    (root / "dog" / ".git").mkdir()
    (root / "dog" / ".git" / "y.png").write_bytes(png)
    os.symlink("loop.png", bad / "loop.png")  # a symlink pointing at itself
    os.symlink("..", root / "dog" / "parent_loop")  # a folder link back up: must not recurse forever
    unreadable = root / "dog" / "unreadable.png"
    unreadable.write_bytes(png)
    unreadable.chmod(0)
    return root
