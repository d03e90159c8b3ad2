"""study.json and study.html from run directories written through the records (no training): the cells are read
through RunDir, the spread over seeds comes from the one mean ± std helper, the figures from the plotting stack."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from imgclf.stats import mean_std
from imgclf.study.imbalance import cell_name, summarise
from imgclf.study.report import write_study_report
from run_fixtures import write_run

CLASSES = ("cost $^$ x_1", "b", "c", "d")  # a class name matplotlib would parse as maths, on purpose
MINORITY = ["cost $^$ x_1", "b"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """2 ratios x 2 configurations, seeds 0 and 1 for (3, none); one cell (3, oversample, seed 1) unfinished."""
    out = tmp_path_factory.mktemp("study")
    grid = [(1.0, "none", 0), (1.0, "oversample", 0), (3.0, "none", 0), (3.0, "none", 1), (3.0, "oversample", 0),
            (3.0, "oversample", 1)]
    for rho, config, seed in grid[:-1]:
        name = cell_name(rho, config, seed)
        write_run(out / "runs", classes=CLASSES, seed=seed + int(rho) + len(config), run_name=name,
                  data_name=f"data-{name}")
    subset = {"minority": MINORITY, "classes": list(CLASSES), "counts": {c: 8 for c in CLASSES}, "total": 32,
              "rho_actual": 1.0, "minority_count": 8, "majority_count": 8, "exact": True}
    request = {"data": "/data", "mu": 0.5, "per_class": 8, "minority": None, "model": "simple_cnn", "subset_seed": 0,
               "overrides": {}}
    result = summarise(out, grid, {1.0: subset, 3.0: subset}, request, seconds=1.0)
    return out, result


def test_cells_are_read_through_the_records(study):
    out, result = study
    assert result["state"] == "partial" and result["finished_runs"] == 5
    finished = [r for r in result["runs"] if r["finished"]]
    assert all(0 <= r["accuracy"] <= 1 and r["epochs"] == 8 and r["best_epoch"] == 5 for r in finished)
    assert all(r["overfitting_onset"] == 6 for r in finished)  # the fixture's validation loss turns at epoch 5
    assert set(finished[0]["per_class"]) == set(CLASSES)
    json.dumps(result)  # study.json holds plain values only


def test_summary_is_mean_and_std_over_seeds(study):
    _, result = study
    row = next(r for r in result["summary"] if (r["rho"], r["config"]) == (3.0, "none"))
    runs = [r for r in result["runs"] if (r["rho"], r["config"]) == (3.0, "none")]
    assert row["seeds"] == [0, 1]
    assert row["accuracy"] == mean_std(r["accuracy"] for r in runs).as_dict()
    assert row["accuracy"]["n"] == 2 and row["accuracy"]["std"] is not None
    single = next(r for r in result["summary"] if (r["rho"], r["config"]) == (3.0, "oversample"))
    assert single["accuracy"]["n"] == 1 and single["accuracy"]["std"] is None


def test_study_page_and_figures(study, monkeypatch):
    import imgclf.pages
    import imgclf.plotting

    out, result = study
    written, rendered = [], []
    write = imgclf.plotting.atomic_write_bytes
    monkeypatch.setattr(imgclf.plotting, "atomic_write_bytes", lambda p, d: (written.append(p.name), write(p, d)))
    env = imgclf.pages.environment()
    monkeypatch.setattr(imgclf.pages, "environment", lambda: rendered.append(1) or env)
    page = write_study_report(out, result)
    assert sorted(written) == ["class_recall_by_config.png", "class_recall_none.png", "class_recall_oversample.png",
                               "curves_none.png", "curves_oversample.png", "metrics_vs_rho.png"]
    assert rendered, "study.html is rendered by the one Jinja environment"
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 6
    assert "cost $^$ x_1" in html and 'class="minority"' in html
    assert " ± " in html  # (3, none) has two seeds


def test_study_figures_never_load_pyplot(study):
    out, result = study
    (out / "study-copy.json").write_text(json.dumps(result))
    code = (f"import json, sys; from imgclf.study import figures; "
            f"s = json.load(open({str(out / 'study-copy.json')!r})); "
            f"figures.plot_metrics_vs_rho(s, {str(out / 'check.png')!r}); "
            f"figures.plot_curves(s, 'none', {str(out / 'check2.png')!r}); print('matplotlib.pyplot' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
