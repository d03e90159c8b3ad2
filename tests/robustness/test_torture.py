"""Every command runs over the torture corpus: decodable images used, the rest skipped with reasons."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from imgclf.data.decode import DecodeError, open_image
from torture import BROKEN, DECODABLE, exif_rotated_jpeg, make_torture_corpus

IMGCLF = [sys.executable, "-m", "imgclf.cli"]
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_torture_corpus(tmp_path_factory.mktemp("torture") / "data")


def _run(*args, env=None):
    proc = subprocess.run(IMGCLF + list(args), capture_output=True, text=True, env=env, timeout=300)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


def test_decoder_on_each_file(corpus):
    for name, reason in BROKEN.items():
        with pytest.raises(DecodeError, match=re.escape(reason)):
            open_image(str(corpus / "cat" / name), 8, "rgb")
    for name in DECODABLE:
        for color, channels in (("rgb", 3), ("grayscale", 1)):
            arr = open_image(str(corpus / "cat" / name), 8, color)
            assert arr.shape == (8, 8, channels) and arr.dtype == np.uint8


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "r.jpg"
    path.write_bytes(exif_rotated_jpeg())
    arr = open_image(str(path), None, "grayscale")[..., 0]
    assert arr.shape == (20, 10), "orientation 6 turns a 20x10 landscape into a 10x20 portrait"
    assert arr[:8].mean() < 60 and arr[12:].mean() > 200, "left half (black) must end up on top"


def test_transparency_is_composited_over_white(tmp_path):
    from PIL import Image

    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert open_image(str(tmp_path / "clear.png"), None, "rgb").min() == 255


def test_a_colour_key_is_transparency_as_an_alpha_band_is(tmp_path):
    """An RGB or grey PNG whose transparency is a colour key (tRNS: optipng and oxipng write RGBA so when its alpha
    is all or nothing) showed the hidden colour; the same picture as a palette PNG came out white."""
    from PIL import Image

    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2] = (255, 0, 0)  # the keyed colour, hidden
    rgb[2:] = (0, 0, 200)
    Image.fromarray(rgb).save(tmp_path / "rgb.png", transparency=(255, 0, 0))
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    rgba = np.array(Image.open(tmp_path / "rgba.png"))
    rgba[:2, :, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert np.array_equal(open_image(str(tmp_path / "rgb.png"), None, "rgb"),
                          open_image(str(tmp_path / "rgba.png"), None, "rgb"))
    assert (open_image(str(tmp_path / "rgb.png"), None, "rgb")[:2] == 255).all()
    grey = np.full((4, 4), 90, np.uint8)
    grey[:, :2] = 7
    Image.fromarray(grey).save(tmp_path / "grey.png", transparency=7)
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "deep.png", transparency=7 * 257)
    for name in ("grey.png", "deep.png"):
        decoded = open_image(str(tmp_path / name), None, "grayscale")[..., 0]
        assert (decoded[:, :2] == 255).all() and (decoded[:, 2:] == 90).all(), name


def test_a_colour_key_at_other_bit_depths(tmp_path):
    """Pillow scales 2- and 4-bit grey pixels to 0..255 and not their key (a key of 1 hid nothing), and reads 16-bit
    RGB as the high byte of each sample with the key whole (the keyed pixel showed, an opaque one whose high
    bytes equalled the key's low bytes vanished): 2- and 4-bit keys are scaled, a 16-bit RGB key is not applied."""
    import struct

    from torture import keyed_png

    cases = {  # file: (bytes, colour, the decoded pixels)
        "grey4.png": (keyed_png(2, 4, 0, bytes([0x10]), (1,)), "grayscale", [255, 0]),  # pixels 1 (keyed), 0
        "grey2.png": (keyed_png(2, 2, 0, bytes([0b01110000]), (1,)), "grayscale", [255, 255]),  # 1 (keyed), 3
        "grey1.png": (keyed_png(2, 1, 0, bytes([0b01000000]), (0,)), "grayscale", [255, 255]),  # 0 (keyed), 1
        "rgb16.png": (keyed_png(2, 16, 2, struct.pack(">6H", 0x1234, 0x5678, 0x9ABC, 0x3412, 0x7856, 0xBC9A),
                                (0x1234, 0x5678, 0x9ABC)), "rgb", [[18, 86, 154], [52, 120, 188]]),
    }
    for name, (data, colour, expected) in cases.items():
        (tmp_path / name).write_bytes(data)
        decoded = open_image(str(tmp_path / name), None, colour)[0]
        assert (decoded.ravel() if colour == "grayscale" else decoded).tolist() == expected, name


def test_a_corrupt_exif_block_prints_no_pillow_warning(tmp_path):
    """`imgclf predict` printed Pillow's raw "UserWarning: Corrupt EXIF data" with a line of its source between
    the predictions; the image is used as stored, and that is all there is to say. The command line silences
    Pillow in its own process; the library leaves the warning to its caller's filters, as Pillow gives it."""
    import struct
    import warnings

    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    block = bytearray(exif.tobytes())
    block[10:14] = struct.pack(">I" if block[6:8] == b"MM" else "<I", 4000)  # IFD0 past the block's end
    Image.fromarray(np.zeros((8, 6, 3), np.uint8)).save(tmp_path / "bad.jpg", exif=bytes(block))
    from imgclf.notices import silence_pillow_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert open_image(str(tmp_path / "bad.jpg"), None, "rgb").shape == (8, 6, 3)  # as stored
        assert [str(w.message) for w in caught] == ["Corrupt EXIF data.  Expecting to read 2 bytes but only got 0. "]
        silence_pillow_warnings()  # as the command line does
        assert open_image(str(tmp_path / "bad.jpg"), None, "rgb").shape == (8, 6, 3)
    assert len(caught) == 1


def test_pillows_pixel_limit_lifted_is_no_limit(tmp_path, monkeypatch):
    """PIL.Image.MAX_IMAGE_PIXELS = None, Pillow's documented way to lift the limit, made every image a
    "damaged file (TypeError ...)", and fit found no training image."""
    from PIL import Image

    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert open_image(str(tmp_path / "small.png"), 4, "rgb").shape == (4, 4, 3)


def test_streamed_images_decode_under_the_callers_pixel_limit_in_a_spawned_worker(tmp_path, monkeypatch):
    """Data too large to cache is decoded by the loader's workers: a spawned one started with Pillow's default
    limit and dropped every image the caller's raised limit had let through."""
    import multiprocessing as mp

    from PIL import Image
    from torch.utils.data import DataLoader

    from imgclf.train.loaders import StreamedImages

    for i in range(3):
        Image.new("RGB", (40, 30), (i, 0, 0)).save(tmp_path / f"{i}.png")
    paths = sorted(str(p) for p in tmp_path.glob("*.png"))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the caller's: each file (1,200 pixels) refused
    refused = StreamedImages(paths, np.zeros(3, np.int64), 8, "rgb", "bilinear")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10 ** 12)  # the worker's own, as a spawned one would differ
    loader = DataLoader(refused, batch_size=None, sampler=[np.arange(3)], num_workers=1,
                        multiprocessing_context=mp.get_context("spawn"))
    assert len(next(iter(loader))[0]) == 0  # the caller's limit, in the worker


def test_a_killed_cache_builds_array_is_removed_by_the_next_build(tmp_path):
    """kill -9 during a cache build left its reserved array (50 MB for 340 images at 128 px) for ever; one being
    written by another process now (young) is left alone."""
    import os
    import time

    from PIL import Image

    import imgclf.data.cache as cache
    from imgclf.io import STALE_SECONDS

    for i in range(3):
        Image.new("RGB", (10, 10), (i, 0, 0)).save(tmp_path / f"{i}.png")
    paths = sorted(str(p) for p in tmp_path.glob("*.png"))
    folder = tmp_path / "cache"
    folder.mkdir()
    key = cache.cache_key(paths, 8, "rgb", "bilinear")
    killed, running = folder / f".{key}.abcd1234.npy", folder / f".{key}.efgh5678.npy"
    for leftover in (killed, running):
        leftover.write_bytes(b"\0" * 1000)
    old = time.time() - STALE_SECONDS - 60
    os.utime(killed, (old, old))
    cache.decode_all(paths, 8, "rgb", cache_dir=folder, progress=False, workers=1)
    assert not killed.exists() and running.exists()


def test_the_decode_cache_follows_pillows_pixel_limit(tmp_path, monkeypatch):
    """A cache made under one limit kept its refusals (quoting that limit) after the caller raised it; and the
    decode workers, spawned, started with Pillow's default whatever the caller had set."""
    from PIL import Image

    import imgclf.data.cache as cache

    for i in range(4):
        Image.new("RGB", (40, 30), (i, 0, 0)).save(tmp_path / f"{i}.png")
    paths = sorted(str(p) for p in tmp_path.glob("*.png"))
    monkeypatch.setattr(cache, "_IN_PROCESS_BELOW", 0)  # through the worker processes, as a large set goes
    monkeypatch.setattr(cache, "_CHUNK", 2)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # under 40 x 30: every file a bomb
    kept = dict(size=8, color="rgb", interpolation="bilinear", cache_dir=tmp_path / "cache", progress=False)
    refused = cache.decode_all(paths, workers=2, **kept)
    assert len(refused.failures) == 4 and "limit of 1,000" in refused.failures[0]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    assert cache.decode_all(paths, workers=2, **kept).failures == {}

    """Pillow warns above MAX_IMAGE_PIXELS and raises above twice it, each message with its own limit: an image
    of 100 M pixels and one of 900 M were refused quoting two different limits."""
    from PIL import Image

    from torture import _bomb_png

    for side in (10_000, 30_000):
        path = tmp_path / f"bomb{side}.png"
        path.write_bytes(_bomb_png(side, side))
        with pytest.raises(DecodeError) as info:
            open_image(str(path), 16, "rgb")
        assert str(info.value) == (f"decompression bomb refused: {side * side:,} pixels, above the limit of "
                                   f"{Image.MAX_IMAGE_PIXELS:,} (PIL.Image.MAX_IMAGE_PIXELS); scale it down first")


def test_a_jpeg_over_the_pixel_limit_decodes_at_the_scale_libjpeg_reads_it_within_the_limit(tmp_path, monkeypatch):
    """A 108-megapixel phone photo was refused as a bomb, in serve and in predict, although libjpeg decodes it at
    1/8 in a tenth of a second. (Beyond twice the limit, Pillow refuses the file as it opens it.)"""
    from PIL import Image

    from imgclf.data.decode import decode_image

    picture = np.zeros((18 * 4, 24 * 4, 3), np.uint8)
    picture[:, : 24 * 2] = 255  # left half white
    Image.fromarray(picture).save(tmp_path / "photo.jpg", quality=95)
    Image.fromarray(picture).save(tmp_path / "photo.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3500)  # under the photo's 6,912, over half of it
    arr, meta = decode_image(str(tmp_path / "photo.jpg"), 8, "rgb")
    assert arr.shape == (8, 8, 3) and arr[:, :3].min() > 200 and arr[:, 5:].max() < 60
    assert (meta["width"], meta["height"]) == (96, 72)  # the file's own size, as inspect lists it
    assert decode_image(str(tmp_path / "photo.jpg"), None, "rgb")[0].shape[0] * 2 <= 72  # decoded at half or less
    with pytest.raises(DecodeError, match="decompression bomb refused: 6,912 pixels"):
        open_image(str(tmp_path / "photo.png"), 8, "rgb")  # no reduced decode: refused as before
    Image.fromarray(np.zeros((71, 97, 3), np.uint8)).save(tmp_path / "odd.jpg")  # odd sides: 6,887 pixels
    assert decode_image(str(tmp_path / "odd.jpg"), None, "rgb")[0].shape[:2] == (36, 49)  # at half, rounded up
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # over twice the limit: refused as Pillow opens it
    with pytest.raises(DecodeError, match="decompression bomb refused: 6,912 pixels"):
        open_image(str(tmp_path / "photo.jpg"), 8, "rgb")


def test_inspect_lists_every_broken_file(corpus):
    proc = _run("inspect", str(corpus), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    reasons = {os.path.basename(s["path"]): s["reason"] for s in summary["skipped"]}
    for name, reason in BROKEN.items():
        assert reason in reasons[name]
    assert "symbolic links" in reasons["loop.png"] or "symlink" in reasons["loop.png"]
    assert summary["classes"] == ["cat", "dog"], "hidden folders are not classes"
    assert summary["counts"]["all"]["cat"] == 12 + len(DECODABLE)


def test_train_evaluate_predict_over_the_corpus(corpus, tmp_path):
    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    proc = _run("train", str(corpus), "--img-size", "16", "--epochs", "1", "--no-progress", "--out", str(out),
                "--model-args", "width=8", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "skipped" in proc.stdout
    dataset = json.loads((out / "dataset.json").read_text())
    skipped = {os.path.basename(s["path"]): s["reason"] for s in dataset["skipped"]}
    for name, reason in BROKEN.items():
        assert reason in skipped[name], name
    used = {os.path.basename(f) for split in dataset["splits"].values() for f in split["files"]}
    assert set(DECODABLE) <= used, "every decodable image is used"
    if not AS_ROOT:  # root reads mode-000 files anyway
        assert "permission denied" in skipped["unreadable.png"]
    assert not any(".hidden" in f or ".ipynb" in f or ".git" in f for f in used)

    proc = _run("evaluate", str(out), "--data", str(corpus), env=env)
    assert proc.returncode == 0, proc.stderr
    written = list((out / "evaluations").glob("*/metrics.json"))  # beside the run's own results
    assert len(written) == 1
    metrics = json.loads(written[0].read_text())
    assert {os.path.basename(s["path"]) for s in metrics["skipped"]} >= set(BROKEN)

    proc = _run("predict", str(out), str(corpus / "cat"), "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {os.path.basename(r["path"]): r for r in json.loads(proc.stdout)}
    for name in BROKEN:
        assert rows[name]["error"] and rows[name]["label"] is None
    for name in DECODABLE:
        # an odd picture may be called unknown (no class it resembles); its closest class is still given
        assert rows[name]["best_label"] in ("cat", "dog") and rows[name]["error"] is None


def test_running_out_of_memory_is_never_a_skipped_image(tmp_path, monkeypatch):
    """The catch for Pillow's own failures on malformed files also caught MemoryError: under memory pressure training
    would quietly drop images as damaged, changing the data set and its split."""
    import imgclf.data.decode as decode
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(decode, "image_to_array", out_of_memory)
    with pytest.raises(MemoryError):
        open_image(str(tmp_path / "ok.png"), 8, "rgb")
