"""`compare` on three small runs: two differing only in seed (one group, mean ± std) and one on imbalanced data."""

from __future__ import annotations

import re

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

import imgclf
from eval_fixtures import compare_runs_dirs, load_in_chromium  # noqa: F401  (fixtures)
from imgclf.cli import app
from imgclf.errors import ImgclfError
from imgclf.evaluation.compare import compare_runs, summarize_run
from imgclf.evaluation.compare_render import (best_groups, chosen_on_validation, format_cell, render_table,
                                              write_compare_html)
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
    for column in ("acc %", "F1 %", "minority", "recall %", "params", "epochs", "train"):
        assert column in text
    assert "±" in text and "a-seed0, a-seed1" in text and "groups differ in: data" in text

    out = write_compare_html(comparison, tmp_path / "sub" / "compare.html")
    html = out.read_text()
    assert "±" in html and "b-imbalanced" in html
    page = load_in_chromium(out)
    assert page["errors"] == [] and page["requests"] == [] and page["anchors_missing"] == []
    assert page["spilled"] == [], page["spilled"]
    assert len(page["images"]) == 1 and page["images"][0][1] > 0
    assert page["pixel_std"] > 20
    # the curves drawn for the page's column, not shrunk into it (1,320 px shown at 924: legend text 9 px)
    assert all(f["text_px"] >= 10 for f in page["figures"]), page["figures"]
    # a phone: a group's heading of long settings (a data path) wraps instead of widening the page
    phone = load_in_chromium(out, width=390)
    assert not phone["wider"]


def test_each_runs_report_is_linked_relative_to_the_page(tmp_path):
    """A file:// link broke once the folder was moved, shared or served over http."""
    from urllib.parse import unquote

    runs = [write_run(tmp_path / "runs", seed=seed, run_name=f"seed {seed}") for seed in (0, 1)]
    for run in runs:
        (run / "report.html").write_text("<html></html>")
    out = write_compare_html(compare_runs(runs), tmp_path / "pages" / "compare.html")
    links = re.findall(r'href="([^"#]+report\.html)"', out.read_text())
    assert len(links) == 2 and not any(":" in link or " " in link or link.startswith("/") for link in links)
    assert {(out.parent / unquote(link)).resolve() for link in links} == {run / "report.html" for run in runs}


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
    # an existing folder that is not a run (a data folder given by mistake) is refused too, not skipped
    (tmp_path / "photos" / "cat").mkdir(parents=True)
    (tmp_path / "photos" / "cat" / "1.png").write_bytes(b"x")
    with pytest.raises(ImgclfError, match="photos"):
        compare_runs([a0, compare_runs_dirs[1], tmp_path / "photos"])


def test_cli_compare(compare_runs_dirs, tmp_path):
    out = tmp_path / "c.html"
    result = CliRunner().invoke(app, ["compare", *map(str, compare_runs_dirs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and "comparison:" in result.output and "no .html extension" not in result.output
    bare = tmp_path / "cmp"  # written as given, but said: the file opens in no browser by its name
    result = CliRunner().invoke(app, ["compare", *map(str, compare_runs_dirs), "--out", str(bare)])
    assert result.exit_code == 0 and bare.read_text().startswith("<!DOCTYPE html>")
    assert f"--out {bare} has no .html extension" in " ".join(result.output.split()), result.output
    result = CliRunner().invoke(app, ["compare", str(compare_runs_dirs[0]), str(tmp_path / "nope")])
    assert result.exit_code == 2 and "nope" in result.output


# ------------------------------------------------------------------------------------------- issue 26
def _configure(run_dir, **settings):
    from imgclf.records import RunDir

    run = RunDir(run_dir)
    run.write_config(run.read_config().model_copy(update=settings))
    return run_dir


def _scored(run_dir, accuracy):
    from imgclf.records import RunDir

    run = RunDir(run_dir)
    metrics = run.read_metrics()
    run.write_metrics(metrics.model_copy(update={"accuracy": accuracy,
                                                 "macro": metrics.macro.model_copy(update={"f1": accuracy - 0.01})}))
    return run_dir


def _three_runs(tmp_path):
    """a and b: the same test images, different settings; c: another data set, scored higher than both."""
    a = _scored(_configure(write_run(tmp_path, seed=0, run_name="a"), augment="", lr=1e-3), 0.61)
    b = _scored(_configure(write_run(tmp_path, seed=1, run_name="b"), augment="hflip,rotate=30,shift=0.1,zoom=0.1",
                           lr=3e-4), 0.72)
    c = _scored(_configure(write_run(tmp_path, seed=2, run_name="c-on-other-data-with-a-rather-long-run-name",
                                     data_name="a-second-data-set-with-a-long-folder-name"),
                           augment="hflip,rotate=30,shift=0.1,zoom=0.1", lr=1e-3), 0.93)
    return a, b, c


def test_best_is_only_marked_among_runs_scored_on_the_same_images(tmp_path):
    a, b, c = _three_runs(tmp_path)
    comparison = compare_runs([c, a, b])
    by_run = {g.runs[0].name: i for i, g in enumerate(comparison.groups)}
    same = {by_run["a"], by_run["b"]}
    other = by_run[c.name]
    assert [sorted(s.groups) for s in comparison.sections] in ([sorted(same), [other]], [[other], sorted(same)])
    assert comparison.groups[other].stats["test_accuracy"].mean > max(
        comparison.groups[i].stats["test_accuracy"].mean for i in same)  # c would win if ranked with them
    best = best_groups(comparison)
    assert all(other not in winners for winners in best.values()), best
    assert best["test_accuracy"] == {by_run["b"]} and best["macro_f1"] == {by_run["b"]}
    titles = [s.title for s in comparison.sections]
    assert "test split of data, 6 images" in titles[0] + titles[1]
    assert "a-second-data-set-with-a-long-folder-name, 6 images" in titles[0] + titles[1]

    console = Console(record=True, width=80, soft_wrap=True)
    render_table(comparison, console)
    text = " ".join(console.export_text().split())
    assert "not ranked against each other" in text and all(t in text for t in titles)
    html = write_compare_html(comparison, tmp_path / "compare.html").read_text()
    assert "groups are ranked only against groups scored on the same images" in html
    assert all(t in html for t in titles)


def test_val_accuracy_is_not_ranked_between_runs_validated_on_other_images(tmp_path):
    """--val-split 0.03 against 0.3: the same test images, one section, and the 8-image validation split's accuracy
    was highlighted as the best over the 72-image one."""
    import json

    from imgclf.records import RunDir

    a, b, _ = _three_runs(tmp_path)
    card = RunDir(b).read_card()
    card.training.val_accuracy_after_batch_norm = 0.99  # b's val acc above a's
    RunDir(b).write_card(card)
    assert "val_accuracy" in best_groups(compare_runs([a, b]))
    record = json.loads((b / "dataset.json").read_text())
    moved = record["splits"]["val"]["files"].pop(), record["splits"]["val"]["labels"].pop()
    record["splits"]["train"]["files"].append(moved[0])
    record["splits"]["train"]["labels"].append(moved[1])
    (b / "dataset.json").write_text(json.dumps(record))
    comparison = compare_runs([a, b])
    assert len(comparison.sections) == 1 and not comparison.sections[0].val_alike
    best = best_groups(comparison)
    assert "val_accuracy" not in best and "test_accuracy" in best  # the test images are still the same
    assert "their validation images differ, so val acc is not ranked" in comparison.sections[0].title


def test_a_tie_for_best_marks_no_group(tmp_path):
    a = write_run(tmp_path, seed=0, run_name="a")
    b = _configure(write_run(tmp_path, seed=0, run_name="b"), lr=3e-4)  # same fake history: val acc ties
    comparison = compare_runs([a, b])
    assert len(comparison.sections) == 1
    assert "val_accuracy" not in best_groups(comparison)


def test_scores_on_another_folder_are_never_averaged_with_the_runs_own(tmp_path):
    """An older release wrote `evaluate --data` over the run's own metrics.json: such a run is its own group."""
    from imgclf.records import RunDir

    a0 = write_run(tmp_path, seed=0, run_name="a0")
    a1 = write_run(tmp_path, seed=1, run_name="a1")
    run = RunDir(a1)
    run.write_metrics(run.read_metrics().model_copy(update={"split": "/elsewhere/big-test:all", "count": 10_000}))
    comparison = compare_runs([a0, a1])
    assert [g.n for g in comparison.groups] == [1, 1] and len(comparison.sections) == 2
    assert any("scored on /elsewhere/big-test:all" in g.label for g in comparison.groups)
    assert best_groups(comparison) == {}


def test_an_empty_setting_is_named_not_left_blank(tmp_path):
    a, b, _ = _three_runs(tmp_path)
    comparison = compare_runs([a, b])
    labels = {g.runs[0].name: g.label for g in comparison.groups}
    assert labels["a"] == "augment=none, lr=0.001"
    assert "augment=," not in " ".join(labels.values()) and not any(l.endswith("=") for l in labels.values())
    html = write_compare_html(comparison, tmp_path / "compare.html").read_text()
    assert "augment: none" in html and "augment=</" not in html


def test_a_searched_float_is_labelled_to_four_digits_unless_that_merges_two_labels(tmp_path):
    """A search's rates read lr=0.008459126528049376 in every label; rounded, unless two groups then look alike."""
    a = _scored(_configure(write_run(tmp_path, seed=0, run_name="a"), lr=0.008459126528049376), 0.6)
    b = _scored(_configure(write_run(tmp_path, seed=1, run_name="b"), lr=3.417952912061011e-05), 0.7)
    close = _scored(_configure(write_run(tmp_path, seed=2, run_name="close"), lr=0.0084591), 0.7)
    labels = {g.runs[0].name: g.label for g in compare_runs([a, b]).groups}
    assert labels == {"a": "lr=0.008459", "b": "lr=3.418e-05"}
    comparison = compare_runs([a, close])
    labels = {g.runs[0].name: g.label for g in comparison.groups}
    assert labels == {"a": "lr=0.008459126528049376", "close": "lr=0.0084591"}
    html = write_compare_html(comparison, tmp_path / "compare.html").read_text()
    assert "<code>lr: 0.008459126528049376</code>" in html and "<code>lr: 0.0084591</code>" in html  # each row's


def test_terminal_output_fits_80_columns_with_the_numbers_and_labels(tmp_path):
    a, b, c = _three_runs(tmp_path)
    seeds = [_configure(write_run(tmp_path / "s", seed=s, run_name=f"seed{s}"), lr=0.01) for s in (0, 1)]
    comparison = compare_runs([a, b, c, *seeds])
    console = Console(record=True, width=80, soft_wrap=True)  # soft_wrap: as the CLI's console
    render_table(comparison, console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80, text
    flat = " ".join(text.split())
    for g in comparison.groups:
        for key in ("test_accuracy", "macro_f1", "val_accuracy"):
            assert f"{100 * g.stats[key].mean:.2f}" in text, (g.label, key)
        assert " ".join(f"{g.key} {g.label}".split()) in flat, g.label  # the key gives every label whole
    seeds_group = next(g for g in comparison.groups if g.n == 2)
    assert f"±{100 * seeds_group.stats['test_accuracy'].std:.2f}" in text


def test_curve_legend_stays_inside_the_figure(tmp_path, monkeypatch):
    """Long labels ran off the figure (issue 26): each legend entry is the group's letter and its label wrapped."""
    from imgclf.evaluation.plots import training_curves

    seen = {}
    real_save = training_curves.save_figure

    def save(fig, path, *args, **kwargs):
        fig.canvas.draw()
        seen["figure"] = fig.bbox
        seen["legend"] = fig.legends[0].get_window_extent()
        seen["texts"] = [t.get_text() for t in fig.legends[0].get_texts()]
        return real_save(fig, path, *args, **kwargs)

    monkeypatch.setattr(training_curves, "save_figure", save)
    a, b, c = _three_runs(tmp_path)
    seeds = [_configure(write_run(tmp_path / "s", seed=s, run_name=f"seed{s}"), lr=0.01) for s in (0, 1)]
    comparison = compare_runs([a, b, c, *seeds])
    assert max(len(g.label) for g in comparison.groups) > 80
    write_compare_html(comparison, tmp_path / "compare.html")
    legend, figure = seen["legend"], seen["figure"]
    assert figure.x0 <= legend.x0 and legend.x1 <= figure.x1 and figure.y0 <= legend.y0, (legend, figure)
    assert [t.split(":")[0] for t in seen["texts"]] == [g.key for g in comparison.groups]


def test_cli_compare_output_fits_80_columns(tmp_path):
    a, b, c = _three_runs(tmp_path)
    result = CliRunner().invoke(app, ["compare", str(a), str(b), str(c), "--out", str(tmp_path / "c.html")],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines if not line.startswith("comparison: ")) <= 80, result.output
    assert "61.00" in result.output and "72.00" in result.output and "93.00" in result.output
    assert "not ranked against each other" in " ".join(result.output.split())


def test_a_copy_or_rerun_of_a_seed_is_counted_once(tmp_path, caplog):
    """Two runs with the same settings and seed are one sample, not two: the second would halve nothing but the
    ±std. It is left out with a warning naming the run it repeats; other seeds still make the group."""
    import shutil

    import logging

    a0 = write_run(tmp_path, seed=0, run_name="a0")
    a1 = write_run(tmp_path, seed=1, run_name="a1")
    copy = shutil.copytree(a0, tmp_path / "a0-copy")
    with caplog.at_level(logging.WARNING, logger="imgclf"):  # the logger README's warnings go through
        comparison = compare_runs([a0, copy, a1])
    assert any(re.search(r"a0-copy: the same settings and seed 0 as .*a0 \(a copy", r.getMessage())
               for r in caplog.records)
    assert [g.n for g in comparison.groups] == [2]
    assert {r.name for r in comparison.groups[0].runs} == {"a0", "a1"}
    assert [r for r, _ in comparison.skipped] == [str(copy)]
    # the page says so too: a reader of compare.html alone saw two runs where three were named
    page = write_compare_html(comparison, tmp_path / "compare.html").read_text()
    assert "<h1>2 runs, 1 group</h1>" in page and "1 run left out" in page
    assert f"<li><code>{copy}</code>: the same settings and seed 0 as" in page
    # of a run and its rerun, the evaluated one is kept, whichever comes first (an interrupted first attempt hid
    # its evaluated rerun's test scores)
    (a0 / "metrics.json").unlink()
    comparison = compare_runs([a0, copy, a1])
    assert {r.name for r in comparison.groups[0].runs} == {"a0-copy", "a1"}
    assert comparison.skipped == [(str(a0), f"the same settings and seed 0 as {copy} (a copy or a rerun): "
                                            "counted once")]
    # every copy left out names the run kept in the end: a third, unevaluated, named a0 (itself left out later)
    third = shutil.copytree(a0, tmp_path / "a0-third")
    comparison = compare_runs([a0, third, copy, a1])
    assert {r.name for r in comparison.groups[0].runs} == {"a0-copy", "a1"}
    assert sorted(comparison.skipped) == sorted((str(r), f"the same settings and seed 0 as {copy} (a copy or a "
                                                         "rerun): counted once") for r in (a0, third))


def test_where_a_run_was_logged_does_not_make_it_another_experiment(tmp_path):
    a0 = write_run(tmp_path, seed=0, run_name="a0")
    a1 = _configure(write_run(tmp_path, seed=1, run_name="a1"), logger=["csv", "tensorboard"], checkpoint_every=5)
    comparison = compare_runs([a0, a1])
    assert [g.n for g in comparison.groups] == [2] and comparison.differing == []


def test_one_runs_loss_spike_puts_the_compared_loss_panel_on_a_log_scale(tmp_path, monkeypatch):
    """A run whose first epoch's validation loss was 1,600 flattened every other run's curve onto zero."""
    from imgclf.evaluation import compare_render
    from imgclf.evaluation.plots import training_curves
    from imgclf.records import RunDir

    saved = []
    real_save = training_curves.save_figure
    monkeypatch.setattr(training_curves, "save_figure", lambda fig, path, **kw: saved.append(fig) or
                        real_save(fig, path, **kw))
    a = write_run(tmp_path, seed=0, run_name="a")
    b = _configure(write_run(tmp_path, seed=0, run_name="b"), lr=0.5)
    compare_render.write_compare_html(compare_runs([a, b]), tmp_path / "plain.html")
    assert saved.pop().axes[1].get_yscale() == "linear"
    run = RunDir(b)
    history = run.read_history()
    history[0] = history[0].model_copy(update={"val_loss": 1600.0})
    run.write_history(history)
    compare_render.write_compare_html(compare_runs([a, b]), tmp_path / "spiked.html")
    assert saved.pop().axes[1].get_yscale() == "log"


def test_a_model_without_pretrained_weights_is_neither_grouped_nor_labelled_by_pretrained(tmp_path):
    """--no-pretrained changes nothing for simple_cnn: such runs are one experiment, and beside backbones that differ
    in it, its label says it has no weights rather than pretrained=True."""
    a0 = write_run(tmp_path, seed=0, run_name="a0")
    a1 = _configure(write_run(tmp_path, seed=1, run_name="a1"), pretrained=False)
    comparison = compare_runs([a0, a1])
    assert [g.n for g in comparison.groups] == [2] and comparison.differing == []
    tuned = _configure(write_run(tmp_path, seed=0, run_name="tuned"), model="mobilenetv2_100")
    assert compare_runs([a0, tuned]).differing == ["model"]  # pretrained, as a backbone is by default
    scratch = _configure(write_run(tmp_path, seed=0, run_name="scratch"), model="mobilenetv2_100", pretrained=False)
    comparison = compare_runs([a0, scratch])
    assert comparison.differing == ["model", "pretrained"]  # not the default: the label says so
    assert [g.label for g in comparison.groups] == ["model=simple_cnn, pretrained=no weights",
                                                    "model=mobilenetv2_100, pretrained=False"]
    comparison = compare_runs([a0, scratch, tuned])
    assert comparison.differing == ["model", "pretrained"]
    assert {g.runs[0].name: g.label for g in comparison.groups} == {
        "a0": "model=simple_cnn, pretrained=no weights", "scratch": "model=mobilenetv2_100, pretrained=False",
        "tuned": "model=mobilenetv2_100, pretrained=True"}


def test_runs_of_one_config_on_a_data_folder_that_grew_are_not_averaged_as_seeds(tmp_path):
    """Grouped by config.yaml alone, a run on a folder that gained training images was one more seed of the
    runs before it, and the groups ranked against it differed by data the page never mentioned."""
    from imgclf.records import RunDir, SplitFiles

    a0, a1, grown = (write_run(tmp_path, seed=seed, run_name=f"a{seed}") for seed in (0, 1, 2))
    run = RunDir(grown)
    record = run.read_dataset()
    train = record.splits["train"]
    extra = [f"cat/extra_{i}.png" for i in range(4)]
    run.write_dataset(record.model_copy(update={"sizes": {**record.sizes, "train": 16}, "splits": {
        **record.splits, "train": SplitFiles(files=train.files + extra, labels=train.labels + [0] * 4)}}))
    comparison = compare_runs([a0, a1, grown])
    assert sorted(g.n for g in comparison.groups) == [1, 2]
    labels = {g.n: g.label for g in comparison.groups}
    assert "12 training images" in labels[2] and "16 training images" in labels[1]
    # one whose dataset.json is gone: its images are not known, not none
    run.file("dataset.json").unlink()
    labels = {g.n: g.label for g in compare_runs([a0, a1, grown]).groups}
    assert "training images unknown (no readable dataset.json)" in labels[1] and "0 training" not in labels[1]
    run.write_dataset(record.model_copy(update={"sizes": {**record.sizes, "train": 16}, "splits": {
        **record.splits, "train": SplitFiles(files=train.files + extra, labels=train.labels + [0] * 4)}}))
    assert len(comparison.sections) == 1 and "trained on different images" in comparison.sections[0].title
    # seeds capped per class keep other files each (S3's recipes): one folder, so one group as before
    for run_dir, files in ((a0, train.files[:6]), (a1, train.files[6:])):
        _configure(run_dir, per_class_max={"train": 2})
        record = RunDir(run_dir).read_dataset()
        RunDir(run_dir).write_dataset(record.model_copy(update={"cache_key": "same-folder", "splits": {
            **record.splits, "train": SplitFiles(files=files, labels=[0] * 6)}}))
    assert [g.n for g in compare_runs([a0, a1]).groups] == [2]


def test_a_group_cell_over_fewer_runs_than_the_group_says_so_and_long_labels_are_whole(tmp_path, caplog):
    import logging

    a0, a1 = (write_run(tmp_path, seed=seed, run_name=f"a{seed}") for seed in (0, 1))
    (a1 / "metrics.json").unlink()
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        comparison = compare_runs([a0, a1])
    assert any("a1 is not evaluated (no metrics.json)" in r.getMessage() for r in caplog.records)
    page = write_compare_html(comparison, tmp_path / "c.html").read_text()
    assert "(n=1)" in page and "not evaluated (no metrics.json)" in page and "evaluated on the not" not in page
    # two augment strings alike in their first 40 characters read as one label
    long = "hflip,rotate=30,shift=0.1,zoom=0.1,brightness=0."
    b2, b4 = (_configure(write_run(tmp_path, seed=0, run_name=f"b{b}"), augment=long + b) for b in ("2", "4"))
    labels = sorted(g.label for g in compare_runs([b2, b4]).groups)
    assert labels == [f"augment={long}2", f"augment={long}4"]


def test_a_folder_and_one_of_its_runs_count_that_run_once(tmp_path, caplog):
    """Overlapping globs (runs/ and runs/a0) refused the whole comparison, where a copy of a run was only said."""
    import logging

    a0, _ = (write_run(tmp_path / "runs", seed=seed, run_name=f"a{seed}") for seed in (0, 1))
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        comparison = compare_runs([tmp_path / "runs", a0])
    assert [g.n for g in comparison.groups] == [2]
    assert any("given more than once: counted once" in r.getMessage() for r in caplog.records)


def test_a_run_scored_on_its_validation_split_is_never_ranked_as_test(tmp_path):
    """A run trained without a test split is scored on its validation images, which chose its epoch and were, under
    the same seed, another run's test images: compare put both in one "test split" section and ranked them."""
    import json

    a = _scored(_configure(write_run(tmp_path, seed=0, run_name="a"), lr=1e-3), 0.61)
    b = _scored(_configure(write_run(tmp_path, seed=0, run_name="b"), lr=3e-4), 0.90)
    record = json.loads((b / "dataset.json").read_text())
    splits = record["splits"]
    splits["val"], splits["test"] = splits["test"], splits["val"]  # its val images are a's test images
    del splits["test"]
    (b / "dataset.json").write_text(json.dumps(record))
    metrics = json.loads((b / "metrics.json").read_text())
    metrics["split"] = "val"
    (b / "metrics.json").write_text(json.dumps(metrics))
    comparison = compare_runs([a, b])
    assert len(comparison.sections) == 2
    titles = sorted(s.title for s in comparison.sections)
    assert titles[0].startswith("test split of data") and titles[1].startswith("val split of data")
    # the run without a test split: its "test acc" is of its validation images, which the section says (val acc
    # 70 % beside test acc 65 % on the same 10 images read as two sets of images)
    assert "no test split, so the test columns score these validation images too" in titles[1]
    assert "no test split" not in titles[0]
    assert best_groups(comparison).get("test_accuracy") in (None, set())  # one group per section: none ranked


def test_groups_of_other_seed_sets_drawing_from_one_folder_are_ranked_together(tmp_path):
    """Each seed draws its own test split from a flat folder: three seeds of one setting against two of another
    were put in two sections (their sets of scored images differed), and nothing was ranked. Both means estimate
    the same thing, the accuracy on a random draw of that folder."""
    import json

    def drawn_by(run_dir, seed):  # the split seed `seed` drew: one test image traded with a validation one
        record = json.loads((run_dir / "dataset.json").read_text())
        val, test = record["splits"]["val"], record["splits"]["test"]
        for part in ("files", "labels"):
            val[part][seed], test[part][seed] = test[part][seed], val[part][seed]
        (run_dir / "dataset.json").write_text(json.dumps(record))
        return run_dir

    a = [_scored(drawn_by(_configure(write_run(tmp_path, seed=s, run_name=f"a{s}"), lr=1e-3), s), 0.6 + s / 100)
         for s in (0, 1, 2)]
    b = [_scored(drawn_by(_configure(write_run(tmp_path, seed=s, run_name=f"b{s}"), lr=3e-4), s), 0.8)
         for s in (0, 1)]
    comparison = compare_runs([*a, *b])
    assert sorted(g.n for g in comparison.groups) == [2, 3]
    assert len(comparison.sections) == 1, [s.title for s in comparison.sections]
    title = comparison.sections[0].title
    assert "drawn with seeds 0, 1, 2" in title and "each mean is over its own seeds' draws" in title
    best = best_groups(comparison)
    assert best["test_accuracy"] == {next(i for i, g in enumerate(comparison.groups) if g.n == 2)}
    assert "val_accuracy" not in best  # each seed validated on its own draw as well
    # a folder that is not the same (other files) is still never ranked with them
    other = _scored(drawn_by(_configure(write_run(tmp_path, seed=0, run_name="c0", data_name="other"),
                                        lr=1e-2), 0), 0.99)
    assert len(compare_runs([*a, *b, other]).sections) == 2
    # one run a setting is no mean: two single runs of other seeds, scored on other images, stay unranked
    assert len(compare_runs([a[0], b[1]]).sections) == 2


def test_a_group_of_one_seeds_runs_is_not_ranked_as_a_mean_over_draws():
    """Two runs of seed 0 (one resumed with other settings, one trained at them throughout: both kept) made a
    group of n 2 that was ranked against others as a mean over its seeds' draws: one draw of the test split."""
    from types import SimpleNamespace

    from imgclf.evaluation.compare_sets import _drawn_key

    def run(seed):
        return SimpleNamespace(seed=seed, config={}, data_set="d", evaluation=SimpleNamespace(drawn=True, split="test",
                                                                                               count=30))

    two_seeds = SimpleNamespace(runs=[run(0), run(1)])
    assert _drawn_key([two_seeds, SimpleNamespace(runs=[run(0), run(1)])]) is not None
    assert _drawn_key([two_seeds, SimpleNamespace(runs=[run(0), run(0)])]) is None
    # the folds of one seed share its test draw (they rotate validation): three of them are no mean over draws
    folds = [SimpleNamespace(**{**vars(run(0)), "config": {"fold": f, "folds": 3}}) for f in (1, 2, 3)]
    assert _drawn_key([two_seeds, SimpleNamespace(runs=folds)]) is None


def test_a_page_inside_a_compared_run_is_refused_before_anything_is_written(compare_runs_dirs, tmp_path):
    """`compare A B --out A/metrics.json` wrote the page over A's record (A then failed to load), and
    `--out B/report.html` over B's report, without a word."""
    from typer.testing import CliRunner

    from imgclf.cli import app

    a0, a1 = compare_runs_dirs[:2]
    kept = {p: p.read_bytes() for p in (a0 / "metrics.json", a1 / "model.json")}
    for out in (a0 / "metrics.json", a1 / "model.json", a1 / "plots" / "compare.html"):
        result = CliRunner().invoke(app, ["compare", str(a0), str(a1), "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert (f"error: out must be a page outside the run directories compared. Received: out='{out}' (it is "
                f"inside the run ") in " ".join(result.output.split()), result.output
    assert all(p.read_bytes() == b for p, b in kept.items()) and not (a1 / "plots" / "compare.html").exists()
    with pytest.raises(ImgclfError, match=r"^out must be a page outside the run directories compared"):
        imgclf.compare([a0, a1], out=a0 / "compare.html")
    assert imgclf.compare([a0, a1], out=tmp_path / "compare.html").groups  # beside the runs: written


def test_one_run_left_once_the_others_are_passed_over_is_refused_as_one_run_given_is(compare_runs_dirs, tmp_path):
    """Two runs given, one of them unfinished: compare wrote a page of one run compared with nothing, exit 0,
    where one run given was refused."""
    a0 = compare_runs_dirs[0]
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("data: d\n")
    (unfinished / "dataset.json").write_text("{}")
    with pytest.raises(ImgclfError, match=r"^runs must be at least two readable, finished run directories\. .*"
                                          rf"\(1 left once these were passed over: {re.escape(str(unfinished))}: "):
        compare_runs([a0, unfinished], say_skipped=False)


def test_classes_chosen_in_another_order_are_the_same_experiment(tmp_path):
    """The outputs follow the sorted class names whatever the order --classes gives: two seeds of one choice,
    given in two orders, were two groups 'differing in classes'."""
    a0 = _configure(write_run(tmp_path, seed=0, run_name="a0"), classes=["dog", "cat"])
    a1 = _configure(write_run(tmp_path, seed=1, run_name="a1"), classes=["cat", "dog"])
    comparison = compare_runs([a0, a1])
    assert [g.n for g in comparison.groups] == [2] and comparison.differing == []


def test_many_groups_keep_their_curves_readable_above_the_legend(tmp_path, monkeypatch):
    """25 groups' legend squeezed the curves to nothing (matplotlib: 'constrained_layout not applied because axes
    sizes collapsed to zero'): the figure grows with its legend."""
    import warnings

    from imgclf.evaluation.plots import training_curves

    seen = {}
    real_save = training_curves.save_figure

    def save(fig, path, *args, **kwargs):
        fig.canvas.draw()
        seen["axes"] = [ax.get_window_extent().height for ax in fig.axes]
        return real_save(fig, path, *args, **kwargs)

    monkeypatch.setattr(training_curves, "save_figure", save)
    runs = [_configure(write_run(tmp_path / "r", seed=0, run_name=f"lr{i}"), lr=0.001 * (i + 1),
                       augment=f"hflip,rotate={i + 1},shift=0.1,zoom=0.1,brightness=0.2,contrast=0.2,erase=0.25")
            for i in range(25)]
    comparison = compare_runs(runs)
    assert len(comparison.groups) == 25 and max(len(g.label) for g in comparison.groups) > 80  # wrapped entries
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the collapse is a UserWarning
        write_compare_html(comparison, tmp_path / "compare.html")
    assert min(seen["axes"]) > 150, seen["axes"]


def test_the_page_has_s2s_columns_and_names_the_model_chosen_on_validation(tmp_path):
    """S2 compares its two models by validation loss, accuracy, precision and recall, then chooses the best one:
    compare had neither the loss, precision and recall columns nor a choice."""
    import json
    import shutil

    import yaml

    from imgclf.records import HistoryRow, RunDir

    a = write_run(tmp_path, run_name="custom-cnn")
    b = write_run(tmp_path, run_name="mobilenet")
    config = yaml.safe_load((b / "config.yaml").read_text())
    (b / "config.yaml").write_text(yaml.safe_dump({**config, "lr": 0.5}))  # another experiment, same images
    card = RunDir(b).read_card()
    card.training.val_accuracy_after_batch_norm = 0.97  # B validates better
    RunDir(b).write_card(card)
    history = RunDir(a).read_history()
    RunDir(a).write_history([HistoryRow(**{**row.model_dump(), "val_loss": 0.4 + row.epoch / 100}) for row in history])
    metrics = json.loads((a / "metrics.json").read_text())
    metrics["macro"].update(precision=0.61, recall=0.73)  # apart: the columns must not read one for the other
    (a / "metrics.json").write_text(json.dumps(metrics))
    comparison = compare_runs([a, b])
    group = {g.runs[0].name: g for g in comparison.groups}
    assert group["custom-cnn"].stats["val_loss"].mean == pytest.approx(0.45)  # its kept epoch's: 5
    assert group["custom-cnn"].stats["macro_precision"].mean == 0.61
    assert group["custom-cnn"].stats["macro_recall"].mean == 0.73
    key = group["mobilenet"].key
    console = Console(record=True, width=220)
    render_table(comparison, console)
    said = " ".join(console.export_text().split())
    assert f"chosen on validation: {key} (validation accuracy 97.00 %;" in said, said
    html = write_compare_html(comparison, tmp_path / "compare.html").read_text()
    for column in ("val loss", "precision", "recall"):
        assert f'<th class="n">{column}</th>' in html
    assert f"<b>Chosen on validation: {key} (validation accuracy 97.00 %;" in html
    # validated on other images (one fewer), tested on the same: ranked on test, no choice made on validation
    c = shutil.copytree(b, tmp_path / "fewer-val")
    dataset = json.loads((c / "dataset.json").read_text())
    for field in ("files", "labels"):
        dataset["splits"]["val"][field] = dataset["splits"]["val"][field][1:]
    (c / "dataset.json").write_text(json.dumps(dataset))
    both = compare_runs([a, c])
    assert len(both.sections) == 1 and not both.sections[0].val_alike
    assert chosen_on_validation(both) == [] and "val_loss" not in best_groups(both)


def test_the_choice_on_validation_spans_runs_tested_and_untested_on_the_same_validation_images(tmp_path):
    """A search tests only the trial it chose: `compare TUNE/trials` put that trial in a test section and the
    untested ones in another, then named the best of the untested, a worse trial than the search's own choice."""
    import yaml

    from imgclf.records import RunDir

    runs = []
    for name, lr, kept in (("trial-000", 0.1, 0.83), ("trial-001", 0.2, 0.92), ("trial-002", 0.3, 0.75)):
        run = write_run(tmp_path, run_name=name)
        config = yaml.safe_load((run / "config.yaml").read_text())
        (run / "config.yaml").write_text(yaml.safe_dump({**config, "lr": lr}))
        card = RunDir(run).read_card()
        card.training.val_accuracy_after_batch_norm = kept
        RunDir(run).write_card(card)
        if name != "trial-001":  # the search tested only its chosen trial
            (run / "metrics.json").unlink()
        runs.append(run)
    comparison = compare_runs(runs)
    assert len(comparison.sections) == 2, [s.title for s in comparison.sections]
    chosen = {g.runs[0].name: g.key for g in comparison.groups}["trial-001"]
    assert chosen_on_validation(comparison) == [f"chosen on validation: {chosen} (validation accuracy 92.00 %; test "
                                                "scores are the estimate of the one kept, not what chooses it)"]
    # another validation set beside them: each choice names the groups it was made among
    other = write_run(tmp_path, run_name="elsewhere", data_name="other")
    said = chosen_on_validation(compare_runs([*runs, other]))
    assert len(said) == 1 and said[0].startswith("chosen on validation (among ") and f": {chosen} (" in said[0]
