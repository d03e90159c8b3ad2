"""The run directory's contract: every file the suite writes matches its record; old runs still load; the JSON
Schemas under docs/schema/ are the records' own (torchvision's test_schema_meta_validation is the model)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import imgclf
from conftest import spoilable_copy
from imgclf.errors import ImgclfError
from imgclf.io import read_yaml
from imgclf.records import RECORDS, SCHEMA_VERSION, ModelCard, RunDir, schema_texts
from run_walk import check_run_dirs

ROOT = Path(__file__).resolve().parents[1]
LEGACY = Path(__file__).parent / "fixtures" / "legacy_run_v0"


@pytest.mark.run_last
def test_every_run_directory_written_by_the_suite_matches_its_records(tiny_run, tmp_path_factory):
    """Runs last (conftest orders it): walks every run directory the session's tests wrote (tests/run_walk.py).
    Under pytest-xdist a worker cannot know when the others are done: the controller walks every worker's runs
    at the end of the session instead (conftest's pytest_sessionfinish)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("under pytest-xdist the controller walks every worker's run directories at the session's end")
    checked = check_run_dirs(tmp_path_factory.getbasetemp())
    assert checked.get("model.json", 0) >= 1 and checked.get("predictions.csv", 0) >= 1, checked


def test_a_run_written_before_schema_versions_still_loads_and_predicts(tmp_path):
    run_dir = tmp_path / "legacy"
    shutil.copytree(LEGACY, run_dir)
    run = RunDir(run_dir)
    assert run.validate() == ["config.yaml", "dataset.json", "metrics.json", "history.csv", "model.json",
                              "predictions.csv"]
    assert "format_version" in json.loads(run.file("model.json").read_text())
    assert "f1-score" in json.loads(run.file("metrics.json").read_text())["macro"]
    metrics = run.read_metrics()
    assert metrics.macro.f1 == pytest.approx(json.loads(run.file("metrics.json").read_text())["macro"]["f1-score"])
    card = run.read_card()
    assert card.schema_version == 1 and card.training.best_epoch == 2 and card.metrics.macro_f1 is not None
    preds = imgclf.load(run_dir).predict([str(run_dir / "dark_0.png"), str(run_dir / "light_0.png")])
    assert [p.error for p in preds] == [None, None] and all(p.label in card.classes for p in preds)


def test_schema_files_are_generated_from_the_records():
    folder = ROOT / "docs" / "schema"
    expected = schema_texts()
    assert sorted(p.name for p in folder.glob("*.schema.json")) == sorted(expected)
    for name, text in expected.items():
        assert (folder / name).read_text() == text, f"{name} is stale: python -m imgclf.records docs/schema"
    assert set(RECORDS) == {"config.yaml", "dataset.json", "model.json", "metrics.json", "history.csv",
                            "predictions.csv", "sizing.json", "resumes.json", "lr_find.json", "audit.json", "tune.json", "folds.json",
                            "study.json"}


@pytest.mark.parametrize("name, mutate, message", [
    ("model.json", lambda d: d.update(classes=["only"]), "classes"),
    ("model.json", lambda d: d.update(surprise=1), "surprise"),
    ("model.json", lambda d: d.update(schema_version=99), "schema_version"),
    ("metrics.json", lambda d: d.pop("accuracy"), "accuracy"),
    ("dataset.json", lambda d: d.update(color="cmyk"), "color"),
])
def test_a_file_that_breaks_its_record_is_one_clear_error(tmp_path, name, mutate, message):
    run_dir = spoilable_copy(LEGACY, tmp_path / "broken")
    data = json.loads((run_dir / name).read_text())
    mutate(data)
    (run_dir / name).write_text(json.dumps(data))
    with pytest.raises(ImgclfError, match=f"{name}.*{message}"):
        RunDir(run_dir).validate()


@pytest.mark.parametrize("name", ["model.json", "metrics.json", "dataset.json", "config.yaml"])
def test_a_file_from_a_newer_imgclf_says_so_rather_than_listing_its_new_keys(tmp_path, name):
    import yaml

    run_dir = spoilable_copy(LEGACY, tmp_path / "newer")
    data = yaml.safe_load((run_dir / name).read_text())  # JSON is YAML
    data.update(schema_version=99, a_key_from_the_future=1)
    (run_dir / name).write_text(yaml.safe_dump(data) if name.endswith(".yaml") else json.dumps(data))
    with pytest.raises(ImgclfError, match=f"{name}.*written by a newer imgclf .schema_version 99; imgclf "
                                          r"[0-9.]+ reads up to [0-9]+.: read it with that version") as caught:
        RunDir(run_dir).validate()
    assert "a_key_from_the_future" not in str(caught.value)


def test_resumes_json_written_as_a_bare_list_before_its_schema_version_still_reads(tmp_path):
    from imgclf.pipeline.resume_record import stored_resumes

    run_dir = spoilable_copy(LEGACY, tmp_path / "resumed")
    entry = {"after_epochs": 2, "batches_into_epoch": 0, "from_checkpoint": True,
             "changed": [{"setting": "epochs", "before": 2, "after": 3}], "started": "2026-12-01T00:00:00+00:00"}
    (run_dir / "resumes.json").write_text(json.dumps([entry]))
    assert "resumes.json" in RunDir(run_dir).validate()
    assert [(r.after_epochs, r.changed[0].after) for r in stored_resumes(run_dir)] == [(2, 3)]
    (run_dir / "resumes.json").write_text(json.dumps([{**entry, "after_epochs": -1}]))
    with pytest.raises(ImgclfError, match=r"resumes.json matches its record \(ResumesRecord\).*after_epochs"):
        RunDir(run_dir).validate()


def test_garbage_run_files_are_one_clear_error(tmp_path):
    run_dir = spoilable_copy(LEGACY, tmp_path / "garbage")
    (run_dir / "config.yaml").write_text("{{{ not: yaml")
    with pytest.raises(ImgclfError, match="config.yaml .* cannot be read"):
        RunDir(run_dir).read_config()
    (run_dir / "model.json").write_text("[1, 2]")
    with pytest.raises(ImgclfError, match="whose model.json holds a mapping.*holds a list"):
        RunDir(run_dir).read_card()


def test_card_rejects_inconsistent_preprocessing():
    base = json.loads((LEGACY / "model.json").read_text())
    with pytest.raises(ValueError, match="mean and std"):
        ModelCard.model_validate({**base, "mean": [0.5, 0.5]})


def test_stored_config_is_the_train_config_of_the_run(tiny_run):
    stored = read_yaml(tiny_run / "config.yaml")
    assert stored["schema_version"] == SCHEMA_VERSION
    assert Path(stored["data"]).is_absolute() and Path(stored["out"]) == tiny_run.resolve()
