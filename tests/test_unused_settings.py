"""Settings that another setting's value leaves unread are named once when training starts."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from imgclf.config import TrainConfig
from imgclf.unused_settings import READ_ONLY_WITH, unused_settings


@pytest.mark.parametrize("name", sorted(READ_ONLY_WITH))
def test_each_setting_is_named_only_where_its_decider_does_not_read_it(name):
    decider, readers = READ_ONLY_WITH[name]
    default = TrainConfig.model_fields[name].default
    value = (not default) if isinstance(default, bool) else 0.5 if isinstance(default, float) else 7
    unread = next(v for v in {"optimizer": ("adam", "sgd"), "loss": ("ce", "focal", "logitnorm"),
                              "schedule": ("none", "plateau", "step", "cosine")}[decider] if v not in readers)
    assert [n.split("=")[0] for n in unused_settings(TrainConfig(data="x", **{name: value, decider: unread}))] \
        == [name]
    for reader in readers:
        assert unused_settings(TrainConfig(data="x", **{name: value, decider: reader})) == []
    assert unused_settings(TrainConfig(data="x", **{decider: unread})) == []  # left at its default: nothing to say


def test_momentum_is_cycled_by_the_one_cycle_schedule():
    assert unused_settings(TrainConfig(data="x", optimizer="sgd", momentum=0.5, schedule="onecycle")) == [
        "momentum=0.5 (schedule onecycle cycles it between 0.85 and 0.95 itself)"]
    assert unused_settings(TrainConfig(data="x", optimizer="sgd", momentum=0.5, schedule="cosine")) == []


def test_min_delta_is_read_by_early_stopping_only():
    assert unused_settings(TrainConfig(data="x", min_delta=0.1)) == [
        "min_delta=0.1 (read by early stopping; this run: early_stopping none)"]
    assert unused_settings(TrainConfig(data="x", min_delta=0.1, early_stopping=3)) == []


TUNING = {"unfreeze": "last:2", "backbone_lr_mult": 0.1, "freeze_bn": True}


@pytest.mark.parametrize("name", sorted(TUNING))
def test_fine_tuning_settings_are_named_where_the_backbone_never_trains(name):
    given = {name: TUNING[name]}
    never = [TrainConfig(data="x", epochs=2, freeze_epochs=2, **given),
             TrainConfig(data="x", epochs=2, freeze_epochs=5, **given)]
    for cfg in never:
        assert unused_settings(cfg) == [f"{name}={TUNING[name]} (read once the backbone trains, after freeze_epochs "
                                        f"{cfg.freeze_epochs}; this run: 2 epochs)"]
    assert unused_settings(TrainConfig(data="x", features_only=True, **given)) == [
        f"{name}={TUNING[name]} (this run: features_only, the backbone never trains)"]
    for trains in (TrainConfig(data="x", epochs=3, freeze_epochs=2, **given), TrainConfig(data="x", epochs=2, **given)):
        assert unused_settings(trains) == []


def test_training_warns_of_them_once(image_folder, tmp_path):
    from imgclf.cli import app

    result = CliRunner().invoke(app, ["train", str(image_folder), "--out", str(tmp_path / "r"), "--epochs", "1",
                                      "--img-size", "8", "--nesterov", "--momentum", "0.5", "--focal-gamma", "3",
                                      "--no-report", "--no-progress", "--no-group-duplicates"])
    assert result.exit_code == 0, result.output
    said = [line for line in result.stderr.splitlines() if "settings this run does not use" in line]
    assert said == ["warning settings this run does not use, so they change nothing: momentum=0.5 (read with "
                    "optimizer sgd; this run: adam); nesterov=True (read with optimizer sgd; this run: adam); "
                    "focal_gamma=3.0 (read with loss focal; this run: ce)"], result.stderr
