"""color=auto and the model's channels: a model built for grayscale (default_in_chans=1) gets grayscale input."""

from __future__ import annotations

import logging

import pytest

from conftest import make_image_folder
from imgclf.data.dataset import prepare_data


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("rgb"), per_class=4)


@pytest.mark.parametrize("color, model_in_chans, expected", [
    ("auto", 1, "grayscale"),  # fer_cnn on colour images: what the model was designed for
    ("auto", 3, "rgb"),
    ("auto", None, "rgb"),  # callers that do not say (evaluation, benchmarks): the images decide
    ("rgb", 1, "rgb"),  # asked for explicitly: kept, the first layer takes 3 channels
])
def test_color_auto_follows_a_one_channel_model(rgb_folder, color, model_in_chans, expected, caplog):
    with caplog.at_level(logging.WARNING, logger="imgclf.data.color"):
        data = prepare_data(rgb_folder, 8, color, val_split=0.25, test_split=0.0, model_in_chans=model_in_chans)
    assert data.color == expected and data.decoded.pixels.shape[-1] == data.channels == (1 if expected == "grayscale" else 3)
    converted = "colour images converted to grayscale, because the model takes 1 channel"
    assert (converted in caplog.text) == (color == "auto" and model_in_chans == 1), caplog.text
    assert (converted in data.color_source) == (color == "auto" and model_in_chans == 1)


def test_grayscale_images_on_a_one_channel_model_need_no_warning(tmp_path, caplog):
    make_image_folder(tmp_path, mode="L", per_class=3)
    with caplog.at_level(logging.WARNING, logger="imgclf.data.color"):
        data = prepare_data(tmp_path, 8, "auto", val_split=0.34, test_split=0.0, model_in_chans=1)
    assert data.color == "grayscale" and not caplog.text


def test_training_a_grayscale_model_on_colour_images_records_grayscale(rgb_folder, tmp_path, caplog):
    import imgclf
    from imgclf.records import RunDir, load_card

    with caplog.at_level(logging.WARNING, logger="imgclf.data.color"):
        run = imgclf.fit({"data": str(rgb_folder), "model": "fer_cnn_small", "img_size": 8, "epochs": 1,
                          "batch_size": 4, "out": str(tmp_path / "run"), "progress": False, "val_split": 0.25,
                          "test_split": 0.25})
    card = load_card(run.path)
    assert (card.color, card.in_chans) == ("grayscale", 1)
    assert RunDir(run.path).read_config().color == "grayscale"  # config.yaml repeats the run as it was trained
    assert "converted to grayscale" in caplog.text
    # the stored grayscale was auto's choice, said at training: calibrating the run (its images prepared again from
    # config.yaml) said "color=grayscale: colour images converted", a setting the user never gave
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imgclf.data.color"):
        imgclf.calibrate(run.path, report=False)
    assert "converted to grayscale" not in caplog.text


def test_grayscale_given_for_colour_images_is_said(rgb_folder, tmp_path, caplog):
    """A grey recipe (s3-fer-cnn-small sets color: grayscale) on colour data: two classes that differed only in
    hue trained to chance, and nothing said the colour was dropped. Grey images given grayscale say nothing."""
    with caplog.at_level(logging.WARNING, logger="imgclf.data.color"):
        data = prepare_data(rgb_folder, 8, "grayscale", val_split=0.25, test_split=0.0)
    assert data.color == "grayscale" and data.channels == 1
    said = "color=grayscale: colour images converted to grayscale (color=rgb keeps the colour)"
    assert said in caplog.text and data.color_source == said
    caplog.clear()
    grey = make_image_folder(tmp_path / "grey", mode="L", per_class=3)
    with caplog.at_level(logging.WARNING, logger="imgclf.data.color"):
        assert prepare_data(grey, 8, "grayscale", val_split=0.34, test_split=0.0).color_source == "color=grayscale"
    assert not caplog.text


def test_a_class_folder_of_colour_images_among_many_grey_ones_makes_the_run_rgb(tmp_path):
    """20 colour photos among 900 grey scans escaped a sample of 200 drawn from all: the sample takes each folder's
    own share too. Sizes here shrink with the sample, and the draw over all is checked to miss them first."""
    import numpy as np
    from PIL import Image

    from imgclf.data.color import detect_color
    from imgclf.data.decode import header_sample

    paths = []
    for cls, count, mode in (("scans", 60, "L"), ("photos", 3, "RGB")):
        (tmp_path / cls).mkdir()
        for i in range(count):
            paths.append(str(tmp_path / cls / f"{i:03d}.png"))
            Image.fromarray(np.full((4, 4, 3), 90, np.uint8)).convert(mode).save(paths[-1])
    paths.sort()
    assert not any("photos" in p for p in header_sample(paths, 5))  # the draw over all misses the colour folder
    assert detect_color(paths, sample=5, per_folder=2) == "rgb"
    assert detect_color([p for p in paths if "scans" in p], sample=5, per_folder=2) == "grayscale"


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_palette_images_of_greys_are_grayscale_and_of_colours_rgb(tmp_path, suffix):
    """A GIF or PNG of greys opens as a palette image ('P'), which color=auto took for colour: grey data trained
    in RGB, three times the cache and the input. A palette in use that holds a colour keeps the run in RGB."""
    import numpy as np
    from PIL import Image

    from imgclf.data.color import detect_color

    rng = np.random.default_rng(0)
    grey, mixed = tmp_path / "grey", tmp_path / "mixed"
    for folder in (grey / "a", grey / "b", mixed / "a", mixed / "b"):
        folder.mkdir(parents=True)
    for i in range(3):
        pixels = rng.integers(0, 256, (12, 12), dtype=np.uint8)
        for root in (grey, mixed):
            for cls in ("a", "b"):
                Image.fromarray(pixels).convert("P").save(root / cls / f"{i}{suffix}")  # a palette of greys
    pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(mixed / "b" / f"c{suffix}")
    assert Image.open(grey / "a" / f"0{suffix}").mode == "P"
    assert detect_color(sorted(str(p) for p in grey.rglob(f"*{suffix}"))) == "grayscale"
    assert detect_color(sorted(str(p) for p in mixed.rglob(f"*{suffix}"))) == "rgb"
