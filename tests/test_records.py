"""The run directory's contract: every file the suite writes matches its record; old runs still load; the JSON
Schemas under docs/schema/ are the records' own (torchvision's test_schema_meta_validation is the model)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import imgclf
from conftest import SPOILED_MARK, WORKER_DONE, spoilable_copy
from imgclf.errors import ImgclfError
from imgclf.io import read_yaml
from imgclf.records import (CARD_SCHEMA_VERSION, RECORDS, SCHEMA_VERSION, ModelCard, RunDir, json_schemas,
                            schema_texts)

ROOT = Path(__file__).resolve().parents[1]
LEGACY = Path(__file__).parent / "fixtures" / "legacy_run_v0"


def _run_dirs(base: Path) -> list[Path]:
    """Run directories under `base` (a model card or a history), less the ones a test spoiled on purpose."""
    found = {p.parent for name in ("model.json", "history.csv") for p in base.rglob(name)}
    return sorted(d for d in found if not (d / SPOILED_MARK).exists())


def _suite_base(tmp_path_factory, wait_s: float = 1200.0) -> Path:
    """The folder holding every run directory of the session. Under pytest-xdist, the one above the workers'
    own, once every other worker has finished its tests (conftest marks it), so that no run is half-written."""
    base = tmp_path_factory.getbasetemp()
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if not os.environ.get("PYTEST_XDIST_WORKER") or workers < 2:
        return base
    others = workers - 1
    deadline = time.monotonic() + wait_s
    while len(list(base.parent.glob(f"*{WORKER_DONE}"))) < others:
        if time.monotonic() > deadline:
            pytest.fail(f"the other {others} pytest-xdist worker(s) did not finish within {wait_s:.0f} s")
        time.sleep(1.0)
    return base.parent


@pytest.mark.run_last
def test_every_run_directory_written_by_the_suite_matches_its_records(tiny_run, tmp_path_factory):
    """Runs last (conftest orders it): walks every run directory the session's tests wrote, on every worker."""
    base = _suite_base(tmp_path_factory)
    schemas = json_schemas()
    checked: dict[str, int] = {}
    run_dirs = _run_dirs(base)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:  # every worker's runs, not only this one's
        above = tmp_path_factory.getbasetemp().parent
        walked = {d.relative_to(above).parts[0] for d in run_dirs}
        assert len(walked) == workers, sorted(walked)
    for run_dir in run_dirs:
        run = RunDir(run_dir)
        for name in run.validate():
            checked[name] = checked.get(name, 0) + 1
        for name in ("dataset.json", "model.json", "metrics.json"):
            raw = json.loads(run.file(name).read_text()) if run.has(name) else {}
            if "schema_version" in raw:  # written by this version: the generated schema accepts it as it is
                Draft202012Validator(schemas[name]).validate(raw)
        if run.has("model.json") and run.has("model.safetensors"):
            card = run.read_card()
            model = imgclf.load(run_dir).model
            assert card.num_params == sum(p.numel() for p in model.parameters()), run_dir
            if "schema_version" in json.loads(run.file("model.json").read_text()):  # not the pre-version fixture
                assert card.schema_version == CARD_SCHEMA_VERSION, run_dir
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
                            "predictions.csv", "audit.json", "tune.json", "folds.json", "study.json"}


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
