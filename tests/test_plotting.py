"""`imgclf.plotting`: the one plotting stack (style, atomic PNG writes, no mathtext in user text)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.text import Text
from PIL import Image

from imgclf import plotting


def test_save_figure_writes_atomically_and_caps_the_size(tmp_path, monkeypatch):
    written = []
    write = plotting.atomic_write_bytes
    monkeypatch.setattr(plotting, "atomic_write_bytes", lambda p, d: (written.append(p), write(p, d)))
    with plotting.style():
        fig = plotting.new_figure(60, 2)
        fig.subplots().plot([0, 1], [0, 1])
    path = plotting.save_figure(fig, tmp_path / "sub" / "wide.png")
    assert written == [path]
    with Image.open(path) as img:
        assert max(img.size) <= plotting.MAX_PIXELS
    assert [p.name for p in path.parent.iterdir()] == ["wide.png"]  # no temp file left


def test_user_text_and_log_axes_are_plain_text(tmp_path):
    with plotting.style():
        fig = plotting.new_figure(4, 3)
        ax = fig.subplots()
        ax.plot([1, 2, 3], [1e-4, 1e-3, 1e-1])
        plotting.plain_log_scale(ax, "y")
        ax.set_title("price $5 and $10, x_1^2")
    plotting.save_figure(fig, tmp_path / "f.png")
    texts = [t for t in fig.findobj(Text) if t.get_text()]
    assert any(t.get_text() == "price $5 and $10, x_1^2" for t in texts)
    assert all("$" not in t.get_text() for t in texts if t.get_text() != "price $5 and $10, x_1^2"), \
        [t.get_text() for t in texts]
    assert np.asarray(Image.open(tmp_path / "f.png").convert("L")).std() > 5


def test_the_png_records_the_pixel_height_of_its_smallest_text(tmp_path):
    """What the report's Chromium test multiplies by displayed / natural width (issue 26)."""
    with plotting.style():
        fig = plotting.new_figure(4, 3)
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1])
        ax.tick_params(labelsize=9)
        ax.text(0.5, 0.5, "small note", fontsize=6)
        ax.text(0.5, 0.2, "", fontsize=2)  # empty and invisible text draws nothing: not counted
        ax.text(0.5, 0.3, "hidden", fontsize=3, visible=False)
    path = plotting.save_figure(fig, tmp_path / "f.png", dpi=100)
    with Image.open(path) as img:
        img.verify()  # the inserted chunk keeps the file valid (CRC included)
    with Image.open(path) as img:
        assert float(img.info[plotting.TEXT_PX_KEY]) == pytest.approx(6 * 100 / 72, abs=0.01)
