"""16-bit images that use only their low bits (12-bit X-ray or microscopy data in 16-bit PNGs) decode to a few grey
levels on the 16-bit scale: inspect and training say so, naming the bits in use; full-range images say nothing."""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from imgclf.data.dataset import prepare_data
from imgclf.inspect import inspect_folder


def _sixteen_bit_folder(root, top: int):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, top + 1, (12, 12)).astype(np.uint16)
            pixels[0, 0] = top
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    assert Image.open(root / "a" / "0.png").mode == "I;16"
    return root


def test_twelve_bit_images_are_named_by_inspect_and_training(tmp_path, caplog):
    data = _sixteen_bit_folder(tmp_path / "xray", top=4095)
    said = inspect_folder(data)["unused_bits"]
    assert said == ("8 sampled 16-bit images use only their low 12 bits (the brightest pixel is 4,095 of 65,535): "
                    "read on the 16-bit scale they span 0..16 of 0..255, 17 grey levels, and lose their detail; "
                    "rescale them to the full 16 bits (or save them as 8-bit) before training"), said
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        prepared = prepare_data(data, 8, "auto", val_split=0.25, test_split=0.0)
    assert caplog.text.count("use only their low 12 bits") == 1, caplog.text
    assert prepared.decoded.pixels.max() <= 16  # what the warning says: the scale itself is kept


def test_full_range_sixteen_bit_and_eight_bit_images_say_nothing(tmp_path, caplog):
    full = _sixteen_bit_folder(tmp_path / "full", top=60000)
    assert inspect_folder(full)["unused_bits"] is None
    from conftest import make_image_folder

    eight = make_image_folder(tmp_path / "eight", per_class=3)
    assert inspect_folder(eight)["unused_bits"] is None
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        prepare_data(full, 8, "auto", val_split=0.25, test_split=0.0)
    assert "low" not in caplog.text, caplog.text
