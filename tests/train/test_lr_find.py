"""The LR finder: `imgclf lr-find` / `imgclf.lr_find` on their own, and `--lr auto` inside a training run
(the suggestion used, recorded in config.yaml and the card, the curve in the run and its report)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import imgclf
from conftest import make_image_folder
from imgclf.cli import app
from imgclf.records import ModelCard, RunDir

BASE = {"img_size": 16, "batch_size": 8, "progress": False, "model_args": {"width": 4}, "val_split": 0.25,
        "test_split": 0.2, "seed": 0}
SWEEP = {"start_lr": 1e-5, "end_lr": 1.0, "steps": 25}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("lrfind"), per_class=12)


def _finder(losses, lrs):
    from lightning.pytorch.tuner.lr_finder import _LRFinder

    finder = _LRFinder("exponential", float(lrs[0]), float(lrs[-1]), len(lrs))
    finder.results = {"lr": list(map(float, lrs)), "loss": list(map(float, losses))}
    return finder


def test_suggestion_is_the_steepest_fall_per_log_step_before_the_lowest_loss():
    """A scripted sweep (no training): a wiggle at tiny rates, the real fall around 1e-2, then divergence with a
    noisy drop. Lightning's own suggestion (gradient over lr) picks the wiggle; ours picks the fall."""
    from imgclf.train.lr_sweep import _steepest

    lrs = np.logspace(-7, 0, 100)
    x = np.log10(lrs)
    losses = 2.0 - 1.5 / (1 + np.exp(-(x + 2) * 4))  # falls fastest at 1e-2
    losses[20] -= 0.02  # a wiggle at 2.6e-6
    losses[90:] = [3, 4, 3.2, 5, 3.0, 6, 2.5, 7, 8, 9]  # past the lowest loss: diverging, with noisy drops
    suggestion = _steepest(_finder(losses, lrs))
    assert 3e-3 < suggestion < 3e-2
    assert _finder(losses, lrs).suggestion() < 1e-5  # why imgclf does not take Lightning's as is


def test_lowest_loss_skips_the_first_points_and_non_finite_losses():
    """The other usual pick is read off the lowest smoothed loss, after the first 10 points (a mean of a few noisy
    steps); a diverged sweep ends in inf or nan, which may not be the lowest either."""
    from imgclf.train.lr_sweep import _lowest_index

    losses = [0.1] * 3 + [2.0] * 7 + [1.9, 1.5, 1.2, 1.3, float("nan"), float("inf"), 5.0]
    assert _lowest_index(losses) == 12
    assert _lowest_index([0.5] * 10 + [float("nan")] * 5) is None


def test_smoothed_curve_reads_a_constant_loss_as_constant_from_the_first_step():
    """Debiased by the number of losses seen: Lightning's own curve divides by one step more, which reads the
    first point as half the loss and makes the curve climb at rates too small to change anything."""
    from imgclf.train.lr_sweep import smoothed

    assert smoothed([2.0] * 30) == pytest.approx([2.0] * 30, rel=1e-12)
    # a step without a finite loss is a gap in the curve, not a zero pulled into the mean
    curve = smoothed([3.0, float("nan"), 3.0, float("inf"), 1.0])
    assert curve[0] == pytest.approx(3.0) and curve[2] == pytest.approx(3.0) and math.isnan(curve[1]) and math.isnan(curve[3])
    assert curve[4] == pytest.approx((0.02 * 0.98 ** 2 * 3.0 + 0.02 * 0.98 * 3.0 + 0.02 * 1.0) / (1 - 0.98 ** 3))


def test_lr_find_api_writes_curve_and_suggestion_within_the_sweep(data, tmp_path):
    result = imgclf.lr_find(data=str(data), out=str(tmp_path / "lf"), **SWEEP, **BASE)
    assert SWEEP["start_lr"] <= result.suggestion <= SWEEP["end_lr"]
    assert result.suggestion in result.lrs and len(result.lrs) == len(result.losses) <= SWEEP["steps"]
    stored = json.loads((tmp_path / "lf" / "lr_find.json").read_text())
    assert stored["suggestion"] == result.suggestion and stored["lr"] == result.lrs
    # the lowest loss is kept beside the suggestion: a point of the sweep, none lower after the first 10
    lowest = result.lrs.index(result.lowest_loss_lr)
    assert stored["lowest_loss_lr"] == result.lowest_loss_lr and lowest >= 10
    assert result.losses[lowest] == min(x for x in result.losses[10:] if math.isfinite(x))
    assert result.tenth_of_lowest == result.lowest_loss_lr / 10
    # the curve is the running mean of the steps' own losses, stored beside it: it starts at the first step's
    # loss (about ln 3 for an untrained 3-class model), where Lightning's own reads half of it
    raw = stored["loss_raw"]
    assert len(raw) == len(stored["loss"]) == len(result.lrs) and raw == result.raw_losses
    assert stored["loss"][0] == pytest.approx(raw[0]) and 0.5 < raw[0] < 3
    assert stored["loss"][-1] == pytest.approx(result.losses[-1])
    png = (tmp_path / "lf" / "lr_find.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert not list((tmp_path / "lf").glob(".lr_find*"))  # Lightning's restore checkpoint is gone


def test_lr_find_cli_prints_the_suggestion(data, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["lr-find", str(data), "--out", str(out), "--steps", "20", "--start-lr", "1e-4",
                                      "--img-size", "16", "--batch-size", "8", "--model-args", "width=4",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    stored = json.loads((out / "lr_find.json").read_text())
    assert f"suggested lr {stored['suggestion']:.3g}" in result.stdout
    if stored["lowest_loss_lr"] / 10 > stored["suggestion"]:
        assert f"--lr {stored['lowest_loss_lr'] / 10:.3g}" in result.stdout
    else:
        assert "also worth a run" not in result.stdout
    again = CliRunner().invoke(app, ["lr-find", str(data), "--out", str(out), "--steps", "20"])
    assert again.exit_code == 2 and "overwrite" in again.stderr  # an earlier sweep is not replaced silently


def test_train_lr_auto_trains_with_the_suggestion_and_records_it(data, tmp_path):
    run = imgclf.fit(data=str(data), out=str(tmp_path / "auto"), lr="auto", epochs=1, **BASE)
    rd = RunDir(run.path)
    config = yaml.safe_load((run.path / "config.yaml").read_text())
    card = rd.read_card()
    stored = json.loads((run.path / "lr_find.json").read_text())
    assert isinstance(config["lr"], float) and config["lr_auto"] is True  # the number, and where it came from
    assert card.lr_find is not None and card.lr_find.suggestion == config["lr"] == stored["suggestion"]
    assert card.lr_find.min_lr <= card.lr_find.suggestion <= card.lr_find.max_lr
    assert card.lr_find.lowest_loss_lr == stored["lowest_loss_lr"] and card.lr_find.lowest_loss_lr in stored["lr"]
    assert card.training.lr == config["lr"]
    assert math.isclose(rd.read_history()[0].lr, config["lr"], rel_tol=1e-5)  # the optimiser started at it
    assert (run.path / card.lr_find.curve).is_file()
    html = (run.path / "report.html").read_text()
    assert 'id="fig-lr_find"' in html and "Learning-rate finder" in html
    assert f"The loss was lowest at {card.lr_find.lowest_loss_lr:.3g}" in html
    # the same config (lr now a number) trains again without a second sweep
    assert imgclf.TrainConfig.model_validate(config).lr == config["lr"]


def test_a_card_without_lr_find_still_loads(tiny_run):
    card = json.loads((tiny_run / "model.json").read_text())
    card.pop("lr_find", None)
    assert ModelCard.model_validate(card).lr_find is None
    assert not (tiny_run / "lr_find.png").exists()
    assert 'id="fig-lr_find"' not in (tiny_run / "report.html").read_text()
