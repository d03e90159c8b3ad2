"""report.html: self-contained, complete, and checked in a real headless Chromium."""

from __future__ import annotations

import json
import math
import re
from html import unescape
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from eval_fixtures import load_in_chromium, run_copy  # noqa: F401  (fixtures)
from imgclf.cli import app
from imgclf.evaluation.report import FIGURES, write_report


def test_training_writes_a_report_that_chromium_renders_cleanly(tiny_run, load_in_chromium):
    page = load_in_chromium(tiny_run / "report.html")
    assert page["errors"] == []
    assert page["requests"] == [], "the report must not load anything from anywhere"
    assert page["anchors_missing"] == []
    alts = [alt for alt, _, _ in page["images"]]
    assert len(alts) >= 10
    assert all(width > 0 for _, width, _ in page["images"]), page["images"]  # every image decodes
    for title in ("Training curves", "Confusion matrix (counts)", "ROC curves", "Calibration", "Sample predictions",
                  "Top losses", "Grad-CAM explanations"):
        assert title in alts
    assert page["pixel_std"] > 20, "screenshot looks blank"
    text = page["text"]
    for heading in ("Summary", "Classification report", "Most-confused pairs", "Skipped files", "Configuration",
                    "Test-time augmentation", "with TTA"):
        assert heading in text


def test_report_content_comes_from_the_run_files(tiny_run):
    html = (tiny_run / "report.html").read_text()
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    card = json.loads((tiny_run / "model.json").read_text())
    assert f"{100 * metrics['accuracy']:.1f} %" in html
    assert f"{card['num_params']:,}" in html
    assert "tta" in metrics  # fit evaluates with and without test-time augmentation
    assert f"{100 * metrics['tta']['accuracy']:.2f} %" in html
    for cls in card["classes"]:
        assert f"<td>{cls}" in html
    assert "model: simple_cnn" in html  # config.yaml, verbatim
    # self-contained: every src is a data URI, no stylesheet or script from elsewhere
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]+)"', html))
    assert not re.search(r"<(link|script)\b", html)


def test_cli_report_redraws_lists_skipped_files_and_survives_missing_weights(run_copy):
    with open(run_copy / "predictions.csv", "a") as f:
        f.write("/data/cat/broken.jpg,,,,,truncated file (image file is truncated),,,\n")
    metrics = json.loads((run_copy / "metrics.json").read_text())
    metrics["skipped"] = [{"path": "/data/cat/broken.jpg", "reason": "truncated file (image file is truncated)"},
                          {"path": "/data/cat/loop/", "reason": "symlink loop (a link back to a folder it is in)"}]
    (run_copy / "metrics.json").write_text(json.dumps(metrics))
    (run_copy / "model.safetensors").unlink()  # Grad-CAM needs the weights: the report says so instead of failing
    (run_copy / "report.html").unlink()
    for p in (run_copy / "plots").iterdir():
        p.unlink()

    result = CliRunner().invoke(app, ["report", str(run_copy)])
    assert result.exit_code == 0, result.output
    assert f"report: {run_copy / 'report.html'}" in result.output
    assert "missing from" not in result.output  # every file the page reads is there
    html = (run_copy / "report.html").read_text()
    assert "/data/cat/broken.jpg" in html and "truncated file" in html
    # a folder is not counted as a file, in the findings and in its section
    assert "1 file and 1 folder could not be used; training and evaluation went on" in html
    assert re.search(r"run must [^<]*model\.safetensors", html)  # the reason, in the Explanations section
    assert (run_copy / "plots" / "confusion_counts.png").exists()  # figures redrawn
    assert not (run_copy / "plots" / "gradcam.png").exists()
    assert not list(run_copy.glob(".report.html.*"))  # atomic write: no temp file left


def test_cli_report_no_explain_leaves_out_grad_cam(run_copy):
    for p in (run_copy / "plots").iterdir():
        p.unlink()
    result = CliRunner().invoke(app, ["report", str(run_copy), "--no-explain"])
    assert result.exit_code == 0, result.output
    assert not (run_copy / "plots" / "gradcam.png").exists()  # the weights are there: only the flag stops it
    assert (run_copy / "plots" / "confusion_counts.png").exists()
    html = (run_copy / "report.html").read_text()
    assert 'alt="Grad-CAM explanations"' not in html and 'alt="Confusion matrix (counts)"' in html


def test_the_sample_grid_holds_as_many_images_as_asked(run_copy, monkeypatch):
    """S3 shows its predictions on 20 test images; the report's grid was always 12."""
    from imgclf.evaluation import report_figures

    drawn = []
    real = report_figures.plots.plot_prediction_grid
    monkeypatch.setattr(report_figures.plots, "plot_prediction_grid",
                        lambda samples, path, **kw: drawn.append((len(samples), kw.get("whole_split")))
                        or real(samples, path, **kw))
    for asked, shown, whole in ((5, 5, None), (20, 12, "test")):  # the tiny run's test split holds 12 images
        result = CliRunner().invoke(app, ["report", str(run_copy), "--no-explain", "--samples", str(asked)])
        assert result.exit_code == 0, result.output
        assert drawn[-1] == (shown, whole)
        # every image of the split is no mix drawn on purpose: its red is the error rate (the grid said "not the
        # error rate" over every test image)
        page = " ".join((run_copy / "report.html").read_text().split())
        assert ("Sample predictions: all 12 test images</summary>" in page) == (whole is not None)
        assert ("Every test image, all 12 of them" in page) == (whole is not None)
        assert ("a random mix of right and wrong test images</summary>" in page) == (whole is None)
    write_report(run_copy, redraw=False)  # the page alone, from the figures drawn (the last: all of them)
    page = " ".join((run_copy / "report.html").read_text().split())
    assert "Sample predictions: all 12 test images</summary>" in page
    # the figure says which it drew, not the split's size: a grid of 5 of 12 was called all 12 on the page
    assert CliRunner().invoke(app, ["report", str(run_copy), "--no-explain", "--samples", "5"]).exit_code == 0
    write_report(run_copy, redraw=False)
    page = " ".join((run_copy / "report.html").read_text().split())
    assert "a random mix of right and wrong test images</summary>" in page and "all 12 test images" not in page
    result = CliRunner().invoke(app, ["report", str(run_copy), "--samples", "0"])
    assert result.exit_code == 2 and "samples must be a whole number of images from 1 to 120" in result.output


def test_report_can_reuse_existing_figures(run_copy):
    (run_copy / "report.html").unlink()
    write_report(run_copy, redraw=False)
    html = (run_copy / "report.html").read_text()
    present = [k for k in FIGURES if (run_copy / "plots" / f"{k}.png").exists()]
    assert len(present) >= 10
    assert html.count("data:image/png;base64,") == len(present)


def test_cli_report_rejects_a_non_run(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert "run must be a run directory" in result.output and "nothing" in result.output


def test_report_content_comes_from_the_records(tmp_path):
    """A run written through the records (no training): macro F1 (metrics.json's `f1`), TTA, skipped files, and
    the page's shape when metrics.json is not written yet (the split's name and TTA are then unknown)."""
    from imgclf.records import RunDir
    from run_fixtures import write_run

    run = RunDir(write_run(tmp_path, classes=("cat", "<dog>", "fox")))
    metrics = run.read_metrics()
    html = write_report(run.path, explain=False).read_text()
    assert f"{100 * metrics.macro.f1:.1f} %" in html and f"{100 * metrics.tta.accuracy:.2f} %" in html
    assert "&lt;dog&gt;" in html and "<dog>" not in html  # class names are escaped
    assert "broken.png" in html and "not a recognised image format" in html  # dataset.json's skipped file
    assert "Overfitting from epoch 6" in html
    run.file("metrics.json").unlink()
    html = write_report(run.path, explain=False, redraw=False).read_text()
    assert "Not measured for this run" in html and "test accuracy" in html


def test_a_validation_accuracy_measured_after_recomputing_batch_norms_says_so_beside_the_curves(tmp_path):
    """The headline's validation accuracy is the kept weights' after their batch-norm statistics were recomputed;
    the curve drawn on the same page is training's own: both numbers are given, with the reason they differ."""
    from imgclf.records import RunDir
    from run_fixtures import write_run

    run = RunDir(write_run(tmp_path))
    html = write_report(run.path, explain=False).read_text()
    assert "70.0 %" in html and "recomputed" not in html  # epoch 5's val_acc, as the curve shows it
    card = run.read_card()
    training = card.training.model_copy(update={"val_accuracy_after_batch_norm": 0.9})
    run.write_card(card.model_copy(update={"training": training}))
    html = write_report(run.path, explain=False, redraw=False).read_text()
    assert re.search(r">90\.0 %</div>\s*<div class=\"note\">at the kept epoch \(5\), batch-norm statistics "
                     r"recomputed after training \(the curve, before: 70\.0 %\)", html)


def test_a_run_written_before_schema_versions_still_reports(tmp_path):
    """tests/fixtures/legacy_run_v0: averages under `f1-score`, a card with `format_version`, images gone."""
    import shutil
    from pathlib import Path

    from imgclf.evaluation.compare import summarize_run

    legacy = Path(__file__).parents[1] / "fixtures" / "legacy_run_v0"
    run = Path(shutil.copytree(legacy, tmp_path / "legacy"))
    html = write_report(run, explain=False).read_text()
    assert "16.7 %" in html  # macro F1 0.1667, read from the old `f1-score` key
    assert summarize_run(run).values["macro_f1"] == pytest.approx(1 / 6)


def test_the_overfitting_finding_states_the_numbers_and_the_rule(tmp_path):
    """Issue 26: a run whose validation loss rose from 0.03 (epoch 13) to 0.24 (epoch 30) while its training loss
    wobbled near 0.01 was reported as "No overfitting detected"."""
    from imgclf.records import HistoryRow, RunDir
    from run_fixtures import write_run
    from test_eval_interpret import FLAT_TRAIN, NOISY_FLAT_VAL, RISING_VAL

    run = RunDir(write_run(tmp_path))

    def page(val: list[float]) -> str:
        run.write_history([HistoryRow(epoch=e, lr=1e-3, loss=t, acc=0.9, val_loss=v, val_acc=0.9)
                           for e, (t, v) in enumerate(zip(FLAT_TRAIN, val), start=1)])
        html = write_report(run.path, explain=False).read_text()
        return re.sub(r"\s+", " ", html)

    html = page(RISING_VAL)
    assert ("Overfitting from epoch 14: validation loss rose from 0.03 (its lowest, epoch 13) to 0.222 (mean of the "
            "last epochs) while training loss stayed flat or fell") in html
    assert "No overfitting detected" not in html
    rule = "validation loss averaged over the last 3 epochs is above its level at the minimum"
    assert f"Overfitting is reported when {rule}" in html  # under Training, whatever the verdict
    html = page(NOISY_FLAT_VAL)
    assert "No overfitting detected (the rule is under Training)" in html and "Overfitting from" not in html
    assert f"Overfitting is reported when {rule}" in html


def test_every_chart_shows_its_text_at_10_px_or_more_in_chromium(tiny_run, tmp_path, load_in_chromium):
    """Issue 26: at 100 % zoom the confusion matrices' ticks were about 7 px and the ROC/PR legends about 6 px: the
    page shrank figures drawn 800 to 1,800 pixels wide into 440 to 920-pixel columns. Each PNG records the pixel
    height of its smallest text; Chromium says how wide the page shows it. The window is 1,265 pixels: 1,280 less a
    desktop scrollbar (headless Chromium draws none). Runs of 3 classes (with Grad-CAM) and of 12 classes with long,
    shared-prefix names (its confusion matrices need a row each)."""
    from run_fixtures import write_run

    twelve = write_run(tmp_path, classes=tuple(f"class_with_a_long_name_{i}" for i in range(12)), per_class=4)
    write_report(twelve, explain=False)
    for report, count in ((tiny_run / "report.html", 13), (twelve / "report.html", 11)):
        page = load_in_chromium(report, width=1265)
        figures = {f["alt"]: f for f in page["figures"]}
        assert len(figures) == count, sorted(figures)
        sizes = {alt: f["text_px"] for alt, f in figures.items()}
        assert all(px is not None and px >= 10 for px in sizes.values()), sizes
        # pairs drawn half the page wide sit side by side (the page is shorter for it); wider ones take a row
        assert figures["ROC curves"]["top"] == figures["Precision-recall curves"]["top"]
        counts, rates = figures["Confusion matrix (counts)"], figures["Confusion matrix (row-normalised)"]
        assert (counts["top"] == rates["top"]) == (count == 13)
        # the classification table beside its figure scrolled its AUC column out of view at this width
        assert page["clipped"] == [], page["clipped"]
    wide = load_in_chromium(twelve / "report.html", width=1600)  # table and figure side by side
    assert wide["clipped"] == [], wide["clipped"]
    # a phone: the figures keep their drawn size in frames that scroll (shrunk to 316 px, their text read as 4 px),
    # and the page itself is no wider than the screen
    phone = load_in_chromium(tiny_run / "report.html", width=390)
    sizes = {f["alt"]: f["text_px"] for f in phone["figures"]}
    assert all(px is None or px >= 10 for px in sizes.values()), sizes
    assert not phone["wider"]


def test_long_class_names_wrap_and_leave_every_column_in_view(tmp_path, load_in_chromium):
    """A 90-character class name pushed recall, F1, support and AUC out of the classification table's box, and the
    most-confused pairs table past its section's edge: names now wrap, the numbers stay on one line."""
    from run_fixtures import write_run

    names = ("a" * 90, "a long class name with spaces that goes on " * 2, "fox")
    run = write_run(tmp_path, classes=names, per_class=8)
    write_report(run, explain=False)
    page = load_in_chromium(run / "report.html", width=1265)
    assert page["clipped"] == [], page["clipped"]
    assert page["spilled"] == [], page["spilled"]  # no name runs over what lies beside it
    assert "a" * 90 in page["text"].replace("\n", "")
    assert not page["wider"]
    # a setting's long value (an augment list) ran past its card and gave the page a horizontal scrollbar
    from imgclf.records import RunDir

    stored = RunDir(run)
    augment = "hflip,rotate=15,shift=0.1,shear=5,zoom=0.1,brightness=0.1,contrast=0.05,erase=0.25,crop=2,fill=constant"
    card = stored.read_card()
    card.training.augment = augment  # what the page's training card shows
    stored.write_card(card)
    write_report(run, explain=False, redraw=False)
    assert "erase=0" in (run / "report.html").read_text()
    assert not load_in_chromium(run / "report.html", width=1265)["wider"]


def test_lowest_recall_is_tagged_only_where_recalls_differ(tmp_path):
    """A run that gets every class right had its first class tagged "lowest recall" (all tie at 1.0)."""
    from imgclf.records import PredictionRow, RunDir
    from run_fixtures import write_run

    run = RunDir(write_run(tmp_path))
    classes = run.read_card().classes
    rows = run.read_predictions(classes)

    def page(wrong: int | None) -> str:
        predictions = []
        for i, r in enumerate(rows):
            pred = classes[(classes.index(r.true) + 1) % len(classes)] if i == wrong else r.true
            probs = [0.8 if c == pred else 0.2 / (len(classes) - 1) for c in classes]
            predictions.append(PredictionRow(path=r.path, true=r.true, pred=pred, prob=0.8, loss=0.2, probs=probs))
        run.write_predictions(predictions, classes)
        return write_report(run.path, explain=False, redraw=False).read_text()

    assert "lowest recall" not in page(wrong=None)  # every class at recall 1
    html = page(wrong=0)  # the first image is taken for another class: its class alone falls below 1
    assert re.search(rf"<td>{rows[0].true}<span class=\"tag worst\">lowest recall", html)


def test_report_settings_show_the_learning_rate_to_four_digits(tmp_path):
    """lr from `--lr auto` is a float with every digit; the page shows four (model.json keeps the exact value)."""
    from imgclf.records import RunDir
    from run_fixtures import write_run

    run = RunDir(write_run(tmp_path))
    card = run.read_card()
    card.training.lr = 0.012882495516931335
    run.write_card(card)
    html = write_report(run.path, explain=False).read_text()
    settings = re.search(r'<p class="settings">(.*?)</p>', html, re.S).group(1)
    assert re.search(r'<span class="muted">lr</span> 0\.01288</span>', settings), settings
    assert "0.012882495516931335" not in html
    assert run.read_card().training.lr == 0.012882495516931335


def test_a_run_that_learnt_nothing_or_diverged_says_so_first(tmp_path):
    """A 20-second run on 270 images diverged (validation loss 581) and tested at 11 % on 10 classes, and its
    summary said "No overfitting detected" and nothing else about it: a model no better than answering the most
    common class, and a training loss that ended above its first epoch's, now lead the findings."""
    from imgclf.records import HistoryRow, PredictionRow, RunDir
    from run_fixtures import write_run

    run = RunDir(write_run(tmp_path, per_class=40))

    def summary() -> str:  # the page's text from its Summary heading (after the menu's) to its Data section
        text = unescape(re.sub(r"<[^>]+>", " ", write_report(run.path, explain=False).read_text()))
        text = re.sub(r"\s+", " ", text)
        start = text.index(" Summary ", text.index(" Summary ") + 1)
        return text[start:text.index(" Data ", start)]

    healthy = summary()
    assert "cannot be told apart from chance" not in healthy and "diverged" not in healthy
    classes = run.read_card().classes
    rows = run.read_predictions(classes)
    probs = [0.5, 0.3, 0.2]  # every image called the first class
    run.write_predictions([PredictionRow(path=r.path, true=r.true, pred=classes[0], prob=0.5,
                                         loss=float(-math.log(probs[classes.index(r.true)])), probs=probs)
                           for r in rows], classes)
    run.write_history([HistoryRow(epoch=e, lr=0.1, loss=loss, acc=0.3, val_loss=2.0 * e, val_acc=0.33)
                       for e, loss in enumerate([2.3, 1.9, 2.6, 3.4, 4.1, 5.0], start=1)])
    found = summary()
    first = found.index("Macro recall 33.3 % cannot be told apart from chance (33.3 %, one class in 3) on these 30 "
                        "test images: this model may not have learnt the task.")
    second = found.index("Training loss ended above its first epoch's (2.3 → 4.55, mean of the last 2 epochs): "
                         "training diverged instead of fitting. Lower the learning rate (--lr)")
    assert first < second < found.index("Weakest class")
    assert "more epochs, or a lower learning rate" in found  # training accuracy 30 %: it has not learnt yet
    # a model that fits its training images at chance on these does not generalise: more epochs will not help
    run.write_history([HistoryRow(epoch=e, lr=0.1, loss=1.0 / e, acc=0.9 + 0.02 * e, val_loss=2.0, val_acc=0.33)
                       for e in range(1, 6)])
    found = summary()
    assert "It fits its training images (training accuracy 100.0 % at the last epoch)" in found
    assert "more epochs will not" in found and "lower learning rate" not in found


def test_the_terminal_says_which_weights_the_scores_are_of(tmp_path, capsys, monkeypatch):
    """A resumed run printed the same scores as before with no word that epoch 3 of 5 was kept, and a run whose
    BatchNorm statistics were recomputed printed an epoch line of 0.34 above scores of 0.95, unexplained."""
    from types import SimpleNamespace

    from imgclf.cli.run_summary import _print_run_summary
    from imgclf.records import RunDir
    from run_fixtures import write_run

    run = RunDir(write_run(tmp_path))
    history = run.read_history()
    card = run.read_card()

    def said(best_epoch):
        _print_run_summary(SimpleNamespace(path=run.path, metrics=run.read_metrics(), train_seconds=1.0,
                                           stopped_reason="completed", skipped=[], figure_failures=[],
                                           best_epoch=best_epoch))
        return " ".join(capsys.readouterr().out.split())

    assert "kept" not in said(history[-1].epoch) and "recomputed" not in said(history[-1].epoch)
    assert "the weights of epoch 3 kept" in said(3)
    before = next(r.val_acc for r in history if r.epoch == 3)
    card.training.val_accuracy_after_batch_norm = before  # recomputed, and the same: nothing to explain
    run.write_card(card)
    assert "recomputed" not in said(3)
    card.training.val_accuracy_after_batch_norm = 0.9512
    run.write_card(card)
    assert (f"the weights of epoch 3 kept; validation accuracy 0.9512 after the BatchNorm statistics were "
            f"recomputed on training images (the epoch's line: {before:.4f})") in said(3)
    # a multi-label run's is label-wise: beside its subset accuracy it read as heavy overfitting
    from imgclf.cli import run_summary as cli_training

    multilabel = run.read_card().model_copy(update={"task": "multilabel"})
    monkeypatch.setattr(RunDir, "read_card", lambda self: multilabel)
    assert "kept; label-wise validation accuracy 0.9512 after the BatchNorm" in " ".join(
        cli_training._kept_line(SimpleNamespace(path=run.path, best_epoch=3), history).split())


def test_the_terminal_says_when_a_run_is_no_better_than_guessing(tmp_path, capsys):
    """Its summary line read like any other run's (test accuracy 0.4375 on 3 classes): only the report said it."""
    from types import SimpleNamespace

    from imgclf.cli.run_summary import _print_run_summary
    from imgclf.evaluation.metrics import compute_metrics
    from imgclf.records import HistoryRow, RunDir
    from run_fixtures import write_run

    run = RunDir(write_run(tmp_path, per_class=40))
    run.write_history([HistoryRow(epoch=1, lr=0.1, loss=0.1, acc=1.0, val_loss=2.0, val_acc=0.33)])
    y = np.repeat([0, 1, 2], 10)
    guessing = compute_metrics(y, np.tile([0.5, 0.3, 0.2], (30, 1)), ["a", "b", "c"])
    _print_run_summary(SimpleNamespace(path=run.path, metrics=guessing, train_seconds=1.0, stopped_reason="completed",
                                       skipped=[], figure_failures=[]))
    said = " ".join(capsys.readouterr().out.split())
    assert "no better than guessing: macro recall 0.333 cannot be told apart from chance (0.333, one class in 3)" \
        in said and "more epochs will not" in said
    # trained on a class of 4,000 beside two of 1, it answers that class: it learnt the class sizes, and the advice
    # said "it fits its training images ... more epochs will not", naming no way to balance them
    dataset = run.read_dataset()
    run.write_dataset(dataset.model_copy(update={"counts": {**dataset.counts, "train": {"a": 4000, "b": 1, "c": 1}}}))
    _print_run_summary(SimpleNamespace(path=run.path, metrics=guessing, train_seconds=1.0, stopped_reason="completed",
                                       skipped=[], figure_failures=[]))
    said = " ".join(capsys.readouterr().out.split())
    assert "It answers 'a' for 100 % of these images, the class of 100 % of its training images; its training " \
           "accuracy, 100.0 %, is that share: it has learnt the class sizes, not the classes. Balance them while " \
           "training: --sampler oversample, or --class-weight balanced." in said and "fits its training" not in said
    # a run that balanced them already is not told to, and a training accuracy that is not that share is not
    # called it
    from imgclf.evaluation.guessing import guessing_advice

    config = run.read_config()
    run.write_config(config.model_copy(update={"sampler": "oversample"}))
    _print_run_summary(SimpleNamespace(path=run.path, metrics=guessing, train_seconds=1.0, stopped_reason="completed",
                                       skipped=[], figure_failures=[]))
    said = " ".join(capsys.readouterr().out.split())
    assert "It trained with --sampler oversample already: more images of the other classes, --loss focal" in said
    assert "Balance them while training" not in said
    low = [HistoryRow(epoch=1, lr=0.1, loss=1.0, acc=0.3, val_loss=2.0, val_acc=0.33)]
    assert "training accuracy" not in guessing_advice(low, guessing, {"a": 4000, "b": 1, "c": 1})
    # two balanced classes: the answered class is half the training images, as the other is; nothing to balance
    # (they were told to balance them); three uneven ones, 60 % of them the answered class, still are
    even = guessing_advice(low, guessing, {"a": 9, "b": 9})
    assert "class sizes" not in even and "Balance them" not in even, even
    assert "Balance them while training" in guessing_advice(low, guessing, {"a": 60, "b": 20, "c": 20})


def test_report_says_on_the_console_why_the_gradcam_figure_is_missing(tiny_run, tmp_path):
    """Without the weights it said so inside the page alone: `imgclf report RUN` printed only the page's path."""
    import shutil
    from pathlib import Path

    run_dir = Path(shutil.copytree(tiny_run, tmp_path / "no-weights"))
    (run_dir / "model.safetensors").unlink()
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "figure could not be drawn: gradcam: run must be a run directory containing model.safetensors" \
        in result.output
    assert "no model.safetensors" in (run_dir / "report.html").read_text()


def test_classes_that_share_the_lowest_recall_are_counted_not_one_named(tmp_path):
    """With 60 of 120 classes at recall 0 the report called the first of them by name "the weakest class", and
    the terminal line did too; where every class shares one recall, the terminal still named a worst class."""
    import numpy as np

    from imgclf.cli.run_summary import _worst_class_text
    from imgclf.evaluation.metrics import compute_metrics
    from imgclf.records import PredictionRow, RunDir
    from run_fixtures import write_run

    classes = ["a", "b", "c", "d"]
    y = np.repeat(np.arange(4), 4)
    probs = np.eye(4)[y] * 0.7 + 0.075
    for i in (0, 4):  # one image of "a" and one of "b" taken for "c": both at recall 0.75
        probs[i] = np.roll(probs[i], 2)
    m = compute_metrics(y, probs, classes)
    assert _worst_class_text(m) == "  worst class a recall 0.750 (and 1 more at it)"
    assert _worst_class_text(compute_metrics(y, np.eye(4)[y] * 0.7 + 0.075, classes)) == ""  # all at 1.0

    run = RunDir(write_run(tmp_path))
    names = run.read_card().classes
    rows = run.read_predictions(names)
    first = {}
    predictions = []
    for r in rows:
        wrong = first.setdefault(r.true, r.path) == r.path  # each class's first image is wrong: all tie
        pred = names[(names.index(r.true) + 1) % len(names)] if wrong else r.true
        probs_row = [0.8 if c == pred else 0.2 / (len(names) - 1) for c in names]
        predictions.append(PredictionRow(path=r.path, true=r.true, pred=pred, prob=0.8, loss=0.2, probs=probs_row))
    run.write_predictions(predictions, names)
    assert len({sum(r.true == c for r in rows) for c in names}) == 1  # the fixture's classes are alike in size
    html = " ".join(write_report(run.path, explain=False, redraw=False).read_text().split())
    assert "Every class has the same recall, 50.0 %: no class is weaker than another." in html
    assert "Weakest class" not in html and f"all {len(names)} tested classes alike" in html
    predictions[0] = PredictionRow(path=rows[0].path, true=rows[0].true, pred=rows[0].true, prob=0.8, loss=0.2,
                                   probs=[0.8 if c == rows[0].true else 0.2 / (len(names) - 1) for c in names])
    run.write_predictions(predictions, names)  # the first class now right on both images: the others tie below
    html = " ".join(write_report(run.path, explain=False, redraw=False).read_text().split())
    assert f"Weakest classes: {len(names) - 1} of the {len(names)} share the lowest recall, 50.0 %" in html
    assert f"class {names[1]} and {len(names) - 2} more" in html
    # the table tags every class sharing it, as the summary names them (it tagged the first alone)
    assert html.count('<span class="tag worst">lowest recall</span>') == len(names) - 1


def test_the_worst_class_card_of_an_imbalanced_run_says_every_class_ties_when_all_are_right(tmp_path):
    """The imbalance finding reused the name counting the tested classes for its list of tested minority classes,
    so an imbalanced run with every class right said "class cat and 2 more" on the worst-class card."""
    from imgclf.records import ImbalanceStats, PredictionRow, RunDir
    from run_fixtures import write_run

    run = RunDir(write_run(tmp_path))
    dataset = run.read_dataset()
    run.write_dataset(dataset.model_copy(update={
        "imbalance": ImbalanceStats(rho=4.0, mu=1 / 3, minority=["cat"], imbalanced=True)}))
    classes = run.read_card().classes
    run.write_predictions([PredictionRow(path=r.path, true=r.true, pred=r.true, prob=0.9, loss=0.1,
                                         probs=[0.9 if c == r.true else 0.05 for c in classes])
                           for r in run.read_predictions(classes)], classes)
    html = " ".join(write_report(run.path, explain=False, redraw=False).read_text().split())
    assert "minority classes cat reach a mean recall of 100.0 %" in html
    assert f'<div class="note">all {len(classes)} tested classes alike</div>' in html
    assert " more</div>" not in html


def test_a_dash_in_the_table_says_how_the_averages_under_it_count_the_class(tmp_path):
    """A class never predicted shows precision "—" while the macro average below counts it as 0: the average did
    not match the column it sits under and nothing said why."""
    from imgclf.evaluation.metrics import compute_metrics
    from imgclf.records import PredictionRow, RunDir
    from run_fixtures import write_run

    run = RunDir(write_run(tmp_path))
    classes = run.read_card().classes
    rows = run.read_predictions(classes)
    never = classes[-1]
    predictions = []
    for r in rows:  # every image of the last class is taken for the first: it is never predicted
        pred = classes[0] if r.true == never else r.true
        predictions.append(PredictionRow(path=r.path, true=r.true, pred=pred, prob=0.8, loss=0.2,
                                         probs=[0.8 if c == pred else 0.2 / (len(classes) - 1) for c in classes]))
    run.write_predictions(predictions, classes)
    y = [classes.index(p.true) for p in predictions]
    run.write_metrics(compute_metrics(np.array(y), np.array([p.probs for p in predictions]), classes, "test"))
    html = " ".join(write_report(run.path, explain=False, redraw=False).read_text().split())
    assert (f"Precision “—”: never predicted ({never}); the macro and weighted averages count it as 0" in html)
    assert "Recall and F1 “—”" not in html
    macro = run.read_metrics().macro.precision
    shown = [run.read_metrics().per_class[c].precision for c in classes[:-1]]
    assert macro == pytest.approx(sum(shown) / len(classes))  # the dash counted as 0, as the note says

    kept = [p for p in predictions if p.true != classes[1]]  # no test image of the second class
    run.write_predictions(kept, classes)
    run.write_metrics(compute_metrics(np.array([classes.index(p.true) for p in kept]),
                                      np.array([p.probs for p in kept]), classes, "test"))
    html = " ".join(write_report(run.path, explain=False, redraw=False).read_text().split())
    assert f"Recall and F1 “—”: no test image ({classes[1]}); the averages leave the class out." in html
    # said where it is read first, not only under the table: the summary and the macro card
    assert (f"1 of the {len(classes)} classes has no test image ({classes[1]}): the test scores say nothing about "
            f"it, and the macro averages are over the other {len(classes) - 1}.") in html
    assert (f"mean of per-class recall over {len(classes) - 1} of {len(classes)} classes (the others have no test "
            "image)") in html
    # one image taken for that class: its false alarm is in the macro precision (at 0), as the note then says
    kept[0] = PredictionRow(path=kept[0].path, true=kept[0].true, pred=classes[1], prob=0.8, loss=1.6,
                            probs=[0.8 if c == classes[1] else 0.2 / (len(classes) - 1) for c in classes])
    run.write_predictions(kept, classes)
    metrics = compute_metrics(np.array([classes.index(p.true) for p in kept]), np.array([p.probs for p in kept]),
                              classes, "test")
    run.write_metrics(metrics)
    html = " ".join(write_report(run.path, explain=False, redraw=False).read_text().split())
    assert (f"the averages leave the class out, except the macro precision and F1, which count the images taken for "
            f"{classes[1]} (false alarms, precision and F1 0).") in html
    # and the summary says the same (it said the macro averages were over the other classes)
    assert (f"1 of the {len(classes)} classes has no test image ({classes[1]}): the test scores say nothing about it, "
            f"and the macro recall is over the other {len(classes) - 1} (the macro precision and F1 also count the "
            "images taken for it, at 0).") in html
    assert metrics.per_class[classes[1]].precision == 0.0


def test_a_run_too_short_for_the_overfitting_rule_says_it_was_not_checked(tmp_path):
    """A 1- or 3-epoch run said "overfitting: not detected" among the training facts, where the rule needs the
    minimum and three epochs after it."""
    from imgclf.evaluation.interpret import OVERFITTING_MIN_EPOCHS
    from run_fixtures import write_run

    for epochs in (OVERFITTING_MIN_EPOCHS - 1, OVERFITTING_MIN_EPOCHS):
        run = write_run(tmp_path / str(epochs), epochs=epochs)
        html = " ".join(write_report(run, explain=False).read_text().split())
        facts = re.search(r"<dt>overfitting</dt><dd>(.*?)</dd>", html).group(1)
        short = epochs < OVERFITTING_MIN_EPOCHS
        assert (facts == f"not checked: the rule needs {OVERFITTING_MIN_EPOCHS} epochs or more") == short, facts
        assert ("No overfitting detected" in html) == (facts == "not detected")


def test_overfitting_is_read_from_the_fit_not_the_penalty(tmp_path):
    """With Keras' L2 inside val_loss, a penalty shrinking faster than the cross-entropy rises made the sum fall,
    and the report said "No overfitting detected" for a run whose fit worsened from epoch 14: history.csv now keeps
    each epoch's penalty, and the rule reads the losses without it."""
    from imgclf.records import HistoryRow, RunDir
    from run_fixtures import write_run
    from test_eval_interpret import FLAT_TRAIN, RISING_VAL

    run = RunDir(write_run(tmp_path))
    penalty = [1.0 - 0.03 * e for e in range(len(RISING_VAL))]  # falls 0.03 an epoch: more than the fit rises
    rows = [HistoryRow(epoch=e, lr=1e-3, loss=t + p, acc=0.9, val_loss=v + p, val_acc=0.9, l2_penalty=p)
            for e, (t, v, p) in enumerate(zip(FLAT_TRAIN, RISING_VAL, penalty), start=1)]
    assert all(b.val_loss < a.val_loss for a, b in zip(rows[-5:], rows[-4:]))  # the sum keeps falling
    run.write_history(rows)
    assert [r.l2_penalty for r in run.read_history()] == pytest.approx(penalty)
    html = re.sub(r"\s+", " ", write_report(run.path, explain=False).read_text())
    assert "Overfitting from epoch 14" in html and "No overfitting detected" not in html


def test_a_kept_head_only_epoch_and_the_losses_l2_are_said(tmp_path):
    """A fine-tuning run whose best validation epoch came before the backbone unfroze delivers the head on the
    frozen backbone: only a star in the curves' grey band said so. And with an L2 penalty inside the curves' losses,
    the headline's test loss (cross-entropy) sat below the penalty itself, unexplained."""
    from imgclf.records import HistoryRow, RunDir
    from imgclf.records.card import CalibrationInfo
    from run_fixtures import write_run

    run = RunDir(write_run(tmp_path))
    run.write_history([HistoryRow(epoch=e, lr=1e-3, loss=1.0 / e, acc=0.8, val_loss=v, val_acc=0.8, frozen=int(e <= 3))
                       for e, v in enumerate([0.9, 0.5, 0.6, 0.8, 0.7], start=1)])
    card = run.read_card()
    card.training.best_epoch = 2
    card.training.l2_penalty = 0.0524
    run.write_card(card)
    html = " ".join(write_report(run.path, explain=False).read_text().split())
    assert ("The weights kept are those of epoch 2, with the backbone still frozen: no epoch after it unfroze "
            "(from epoch 4) scored better on validation") in html
    assert "(cross-entropy: the curves' losses add the L2 penalty)" in html
    # a test loss of temperature-scaled probabilities beside curves of the raw softmax (1.58 against 7.0)
    assert card.calibration is None and "of the calibrated probabilities" not in html
    card.calibration = CalibrationInfo(method="temperature", temperature=2.0)
    run.write_card(card)
    html = " ".join(write_report(run.path, explain=False, redraw=False).read_text().split())
    assert "(of the calibrated probabilities: the curves' are of the raw softmax)" in html
    card.calibration = CalibrationInfo(method="none")
    card.training.best_epoch, card.training.l2_penalty = 4, None
    run.write_card(card)
    html = " ".join(write_report(run.path, explain=False).read_text().split())
    assert "with the backbone still frozen" not in html and "the curves' losses add the L2 penalty" not in html
    assert "of the calibrated probabilities" not in html  # --calibrate none


def test_a_recipe_run_shows_what_its_reference_reports(tmp_path):
    """A student could not hold a recipe's run against its reference: the page named the recipe in the settings
    and nothing else. It now shows the recipe's description, the reference's figures, the stand-in and the
    reference text, drawn from the shipped recipe file; a run without a recipe has no such section."""
    from imgclf.recipes import recipe_document
    from imgclf.records import RunDir
    from run_fixtures import write_run

    run = RunDir(write_run(tmp_path))
    card = run.read_card()
    assert card.training.recipe is None and 'id="recipe"' not in write_report(run.path, explain=False).read_text()
    card.training.recipe = "s5-model-s"
    run.write_card(card)
    html = " ".join(write_report(run.path, explain=False).read_text().split())
    doc = recipe_document("s5-model-s")
    assert 'id="recipe"' in html and '<a href="#recipe">Recipe</a>' in html
    for key, value in doc["reproduces"].items():
        assert f"<dt>{key.replace('_', ' ')}</dt><dd>{value}</dd>" in html
    assert " ".join(doc["stand_in"].split()) in html and doc["reference"].split()[0] in html
    card.training.recipe = "a-recipe-no-longer-shipped"
    run.write_card(card)
    assert 'id="recipe"' not in write_report(run.path, explain=False).read_text()


def test_an_ema_run_says_which_curve_is_which_network(tmp_path):
    """Under --ema, validation (and the model kept) use the average while the training curve is the raw
    weights': the page named neither."""
    import yaml

    from imgclf.records import RunDir
    from run_fixtures import write_run

    run = RunDir(write_run(tmp_path))
    assert "EMA decay" not in write_report(run.path, explain=False).read_text()
    config = yaml.safe_load(run.file("config.yaml").read_text())
    run.file("config.yaml").write_text(yaml.safe_dump({**config, "ema": 0.99}))
    html = " ".join(write_report(run.path, explain=False).read_text().split())
    assert ("EMA decay (validation and the model kept: the average; training curve: the raw weights)</span> 0.99"
            in html)


def test_a_data_parallel_run_says_how_many_processes_shared_each_step(tmp_path):
    """The card and the page said batch size 8 for a step that trained 2 x 8 images."""
    from imgclf.records import RunDir
    from run_fixtures import write_run

    run = RunDir(write_run(tmp_path))
    html = " ".join(write_report(run.path, explain=False, redraw=False).read_text().split())
    assert "processes (a step" not in html  # one process: nothing to say
    card = run.read_card()
    card.training.processes = 2
    run.write_card(card)
    html = " ".join(write_report(run.path, explain=False, redraw=False).read_text().split())
    assert '<span class="muted">processes (a step: processes x batch size)</span> 2' in html


def test_a_training_loss_unlike_the_validation_loss_is_said_under_the_curves(tmp_path):
    """Under focal loss with class weights, a model at chance read train 1.05 against validation 1.62 (plain
    cross-entropy): a gap of definition, which the caption, "Train vs validation per epoch", left to read as
    overfitting. Said on a redrawn page and on one that reuses the figures."""
    from imgclf.records import RunDir
    from run_fixtures import write_run

    run = RunDir(write_run(tmp_path))
    note = "the validation loss is plain cross-entropy, so the two differ by definition"
    assert note not in " ".join(write_report(run.path, explain=False).read_text().split())
    card = run.read_card()
    training = card.training.model_copy(update={"loss": "focal", "class_weight": "balanced", "label_smoothing": 0.1})
    run.write_card(card.model_copy(update={"training": training}))
    for redraw in (True, False):
        html = " ".join(write_report(run.path, explain=False, redraw=redraw).read_text().split())
        assert ("The training loss includes focal loss and class weights (balanced) and label smoothing 0.1; "
                + note) in html


def test_a_small_step_below_the_flag_names_the_minority_classes_mu_counts(run_copy):
    """Training counts 13/14/13 are a two-size step: μ 0.67 counts two minority classes, and the page showed
    μ 0.67 beside "minority classes: none flagged" (dataset.json listed them)."""
    from imgclf.records import ImbalanceStats, RunDir

    run = RunDir(run_copy)
    dataset = run.read_dataset()
    classes = dataset.classes
    dataset.imbalance = ImbalanceStats(rho=14 / 13, mu=round(2 / 3, 4), minority=[classes[0], classes[2]],
                                       imbalanced=False)
    run.write_dataset(dataset)
    html = " ".join(unescape(write_report(run.path, explain=False, redraw=False).read_text()).split())
    facts = re.search(r"<dt>μ \(minority share\)</dt><dd>(.*?)</dd>.*?<dt>minority classes</dt><dd[^>]*>(.*?)</dd>",
                      html)
    assert facts, "imbalance facts not found"
    assert facts.group(1) == "0.67"
    assert facts.group(2) == f"{classes[0]}, {classes[2]}: the smaller step, which μ counts; not flagged (ρ ≤ 1.5)"
    assert '<span class="tag ok">balanced</span>' in html


def test_a_report_of_a_run_missing_its_history_and_metrics_says_so(run_copy):
    """`imgclf report` on a run without history.csv or metrics.json wrote the page without a word: the curves
    were gone, the overfitting fact said "needs 4 epochs or more" beside "epochs run 5", and the unknown-input
    facts were left out."""
    (run_copy / "history.csv").unlink()
    (run_copy / "metrics.json").unlink()
    result = CliRunner().invoke(app, ["report", str(run_copy), "--no-explain"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert (f"warning history.csv, metrics.json are missing from {run_copy}: the report leaves out what they hold "
            "(the training curves and the overfitting check; the test-time augmentation") in said
    html = " ".join(unescape((run_copy / "report.html").read_text()).split())
    assert "Missing from the run folder: history.csv, metrics.json; this page leaves out the training" in html
    assert "<dt>overfitting</dt><dd>not checked: history.csv is missing</dd>" in html


def test_a_report_does_not_offer_to_repeat_a_run_whose_config_yaml_is_missing_or_broken(run_copy):
    """The page said `imgclf train --config RUN/config.yaml --out NEW_RUN` repeats the run beside "config.yaml
    (0 lines)", or beside a file that does not parse."""
    config = run_copy / "config.yaml"
    text = config.read_text()
    html = " ".join(unescape((write_report(run_copy, explain=False, redraw=False)).read_text()).split())
    assert "--out NEW_RUN</code> repeats the run" in html
    config.write_text("epochs: [\n")
    html = " ".join(unescape((write_report(run_copy, explain=False, redraw=False)).read_text()).split())
    assert "config.yaml does not read as settings, so it cannot repeat the run" in html
    assert "NEW_RUN</code> repeats the run" not in html and "epochs: [" in html  # the file is still shown
    config.unlink()
    html = " ".join(unescape((write_report(run_copy, explain=False, redraw=False)).read_text()).split())
    assert f"config.yaml is missing from {run_copy}" in html and "NEW_RUN</code> repeats the run" not in html
    assert "Missing from the run folder: config.yaml; this page leaves out the settings it was trained with" in html
    assert "config.yaml (0 lines)" not in html
    config.write_text(text)


@pytest.mark.parametrize("command", ["report", "calibrate"])
def test_a_run_folder_that_cannot_be_written_is_refused_in_one_line(run_copy, command, monkeypatch):
    """A read-only run: report printed 13 figures' warnings, then 'internal error: PermissionError'; calibrate the
    same on its detector's temp file. (Root writes anywhere: the folder's refusal is played by mkdtemp.)"""
    import errno
    import tempfile

    real = tempfile.mkdtemp

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == Path(run_copy).resolve():
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    before = sorted(p.name for p in Path(run_copy).iterdir())
    result = CliRunner().invoke(app, [command, str(run_copy)])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert said.startswith(f"error: run must be a folder to write into. Received: run='{run_copy}' (cannot write in")
    assert "internal error" not in said and "UserWarning" not in said
    assert sorted(p.name for p in Path(run_copy).iterdir()) == before


def test_a_report_on_few_images_says_so_where_its_findings_are_read(tiny_run):
    """12 validation and 12 test images: training warned that the kept epoch, temperature and unknown threshold
    were chosen on 12 images, the page did not, and its "Weakest class" and minority recalls read as firm as on
    thousands (one image of a class moved its recall from 100 % to 0 % between two seeds)."""
    from imgclf.evaluation.seen import few_images_note
    from imgclf.records import RunDir

    run = RunDir(tiny_run)
    val, test = (len(run.read_dataset().splits[name].files) for name in ("val", "test"))
    page = " ".join(unescape(re.sub("<[^>]+>", " ", (tiny_run / "report.html").read_text())).split())
    assert f"The validation split holds {val} images: " in page and "are chosen on them" in page
    assert f"the test scores rest on {test} images, so one image moves accuracy by {100 / test:.1f} points" in page
    assert few_images_note(None, "single", 30, 30, "test") is None  # enough of both: nothing said
    assert few_images_note(None, "single", 30, 29, "val") is None  # a val-scored run is not judged twice
    assert few_images_note(None, "multilabel", 5, 100, "test").startswith(
        "the validation split holds 5 images: the epoch kept and each label's decision threshold are chosen")


def test_the_weakest_class_names_how_many_images_its_recall_is_of(tmp_path):
    import math

    from imgclf.records import PredictionRow, RunDir
    from run_fixtures import write_run

    run = RunDir(write_run(tmp_path, per_class=40))
    classes = run.read_card().classes
    rows = run.read_predictions(classes)
    taken = [r.path for r in rows if r.true == classes[1]][:3]  # three of the second class called the first

    def row(r):
        pred = classes[0] if r.path in taken else r.true
        probs = [0.8 if c == pred else 0.2 / (len(classes) - 1) for c in classes]
        return PredictionRow(path=r.path, true=r.true, pred=pred, prob=0.8,
                             loss=float(-math.log(probs[classes.index(r.true)])), probs=probs)

    run.write_predictions([row(r) for r in rows], classes)
    support = sum(r.true == classes[1] for r in rows)
    page = " ".join(unescape(re.sub("<[^>]+>", " ", write_report(run.path, explain=False).read_text())).split())
    recall = 100 * (support - 3) / support
    assert f"Weakest class: {classes[1]} (recall {recall:.1f} % of {support} images)" in page, page
