"""The loss a run trained with, with its own setting, on the card and the report page: a focal or logitnorm model
must say its gamma or temperature wherever it travels (model.json goes with every export)."""

from __future__ import annotations

import re

import pytest

import imgclf
from imgclf.records import RunDir


@pytest.mark.parametrize(("loss", "setting", "value", "other"), [
    ("focal", "focal_gamma", 1.5, "logitnorm_temperature"),
    ("logitnorm", "logitnorm_temperature", 0.25, "focal_gamma"),
    ("ce", None, None, "focal_gamma"),
])
def test_the_card_and_report_name_the_loss_setting_used(tmp_path, image_folder, loss, setting, value, other):
    settings = {"data": str(image_folder), "model": "simple_cnn", "img_size": 16, "epochs": 1, "batch_size": 8,
                "out": str(tmp_path / "run"), "progress": False, "seed": 0, "model_args": {"width": 8},
                "val_split": 0.2, "test_split": 0.2, "loss": loss,
                # both set away from their defaults: the card must carry the one its loss read, not the other
                "focal_gamma": 1.5, "logitnorm_temperature": 0.25}
    run = RunDir(imgclf.fit(settings).path)
    training = run.read_card().training
    assert training.loss == loss
    assert getattr(training, other) is None
    page = (run.path / "report.html").read_text()
    shown = re.search(r'<p class="settings">(.*?)</p>', page, re.S).group(1)
    if setting is None:
        assert training.focal_gamma is None and training.logitnorm_temperature is None
        assert "focal gamma" not in shown and "logitnorm temperature" not in shown
    else:
        assert getattr(training, setting) == value
        assert re.search(rf'<span class="muted">{setting.replace("_", " ")}</span> {value}</span>', shown), shown
        assert other.replace("_", " ") not in shown
