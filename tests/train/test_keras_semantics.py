"""Keras semantics in what a run records and watches: kernel_regularizer=L2 inside the losses (which early
stopping, the plateau schedule and the epoch kept read), and ReduceLROnPlateau's min_delta, as in the Keras
references."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from imgclf.models.base import with_l2
from imgclf.records import RunDir
from imgclf.train.module import ImageClassifierModule


def test_losses_include_the_keras_l2_penalty_as_keras_reports_them():
    """S3's EarlyStopping and S5's ReduceLROnPlateau watched Keras' val_loss, which adds the kernel regularisers'
    penalty (fer_cnn: about 12.8 at initialisation against a cross-entropy of about 1.8); ours was the
    cross-entropy alone, so early stopping and the epoch kept followed another curve. The training loss that
    history.csv records includes it too, as Keras' `loss` does, so the two curves stay comparable."""
    conv = with_l2(nn.Conv2d(1, 3, 3), 0.5)
    model = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    module = ImageClassifierModule(model, {"data": "unused"}, mean=[0.0], std=[1.0])
    logged = {}
    module.log = lambda name, value, **kwargs: logged.__setitem__(name, value)  # validation logs Metric objects
    pixels = torch.randint(0, 256, (6, 8, 8, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    target = torch.arange(6) % 3
    with torch.no_grad():
        cross_entropy = torch.nn.functional.cross_entropy(model(module.prepare(pixels, train=False)), target)
    penalty = 0.5 * float(conv.weight.detach().pow(2).sum())
    with torch.no_grad():  # as Lightning validates
        module.validation_step((pixels, target), 0)
    module._trainer = SimpleNamespace(loggers=[], current_epoch=0, global_rank=0)  # all training_step asks of one
    assert float(logged["val_loss"].compute()) == pytest.approx(float(cross_entropy) + penalty, rel=1e-5)
    module.training_step((pixels, target), 0)
    loss_sum, _, seen = module.epoch_sums.tolist()
    assert loss_sum / seen == pytest.approx(float(cross_entropy) + penalty, rel=1e-5)  # no dropout, no augmentation


@pytest.mark.parametrize("start, fall, cut_at", [(0.3, 2e-5, 3), (2.0, 6e-5, None)])
def test_plateau_counts_an_improvement_as_keras_does(start, fall, cut_at):
    """Keras' ReduceLROnPlateau counts an epoch as better only when the loss falls more than min_delta 1e-4 below
    the best (in the loss's own units); torch's default, 1e-4 of the best value, read a loss near 0.3 falling
    2e-5 an epoch as improving for ever (never cut, where Keras cuts after patience 3), and one near 2.0 falling
    6e-5 an epoch as flat (cut, where every second epoch is 1.2e-4 below the best and Keras never cuts)."""
    settings = {"data": "unused", "schedule": "plateau", "lr": 1e-3, "lr_factor": 0.1, "lr_patience": 3}
    module = ImageClassifierModule(nn.Linear(4, 3), settings, mean=[0.0], std=[1.0])
    found = module.configure_optimizers()
    optimizer, schedule = found["optimizer"], found["lr_scheduler"]["scheduler"]
    rates = []
    for epoch in range(7):
        schedule.step(start - fall * epoch)
        rates.append(optimizer.param_groups[0]["lr"])
    expected = [1e-3 if cut_at is None or epoch < cut_at else 1e-4 for epoch in range(7)]
    assert rates == pytest.approx(expected)


def test_the_card_and_report_give_the_l2_penalty_inside_the_losses(tmp_path, image_folder):
    """With Keras' L2 inside loss and val_loss, the curves sit above the test loss by the penalty: the card gives
    its value for the kept weights, and the report shows it beside the settings (and nothing for a run without)."""
    import re

    import imgclf

    base = {"data": str(image_folder), "model": "simple_cnn", "img_size": 16, "epochs": 1, "progress": False}
    run = imgclf.fit({**base, "l2": {"conv": 0.01}, "out": str(tmp_path / "l2")})
    card = RunDir(run.path).read_card()
    model = imgclf.load(run.path, fold_batch_norm=False).model
    expected = sum(0.01 * float(m.weight.detach().pow(2).sum()) for m in model.modules() if isinstance(m, nn.Conv2d))
    assert card.training.l2_penalty == pytest.approx(expected, rel=1e-4) and expected > 0
    settings = re.search(r'<p class="settings">(.*?)</p>', (run.path / "report.html").read_text(), re.S).group(1)
    assert f"L2 penalty in loss and val loss</span> {expected:.4g}<" in settings
    plain = imgclf.fit({**base, "out": str(tmp_path / "plain")})
    assert RunDir(plain.path).read_card().training.l2_penalty is None
    assert "L2 penalty" not in (plain.path / "report.html").read_text()


def test_frozen_layers_keep_their_l2_term_in_the_losses(tmp_path, image_folder):
    """The penalty counted the trainable layers only: while the backbone was frozen the losses left its term out
    and jumped by it at the unfreeze, so restore_best leaned towards the head-only epochs. A backbone frozen all
    run long (its convolutions marked, the head's dense layers not) is in the card's penalty."""
    import imgclf

    run = imgclf.fit({"data": str(image_folder), "model": "test_efficientnet", "pretrained": False, "img_size": 32,
                      "epochs": 1, "freeze_epochs": 1, "batch_size": 16, "progress": False, "l2": {"conv": 0.01},
                      "out": str(tmp_path / "frozen")}, report=False)
    model = imgclf.load(run.path, fold_batch_norm=False).model
    expected = sum(0.01 * float(m.weight.detach().pow(2).sum()) for m in model.modules() if isinstance(m, nn.Conv2d))
    assert RunDir(run.path).read_card().training.l2_penalty == pytest.approx(expected, rel=1e-4) and expected > 0


def test_history_keeps_each_epochs_l2_penalty(tmp_path, image_folder):
    """The column the overfitting rule reads the fit from: the penalty inside that epoch's losses, empty without."""
    import imgclf

    base = {"data": str(image_folder), "model": "simple_cnn", "img_size": 16, "epochs": 2, "progress": False}
    run = imgclf.fit({**base, "l2": {"conv": 0.01}, "out": str(tmp_path / "l2")}, report=False)
    rows = RunDir(run.path).read_history()
    assert all(r.l2_penalty is not None and 0 < r.l2_penalty < r.val_loss for r in rows), rows
    assert rows[-1].l2_penalty == pytest.approx(RunDir(run.path).read_card().training.l2_penalty, rel=0.05)
    plain = imgclf.fit({**base, "out": str(tmp_path / "plain")}, report=False)
    assert all(r.l2_penalty is None for r in RunDir(plain.path).read_history())


def test_a_resume_of_epochs_recorded_without_the_penalty_says_their_losses_differ(tmp_path, image_folder, caplog):
    """A run begun before loss and val_loss included the L2 penalty, resumed now, would compare its old epochs'
    lower val_loss with the new epochs' sum: said, with the way to compare like with like."""
    import logging

    import imgclf
    from imgclf.io import read_csv

    settings = {"data": str(image_folder), "model": "simple_cnn", "img_size": 16, "epochs": 1, "progress": False,
                "l2": {"conv": 0.01}, "out": str(tmp_path / "old")}
    run = imgclf.fit(settings, report=False)
    history = run.path / "history.csv"
    rows = read_csv(history)
    columns = [c for c in rows[0] if c != "l2_penalty"]  # as written before the column
    history.write_text(",".join(columns) + "\n" + "".join(",".join(r[c] for c in columns) + "\n" for r in rows))
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        imgclf.fit(resume=str(run.path), epochs=2, report=False, progress=False)
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "epoch 1 of" in said and "recorded before loss and val_loss included the model's Keras L2 penalty" in said
    fresh = imgclf.fit({**settings, "out": str(tmp_path / "new")}, report=False)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        imgclf.fit(resume=str(fresh.path), epochs=2, report=False, progress=False)
    assert "Keras L2 penalty" not in " ".join(r.getMessage() for r in caplog.records)  # its epochs have it


def test_s4s_weight_decay_leaves_the_biases_as_matlab_does():
    """MATLAB's L2Regularization reaches a convolution's or fully connected layer's bias only through its
    BiasL2Factor, 0 by default, and batch norm's scale and offset through factors of 1: one optimiser group had
    decayed every parameter of S4's network alike (a bias of 1.0 was 0.9999995 after a step without gradient)."""
    from imgclf.models import create_model

    model = create_model("caltech_cnn", 3, 3, 64, dropout=0.5, batch_norm=True)
    settings = {"data": "unused", "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.1}
    optimizer = ImageClassifierModule(model, settings, mean=[0.0] * 3, std=[1.0] * 3).configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))]
    with torch.no_grad():
        for m in layers:
            m.weight.fill_(1.0)
            m.bias.fill_(1.0)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    decayed = 1.0 - 0.1 * 0.1
    for m in layers:
        assert torch.allclose(m.weight, torch.full_like(m.weight, decayed)), m
        expected = decayed if isinstance(m, nn.BatchNorm2d) else 1.0
        assert torch.allclose(m.bias, torch.full_like(m.bias, expected)), m


def test_an_s4_run_trained_with_one_parameter_group_resumes_as_it_was_trained(tmp_path, monkeypatch):
    """Its checkpoint's optimiser state holds one group, where S4's network now makes two: the resume failed with
    torch's internal "loaded state dict has a different number of parameter groups"."""
    from typer.testing import CliRunner

    from conftest import make_image_folder
    from imgclf.cli import app
    from imgclf.io import read_csv
    from imgclf.models import reference
    from imgclf.train.checkpoint_state import _load

    data = make_image_folder(tmp_path / "data", classes=("a", "b"), per_class=8, size=40)
    args = ["train", str(data), "--model", "caltech_cnn", "--img-size", "40", "--optimizer", "sgd",
            "--weight-decay", "0.01", "--batch-size", "4", "--no-progress", "--no-report", "--precision", "32"]

    def groups_saved(run):
        return len(_load(run / "checkpoints" / "last.ckpt")["optimizer_states"][0]["param_groups"])

    def resumed_to_epoch_2(run):
        done = CliRunner().invoke(app, ["train", "--resume", str(run), "--epochs", "2", "--no-progress",
                                        "--no-report"])
        assert done.exit_code == 0, done.output
        return [int(r["epoch"]) for r in read_csv(run / "history.csv")]

    with monkeypatch.context() as before:  # as trained before the biases left the decay: one group
        before.setattr(reference._MatlabDecay, "param_groups", None)
        first = CliRunner().invoke(app, args + ["--epochs", "1", "--out", str(tmp_path / "run")])
    assert first.exit_code == 0, first.output
    assert groups_saved(tmp_path / "run") == 1
    assert resumed_to_epoch_2(tmp_path / "run") == [1, 2]
    # a run trained now keeps two, and resumes with them
    fresh = CliRunner().invoke(app, args + ["--epochs", "1", "--out", str(tmp_path / "new")])
    assert fresh.exit_code == 0, fresh.output
    assert groups_saved(tmp_path / "new") == 2
    assert resumed_to_epoch_2(tmp_path / "new") == [1, 2]
