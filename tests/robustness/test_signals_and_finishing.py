"""A run being finished (its weights, card and scores rewritten one after the other) seen by other commands: a
predict or serve loading it while a resume finishes it, a report or evaluate of one interrupted there; and SIGTERM
inside commands other than train and tune."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import imgclf
from conftest import spoilable_copy
from imgclf.cli import app
from imgclf.errors import ImgclfError
from imgclf.run_markers import FINISHING_FILE


def test_a_run_loads_whole_while_a_resume_fits_its_calibration_and_unknown_detector(tiny_run, tmp_path,
                                                                                      image_folder, monkeypatch):
    """The resume wrote the new weights, then fitted the temperature and the detector (0.4-6 s), then the card:
    a load in between read the new weights beside the earlier card and refused them as "a damaged copy or disk?"
    (and the detector's statistics were rewritten under the earlier card's name). Now the earlier run stays whole
    until the new card names the new files."""
    from imgclf.pipeline import trust

    run_dir = shutil.copytree(tiny_run, tmp_path / "run")
    image = sorted((image_folder / "cat").iterdir())[0]
    loaded = []
    real_fit = trust.fit_trust_after_training

    def fit_while_read(*args, **kwargs):
        loaded.append(imgclf.load(run_dir).predict([str(image)])[0])  # the earlier run, whole
        result = real_fit(*args, **kwargs)
        loaded.append(imgclf.load(run_dir).predict([str(image)])[0])  # its statistics fitted: still whole
        return result

    monkeypatch.setattr(trust, "fit_trust_after_training", fit_while_read)
    before = imgclf.load(run_dir).predict([str(image)])[0]
    imgclf.fit(resume=str(run_dir), epochs=6, report=False)
    assert len(loaded) == 2 and all(p.error is None and p.label == before.label for p in loaded)
    assert [p.probability for p in loaded] == pytest.approx([before.probability] * 2)
    assert [p.score for p in loaded] == pytest.approx([before.score] * 2)  # the earlier detector's statistics
    # the resumed card names the statistics fitted beside the earlier ones, and the earlier file is gone
    card = imgclf.load(run_dir).card
    assert (run_dir / card.unknown.statistics).is_file()
    assert sorted(p.name for p in run_dir.glob("unknown*.safetensors")) == [card.unknown.statistics]


def _rewritten_weights(run_dir):
    """The weights file rewritten (as a finishing resume does) while model.json still records the earlier one."""
    from safetensors.torch import load_file, save_file

    weights = load_file(str(run_dir / "model.safetensors"))
    save_file({k: v + 1e-3 if v.is_floating_point() else v for k, v in weights.items()},
              str(run_dir / "model.safetensors"))


def test_a_run_caught_between_its_new_weights_and_its_card_is_said_to_be_finishing_not_damaged(tiny_run, tmp_path):
    from imgclf.locks import exclusive
    from imgclf.records.run_dir import LOCK_FILE

    run_dir = spoilable_copy(tiny_run, tmp_path / "run")
    _rewritten_weights(run_dir)
    with pytest.raises(ImgclfError, match="a damaged copy or disk"):  # no finishing under way: damage
        imgclf.load(run_dir)
    (run_dir / FINISHING_FILE).write_text("")
    with pytest.raises(ImgclfError) as err:
        imgclf.load(run_dir)
    text = str(err.value)
    assert "model.safetensors was rewritten and model.json not yet: it was interrupted while being finished; " \
           f"finish it with: imgclf train --resume {run_dir}" in text and "damaged" not in text, text
    with exclusive(run_dir, LOCK_FILE, "run", "a run", "in use", "wait"):  # a training finishing it now
        with pytest.raises(ImgclfError, match="another process is finishing the run now .*retry once it ends"):
            imgclf.load(run_dir)


@pytest.mark.parametrize("command", ["report", "evaluate", "calibrate"])
def test_a_run_interrupted_while_being_finished_is_refused_by_report_evaluate_and_calibrate(tiny_run, tmp_path,
                                                                                            command):
    """`imgclf report` wrote a page of the earlier epoch's scores beside the new weights (its Grad-CAM "a damaged
    copy or disk?") and exited 0; evaluate refused it as damage."""
    run_dir = spoilable_copy(tiny_run, tmp_path / "run")
    (run_dir / FINISHING_FILE).write_text("")
    page = (run_dir / "report.html").read_bytes()
    result = CliRunner().invoke(app, [command, str(run_dir)], env={"COLUMNS": "300"})
    said = " ".join(result.output.split())
    assert result.exit_code == 2, said
    assert "interrupted while it was being finished" in said and f"imgclf train --resume {run_dir}" in said, said
    assert (run_dir / "report.html").read_bytes() == page  # nothing rewritten


def test_a_finished_run_is_not_refused_for_a_finishing_mark_it_does_not_have(tiny_run, tmp_path):
    run_dir = spoilable_copy(tiny_run, tmp_path / "run")
    result = CliRunner().invoke(app, ["report", str(run_dir), "--no-explain"])
    assert result.exit_code == 0, result.output
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "x.png")
    assert imgclf.load(run_dir).predict([str(tmp_path / "x.png")])


# The signal arrives inside the stage named (module:function), in a process of its own
_SIGNAL_IN_STAGE = """
import importlib, os, signal, sys, time
module, function = sys.argv[1].split(":")
def stage(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
    raise AssertionError("the signal did not stop the stage")
setattr(importlib.import_module(module), function, stage)
from imgclf.cli import main
sys.argv = ["imgclf", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize("stage, command", [("imgclf.evaluation.run_eval:evaluate_run", "evaluate"),
                                            ("imgclf.evaluation.report:write_report", "report"),
                                            ("imgclf.audit.pipeline:audit", "audit")])
def test_sigterm_ends_a_command_with_one_line_and_its_status(tiny_run, image_folder, tmp_path, stage, command):
    """evaluate, report, export and audit ended on SIGTERM with status 143 and no word, where Ctrl-C said one line;
    and the lock they hold was left to the operating system."""
    import os
    import subprocess
    import sys

    run_dir = spoilable_copy(tiny_run, tmp_path / "run")
    target = str(image_folder) if command == "audit" else str(run_dir)
    extra = ["--out", str(tmp_path / "audit")] if command == "audit" else []
    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path / "cache")}
    cut = subprocess.run([sys.executable, "-c", _SIGNAL_IN_STAGE, stage, command, target, *extra], env=env,
                         capture_output=True, text=True, timeout=120)
    assert cut.returncode == 143, cut.stderr
    assert f"error: imgclf {command} interrupted (SIGTERM)" in cut.stderr and "Traceback" not in cut.stderr
