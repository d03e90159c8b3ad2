"""StepProgress: the progress of long steps outside training (cache build, evaluation), as a log file sees it."""

from __future__ import annotations

import io
import re

import imgclf.progress as progress_mod
from imgclf.progress import StepProgress


def test_redirected_output_is_a_few_lines_with_the_counts():
    out = io.StringIO()
    with StepProgress("decoding 1,000 images", 1000, stream=out, terminal=False, after_seconds=0) as bar:
        for _ in range(1000):  # one update per image: the log must still get a handful of lines
            bar.update(1)
        bar.close("3 unreadable")
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [re.search(r"(\d+,?\d*)/1,000 images \((\d+) %\)", line).group(2) for line in lines[:-1]] == ["25", "50", "75"]
    assert lines[-1].startswith("decoding 1,000 images: 1,000 images in ") and lines[-1].endswith(", 3 unreadable")


def test_one_update_passing_several_quarters_prints_one_line():
    out = io.StringIO()
    with StepProgress("evaluating", 100, stream=out, terminal=False, after_seconds=0) as bar:
        bar.update(10)
        bar.update(80)  # passes 25, 50 and 75 at once
        bar.update(10)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "90/100 images (90 %)" in lines[0] and "100 images in" in lines[1]


def test_a_quick_step_prints_nothing(monkeypatch):
    monkeypatch.setattr(progress_mod, "SHOW_AFTER_SECONDS", 3600.0)  # stands for "ended within the threshold"
    out = io.StringIO()
    with StepProgress("decoding", 10, stream=out, terminal=False) as bar:
        bar.update(10)
    assert out.getvalue() == ""


def test_disabled_prints_nothing_and_a_failed_step_no_closing_line():
    out = io.StringIO()
    with StepProgress("decoding", 10, stream=out, terminal=False, after_seconds=0, enabled=False) as bar:
        bar.update(10)
    assert out.getvalue() == ""
    try:
        with StepProgress("decoding", 10, stream=out, terminal=False, after_seconds=0) as bar:
            bar.update(3)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert "in " not in out.getvalue()  # no "10 images in ... s" for a step that did not finish


def test_terminal_gets_a_bar_and_no_quarter_lines():
    out = io.StringIO()
    with StepProgress("decoding", 100, stream=out, terminal=True, after_seconds=0) as bar:
        for _ in range(10):
            bar.update(10)
    text = out.getvalue()
    assert "%)" not in text and "decoding: 100 images in" in text


def test_a_run_without_progress_prints_no_cache_or_evaluation_lines(tmp_path, image_folder, monkeypatch, capfd):
    """progress=False (--no-progress) reaches the cache build and the run's final evaluation too, not only
    training's bar: every step is made slow enough to be shown, and none is."""
    import imgclf

    monkeypatch.setattr(progress_mod, "SHOW_AFTER_SECONDS", 0.0)
    capfd.readouterr()
    imgclf.fit(data=str(image_folder), img_size=16, epochs=1, batch_size=16, progress=False, model_args={"width": 4},
               cache_dir=str(tmp_path / "cache"), out=str(tmp_path / "r"), report=False)
    err = capfd.readouterr().err
    assert "decoding" not in err and "evaluating on" not in err, err


def test_a_bar_shows_a_path_as_written():
    """A label holds user paths: on a terminal "[/x]" raised Rich's MarkupError, ":train:" drew a train emoji."""
    import io

    stream = io.StringIO()
    with StepProgress("evaluating on /d/e[red]x[/x]:train:", 10, after_seconds=0, stream=stream, terminal=True) as bar:
        bar.update(5)
        bar.update(5)
    assert "\U0001f68b" not in stream.getvalue()  # the train emoji
