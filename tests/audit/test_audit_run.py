"""`audit(data, run=RUN)`: the run's model gives the features, and its card the decode size and colour mode."""

from __future__ import annotations

import json

from imgclf.audit import audit
from imgclf.records import load_card


def test_audit_with_a_run_uses_its_penultimate_features_and_its_preprocessing(image_folder, tiny_run, tmp_path):
    card = load_card(tiny_run)
    result = audit(image_folder, run=tiny_run, out=tmp_path / "audit")
    record = result.record
    assert record.features.source == "run" and card.architecture in record.features.description
    assert record.settings.run == str(tiny_run.resolve())
    assert (record.settings.img_size, record.settings.color) == (card.img_size, card.color)
    assert result.images.pixels.shape[1:] == (card.img_size, card.img_size, card.in_chans)
    # the run learned the classes, so its features separate them out of fold
    assert record.features.accuracy is not None and record.features.accuracy >= 0.9
    assert json.loads(result.json_path.read_text())["features"]["source"] == "run"
    assert "--run RUN" not in result.html_path.read_text()  # the hint is for audits on pixels only


def test_a_run_trained_on_other_classes_is_warned(image_folder, tiny_run, tmp_path, capsys):
    import shutil

    audit(image_folder, run=tiny_run, out=tmp_path / "same", page=False)
    assert "trained on other classes" not in capsys.readouterr().err
    other = tmp_path / "other"
    shutil.copytree(image_folder, other)
    (other / "cat").rename(other / "lynx")
    audit(other, run=tiny_run, out=tmp_path / "audit", page=False)
    err = " ".join(capsys.readouterr().err.split())
    assert "warning the run was trained on other classes (3, 2 of them among the folder's 3)" in err
