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


def test_evaluating_a_folder_leaves_out_the_classes_training_dropped(image_folder, tmp_path):
    """A run trained with drop_classes (or classes) is evaluated on the whole folder as it was trained: the
    dropped class folders are left out, and the output says so, instead of a refusal naming them as unknown."""
    import imgclf
    from imgclf.records import RunDir

    run = imgclf.fit(data=str(image_folder), img_size=16, epochs=1, batch_size=16, progress=False,
                     model_args={"width": 4}, drop_classes=["fox"], out=str(tmp_path / "r"), report=False)
    result = CliRunner().invoke(app, ["evaluate", str(run.path), "--data", str(image_folder)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "left out class folder(s) fox, as the run's training did" in " ".join(result.output.split())
    kept = [p for c in ("cat", "dog") for p in (image_folder / c).iterdir()]
    written = [m for m in (run.path / "evaluations").glob("*/metrics.json")]
    metrics = RunDir(written[0].parent).read_metrics()
    assert len(written) == 1 and metrics.count == len(kept) and "fox" not in metrics.per_class
