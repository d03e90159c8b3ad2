"""`imgclf.pages`: the one Jinja environment of report.html, compare.html and study.html."""

from __future__ import annotations

import pytest
from jinja2 import UndefinedError

from imgclf.pages import embed_png, environment, mean_std_text, num, pct, seconds
from imgclf.stats import MeanStd


def test_one_environment_loads_every_page_template_and_escapes_html():
    env = environment()
    assert env is environment()
    for name in ("report.html", "compare.html", "study.html", "base.html"):
        env.get_template(name)
    assert env.autoescape("page.html") is True
    assert "&lt;b&gt;" in env.from_string("{{ name }}").render(name="<b>")


def test_undefined_names_are_errors_not_empty_cells():
    with pytest.raises(UndefinedError):
        environment().from_string("{{ missing }}").render()


def test_number_filters():
    assert pct(0.9123) == "91.2 %" and pct(None) == "—"
    assert num(12345) == "12,345" and num(0.5) == "0.500" and num(float("nan")) == "—"
    assert seconds(30) == "30.0 s" and seconds(600) == "10.0 min" and seconds(7200) == "2.00 h"
    assert mean_std_text({"mean": 0.5, "std": 0.1, "n": 2}) == "0.500 ± 0.100"  # as study.json stores it
    assert mean_std_text(MeanStd(0.5, None, 1), 1) == "0.5"


def test_embed_png_reads_the_size_from_the_header(tmp_path):
    from PIL import Image

    Image.new("RGB", (30, 20)).save(tmp_path / "a.png")
    embedded = embed_png(tmp_path / "a.png")
    assert embedded["src"].startswith("data:image/png;base64,") and (embedded["width"], embedded["height"]) == (30, 20)
    assert embed_png(None) == {"src": None, "width": None, "height": None}


def test_file_names_break_at_their_parts_and_stay_escaped():
    """An audit caption broke 'ctr08_rgba.png' as 'ctr08_rgba.p' / 'ng'."""
    from imgclf.pages import breakable

    assert breakable("train/cat/ctr08_rgba.png") == "train/<wbr>cat/<wbr>ctr08_<wbr>rgba<wbr>.png"
    assert breakable("<b>&x.png") == "&lt;b&gt;&amp;x<wbr>.png"
    page = environment().from_string("{{ name|breakable }}").render(name="a-b_<i>.png")
    assert page == "a-<wbr>b_<wbr>&lt;i&gt;<wbr>.png"
    assert breakable("hflip,rotate=15") == "hflip,<wbr>rotate=15"  # a report's augment setting
