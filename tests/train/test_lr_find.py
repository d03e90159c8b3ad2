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
from imgclf.pipeline.resolve import resume_config
from imgclf.records import ModelCard, RunDir

BASE = {"img_size": 16, "batch_size": 8, "progress": False, "model_args": {"width": 4}, "val_split": 0.25,
        "test_split": 0.2, "seed": 0}
SWEEP = {"start_lr": 1e-5, "end_lr": 1.0, "steps": 25}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("lrfind"), per_class=12)


def _scripted_sweep(noise: float = 0.0, seed: int = 0):
    """100 steps of 1e-7..1: a loss falling from 2.0 to 0.5 around 1e-3 (a logistic in log10 rate), a wiggle at
    2.6e-6, then divergence with noisy drops. Where the fall ends, within 5 % of it: 6.4e-3 (index 68)."""
    lrs = np.logspace(-7, 0, 100)
    x = np.log10(lrs)
    raw = 2.0 - 1.5 / (1 + np.exp(-(x + 3) * 4))
    raw[20] -= 0.05
    raw[90:] = [3, 4, 3.2, 5, 3.0, 6, 2.5, 7, 8, 9]
    raw = raw + np.random.default_rng(seed).normal(0, noise, raw.size)
    return lrs, list(map(float, raw))


def test_suggestion_is_where_the_loss_fall_ends_not_its_steepest_point_or_lowest():
    """The loss falls fastest at 1e-3 and is lowest at the edge of divergence; the suggestion is the first rate
    within 5 % of the whole fall of the lowest point (2.0 -> 0.5: a loss of 0.575, reached at 6.4e-3)."""
    from imgclf.train.lr_sweep import end_of_fall, smoothed

    lrs, raw = _scripted_sweep()
    losses = smoothed(raw)
    i = end_of_fall(raw, losses)
    assert i == 68 and 6e-3 < lrs[i] < 7e-3
    assert losses[i] <= 0.5 + 0.05 * 1.5 + 1e-9 < losses[i - 1]
    # steps' noise of a fifteenth of the fall: the 9-step mean keeps the suggestion within a factor of 2 of the
    # noise-free one, though the loss's flat bottom makes it drift upward
    for seed in range(10):
        lrs, raw = _scripted_sweep(noise=0.1, seed=seed)
        assert 3.2e-3 < lrs[end_of_fall(raw, smoothed(raw))] < 1.3e-2, seed


def test_the_start_is_the_median_of_the_first_steps_and_the_search_begins_after_them():
    """One wild first step does not move the start level (a mean of the first 10 would, and with it the level the
    suggestion is read at); a dip among the first 10 points is never the suggestion."""
    from imgclf.train.lr_sweep import end_of_fall, smoothed

    lrs, raw = _scripted_sweep()
    raw[0] = 40.0  # the mean of the first 10 would read 5.8, the median 2.0
    losses = smoothed(raw)
    assert end_of_fall(raw, losses) == 68
    losses[5] = 0.0  # a dip before the search starts
    assert end_of_fall(raw, losses) == 68


def test_no_suggestion_when_the_loss_did_not_fall_clearly():
    """A rising or a flat loss has a lowest point too: a dip of its noise, which is no rate to train at."""
    from imgclf.train.lr_sweep import end_of_fall, smoothed

    rising = [1.0 + 0.01 * i for i in range(40)]
    assert end_of_fall(rising, smoothed(rising)) is None
    assert end_of_fall([1.0] * 10 + [float("nan")] * 10, smoothed([1.0] * 10 + [float("nan")] * 10)) is None
    rng = np.random.default_rng(0)
    for seed in range(5):
        flat = list(2.0 + np.random.default_rng(seed).normal(0, 0.05, 100))
        noisy_rise = list(np.linspace(2.0, 2.5, 100) + rng.normal(0, 0.05, 100))
        assert end_of_fall(flat, smoothed(flat)) is None, seed
        assert end_of_fall(noisy_rise, smoothed(noisy_rise)) is None, seed


def test_lowest_loss_skips_the_first_points_and_non_finite_losses():
    """The other usual pick is read off the lowest smoothed loss, after the first 10 points (the untrained
    model's); a diverged sweep ends in inf or nan, which may not be the lowest either."""
    from imgclf.train.lr_sweep import _lowest_index

    losses = [0.1] * 3 + [2.0] * 7 + [1.9, 1.5, 1.2, 1.3, float("nan"), float("inf"), 5.0]
    assert _lowest_index(losses) == 12
    assert _lowest_index([0.5] * 10 + [float("nan")] * 5) is None


def test_smoothed_curve_is_a_centred_mean_of_nine_finite_steps():
    """Centred: a step in the loss shows at the rate where it happened, where a running mean (Lightning's beta
    0.98) would show it decades of rate later on a 100-step sweep."""
    from imgclf.train.lr_sweep import smoothed

    assert smoothed([2.0] * 30) == pytest.approx([2.0] * 30, rel=1e-12)
    step = smoothed([2.0] * 20 + [1.0] * 20)
    assert step[15] == 2.0 and step[19] == pytest.approx(14 / 9) and step[20] == pytest.approx(13 / 9)
    assert step[24] == 1.0
    # a step without a finite loss is left out of the windows around it, not pulled in as a zero
    curve = smoothed([3.0, float("nan"), 3.0, float("inf"), 1.0, 1.0], half=1)
    assert [curve[i] for i in (1, 3, 4, 5)] == pytest.approx([3.0, 2.0, 1.0, 1.0])
    # nor is one finite step among skipped ones read as a mean: a window needs half + 1 finite losses (the first
    # and third points above have one, beside a skipped step)
    assert math.isnan(curve[0]) and math.isnan(curve[2])
    sparse = smoothed([2.0] * 10 + [1.5] * 10 + [float("nan")] * 4 + [0.3] + [float("nan")] * 14)
    assert math.isnan(sparse[24]) and sparse[19] == pytest.approx(1.5)


def test_lr_find_api_writes_curve_and_suggestion_within_the_sweep(data, tmp_path):
    result = imgclf.lr_find(data=str(data), out=str(tmp_path / "lf"), **SWEEP, **BASE)
    assert SWEEP["start_lr"] <= result.suggestion <= SWEEP["end_lr"]
    assert result.suggestion in result.lrs and len(result.lrs) == len(result.losses) <= SWEEP["steps"]
    stored = json.loads((tmp_path / "lf" / "lr_find.json").read_text())
    assert stored["suggestion"] == result.suggestion and stored["lr"] == result.lrs
    _matches_its_record(stored)
    # the lowest loss is kept beside the suggestion: a point of the sweep, none lower after the first 10
    lowest = result.lrs.index(result.lowest_loss_lr)
    assert stored["lowest_loss_lr"] == result.lowest_loss_lr and lowest >= 10
    assert result.losses[lowest] == min(x for x in result.losses[10:] if math.isfinite(x))
    assert result.tenth_of_lowest == result.lowest_loss_lr / 10
    # the curve is the centred mean of the steps' own losses, stored beside it (the first step's loss about
    # ln 3 for an untrained 3-class model)
    raw = stored["loss_raw"]
    assert len(raw) == len(stored["loss"]) == len(result.lrs) and raw == result.raw_losses
    assert stored["loss"][0] == pytest.approx(np.mean(raw[:5])) and 0.5 < raw[0] < 3
    assert stored["loss"][-1] == pytest.approx(result.losses[-1])
    png = (tmp_path / "lf" / "lr_find.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert not list((tmp_path / "lf").glob(".lr_find*"))  # Lightning's restore checkpoint is gone
    # JSON-ready as the other results are, the same sweep as its file (no NaN: json refuses it here)
    shown = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert shown["suggestion"] == stored["suggestion"] and shown["lrs"] == stored["lr"]
    # how much training the sweep was: its steps over the training split (the suggestion depends on it)
    images = sum(1 for _ in data.rglob("*.png"))  # the training split is a part of them (val 0.25, test 0.2)
    assert 0 < result.epochs == stored["epochs"] == shown["epochs"]
    assert images * 0.5 < len(result.lrs) * BASE["batch_size"] / result.epochs < images
    assert f"{len(result.lrs)} steps from" in result.described and f", {result.epochs:.2g} epochs of the training " \
        "images" in result.described
    assert shown["losses"] == stored["loss"] and shown["raw_losses"] == stored["loss_raw"]


def test_a_sweep_into_the_data_folder_is_refused_before_it_writes(data, tmp_path):
    """lr-find --out digits/0 wrote lr_find.png into class 0: one more "training image" of that class."""
    import shutil

    from imgclf.errors import ImgclfError

    copy = shutil.copytree(data, tmp_path / "data")
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    inside = next(p for p in copy.iterdir() if p.is_dir())
    with pytest.raises(ImgclfError, match=r"^out must be a folder outside the data folder"):
        imgclf.lr_find(data=str(copy), out=str(inside), **SWEEP, **BASE)
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == before


def test_lr_find_cli_prints_the_suggestion(data, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["lr-find", str(data), "--out", str(out), "--steps", "20", "--start-lr", "1e-4",
                                      "--img-size", "16", "--batch-size", "8", "--model-args", "width=4",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    stored = json.loads((out / "lr_find.json").read_text())
    assert f"suggested lr {stored['suggestion']:.3g}" in result.stdout
    if not math.isclose(stored["lowest_loss_lr"] / 10, stored["suggestion"], rel_tol=0.05) \
            and stored["lowest_loss_lr"] < stored["lr"][-5]:
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
    assert card.lr_find.rule == stored["rule"] == "end_of_fall" and "fall ends, within 5 % of the whole fall" in html
    # the same config (lr now a number) trains again without a second sweep, and the new run does not claim a
    # finder it never ran (its config said lr_auto true, its card had no lr_find)
    again = imgclf.fit(resume_config(run.path), out=str(tmp_path / "again"), report=False)
    again_config = yaml.safe_load((again.path / "config.yaml").read_text())
    assert again_config["lr"] == config["lr"] and again_config["lr_auto"] is False
    assert RunDir(again.path).read_card().lr_find is None and not (again.path / "lr_find.json").exists()


def test_a_run_whose_sweep_was_cut_short_says_so_in_its_card_and_report(data, tmp_path, monkeypatch):
    """The terminal withholds "a tenth of the lowest point" where the loss was still falling at the sweep's end; the
    report's caption offered it all the same, and the cautions the terminal printed reached neither card nor report."""
    from imgclf.pipeline.lr_find import LRFindResult

    monkeypatch.setattr(LRFindResult, "still_falling", property(lambda self: True))
    run = imgclf.fit(data=str(data), out=str(tmp_path / "cut"), lr="auto", epochs=1, **BASE)
    card = RunDir(run.path).read_card()
    stored = json.loads((run.path / "lr_find.json").read_text())
    assert stored["still_falling"] is True and card.lr_find.still_falling is True
    assert card.lr_find.cautions == stored["cautions"] and "still falling" in card.lr_find.cautions[0]
    html = (run.path / "report.html").read_text()
    assert "the other usual pick" not in html and "Caution: the loss was still falling at the sweep" in html


def test_a_card_without_lr_find_still_loads(tiny_run):
    card = json.loads((tiny_run / "model.json").read_text())
    card.pop("lr_find", None)
    assert ModelCard.model_validate(card).lr_find is None
    assert not (tiny_run / "lr_find.png").exists()
    assert 'id="fig-lr_find"' not in (tiny_run / "report.html").read_text()


def test_a_card_from_before_the_rule_was_recorded_is_captioned_with_the_old_rule():
    """Cards written before 2026-12-02 lack lr_find.rule: their suggestion was the steepest fall of a running
    mean, and a report redrawn from them says so rather than describing today's rule."""
    from imgclf.evaluation.report_facts import lr_find_caption
    from imgclf.records import LRFindInfo

    old = LRFindInfo.model_validate({"suggestion": 3e-4, "lowest_loss_lr": 0.06, "min_lr": 1e-7, "max_lr": 1.0,
                                     "steps": 100})
    assert old.rule == "steepest"
    assert "steepest fall of the running mean (the rule before 2026-12-02)" in lr_find_caption(old)
    assert old.window is None and old.fall_left is None
    # the end_of_fall cards of 2026-12-02 lack the rule's settings: they used a 9-step mean and 5 %
    first = LRFindInfo.model_validate({**old.model_dump(), "rule": "end_of_fall", "window": None, "fall_left": None})
    caption = lr_find_caption(first)
    assert "where the loss's fall ends, within 5 % of" in caption and "mean of 9 steps" in caption
    assert "steepest" not in caption
    # later cards caption the settings they record, not today's constants
    later = LRFindInfo.model_validate({**first.model_dump(), "window": 7, "fall_left": 0.1})
    assert "within 10 % of" in lr_find_caption(later) and "mean of 7 steps" in lr_find_caption(later)


def test_the_sweep_records_the_rule_settings_it_used(data, tmp_path):
    """lr_find.json and the card carry the mean's window and the share of the fall, so that a report redrawn
    after the constants change still describes the rule that chose the run's rate."""
    from imgclf.pipeline.lr_find import card_info
    from imgclf.train import lr_sweep

    imgclf.lr_find(data=str(data), out=str(tmp_path / "lf"), **SWEEP, **BASE)
    stored = json.loads((tmp_path / "lf" / "lr_find.json").read_text())
    assert (stored["rule"], stored["window"], stored["fall_left"]) == ("end_of_fall", 9, lr_sweep.FALL_LEFT)
    info = card_info(tmp_path / "lf")
    assert (info.window, info.fall_left) == (9, lr_sweep.FALL_LEFT)


def test_too_few_steps_to_read_a_window_after_the_start_are_refused(data, tmp_path):
    from imgclf.errors import ImgclfError
    from imgclf.train.lr_sweep import SKIP_BEGIN, WINDOW

    fewest = SKIP_BEGIN + WINDOW
    with pytest.raises(ImgclfError, match=rf"steps must be from {fewest} .*steps={fewest - 1}$"):
        imgclf.lr_find(data=str(data), out=str(tmp_path / "lf"), **{**SWEEP, "steps": SKIP_BEGIN + WINDOW - 1},
                       **BASE)
    assert not (tmp_path / "lf").exists()  # refused before any data is read
    with pytest.raises(ImgclfError, match=r"steps must be from .* to 1,000,000\. Received: steps=1000000000$"):
        imgclf.lr_find(data=str(data), out=str(tmp_path / "lf"), **{**SWEEP, "steps": 10**9}, **BASE)  # ran for ever
    # the API's types as the command line's (steps="50" was a raw TypeError, 50.5 ran as 51)
    for name, value, words in (("steps", "50", "a whole number of sweep steps"), ("steps", 50.5, "a whole number"),
                               ("start_lr", "1e-5", "a finite number"), ("end_lr", float("nan"), "a finite number")):
        with pytest.raises(ImgclfError, match=rf"^{name} must be {words}"):
            imgclf.lr_find(data=str(data), out=str(tmp_path / "lf"), **{**SWEEP, name: value}, **BASE)
    # a training's settings in a mapping, refused as the same keywords are (epochs=3 in a mapping was ignored)
    from imgclf.config import TrainConfig

    for given in ({"epochs": 3}, {"schedule": "onecycle"}, {"lr": 0.1}):
        settings = {"data": str(data), "out": str(tmp_path / "lf"), **BASE, **given}
        for config in (settings, TrainConfig(**settings)):  # a mapping or a config object alike
            with pytest.raises(ImgclfError, match=rf"^{next(iter(given))} must be unset for lr-find"):
                imgclf.lr_find(config, **SWEEP)
    assert not (tmp_path / "lf").exists()
    # the command's help states the same minimum (a number written there by hand)
    help_text = " ".join(CliRunner().invoke(app, ["lr-find", "--help"], env={"COLUMNS": "200"}).output.split())
    assert f"Training steps of the sweep (at least {fewest})." in help_text


def test_a_sweep_that_stopped_early_is_described_as_it_ran():
    """--steps 2000 to lr 1 stopped by Lightning at step 1325 (lr 0.0043) printed and titled "1325 steps from
    1e-07 to 1", the planned end, and never said it stopped."""
    from pathlib import Path

    from imgclf.pipeline.lr_find import LRFindResult

    lrs = list(np.geomspace(1e-7, 1.0, 2000)[:1325])
    stopped = LRFindResult(Path("x"), 1e-3, lrs, [1.0] * len(lrs), 1e-7, 1.0)
    assert stopped.stopped_early and stopped.span == "1325 steps from 1e-07 to 0.0043"
    assert stopped.described.endswith("(stopped early, the loss diverged; the sweep was to 1)")
    whole = LRFindResult(Path("x"), 1e-3, list(np.geomspace(1e-7, 1.0, 50)), [1.0] * 50, 1e-7, 1.0)
    assert not whole.stopped_early and whole.described == "50 steps from 1e-07 to 1"
    # passes in plain figures: 100 over a small folder read "1e+02 epochs"
    for epochs, said in ((2.54, "2.5"), (100.0, "100"), (1234.4, "1,234")):
        swept = LRFindResult(Path("x"), 1e-3, list(np.geomspace(1e-7, 1.0, 50)), [1.0] * 50, 1e-7, 1.0,
                             epochs=epochs)
        assert swept.described == f"50 steps from 1e-07 to 1, {said} epochs of the training images"


def test_the_curves_legend_sits_off_the_plot(tmp_path, monkeypatch):
    """Inside the plot the legend covered the suggestion's and the tenth's lines and the steps' dots."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    import imgclf.plotting
    from imgclf.pipeline import lr_find as lr_find_module
    from imgclf.plotting import style

    saved = []
    monkeypatch.setattr(imgclf.plotting, "save_figure", lambda fig, path, **kw: saved.append(fig) or path)
    lrs = list(np.geomspace(1e-7, 1, 100))
    losses = [2.6 - 1.8 / (1 + np.exp(-(np.log10(lr) + 3))) + (3 * (lr - 0.05) if lr > 0.05 else 0) for lr in lrs]
    result = lr_find_module.LRFindResult(tmp_path, 6.8e-3, lrs, losses, 1e-7, 1.0, lowest_loss_lr=1.3e-2,
                                         raw_losses=[x + 0.1 * np.sin(i) for i, x in enumerate(losses)], window=9)
    lr_find_module.plot_curve(result, tmp_path / "lr_find.png")
    (fig,) = saved
    canvas = FigureCanvasAgg(fig)
    with style():
        canvas.draw()
    renderer = canvas.get_renderer()
    legend = (fig.legends or [fig.axes[0].get_legend()])[0].get_window_extent(renderer)
    plot = fig.axes[0].get_window_extent(renderer)
    assert legend.y1 <= plot.y0 or legend.x1 <= plot.x0 or legend.x0 >= plot.x1 or legend.y0 >= plot.y1
    assert 0 <= legend.x0 and legend.x1 <= fig.bbox.width and legend.y0 >= 0  # whole, inside the figure


def test_the_sweep_is_the_same_whatever_schedule_the_settings_name(tmp_path, caplog):
    """OneCycleLR's constructor set the optimiser's momentum (Adam's beta1) to 0.95 before Lightning's finder
    replaced the scheduler: a settings file naming schedule onecycle moved the suggestion 25x. A data-parallel
    run's settings (devices: 2) were refused as "lr must be a number on several devices", an lr never given."""
    import logging

    from imgclf.data.sources import export_digits

    data = export_digits(tmp_path / "digits")
    config = tmp_path / "c.yaml"
    config.write_text("schedule: onecycle\ndevices: '2'\nstrategy: ddp\n")
    common = {"data": str(data), "model": "simple_cnn", "img_size": 8, "steps": 30, "seed": 0, "progress": False}
    plain = imgclf.lr_find(out=str(tmp_path / "a"), **common)
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        cycled = imgclf.lr_find(config_file=config, out=str(tmp_path / "b"), **common)
    assert cycled.losses == plain.losses and cycled.suggestion == plain.suggestion
    assert "the sweep runs in one process: the config's devices=2 are left out of it" in caplog.text


def test_a_sweep_without_a_suggestion_says_so_as_a_sweep_and_leaves_its_own_curve(tmp_path):
    """lr-find said "lr must be a number ... Pass --lr explicitly" (it has no --lr), and with --overwrite the
    folder kept the earlier sweep's curve, which the user was then sent to look at."""
    from imgclf.data.sources import export_digits
    from imgclf.errors import ImgclfError

    data = export_digits(tmp_path / "digits")
    common = {"data": str(data), "model": "model_s", "img_size": 8, "steps": 30, "seed": 0, "progress": False,
              "out": str(tmp_path / "lr")}
    imgclf.lr_find(**common)
    with pytest.raises(ImgclfError, match=r"^sweep must be a range over which the loss falls clearly .*Received: "
                                          r"from 1e-07 to 1e-05 in 30 steps .*Run it again with a lower --start-lr"):
        imgclf.lr_find(end_lr=1e-5, overwrite=True, **common)
    failed = json.loads((tmp_path / "lr" / "lr_find.json").read_text())
    assert failed["max_lr"] == 1e-5 and failed["suggestion"] is None  # the failed sweep's
    _matches_its_record(failed)


def _matches_its_record(stored: dict) -> None:
    """lr_find.json as written: its typed record and the generated JSON Schema both accept it, as they do the run
    files (a folder of lr-find's is no run directory, so the suite's walk over runs does not reach it)."""
    from jsonschema import Draft202012Validator

    from imgclf.records import LRFindRecord, json_schemas

    assert LRFindRecord.model_validate(stored).model_dump(mode="json") == stored
    Draft202012Validator(json_schemas()["lr_find.json"]).validate(stored)


@pytest.mark.parametrize("settings, backbone_trains, batch_norm_trains", [
    ({"freeze_epochs": 1, "backbone_lr_mult": 0.1}, False, False),
    ({"freeze_bn": True, "backbone_lr_mult": 0.1}, True, False),
    ({}, True, True),
], ids=["frozen", "freeze-bn", "plain"])
def test_the_sweep_runs_a_transfer_model_as_its_first_epoch_trains(settings, backbone_trains, batch_norm_trains,
                                                                   data, tmp_path, monkeypatch):
    """Lightning's finder set every group to one rate and ran none of our callbacks: a frozen phase's sweep
    trained the whole backbone, at the head's rate, its BatchNorm in train mode."""
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.module import register_module_forward_pre_hook

    steps, modes = [], []
    step = torch.optim.Adam.step

    def seen_step(self, *args, **kwargs):  # after the step: Lightning runs the training step inside it (closure)
        loss = step(self, *args, **kwargs)
        groups = {g.get("name"): g for g in self.param_groups}
        steps.append((groups["backbone"]["lr"], groups["head"]["lr"],
                      any(p.requires_grad for p in groups["backbone"]["params"])))
        return loss

    monkeypatch.setattr(torch.optim.Adam, "step", seen_step)
    hook = register_module_forward_pre_hook(
        lambda m, _: modes.append(m.training) if isinstance(m, _BatchNorm) and torch.is_grad_enabled() else None)
    try:
        result = imgclf.lr_find(data=str(data), model="test_efficientnet", pretrained=False, img_size=32,
                                batch_size=8, progress=False, out=str(tmp_path / "lf"), start_lr=1e-5, end_lr=1.0,
                                steps=20, **settings)
    finally:
        hook.remove()
    # a backbone trained from scratch has no features the head's rate could wreck: nothing said of it
    stored = json.loads((tmp_path / "lf" / "lr_find.json").read_text())["cautions"]
    assert not any("the sweep trained the head alone" in c for c in stored) and stored == result.cautions
    mult = settings.get("backbone_lr_mult", 1.0)
    assert len(steps) >= 15 and all(backbone == pytest.approx(head * mult) for backbone, head, _ in steps)
    assert {trains for _, _, trains in steps} == {backbone_trains}
    assert modes and set(modes) == {batch_norm_trains}


def test_ctrl_c_during_the_sweep_says_so_gives_ctrl_c_back_and_leaves_no_folder(tmp_path, monkeypatch):
    """Lightning answers Ctrl-C with a bare SystemExit(1) and leaves Ctrl-C ignored: the sweep ended with no word, a
    notebook's next Ctrl-C did nothing, and an empty folder (or a run folder holding only lr_find.json) stayed."""
    import signal

    from lightning.pytorch.tuner import Tuner

    from imgclf.errors import Interrupted

    def interrupted(*args, **kwargs):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as Lightning leaves it
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemExit(1)

    data = make_image_folder(tmp_path / "data", per_class=8)
    monkeypatch.setattr(Tuner, "lr_find", interrupted)
    before = signal.getsignal(signal.SIGINT)
    for call in (lambda: imgclf.lr_find(data=str(data), model="simple_cnn", img_size=16, out=str(tmp_path / "lr"),
                                        progress=False),
                 lambda: imgclf.fit(data=str(data), model="simple_cnn", img_size=16, lr="auto", epochs=1,
                                    out=str(tmp_path / "run"), progress=False)):
        with pytest.raises(Interrupted, match="learning-rate sweep was interrupted \\(Ctrl-C\\)") as info:
            call()
        assert info.value.exit_code == 130 and signal.getsignal(signal.SIGINT) == before
    assert not (tmp_path / "lr").exists() and not (tmp_path / "run").exists()


def test_a_run_stopped_after_its_sweep_but_before_it_began_leaves_no_folder(tmp_path, monkeypatch):
    """Its folder held lr_find.json alone, and the same command was then refused: "out must be an empty or new
    folder"."""
    import imgclf.pipeline.run as run_module

    def swept_then_stopped(cfg, data, model, run_dir):
        (run_dir / "lr_find.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "_auto_lr", swept_then_stopped)
    data = make_image_folder(tmp_path / "data", per_class=8)
    with pytest.raises(KeyboardInterrupt):
        imgclf.fit(data=str(data), model="simple_cnn", img_size=16, lr="auto", epochs=1, out=str(tmp_path / "run"),
                   progress=False)
    assert not (tmp_path / "run").exists()


def _result(suggestion, lowest, stopped_at=None, head_only=None, floor_steps=0, end_lr=1.0):
    """A sweep whose loss falls from 2 to its end, or to 0 and then flat for its last `floor_steps` steps."""
    from pathlib import Path

    from imgclf.pipeline.lr_find import LRFindResult

    lrs = [float(x) for x in np.logspace(-7, np.log10(end_lr), 100)]
    if stopped_at is not None:
        lrs = [x for x in lrs if x <= stopped_at]
    losses = [float(x) for x in np.linspace(2.0, 0.0, len(lrs) - floor_steps)] + [0.0] * floor_steps
    return LRFindResult(Path("lf"), suggestion, lrs, losses, 1e-7, 1.0, lowest, None, 5, 3.0, head_only)


def test_the_sweep_says_when_it_was_cut_short_or_swept_a_pretrained_heads_rate_alone():
    """Measured on 3-class shapes: a sweep whose loss was still falling at --end-lr got a confident suggestion 28x
    too low; and a frozen pretrained backbone's head-only sweep gave a rate that wrecked the backbone once it
    unfroze at it, without a word. An ordinary sweep, its suggestion at ~0.7x the lowest point by the rule, says
    nothing (a caution on every sweep is none)."""
    assert _result(0.0015, 0.02).cautions == [] and _result(0.015, 0.021).cautions == []
    cut = _result(0.0005, 1.0, stopped_at=1e-3)
    assert cut.stopped_early and not cut.still_falling  # Lightning stopped it: the loss diverged, not cut short
    falling = _result(0.0005, 1.0)
    assert falling.still_falling
    # lowest at the end too, but flat at its floor for the last steps: the fall had ended (the easy data's loss of
    # 0.0 for its last 8 steps was warned "still falling", and a sweep to a higher rate moved nothing)
    assert not _result(0.0005, 1.0, floor_steps=8).still_falling and not _result(0.0005, 1.0, floor_steps=8).cautions
    (short,) = falling.cautions
    assert short.startswith("the loss was still falling at the sweep's end (1)") and "imgclf lr-find" in short
    assert "a higher --end-lr" in short
    # at the highest end_lr the sweep takes, "a higher --end-lr" was advice the command then refused
    (capped,) = _result(0.0005, 10.0, end_lr=10.0).cautions
    assert "higher --end-lr" not in capped and "--end-lr is at its highest (10)" in capped
    (head,) = _result(0.0015, 0.02, head_only=(2, 1.0)).cautions
    assert "the sweep trained the head alone (the backbone frozen, as in the first 2 epochs)" in head
    assert "--backbone-lr-mult (1), which at 0.0015 can wreck" in head


def test_the_cli_offers_the_other_pick_either_side_and_prints_the_cautions(monkeypatch, tmp_path):
    """On 3-class shapes the suggestion kept training at chance where a tenth of the lowest point's rate trained,
    and the terminal offered that tenth only when it was the higher of the two."""
    import imgclf.pipeline.lr_find as pipeline

    monkeypatch.setattr(pipeline, "lr_find", lambda **kwargs: _result(0.015, 0.021))
    result = CliRunner().invoke(app, ["lr-find", str(tmp_path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "also worth a run: --lr 0.0021" in result.stdout  # lower than the suggestion: offered all the same
    monkeypatch.setattr(pipeline, "lr_find", lambda **kwargs: _result(0.0005, 1.0))
    result = CliRunner().invoke(app, ["lr-find", str(tmp_path)], env={"COLUMNS": "250"})
    assert "also worth a run" not in result.stdout and "still falling" in result.stderr


def test_the_sweeps_epochs_count_passes_whose_last_batch_is_short(data, tmp_path):
    """96 training images at batch 64 are 2 steps a pass: 100 steps read as 67 epochs where they were 50."""
    result = imgclf.lr_find(data=str(data), out=str(tmp_path / "lf"), **SWEEP, **{**BASE, "batch_size": 8})
    stored = json.loads((tmp_path / "lf" / "lr_find.json").read_text())
    train = round(len(list(data.rglob("*.png"))) * (1 - BASE["val_split"] - BASE["test_split"]))
    passes = math.ceil(train / 8)  # 3 steps a pass for the 20-21 training images, the last of 4-5
    assert result.epochs == pytest.approx(len(result.lrs) / passes, abs=0.02 * len(result.lrs) / passes)
    assert stored["settings"]["batch_size"] == 8 and stored["settings"]["model"] == "simple_cnn"


def test_the_head_only_caution_is_for_a_pretrained_backbone_that_will_train_fast():
    """It fired on a backbone trained from scratch and at --backbone-lr-mult 0.01, telling the user to pass 0.1."""
    from types import SimpleNamespace

    from imgclf.config import make_config
    from imgclf.pipeline.lr_find import head_only

    model = SimpleNamespace(backbone=object())
    base = {"data": "d", "model": "resnet18", "freeze_epochs": 2}
    assert head_only(make_config(**base, pretrained=True, backbone_lr_mult=1.0), model) == (2, 1.0)
    assert head_only(make_config(**base, pretrained=False), model) is None
    assert head_only(make_config(**base, pretrained=True, backbone_lr_mult=0.01), model) is None
    assert head_only(make_config(**{**base, "freeze_epochs": 0}, pretrained=True), model) is None
    assert head_only(make_config(**base, pretrained=True), SimpleNamespace()) is None  # no backbone to wreck


def test_the_figure_of_a_sweep_cut_short_draws_no_tenth_of_its_lowest_point(tmp_path, monkeypatch):
    """The terminal withholds "a tenth of it" where the loss was still falling at the sweep's end (its lowest
    point is only where the sweep stopped); lr_find.png still drew it as the other usual pick."""
    import imgclf.plotting
    from imgclf.pipeline import lr_find as lr_find_module

    def labels(result):
        saved = []
        monkeypatch.setattr(imgclf.plotting, "save_figure", lambda fig, path, **kw: saved.append(fig) or path)
        lr_find_module.plot_curve(result, tmp_path / "lr_find.png")
        (fig,) = saved
        handles = fig.axes[0].get_legend_handles_labels()[1] + [t.get_text() for leg in fig.legends
                                                                 for t in leg.get_texts()]
        return " | ".join(handles)

    assert "the other usual pick" in labels(_result(0.0015, 0.02))
    cut = labels(_result(0.0005, 1.0))
    assert "the other usual pick" not in cut and "still falling there (sweep higher)" in cut, cut
    capped = labels(_result(0.0005, 10.0, end_lr=10.0))  # at the highest end_lr, "sweep higher" is no way on
    assert "sweep higher" not in capped and "still falling there (at the highest end_lr)" in capped, capped


def test_the_sweep_says_what_it_swept_on_and_records_the_data_choice(tmp_path):
    """imgclf lr-find printed no data line and no word of a file it could not read, and lr_find.json left out the
    class choice and splits, which change the sweep."""
    from pathlib import Path

    from conftest import make_image_folder

    data = make_image_folder(tmp_path / "data", classes=("a", "b", "c"), per_class=8)
    (data / "a" / "broken.png").write_bytes(b"not a png")
    result = imgclf.lr_find(data=str(data), model="simple_cnn", img_size=16, batch_size=8, progress=False,
                            drop_classes=["c"], out=str(tmp_path / "lf"), steps=20)
    assert result.data_line.startswith("2 classes, ") and result.data_line.endswith(
        "training images, 1 file skipped (lr_find.json lists them)"), result.data_line
    stored = json.loads((tmp_path / "lf" / "lr_find.json").read_text())
    assert (stored["classes"], stored["settings"]["drop_classes"]) == (2, ["c"])
    assert [Path(s["path"]).name for s in stored["skipped"]] == ["broken.png"]
    assert f"{stored['train_images']} training images" in result.data_line


def test_a_runs_config_given_to_the_sweep_leaves_its_out_to_the_run(data, tmp_path, monkeypatch):
    """`imgclf lr-find --config RUN/config.yaml` took the run's own `out` as the sweep's folder, and was refused
    for it ("holds a training run"); tune ignores a file's out, and the sweep's help promises lr-find/<model>-<n>."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"data: {data}\nmodel: simple_cnn\nimg_size: 16\nout: {run}\n")
    monkeypatch.chdir(tmp_path)
    result = imgclf.lr_find(config_file=run / "config.yaml", steps=19, progress=False)
    assert result.path == tmp_path / "lr-find" / "simple_cnn-1" and (result.path / "lr_find.json").exists()
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]
    # an out the caller gives is the sweep's
    assert imgclf.lr_find(config_file=run / "config.yaml", steps=19, progress=False,
                          out=str(tmp_path / "mine")).path == tmp_path / "mine"
