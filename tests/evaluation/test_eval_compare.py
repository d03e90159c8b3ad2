"""`compare` on three small runs: two differing only in seed (one group, mean ± std) and one on imbalanced data."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from eval_fixtures import compare_runs_dirs, load_in_chromium  # noqa: F401  (fixtures)
from imgclf.cli import app
from imgclf.errors import ImgclfError
from imgclf.evaluation.compare import compare_runs, format_cell, render_table, summarize_run, write_compare_html
from imgclf.stats import MeanStd
from run_fixtures import write_run


def test_runs_differing_only_in_seed_form_one_group_with_mean_and_std(compare_runs_dirs):
    a0, a1, b = compare_runs_dirs
    comparison = compare_runs([a0, b, a1])
    assert comparison.differing == ["data"]
    sizes = sorted(g.n for g in comparison.groups)
    assert sizes == [1, 2]
    seeds = next(g for g in comparison.groups if g.n == 2)
    single = next(g for g in comparison.groups if g.n == 1)
    assert {r.name for r in seeds.runs} == {"a-seed0", "a-seed1"}
    values = [summarize_run(r).values["test_accuracy"] for r in (a0, a1)]
    assert seeds.stats["test_accuracy"].mean == pytest.approx(np.mean(values))
    assert seeds.stats["test_accuracy"].std == pytest.approx(np.std(values, ddof=1))
    assert single.stats["test_accuracy"].std is None
    assert seeds.label.startswith("data=") and single.label.startswith("data=")
    # minority recall only where the training data is flagged imbalanced (fox: 6 images against 24)
    assert seeds.stats["minority_recall"].mean is None
    assert single.stats["minority_recall"].mean is not None
    assert seeds.stats["num_params"].mean == single.stats["num_params"].mean > 0
    assert seeds.stats["epochs"].mean == 1


def test_terminal_table_and_html_page(compare_runs_dirs, tmp_path, load_in_chromium):
    comparison = compare_runs(compare_runs_dirs)
    console = Console(record=True, width=220)
    render_table(comparison, console)
    text = console.export_text()
    for column in ("val acc", "test acc", "macro F1", "minority recall", "params", "epochs", "train time", "images/s"):
        assert column in text
    assert "±" in text and "a-seed0, a-seed1" in text and "groups differ in: data" in text

    out = write_compare_html(comparison, tmp_path / "sub" / "compare.html")
    html = out.read_text()
    assert "±" in html and "b-imbalanced" in html
    page = load_in_chromium(out)
    assert page["errors"] == [] and page["requests"] == [] and page["anchors_missing"] == []
    assert len(page["images"]) == 1 and page["images"][0][1] > 0
    assert page["pixel_std"] > 20


def test_format_cell():
    assert format_cell(MeanStd(0.91234, 0.0123, 2), "pct") == "91.23 ± 1.23 %"
    assert format_cell(MeanStd(0.5, None, 1), "pct") == "50.00 %"
    assert format_cell(MeanStd(None, None, 0), "pct") == "—"
    assert format_cell(MeanStd(9115.0, None, 1), "int") == "9,115"
    assert format_cell(MeanStd(4.0, 0.0, 2), "num") == "4"
    assert format_cell(MeanStd(12.34, 1.0, 2), "seconds") == "12.3 ± 1.0 s"


def test_compare_reads_the_records_and_tolerates_an_unevaluated_run(tmp_path):
    """Runs written through the records (no training): seeds 0 and 1 form one group; a run without metrics.json
    (still training, or never evaluated) is compared on what it has, its test columns empty."""
    a0, a1 = (write_run(tmp_path, seed=seed, run_name=f"a{seed}") for seed in (0, 1))  # one data folder
    (a1 / "metrics.json").unlink()
    summary = summarize_run(a1)
    assert summary.values["test_accuracy"] is None and summary.values["macro_f1"] is None and summary.split == "?"
    assert summary.values["val_accuracy"] == pytest.approx(0.7)  # history.csv at the kept epoch 5
    comparison = compare_runs([a0, a1])
    assert comparison.differing == [] and [g.n for g in comparison.groups] == [2]
    group = comparison.groups[0]
    assert group.stats["test_accuracy"].n == 1 and group.stats["test_accuracy"].std is None
    assert group.stats["val_accuracy"].n == 2 and group.stats["val_accuracy"].std == 0.0
    assert group.stats["macro_f1"].mean == summarize_run(a0).values["macro_f1"]


def test_bad_run_lists_are_clear_errors(compare_runs_dirs, tmp_path):
    a0 = compare_runs_dirs[0]
    with pytest.raises(ImgclfError, match="at least two"):
        compare_runs([a0])
    with pytest.raises(ImgclfError, match="distinct"):
        compare_runs([a0, a0.parent / "." / a0.name])
    with pytest.raises(ImgclfError, match="runs must be run directories.*no such folder"):
        compare_runs([a0, tmp_path / "missing"])


def test_cli_compare(compare_runs_dirs, tmp_path):
    out = tmp_path / "c.html"
    result = CliRunner().invoke(app, ["compare", *map(str, compare_runs_dirs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and "comparison:" in result.output
    result = CliRunner().invoke(app, ["compare", str(compare_runs_dirs[0]), str(tmp_path / "nope")])
    assert result.exit_code == 2 and "nope" in result.output
