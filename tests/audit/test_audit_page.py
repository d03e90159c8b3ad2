"""audit.html as a browser shows it: user text (class names, paths) stays inside its card."""

from __future__ import annotations

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from evaluation.eval_fixtures import load_in_chromium  # noqa: F401  (fixture)
from imgclf.cli import app

LONG = "a_very_long_class_name_that_goes_on_and_on_forever_and_ever_xyz"


def test_a_long_class_name_wraps_inside_its_card_at_any_width(tmp_path, load_in_chromium):
    """The pixel checks' caption `NAME · mean 11, std 10.5` ran out of its 150-pixel card, over the next card's."""
    rng = np.random.default_rng(0)
    for name in (LONG, "plain"):
        folder = tmp_path / "data" / name
        folder.mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(60, 200, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "data" / LONG / "dark.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8) + 1).save(tmp_path / "data" / "plain" / "dark.png")
    result = CliRunner().invoke(app, ["audit", str(tmp_path / "data"), "--out", str(tmp_path / "audit")])
    assert result.exit_code == 0, result.output
    for width in (1280, 420):
        page = load_in_chromium(tmp_path / "audit" / "audit.html", width=width)
        assert f"{LONG} · mean" in " ".join(page["text"].split())  # the caption is on the page
        assert page["spilled"] == [] and not page["errors"], (width, page["spilled"])
