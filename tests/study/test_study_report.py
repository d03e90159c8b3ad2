"""study.json and study.html from run directories written through the records (no training): the cells are read
through RunDir, the spread over seeds comes from the one mean ± std helper, the figures from the plotting stack."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from imgclf.records import StudyRecord
from imgclf.stats import mean_std
from imgclf.study.imbalance import cell_name, curves_by_config, summarise
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
              "rho_actual": 1.0, "minority_count": 8, "majority_count": 8, "exact": True,
              "rho": 1.0, "target_total": 32, "per_class": 8}  # a manifest as build_subset writes it
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
    StudyRecord.model_validate(result)  # and is its record's


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
                               "curves_by_config.png", "curves_none.png", "curves_oversample.png",
                               "metrics_vs_rho.png"]
    assert rendered, "study.html is rendered by the one Jinja environment"
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 7
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


def test_curves_by_config_are_the_mean_over_seeds_epoch_by_epoch(study):
    def cell(rho, config, seed, losses, finished=True):
        return {"rho": rho, "config": config, "seed": seed, "finished": finished,
                "curves": {"loss": losses, "test_loss": [None if v is None else 2 * v for v in losses]}}

    runs = [cell(1.0, "reg", 0, [1.0, 0.5, 0.25]), cell(1.0, "reg", 1, [3.0, 1.5]),  # seed 1 stopped early
            cell(1.0, "none", 0, [2.0, None]), cell(1.0, "none", 1, [9.0], finished=False),
            cell(3.0, "none", 0, [4.0])]
    overlay = curves_by_config(runs)
    assert list(overlay) == ["1", "3"] and list(overlay["1"]) == ["none", "reg"]  # S4's order, not the runs'
    reg = overlay["1"]["reg"]
    assert reg["seeds"] == [0, 1] and reg["seeds_per_epoch"] == [2, 2, 1]
    assert reg["loss"] == [2.0, 1.0, 0.25] and reg["test_loss"] == [4.0, 2.0, 0.5]
    assert overlay["1"]["none"] == {"seeds": [0], "seeds_per_epoch": [1, 1], "loss": [2.0, None],
                                    "test_loss": [4.0, None]}  # an unfinished cell counts for nothing
    # and the study's own: one entry per ratio and configuration that has finished cells
    _, result = study
    assert {r: list(c) for r, c in result["curves_by_config"].items()} == {"1": ["none", "oversample"],
                                                                           "3": ["none", "oversample"]}
    assert result["curves_by_config"]["3"]["oversample"]["seeds"] == [0]  # seed 1 is unfinished


def overlay_lines(out, result, monkeypatch):
    """The overlay figure as drawn: {column title: [line gid, ...]} (the Figure is caught before it is saved)."""
    from imgclf.study import figures

    caught = {}
    save = figures.save_figure
    monkeypatch.setattr(figures, "save_figure",
                        lambda fig, path: (caught.setdefault(path.name, fig), save(fig, path))[1])
    write_study_report(out, result)
    fig = caught["curves_by_config.png"]
    n = len(fig.axes) // 2  # two rows (accuracy, loss); the top row's titles name the ratios
    columns = {}
    for k, ax in enumerate(fig.axes):
        columns.setdefault(fig.axes[k % n].get_title(), []).extend(line.get_gid() for line in ax.get_lines())
    return columns


def test_overlay_figure_has_one_line_per_configuration_and_curve(study, monkeypatch):
    out, result = study
    columns = overlay_lines(out, result, monkeypatch)
    assert set(columns) == {"rho 1:1", "rho 3:1"}
    for lines in columns.values():
        # accuracy row and loss row, each: every configuration's train and validation curve once
        assert sorted(lines) == sorted(f"{c}|{k}" for c in ("none", "oversample")
                                       for k in ("acc", "val_acc", "loss", "val_loss"))
    assert (out / "plots" / "curves_by_config.png").stat().st_size > 5000


def test_s4_protocol_names_the_held_out_curves_test(study, monkeypatch):
    out, result = study
    grid = [(r["rho"], r["config"], r["seed"]) for r in result["runs"]]
    subsets = {float(k): {**v, "minority": result["minority"], "classes": result["classes"], "rho": v["rho_actual"],
                          "target_total": v["total"], "per_class": 8} for k, v in result["subsets"].items()}
    s4 = summarise(out, grid, subsets, {**result["request"], "protocol": "s4"})
    assert s4["protocol"]["name"] == "s4" and s4["protocol"]["held_out"] == "test"
    StudyRecord.model_validate(s4)
    finished = [r for r in s4["runs"] if r["finished"]]
    assert all(set(r["curves"]) == {"loss", "acc", "test_loss", "test_acc"} for r in finished)
    assert all(r["curves"]["test_loss"] == std["curves"]["val_loss"]
               for r, std in zip(s4["runs"], result["runs"]) if r["finished"])
    assert set(s4["curves_by_config"]["3"]["none"]) >= {"test_loss", "test_acc"}
    columns = overlay_lines(out, s4, monkeypatch)
    assert all(sorted(lines) == sorted(f"{c}|{k}" for c in ("none", "oversample")
                                       for k in ("acc", "test_acc", "loss", "test_loss"))
               for lines in columns.values())
    html = (out / "study.html").read_text()
    assert "S4&#39;s protocol" in html or "S4's protocol" in html
    assert "optimistic" in html and "lowest test loss" in html


def test_a_class_without_scored_images_has_no_scores_rather_than_zeros():
    """At rho 15 a minority class of one image reaches no test split: S4's table showed it at P 0.00, R 0.00 in red
    (a collapsed class, S4's finding, where nothing was measured), and a seed without it pulled the mean down."""
    from imgclf.study.imbalance import _class_scores, scored_split

    seen = {"precision": 0.5, "recall": 1.0, "support": 2}
    unseen = {"precision": 0.0, "recall": 0.0, "support": 0}
    assert _class_scores([{"per_class": {"a": seen}}, {"per_class": {"a": unseen}}], "a") == \
        {"precision": 0.5, "recall": 1.0, "support": 1}
    assert _class_scores([{"per_class": {"a": unseen}}], "a") == {"precision": None, "recall": None, "support": 0}
    # a seed that never predicted the class has no precision either (sklearn's 0): three seeds predicting it 0, 1
    # and 0 times averaged 0.33 where the one that did had 1.0, and the run's own report dashed the others
    never = {"precision": 0.0, "recall": 0.0, "support": 3, "predicted": 0}
    once = {"precision": 1.0, "recall": 1 / 3, "support": 3, "predicted": 1}
    mean = _class_scores([{"per_class": {"a": c}} for c in (never, once, never)], "a")
    assert mean["precision"] == 1.0 and mean["recall"] == pytest.approx(1 / 9)
    assert _class_scores([{"per_class": {"a": never}}], "a")["precision"] is None
    # a train/ + val/ tree has no test split: the cells were scored on validation, and say so
    assert scored_split([{"finished": True, "split": "val"}], "standard") == "validation"
    assert scored_split([{"finished": True, "split": "val"}], "s4") == "test"
    assert scored_split([{"finished": True, "split": "test"}, {"finished": False, "split": None}], "standard") == "test"


def test_the_page_names_the_split_it_scored_and_what_was_imbalanced(study, tmp_path):
    import copy
    import shutil

    out, result = study
    result = copy.deepcopy(result)
    result["scored"] = "validation"
    for subset in result["subsets"].values():
        subset["layout"], subset["other_splits"] = "splits", {"val": 20}
    result["table"]["none"]["3"]["b"].update(precision=None, recall=None, support=0)
    StudyRecord.model_validate(result)
    page = write_study_report(shutil.copytree(out, tmp_path / "s"), result)
    text = " ".join(page.read_text().split())
    assert "These data have no test split" in text and "<th>validation accuracy</th>" in text
    assert "test accuracy" not in text
    assert "Only train/ is imbalanced: the validation split is the data's own val/ folder" in text
    assert "its train/ only: val/ and test/ are the data's own" in text
    assert "<td class=\"\">–</td>" in text


def test_a_flat_folder_studied_without_a_test_split_is_not_called_a_tree_without_test(study, tmp_path):
    """--test-split 0 on a flat folder: the page said "a train/ and val/ tree without test/ ... give a flat folder",
    of a flat folder, and then "the test split is drawn", "train + validation + test" and "the test split is never
    used during training"."""
    import copy
    import shutil

    out, result = study
    result = copy.deepcopy(result)
    result["scored"] = "validation"
    StudyRecord.model_validate(result)
    page = write_study_report(shutil.copytree(out, tmp_path / "s"), result)
    text = " ".join(page.read_text().split())
    assert "The runs drew no test split (test_split 0): every run is scored on its validation split" in text
    assert "Leave test_split at its default (or above 0) for scores to quote" in text
    assert "tree without test" not in text and "give a flat folder" not in text
    assert "The validation split is drawn from each imbalanced subset" in text
    assert "train + validation + test" not in text and "the test split is never used" not in text


def test_scores_after_recomputed_batch_norms_are_marked_against_the_curves(study, tmp_path):
    """The tables score the last weights after their BatchNorm statistics were recomputed, the curves each epoch
    with the running ones: in short runs a curve ended at 0.12 beside a table's 0.36, and nothing said why."""
    import copy
    import shutil

    out, result = study
    assert all(r.get("batch_norm_images") in (None, 0) for r in result["runs"])
    plain = " ".join(write_study_report(shutil.copytree(out, tmp_path / "a"), result).read_text().split())
    assert "BatchNorm statistics recomputed after training" not in plain
    result = copy.deepcopy(result)
    finished = [r for r in result["runs"] if r["finished"]]
    finished[0]["batch_norm_images"] = 24
    StudyRecord.model_validate(result)
    text = " ".join(write_study_report(shutil.copytree(out, tmp_path / "b"), result).read_text().split())
    assert f"* BatchNorm statistics recomputed after training (1 of {len(result['runs'])} runs)" in text
    assert text.count(f"{finished[0]['accuracy']:.3f}*</td>") == 1


def test_a_training_ratio_that_drifted_from_its_rho_is_said_and_shown_per_run(study, tmp_path):
    """With few minority images the held-out splits take one of each class: a cell labelled 15 trained at 24, and
    the page said the splits were "imbalanced in the same way"."""
    import copy
    import shutil

    out, result = study
    result = copy.deepcopy(result)
    finished = [r for r in result["runs"] if r["finished"]]
    for r in finished:
        r["train_rho"] = r["rho"]
    plain = " ".join(write_study_report(shutil.copytree(out, tmp_path / "a"), result).read_text().split())
    assert "off its ρ" not in plain and "(train ρ 3)" in plain
    drifted = next(r for r in finished if r["rho"] == 3.0)
    drifted["train_rho"] = 4.5
    StudyRecord.model_validate(result)
    text = " ".join(write_study_report(shutil.copytree(out, tmp_path / "b"), result).read_text().split())
    assert (f"when it has two). <strong>In 1 of {len(result['runs'])} runs the training split's ratio is more than "
            "10 % off its ρ</strong> (ρ 3)") in text
    assert "(train ρ 4.5)" in text


def test_each_class_has_its_own_line_style_in_the_per_class_recall_figure(study, tmp_path, monkeypatch):
    """Every minority class was the same dashed red line and every majority one the same blue: the legend's entries
    could not be told apart, and equal recalls hid each other's lines."""
    import imgclf.study.figures as figures

    drawn = {}

    def keep(fig, path):
        drawn["fig"] = fig
        return path

    monkeypatch.setattr(figures, "save_figure", keep)
    _, result = study
    figures.plot_class_recall(result, "none", tmp_path / "r.png")
    lines = drawn["fig"].axes[0].get_lines()
    styles = {(line.get_color(), line.get_marker()) for line in lines}
    assert len(lines) == len(CLASSES) and len(styles) == len(CLASSES)
    dashed = {line.get_label().removesuffix(" (minority)") for line in lines if line.get_linestyle() == "--"}
    assert dashed == set(MINORITY)  # minority classes stay dashed
    xs = {tuple(line.get_xdata()) for line in lines}
    assert len(xs) == len(CLASSES)  # stepped sideways: equal values do not hide each other


def test_on_a_phone_the_figures_keep_their_drawn_size_in_frames_that_scroll(study, tmp_path):
    """At 390 px the study's figures (1,144 px wide) were shrunk to the screen, their text read at 4 px."""
    from pathlib import Path

    if not Path("/usr/lib/chromium/chromium").exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    out, result = study
    page_path = write_study_report(out, result)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/lib/chromium/chromium",
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        shown = page.eval_on_selector_all("img", "els => els.map(e => [e.clientWidth, e.naturalWidth])")
        wider = page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth")
        browser.close()
    assert len(shown) == 7 and all(natural and client >= 0.99 * natural for client, natural in shown), shown
    assert not wider  # each frame scrolls, not the page


def test_a_class_never_found_is_marked_where_its_recall_bar_has_no_height(tmp_path, monkeypatch):
    """At rho 5:1 two minority classes had recall 0 in every configuration: the bar chart drew nothing there,
    where the page's table shows 0 in red."""
    from imgclf.study import figures

    saved = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path, **kw: saved.append(fig) or path)
    table = {"none": {"5": {"w": {"recall": 0.0}, "x": {"recall": 0.5}, "y": {"recall": 0.9}}},
             "reg": {"5": {"w": {"recall": 0.0}, "x": {"recall": 0.0}, "y": {"recall": None}}}}
    study = {"configs": ["none", "reg"], "table": table, "minority": ["w", "x"], "majority": ["y"]}
    figures.plot_class_recall_by_config(study, 5.0, tmp_path / "recall.png")
    (fig,) = saved
    zeros = [t for t in fig.axes[0].texts if t.get_text() == "0"]
    assert len(zeros) == 3  # w twice, x once; a missing recall (None) is a gap, not a 0
