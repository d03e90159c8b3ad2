"""The walk over every run directory a pytest session wrote: each file matches its record and the generated JSON
Schema, and each model loads with the parameter count its card states. Called by tests/test_records.py in a
single-process session, and by conftest's pytest_sessionfinish on the pytest-xdist controller once every worker
has finished (a worker cannot know when the others are done)."""

from __future__ import annotations

import json
from pathlib import Path

SPOILED_MARK = ".spoiled-on-purpose"


def run_dirs(base: Path) -> list[Path]:
    """Run directories under `base` (a model card or a history), less the ones a test spoiled on purpose."""
    found = {p.parent for name in ("model.json", "history.csv") for p in base.rglob(name)}
    return sorted(d for d in found if not (d / SPOILED_MARK).exists())


def check_run_dirs(base: Path) -> dict[str, int]:
    """Files checked per name; an AssertionError (or the validator's error) names the first run that fails."""
    from jsonschema import Draft202012Validator

    import imgclf
    from imgclf.records import CARD_SCHEMA_VERSION, RunDir, json_schemas

    schemas = json_schemas()
    checked: dict[str, int] = {}
    for run_dir in run_dirs(base):
        run = RunDir(run_dir)
        for name in run.validate():
            checked[name] = checked.get(name, 0) + 1
        for name in ("dataset.json", "model.json", "metrics.json", "sizing.json", "resumes.json", "lr_find.json"):
            raw = json.loads(run.file(name).read_text()) if run.has(name) else {}
            if "schema_version" in raw:  # written by this version: the generated schema accepts it as it is
                Draft202012Validator(schemas[name]).validate(raw)
        if run.has("model.json") and run.has("model.safetensors"):
            card = run.read_card()
            model = imgclf.load(run_dir, fold_batch_norm=False).model  # the trained network the card describes
            assert card.num_params == sum(p.numel() for p in model.parameters()), run_dir
            if "schema_version" in json.loads(run.file("model.json").read_text()):  # not the pre-version fixture
                assert card.schema_version == CARD_SCHEMA_VERSION, run_dir
    return checked
