"""Class names and labels are user text: every figure draws them as written, never as mathtext (issue 24 item 3).

matplotlib parses "$...$" in any text as maths by default: a class called "cost $^$ x_1" made every figure that
shows it fail with a ParseException (and "price $5 and $10" silently became italic maths).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from conftest import make_image_folder
from imgclf.evaluation import plots
from imgclf.evaluation.report import FIGURES, write_figures, write_report
from imgclf.inspect import inspect_folder
from run_fixtures import write_run

NAME = "cost $^$ x_1"


@pytest.fixture()
def drawn(monkeypatch) -> list[Figure]:
    """Every Figure saved while the test runs, so its texts can be read afterwards."""
    figures: list[Figure] = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return figures


def texts(figures: list[Figure]) -> list[str]:
    return [t.get_text() for fig in figures for t in fig.findobj(Text) if t.get_text()]


def test_a_class_named_like_maths_draws_every_figure_of_a_run(tmp_path, drawn):
    run = write_run(tmp_path, classes=(NAME, "plain", "x"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figures = write_figures(run, explain=False)
    assert [str(w.message) for w in caught if "failed" in str(w.message)] == []
    # write_run's card has no calibration or unknown-input block, so their two figures are not drawn here
    assert set(figures) == set(FIGURES) - {"gradcam", "reliability_before", "unknown_scores"}, \
        "every figure but Grad-CAM (explain=False) is drawn"
    assert all(f["path"] is not None and f["path"].stat().st_size > 2000 for f in figures.values())
    shown = texts(drawn)
    assert any(NAME in t for t in shown)
    # The learning rate decays 50x: a log axis, whose default labels are mathtext and would print raw.
    assert [t for t in shown if "mathdefault" in t] == []

    sample = {"image": np.zeros((16, 16, 3), np.uint8), "heatmap": np.ones((16, 16)), "true": NAME, "pred": NAME,
              "prob": 0.9, "correct": True}
    plots.plot_gradcam_grid([sample], tmp_path / "gradcam.png", layer="conv $x$")
    assert any(NAME in t for t in texts(drawn[-1:]))

    html = write_report(run, explain=False, redraw=False).read_text()
    assert f"<td>{NAME}" in html


def test_inspect_figures_and_compare_curves_draw_user_text_as_written(tmp_path, drawn):
    data = make_image_folder(tmp_path / "data", classes=(NAME, "b"), per_class=3)
    summary = inspect_folder(data, plots_dir=tmp_path / "plots")
    assert len(summary["plots"]) == 2
    run = write_run(tmp_path)
    from imgclf.records import RunDir

    history = RunDir(run).read_history()
    plots.plot_compare_curves([{"label": f"data={NAME}", "histories": [history, history[:3]]}], tmp_path / "c.png")
    shown = texts(drawn)
    assert any(NAME in t for t in shown) and any(f"data={NAME}" in t for t in shown)


NAMES = ("猫 キャット", "قطة\u200f", "emoji 🐈 cat", "back\\slash_^")


def test_names_in_any_script_draw_every_figure_with_a_fallback_font(tmp_path, drawn, caplog):
    """CJK, right-to-left marks, emoji and backslashes: every figure of a run is drawn, the names as written,
    and with a CJK fallback font installed (.ci/run installs fonts-wqy-microhei) no CJK glyph is missing."""
    from imgclf.plotting import font_families

    run = write_run(tmp_path, classes=NAMES)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figures = write_figures(run, explain=False)
    assert not [f for f in figures.values() if f.get("failed")], figures
    drawn_text = " ".join(texts(drawn))
    assert all(name in drawn_text for name in NAMES[:1] + NAMES[3:])
    # matplotlib's own per-glyph warnings are silenced: imgclf names the classes it cannot draw, once
    assert not [w for w in caught if "missing from font" in str(w.message)]
    assert not [r for r in caplog.records if r.name.startswith("matplotlib.font_manager")]  # no findfont noise
    if len(font_families()) > 1:  # a fallback font is installed: the CJK names have their glyphs
        assert not [r for r in caplog.records if NAMES[0] in r.getMessage()]


def _glyphs_matplotlib_misses(text: str) -> list[str]:
    """What matplotlib itself warns of when it draws `text` with the figures' fonts (not through imgclf's quiet
    save): the reference `undrawn_names` must agree with."""
    from imgclf.plotting import new_figure, style

    with style(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = new_figure(2, 1)
        fig.text(0.1, 0.5, text)
        fig.savefig(io.BytesIO(), format="png")
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


HIEROGLYPH = "\U00013000"  # Egyptian hieroglyphs: in none of the fonts imgclf falls back to


def test_class_names_no_font_draws_are_named_once_on_the_terminal_and_in_the_report(tmp_path, caplog):
    """Devanagari or Thai without a font for them drew boxes, and matplotlib printed a warning for each glyph of
    each figure (113 lines for one run), while the report said nothing."""
    from imgclf.plotting import undrawn_names

    names = (f"{HIEROGLYPH} man", "plain", "猫 cat")
    assert _glyphs_matplotlib_misses(names[0]) and not _glyphs_matplotlib_misses(names[1])
    assert undrawn_names(names[:2]) == [names[0]]
    assert undrawn_names(["flag \U000e0067"]) == []  # an invisible tag of a flag emoji: in no font, not counted
    run = write_run(tmp_path, classes=names)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_report(run, explain=False)  # its figures too
    assert not [w for w in caught if "missing from font" in str(w.message)]
    said = [r.getMessage() for r in caplog.records if "no installed font" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"1 class name ('{names[0]}') holds characters"), said
    assert "fonts-noto-core" in said[0] and "draw them again (imgclf report RUN)" in said[0]
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "no installed font draws" in page and names[0] in page
    from imgclf.plotting import undrawn_names_note

    assert undrawn_names_note([names[0], f"{HIEROGLYPH} 2"]).startswith("2 class names (")
    assert " hold characters no installed font draws" in undrawn_names_note([names[0], f"{HIEROGLYPH} 2"])
    assert ("猫 cat" in said[0]) == bool(_glyphs_matplotlib_misses("猫"))  # CJK: only where no fallback font
