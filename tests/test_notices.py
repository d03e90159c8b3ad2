"""Warnings about the user's data reach stderr as `warning ...` lines from the Python API as from the command line,
and a script silences them through the `imgclf` logger, as it would any library's."""

from __future__ import annotations

import logging
import shutil

import pytest

import imgclf


@pytest.fixture
def quiet_level():
    logger = logging.getLogger("imgclf")
    before = logger.level
    yield logger
    logger.setLevel(before)


def test_evaluate_warns_in_python_and_the_logger_silences_it(tiny_run, image_folder, tmp_path, capsys, quiet_level):
    """Evaluating on the training folder warned on the command line only: from Python the inflated scores came back
    without a word."""
    run = shutil.copytree(tiny_run, tmp_path / "run")
    imgclf.evaluate(run, data=str(image_folder))
    err = capsys.readouterr().err
    assert "warning " in err and "images the run trained or selected on" in err
    quiet_level.setLevel(logging.ERROR)
    imgclf.evaluate(run, data=str(image_folder))
    assert "images the run trained or selected on" not in capsys.readouterr().err


def test_fit_warnings_follow_the_logger_level(image_folder, tmp_path, capsys, quiet_level):
    settings = {"data": str(image_folder), "img_size": 16, "epochs": 1, "batch_size": 16, "progress": False,
                "model_args": {"width": 4}, "report": False}
    imgclf.fit(out=str(tmp_path / "a"), **settings)
    assert "warning the val split holds" in capsys.readouterr().err
    quiet_level.setLevel(logging.ERROR)
    imgclf.fit(out=str(tmp_path / "b"), **settings)
    assert "warning" not in capsys.readouterr().err


def test_a_module_loggers_info_is_not_printed_as_a_warning(capsys):
    """The modules' loggers are children of `imgclf`: their INFO lines (download progress) must not come out as
    `warning ...`, their warnings once."""
    from imgclf.notices import warn

    warn("first")  # the handler is in place
    child = logging.getLogger("imgclf.data.sources.download")
    before = child.level
    child.setLevel(logging.INFO)
    try:
        child.info("downloading x")
        child.warning("checksum differs")
    finally:
        child.setLevel(before)
    err = capsys.readouterr().err
    assert "downloading x" not in err and err.count("warning checksum differs") == 1


def test_a_program_that_configures_logging_does_not_get_each_warning_twice():
    """imgclf's warnings print once, on stderr, as `warning ...`: a root handler the program set up
    (logging.basicConfig) does not receive them again, whether they come from a module's own logger before any
    warning of imgclf.notices was given, or after. (A fresh process: what was installed when matters.)"""
    import subprocess
    import sys

    script = ("import logging, imgclf\n"
              "logging.basicConfig(format='root: %(message)s')\n"
              "logging.getLogger('imgclf.data.color').warning('from a module')\n"
              "from imgclf.notices import warn\n"
              "warn('from notices')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["warning from a module", "warning from notices"], result.stderr


def test_held_back_kinds_are_silent_and_each_count_of_a_kind_is_said_once(caplog):
    """A study under S4 holds back its runs' advice to enlarge the val split; elsewhere (a study's cells, a search's
    trials) each different count is said once, where one fixed key had kept only the first cell's."""
    from imgclf.notices import each_once, hold_back, warn

    with caplog.at_level(logging.WARNING, logger="imgclf"), each_once():
        for count in (24, 24, 12):
            warn(f"the val split holds {count} images", key=f"few validation images: {count}")
    assert [r.getMessage() for r in caplog.records] == ["the val split holds 24 images", "the val split holds 12 images"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imgclf"), each_once():
        hold_back("few validation images")
        warn("the val split holds 24 images", key="few validation images: 24")
        warn("another warning")
    assert [r.getMessage() for r in caplog.records] == ["another warning"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imgclf"):  # outside, nothing is held back any more
        warn("the val split holds 24 images", key="few validation images: 24")
    assert len(caplog.records) == 1
