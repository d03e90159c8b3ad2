"""`imgclf evaluate` on another split or folder leaves the run's own results (its test scores) as they were."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from imgclf.cli import app


def test_evaluating_the_val_split_keeps_the_runs_test_metrics(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    own = (run / "metrics.json").read_bytes()
    result = CliRunner().invoke(app, ["evaluate", str(run), "--split", "val"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert (run / "metrics.json").read_bytes() == own  # the report and compare still read test scores
    written = run / "evaluations" / "val" / "metrics.json"
    assert json.loads(written.read_text())["split"] == "val"
    assert (written.parent / "predictions.csv").exists()
    assert f"wrote {written}" in " ".join(result.output.split())
