"""What training prints when its output goes to a file: a header, then one short line per epoch, no tqdm frames;
the epoch line's counter, and what is left of a time limit."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from conftest import make_image_folder
from imgclf.records import RunDir
from imgclf.train.budget import TimeBudget
from imgclf.train.progress import EpochLines


def test_a_redirected_log_has_a_header_and_one_short_line_per_epoch(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=10)
    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path / "cache"), "COLUMNS": "80"}
    proc = subprocess.run([sys.executable, "-m", "imgclf.cli", "train", str(data), "--img-size", "16", "--epochs", "3",
                           "--model-args", "width=4", "--out", str(tmp_path / "run"), "--batch-size", "8",
                           "--no-report", "--schedule", "step", "--lr-step", "1", "--lr", "0.01"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "\r" not in err and "it/s" not in err, "tqdm frames in a redirected log"
    lines = err.splitlines()
    assert lines[0].startswith("data ") and "3 classes" in lines[0]
    assert lines[1].startswith("model ") and "parameters" in lines[1] and lines[2].startswith("device ")
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]  # 1-based, like history.csv
    assert all(len(line.encode()) <= 200 for line in epochs) and all("loss " in line for line in epochs)
    # each line shows its epoch's training loss and accuracy, the figures history.csv keeps
    history = RunDir(tmp_path / "run").read_history()
    shown = [(line.split("  loss ")[1].split()[0], line.split("  acc ")[1].split()[0]) for line in epochs]
    assert shown == [(f"{h.loss:.4f}", f"{h.acc:.4f}") for h in history], (shown, history)
    # and the rate it trained at, not the one the scheduler set for the next epoch as it ended
    assert [line.split("  lr ")[1].split()[0] for line in epochs] == ["1.0e-02", "1.0e-03", "1.0e-04"]
    assert [h.lr for h in history] == pytest.approx([1e-2, 1e-3, 1e-4])
    summary = proc.stdout.splitlines()
    # (a worst class only where recalls differ: test_eval_report's test of classes sharing the lowest recall)
    assert any(line.startswith("test accuracy") and "macro recall" in line for line in summary), proc.stdout


def _line(epochs: int, budget: TimeBudget | None) -> str:
    stream = io.StringIO()
    lines = EpochLines(epochs, stream=stream)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    trainer = SimpleNamespace(is_global_zero=True, current_epoch=2, optimizers=[optimizer], should_stop=False,
                              callback_metrics={"loss": 0.5, "acc": 0.8, "val_loss": 0.6, "val_acc": 0.7},
                              callbacks=[budget] if budget is not None else [])
    lines.on_train_epoch_start(trainer, None)
    lines.on_train_epoch_end(trainer, None)
    return stream.getvalue().strip()


@pytest.mark.parametrize("fit_schedule, counter", [(True, "epoch 3  loss"), (False, "epoch    3/1000  loss")])
def test_a_time_limit_shows_what_is_left_and_a_fitted_schedule_no_epoch_total(fit_schedule, counter):
    """`epoch 3/1000` read as a plan of 1000 epochs for the fast recipes, whose schedule follows the time."""
    budget = TimeBudget(600, fit_schedule=fit_schedule, clock=lambda: 0.0)
    budget.spent = 355.0  # the probe and the epochs so far
    line = _line(1000, budget)
    assert line.startswith(counter) and line.endswith("  4m05s left"), line


def test_without_a_time_limit_the_line_is_as_before():
    line = _line(30, None)
    assert line.startswith("epoch  3/30  loss 0.5000") and "left" not in line, line


def test_a_terminal_gets_a_bar_with_the_epochs_running_training_accuracy(tmp_path, monkeypatch, capsys):
    import re

    import imgclf
    from imgclf.train import progress

    monkeypatch.setattr(progress, "stderr_is_terminal", lambda: True)
    data = make_image_folder(tmp_path / "data", per_class=10)
    imgclf.fit({"data": str(data), "img_size": 16, "epochs": 2, "model_args": {"width": 4}, "batch_size": 8,
                "out": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache")}, report=False)
    bar = capsys.readouterr().out  # Lightning's bar draws on stdout
    assert "it/s" in bar, "no bar drawn"
    assert re.search(r"(?<!val_)acc=[01]\.\d{3}", bar), bar[-2000:]


def test_short_epochs_share_a_line_after_the_first_and_the_last_is_shown():
    """A minute's run on 127 images printed 193 epoch lines: after the first three, a line at most every 2 s, saying
    how many epochs it stands for; the last epoch always has its line (history.csv keeps them all)."""
    from imgclf.train.progress import LINE_SECONDS

    stream, now = io.StringIO(), [0.0]
    lines = EpochLines(40, stream=stream, clock=lambda: now[0])
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    for epoch in range(40):
        trainer = SimpleNamespace(is_global_zero=True, current_epoch=epoch, optimizers=[optimizer], should_stop=False,
                                  callback_metrics={"loss": 0.5, "acc": 0.8, "val_loss": 0.6, "val_acc": 0.7},
                                  callbacks=[])
        lines.on_train_epoch_start(trainer, None)
        now[0] += LINE_SECONDS / 4  # four epochs to a line's interval
        lines.on_train_epoch_end(trainer, None)
    shown = [line.split()[1] for line in stream.getvalue().splitlines()]
    assert shown[:3] == ["1/40", "2/40", "3/40"] and shown[-1] == "40/40"
    assert 10 <= len(shown) <= 13, shown
    assert "(3 epochs before not shown)" in stream.getvalue()


def test_an_early_stopped_runs_last_epoch_has_its_line():
    """Lightning calls EarlyStopping after the other callbacks' epoch-end hooks: should_stop was still false when
    the line was decided, so a run stopped early between lines ended without its last epoch's line."""
    from imgclf.train.progress import LINE_SECONDS

    stream, now = io.StringIO(), [0.0]
    lines = EpochLines(40, stream=stream, clock=lambda: now[0])
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    for epoch in range(10):  # early stopping ends it after epoch 10 of 40
        trainer = SimpleNamespace(is_global_zero=True, current_epoch=epoch, optimizers=[optimizer], should_stop=False,
                                  callback_metrics={"loss": 0.5, "acc": 0.8, "val_loss": 0.6 + epoch,
                                                    "val_acc": 0.7},
                                  callbacks=[])
        lines.on_train_epoch_start(trainer, None)
        now[0] += LINE_SECONDS / 4
        lines.on_train_epoch_end(trainer, None)
    trainer.should_stop = True
    lines.on_train_end(trainer, None)
    said = stream.getvalue().splitlines()
    assert said[-1].startswith("epoch 10/40") and "val_loss 9.6000" in said[-1], said
    assert "before not shown)" in said[-1] and sum(line.startswith("epoch 10/") for line in said) == 1
    # an interrupt after an epoch not shown: Lightning calls on_exception, not on_train_end
    trainer = SimpleNamespace(**{**vars(trainer), "current_epoch": 10, "should_stop": False})
    lines.on_train_epoch_start(trainer, None)
    lines.on_train_epoch_end(trainer, None)  # no time passed: not shown
    assert not stream.getvalue().splitlines()[-1].startswith("epoch 11/40")
    lines.on_exception(trainer, None, KeyboardInterrupt())
    assert stream.getvalue().splitlines()[-1].startswith("epoch 11/40")


def test_the_header_says_where_the_input_size_came_from_when_none_was_given():
    """800 x 600 photos trained at 32 x 32 with no word of why or how to change it."""
    from imgclf.config import make_config
    from imgclf.models import get_model_info
    from imgclf.pipeline.run import size_origin

    assert size_origin(make_config(data="d", model="simple_cnn"), get_model_info("simple_cnn")) == \
        "simple_cnn's default; --img-size to change"
    assert size_origin(make_config(data="d", model="fast_resnet"), get_model_info("fast_resnet")).startswith(
        "the images' median side, at most 64")
    assert size_origin(make_config(data="d", model="simple_cnn", img_size=48), get_model_info("simple_cnn")) == ""
