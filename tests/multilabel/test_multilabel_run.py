"""A multi-label run end to end on generated mosaics: sigmoid training, tuned thresholds in the card, metrics,
predictions, report; and the pieces (loss, thresholds, metrics) checked on their own."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from ml_fixtures import SHAPES, make_mosaics

from imgclf.errors import ImgclfError


@pytest.fixture(scope="module")
def ml_run(tmp_path_factory):
    import imgclf

    root = tmp_path_factory.mktemp("mosaics")
    index, _ = make_mosaics(root, count=90)
    out = root / "run"
    run = imgclf.fit(data=str(index), out=str(out), epochs=6, batch_size=16, lr=3e-3, img_size=32, progress=False,
                     class_weight="balanced", val_split=0.2, test_split=0.2, seed=0)
    return run, root, index


def test_run_trains_sigmoid_outputs_and_stores_tuned_thresholds(ml_run):
    run, _, _ = ml_run
    card = json.loads((run.path / "model.json").read_text())
    assert card["task"] == "multilabel" and card["calibration"] is None and card["unknown"] is None
    assert set(card["thresholds"]) == set(SHAPES) and all(0 < t < 1 for t in card["thresholds"].values())
    # the thresholds were tuned on the probabilities of the network at the precision predict's default runs at
    from imgclf.prediction_precision import inference_precision
    assert card["fitted_precision"] == inference_precision("auto", torch.device("cpu"))
    assert "task: multilabel" in (run.path / "config.yaml").read_text()
    metrics = json.loads((run.path / "metrics.json").read_text())
    ml = metrics["multilabel"]
    # the shapes are easy: a trained model ranks far better than chance (AP of a random ranking ~ label share)
    assert ml["map_macro"] > 0.9 and metrics["task"] == "multilabel"
    assert metrics["accuracy"] == ml["subset_accuracy"]
    assert 0 <= ml["hamming_loss"] <= 1
    assert {r["threshold"] for r in ml["per_label"].values()} == set(card["thresholds"].values())
    report = (run.path / "report.html").read_text()
    assert "Per-label scores" in report and "Precision-recall per label" in report
    # config.yaml's `loss: ce` is the per-label binary cross-entropy that a multi-label run trains with
    assert "loss binary cross-entropy, labels weighted (balanced)," in report and "loss ce" not in report
    figures = ("training_curves", "pr", "per_label", "cooccurrence", "reliability", "samples", "gradcam")
    assert all(f'id="fig-{key}"' in report for key in figures)
    assert "could not be drawn" not in report  # a figure that fails keeps its slot, with this text instead
    assert all((run.path / "plots" / f"{key}.png").stat().st_size > 0 for key in figures)


def test_the_cooccurrence_figure_is_titled_and_labelled_for_labels(tmp_path, monkeypatch):
    """It is drawn by the confusion-matrix plot, which titled it "Confusion matrix" with class axes."""
    from matplotlib.axes import Axes

    from imgclf.evaluation.plots import per_class

    said = []
    monkeypatch.setattr(per_class, "figure_title", lambda fig, text, **kw: said.append(text))
    set_xlabel = Axes.set_xlabel
    monkeypatch.setattr(Axes, "set_xlabel", lambda ax, text, **kw: (said.append(text), set_xlabel(ax, text, **kw)))
    per_class.plot_confusion_matrix([[3, 1], [0, 2]], ["cat", "dog"], tmp_path / "c.png",
                                    names=("Label co-occurrence", "label"))
    per_class.plot_confusion_matrix([[3, 1], [0, 2]], ["cat", "dog"], tmp_path / "d.png")
    assert said == ["predicted label", "Label co-occurrence (image counts)",
                    "predicted class", "Confusion matrix (image counts)"]


def test_predictions_csv_holds_label_sets(ml_run):
    run, _, _ = ml_run
    from imgclf.records import RunDir

    rows = RunDir(run.path).read_predictions(list(SHAPES))
    assert rows and all(set(filter(None, r.true.split(";"))) <= set(SHAPES) for r in rows)
    assert any(";" in r.true for r in rows)


def test_predict_returns_label_sets_and_threshold_overrides(ml_run, caplog):
    import imgclf

    run, root, _ = ml_run
    clf = imgclf.load(run.path)
    image = root / "images" / "m000.png"
    tuned = clf.predict([str(image)])[0]
    assert tuned.labels is not None and tuned.label == ";".join(name for name, _ in tuned.labels)
    probs = dict(tuned.top)
    assert all(probs[name] >= clf.card.thresholds[name] for name, _ in tuned.labels)
    everything = clf.predict([str(image)], threshold=0.001)[0]
    assert {name for name, _ in everything.labels} == set(SHAPES)
    nothing = clf.predict([str(image)], threshold=0.999999)[0]
    assert nothing.labels == [] or all(p >= 0.999999 for _, p in nothing.labels)
    with pytest.raises(ImgclfError, match="threshold"):
        clf.predict([str(image)], threshold=1.5)
    # a numpy scalar is a number (np.float32(0.001) was refused as "not a probability"); True is not one
    assert clf.predict([str(image)], threshold=np.float32(0.001))[0].labels == everything.labels
    with pytest.raises(ImgclfError, match="threshold"):
        clf.predict([str(image)], threshold=True)
    # unknown off means nothing here: said, and the labels are the same
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        plain = clf.predict([str(image)], unknown=False)[0]
    assert plain.labels == tuned.labels
    assert any("unknown=False (--unknown off) changes nothing for a multi-label run" in r.getMessage() for r in caplog.records)
    # TTA: refused as evaluate refuses it (predict averaged views the multi-label path was never measured with)
    pixels = clf.decode(str(image))[None]
    for call in (lambda: clf.predict([str(image)], tta=True), lambda: clf.infer_pixels(pixels, tta=True)):
        with pytest.raises(ImgclfError, match=r"tta must be False for a multi-label run"):
            call()


def test_a_card_threshold_outside_0_to_1_is_refused_when_read(ml_run, tmp_path):
    """A threshold of -2 in model.json predicted the label for every image, 1.5 for none, without a word."""
    from conftest import spoilable_copy
    from imgclf.records import RunDir

    run, _, _ = ml_run
    copy = RunDir(spoilable_copy(run.path, tmp_path / "run"))
    card = json.loads(copy.file("model.json").read_text())
    label = sorted(card["thresholds"])[0]
    for value in (-2.0, 1.5):
        card["thresholds"][label] = value
        copy.file("model.json").write_text(json.dumps(card))
        refusal = rf"thresholds must be probabilities from 0 to 1; \{{'{label}': {value}\}}"
        with pytest.raises(ImgclfError, match=refusal):
            copy.read_card()


def test_evaluate_on_an_index_file_refuses_unknown_labels(ml_run, tmp_path):
    from imgclf.evaluation.run_eval import evaluate_run

    run, root, _ = ml_run
    bad = root / "bad.csv"
    bad.write_text("images/m001.png,circle;hexagon\n")
    with pytest.raises(ImgclfError, match=r"bad.csv:1.*hexagon"):
        evaluate_run(run.path, data=bad, progress=False)
    # every unknown label in one refusal, with its rows: one at a time cost a run per label
    bad.write_text("images/m001.png,circle\nimages/m002.png,owl\nimages/m003.png,hexagon;owl\n")
    with pytest.raises(ImgclfError, match=r"bad.csv:2.*unknown label\(s\): 'hexagon' on 1 row \(first line 3\), "
                                          r"'owl' on 2 rows \(first line 2\)"):
        evaluate_run(run.path, data=bad, progress=False)
    # another data set's index, hundreds of labels: ten named, the rest counted (one line of thousands of characters)
    bad.write_text("".join(f"images/m{n:03d}.png,label{n:02d}\n" for n in range(1, 13)))
    with pytest.raises(ImgclfError, match=r"'label10' on 1 row \(first line 10\) and 2 more\)$"):
        evaluate_run(run.path, data=bad, progress=False)
    good = root / "more.csv"
    good.write_text("images/m001.png,circle\nimages/m002.png,\n")
    metrics = evaluate_run(run.path, data=good, progress=False)
    assert metrics.count == 2 and metrics.task == "multilabel"
    with pytest.raises(ImgclfError, match=r"split must be test, the default: .*more.csv has no split column"):
        evaluate_run(run.path, data=good, split="val", progress=False)
    # an index's split column is read: its test rows by default, another split by name (every row was scored)
    split = root / "split.csv"
    split.write_text("path,labels,split\nimages/m001.png,circle,train\nimages/m002.png,,test\n"
                     "images/m003.png,square,test\nimages/m004.png,circle,val\n")
    scored = evaluate_run(run.path, data=split, progress=False)
    assert (scored.count, scored.split) == (2, f"{split}:test")
    assert evaluate_run(run.path, data=split, split="train", progress=False).count == 1
    held_out = root / "held-out.csv"  # an evaluation index of test rows only: read, not refused for no train row
    held_out.write_text("path,labels,split\nimages/m002.png,,test\nimages/m003.png,square,test\n")
    assert evaluate_run(run.path, data=held_out, progress=False).count == 2
    with pytest.raises(ImgclfError, match=r"split for .*split.csv \(its split column or folders\) must be one of "
                                          r"\{test, train, val\}.*Received: split='all'"):
        evaluate_run(run.path, data=split, split="all", progress=False)
    # an index naming one of the run's training images beside one it never saw: the first is not held out
    from PIL import Image

    from imgclf.records import RunDir

    trained = RunDir(run.path).read_dataset().split_paths("train")[0][0]
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / "fresh.png")
    mixed = root / "mixed.csv"
    mixed.write_text(f"{trained},circle\nfresh.png,\n")
    seen = evaluate_run(run.path, data=mixed, progress=False).seen
    assert seen.by_split == {"train": 1} and seen.examples == [trained]


def test_bce_weights_positives_and_asl_is_scaled_per_image():
    from imgclf.train.module import multilabel_loss

    logits = torch.zeros(4, 2)
    targets = torch.tensor([[1.0, 0.0]] * 4)
    plain = multilabel_loss(logits, targets, "ce")
    weighted = multilabel_loss(logits, targets, "ce", torch.tensor([3.0, 1.0]))
    assert plain.item() == pytest.approx(np.log(2))
    # label 0's positive term counts 3x: (3 ln2 + ln2) / 2 per image
    assert weighted.item() == pytest.approx(2 * np.log(2))
    asl4 = multilabel_loss(logits, targets, "asl")
    asl8 = multilabel_loss(torch.zeros(8, 2), torch.tensor([[1.0, 0.0]] * 8), "asl")
    assert asl4.item() == pytest.approx(asl8.item())


def test_balanced_positive_weights_are_negatives_over_positives():
    from imgclf.data.multilabel import positive_weights

    targets = np.array([[1, 0], [0, 0], [0, 1], [0, 1]])
    assert positive_weights("balanced", targets, ["a", "b"]) == [3.0, 1.0]
    assert positive_weights("none", targets, ["a", "b"]) is None


def test_a_label_on_every_training_image_keeps_weight_one_and_is_said(caplog):
    """Negatives over positives is 0 for a label with no negative: its positive term weighed nothing, and a label
    on every image scored 0.35-0.51 on test images that all carry it."""
    import logging

    from imgclf.data.multilabel import positive_weights

    with caplog.at_level(logging.WARNING, logger="imgclf"):
        weights = positive_weights("balanced", np.array([[1, 1], [1, 0], [1, 0], [1, 0]]), ["blue", "b"])
    assert weights == [1.0, 3.0]
    assert any("'blue' is on every training image" in r.getMessage() for r in caplog.records)


def test_thresholds_maximise_f1_per_label():
    from imgclf.multilabel import tune_thresholds

    # 5 images carry the label and 5 do not: enough of each to tune on (`is_untuned`)
    y = np.array([[1], [1], [0], [0], [1], [1], [1], [0], [0], [0]])
    p = np.array([[0.9], [0.35], [0.4], [0.1], [0.8], [0.7], [0.6], [0.05], [0.02], [0.03]])
    t = tune_thresholds(y, p, ["a"])["a"]
    # 0.35 gives F1 10/11 (5 found, one false alarm), anything above 0.4 at most 8/9
    assert 0.1 < t <= 0.35


def test_a_label_on_every_validation_image_keeps_every_one_of_them():
    """Labelling every image was the best F1 and no lower score existed to go halfway to: the threshold was the
    lowest score itself, rounded up past it (0.604684 over 0.60468364), and dropped those images from the split it
    was tuned on; another precision's scores dropped more. With no image lacking the label there is nothing to
    tune on since 2026-12-06: it keeps 0.5, under which every one of these images still carries it."""
    from imgclf.multilabel import DEFAULT_THRESHOLD, decide, tune_thresholds

    p = np.array([[0.6046836], [0.61], [0.7], [0.8], [0.9], [0.95]])
    t = tune_thresholds(np.ones((6, 1), dtype=int), p, ["b"])["b"]
    assert decide(p, np.array([t])).all() and t == DEFAULT_THRESHOLD
    # and a threshold halfway between two scores is never rounded up past the lower one
    y = np.array([[1], [1], [0], [1], [0]])
    q = np.array([[0.9], [0.8000003], [0.8000001], [0.95], [0.1]])
    t = tune_thresholds(y, q, ["c"])["c"]
    assert decide(q, np.array([t]))[:, 0].tolist() == [True, True, True, True, False]


def test_a_label_with_a_few_validation_positives_keeps_the_default_threshold():
    """One positive at p = 0.047 made the max-F1 threshold 0.045: the label was then carried on most images."""
    from imgclf.multilabel import DEFAULT_THRESHOLD, MIN_TUNING_POSITIVES, tune_thresholds

    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.3, size=(40, 1))
    for n in (1, MIN_TUNING_POSITIVES - 1, MIN_TUNING_POSITIVES):
        y = np.zeros((40, 1), dtype=int)
        y[:n] = 1
        q = p.copy()
        q[:n] = 0.047  # the positives score lowest: max F1 would carry the label on every image
        t = tune_thresholds(y, q, ["rare"])["rare"]
        assert (t == DEFAULT_THRESHOLD) == (n < MIN_TUNING_POSITIVES), (n, t)


def test_a_label_on_almost_every_validation_image_keeps_the_default_threshold():
    """A label on all 15 validation images got half its lowest score (0.288) as threshold: the test split's
    negatives, scored 0.27-0.35, were then carried (4 false positives where 0.5 made none)."""
    from imgclf.multilabel import DEFAULT_THRESHOLD, MIN_TUNING_POSITIVES, tune_thresholds

    rng = np.random.default_rng(0)
    for missing in (0, MIN_TUNING_POSITIVES - 1, MIN_TUNING_POSITIVES):
        y = np.ones((40, 1), dtype=int)
        y[:missing] = 0
        p = rng.uniform(0.55, 0.7, size=(40, 1))
        p[:missing] = 0.9  # the negatives score highest: max F1 carries the label on every image
        t = tune_thresholds(y, p, ["common"])["common"]
        assert (t == DEFAULT_THRESHOLD) == (missing < MIN_TUNING_POSITIVES), (missing, t)


def test_multilabel_metrics_by_hand():
    from imgclf.evaluation.multilabel import compute_multilabel_metrics

    y = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    p = np.array([[0.9, 0.2], [0.6, 0.4], [0.3, 0.8], [0.1, 0.1]])
    m = compute_multilabel_metrics(y, p, ["a", "b"], np.array([0.5, 0.5]))
    ml = m.multilabel
    assert ml.subset_accuracy == 0.75 and ml.hamming_loss == pytest.approx(1 / 8)
    assert ml.per_label["a"].ap == pytest.approx(1.0) and ml.per_label["b"].recall == 0.5
    assert m.confusion == [[2, 0], [1, 1]]


def test_a_label_no_test_image_carries_is_left_out_of_the_macro_recall_not_its_false_alarms():
    """Label c is absent from the split: its recall is undefined, not 0, so the macro recall is a's and b's. Its
    false alarm (image 4) costs the macro precision and F1 (c's, 0, in the mean: left out, they read 1.0 with a
    wrong label predicted; F1 = 2TP / (2TP + FP + FN) is 0 there, not undefined) and the micro scores; never
    predicted, it enters neither."""
    from imgclf.evaluation.multilabel import compute_multilabel_metrics

    y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    p = np.array([[0.9, 0.2, 0.1], [0.6, 0.4, 0.1], [0.3, 0.8, 0.1], [0.1, 0.1, 0.9]])
    m = compute_multilabel_metrics(y, p, ["a", "b", "c"], np.array([0.5, 0.5, 0.5]))
    assert m.classes_present == ["a", "b"]
    assert m.macro.recall == pytest.approx((1.0 + 0.5) / 2) and m.macro.precision == pytest.approx((1 + 1 + 0) / 3)
    assert m.macro.f1 == pytest.approx((1.0 + 2 / 3 + 0) / 3)
    assert m.multilabel.micro.precision == pytest.approx(3 / 4)  # c's false alarm counted here too
    quiet = compute_multilabel_metrics(y, p, ["a", "b", "c"], np.array([0.5, 0.5, 0.95]))  # c never predicted
    assert quiet.macro.precision == pytest.approx(1.0) and quiet.macro.f1 == pytest.approx((1.0 + 2 / 3) / 2)


def test_the_report_dashes_the_scores_a_label_absent_from_the_split_cannot_have(ml_run, tmp_path, capsys):
    """A label no evaluated image carries has no recall or F1 (its AP and AUC were dashed already, its recall read
    0.000: "always missed"); the single-label report's table dashes them the same way."""
    import re
    import shutil

    from imgclf.evaluation.multilabel import evaluate_multilabel
    from imgclf.evaluation.multilabel_report import write_multilabel_report

    run, root, index = ml_run
    copy = Path(shutil.copytree(run.path, tmp_path / "run"))
    rows = index.read_text().splitlines()
    without = root / "no-triangle.csv"
    without.write_text("\n".join([rows[0]] + [r for r in rows[1:] if "triangle" not in r.split(",")[1]]) + "\n")
    card = json.loads((copy / "model.json").read_text())
    card["thresholds"]["triangle"] = 1.0  # never predicted either: its precision has nothing to divide by
    (copy / "model.json").write_text(json.dumps(card))
    metrics = evaluate_multilabel(copy, copy, data=without, progress=False)
    write_multilabel_report(copy)
    cells = {m.group(1): m.group(2) for m in re.finditer(r"<tr><td>(\w+)</td>((?:<td>[^<]*</td>){8})</tr>",
                                                            (copy / "report.html").read_text())}
    triangle = re.findall(r"<td>([^<]*)</td>", cells["triangle"])
    assert triangle[2:6] == ["—", "—", "—", "0"] and triangle[0] == "—"  # precision, recall, F1, support; AP
    # predicted, though absent, its F1 is 0 (false alarms, none found), which the macro F1 counts
    circle = re.findall(r"<td>([^<]*)</td>", cells["circle"])
    assert "—" not in circle[2:5] and int(circle[5]) > 0
    # the command line's table shows each label's precision, recall and F1 as the report does (it showed 0.000
    # for the precision of a label never predicted, where the report shows a dash); metrics.json counts them
    from imgclf.cli.metrics_table import print_metrics

    assert metrics.multilabel.per_label["triangle"].predicted == 0 < metrics.multilabel.per_label["circle"].predicted
    print_metrics(metrics)
    printed = capsys.readouterr().out
    for name in metrics.per_class:
        html = re.findall(r"<td>([^<]*)</td>", cells[name])[2:5]
        row = next(line for line in printed.splitlines() if re.match(rf"\W*{name}\W", line))
        assert re.findall(r"(—|\d\.\d{3})\s", row)[:3] == html, (name, row)  # the same dash as the report
    # and both say what the dashes count for the averages, as the single-label table and report do (neither did)
    said = " ".join(printed.split())
    page = " ".join((copy / "report.html").read_text().split())
    assert "Recall and F1 “—”: no evaluated image carries it (triangle); the averages leave the label out" in said
    assert "Recall and F1 “—”: no " in page
    assert "image carries it (triangle); the averages leave the label out" in page
    # predicted, though absent: its false alarms give it precision and F1 0, in its row and in the macro F1
    card["thresholds"]["triangle"] = 0.0
    (copy / "model.json").write_text(json.dumps(card))
    alarms = evaluate_multilabel(copy, copy, data=without, progress=False)
    write_multilabel_report(copy)
    cells = {m.group(1): m.group(2) for m in re.finditer(r"<tr><td>(\w+)</td>((?:<td>[^<]*</td>){8})</tr>",
                                                            (copy / "report.html").read_text())}
    assert re.findall(r"<td>([^<]*)</td>", cells["triangle"])[2:5] == ["0.000", "—", "0.000"]
    # and the note under the table says recall alone is dashed there (it said "Recall and F1" over an F1 of 0)
    assert "Recall “—” (and F1, where never predicted): no " in " ".join((copy / "report.html").read_text().split())
    f1s = [s.f1 for c, s in alarms.per_class.items() if s.support or c == "triangle"]
    assert alarms.macro.f1 == pytest.approx(sum(f1s) / len(f1s)) and len(f1s) == len(alarms.per_class)


def test_task_setting_must_match_the_data(tmp_path):
    import imgclf

    index, _ = make_mosaics(tmp_path, count=12)
    with pytest.raises(ImgclfError, match="task"):
        imgclf.fit(data=str(index), out=str(tmp_path / "r"), task="single", epochs=1, progress=False)
    with pytest.raises(ImgclfError, match="loss"):
        imgclf.fit(data=str(index), out=str(tmp_path / "r2"), loss="focal", epochs=1, progress=False)


def test_onnx_export_has_sigmoid_outputs_and_the_thresholds(ml_run, monkeypatch):
    pytest.importorskip("onnxruntime")
    import imgclf
    from imgclf.export import export_run, load_onnx

    run, root, _ = ml_run
    export_run(run.path, "onnx")
    onnx_clf = load_onnx(run.path)
    assert onnx_clf.card.task == "multilabel" and onnx_clf.card.thresholds == imgclf.load(run.path).card.thresholds
    images = [str(root / "images" / f"m{n:03d}.png") for n in range(8)]
    torch_preds = imgclf.load(run.path, precision="32").predict(images, top_k=3)  # the graph's fp32
    onnx_preds = onnx_clf.predict(images, top_k=3)
    for t, o in zip(torch_preds, onnx_preds):
        assert t.label == o.label
        assert np.allclose([p for _, p in t.top], [p for _, p in o.top], atol=1e-5)
    # sigmoid, not softmax: the label probabilities of one image need not sum to 1
    sums = [sum(p for _, p in o.top) for o in onnx_preds]
    assert any(abs(s - 1) > 0.1 for s in sums)
    # the example of the page beside the export finds the labels imgclf finds
    from export_pages import run_page_example

    page = run.path / "export" / "model.onnx.md"
    assert "| label | threshold |" in page.read_text()
    # each threshold as the card stores it, to its 6 decimals (the table rounded to 4)
    assert all(f" | {t:.6f} |" in page.read_text() for t in onnx_clf.card.thresholds.values())
    theirs = run_page_example(page, images, monkeypatch)
    # the labels carried, most probable first, with their probabilities: as imgclf lists them
    assert [[name for name, _ in labels] for labels in theirs] == [[name for name, _ in o.labels] for o in onnx_preds]
    assert all(np.allclose([p for _, p in labels], [p for _, p in o.labels], atol=1e-5)
               for labels, o in zip(theirs, onnx_preds))
    assert any(len(labels) > 1 for labels in theirs)


def test_a_multilabel_run_without_a_test_split_says_its_scores_chose_the_thresholds(tmp_path, capsys):
    """Scored on the val split, whose images tuned each label's threshold: training and the report say so."""
    import html

    import imgclf

    index, _ = make_mosaics(tmp_path, count=24)
    run = imgclf.fit(data=str(index), img_size=16, epochs=1, batch_size=8, progress=False, model_args={"width": 4},
                     val_split=0.3, test_split=0, out=str(tmp_path / "r"))
    note = ("these are its validation scores, on the images that chose the epoch kept and each label's decision "
            "threshold")
    assert run.metrics.split == "val" and note in " ".join(capsys.readouterr().err.split())
    assert "<li>The run has no test split" in (page := " ".join((run.path / "report.html").read_text().split()))
    assert note in html.unescape(page)
    assert "A seeded sample of val images" in page and "test images" not in page  # the captions name the split


def test_upload_page_shows_every_label_above_its_threshold(ml_run, tmp_path):
    from pathlib import Path

    if not Path("/usr/lib/chromium/chromium").exists():
        pytest.skip("Debian's chromium is not installed")
    import socket
    import threading
    import time

    import uvicorn
    from playwright.sync_api import sync_playwright

    import imgclf
    from imgclf.serve import create_app

    run, root, _ = ml_run
    clf = imgclf.load(run.path)
    # an image given two labels or more: the page must list them all, not one class
    image, expected = next((path, pred) for path in sorted((root / "images").glob("*.png"))
                           for pred in clf.predict([str(path)]) if len(pred.labels) >= 2)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(run.path), log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/lib/chromium/chromium",
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{sock.getsockname()[1]}/")
            page.set_input_files("#file", str(image))
            label = page.wait_for_selector("[data-testid=label]", timeout=15_000).text_content()
            info = page.locator("#model-info").text_content()
            # no unknown detector: no in-distribution score line, which only repeated the top label's probability
            assert page.locator("#results .trust").is_hidden()
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert [name for name, _ in expected.labels] == [part.split(" ")[0] for part in label.split(", ")]
    # its headline is macro F1 (subset accuracy said as such), not a single-label "test accuracy"
    card = clf.card
    assert info.startswith(f"{len(card.classes)} labels (") and "test accuracy" not in info, info
    assert f"{card.metrics.split} macro F1 " in info and "at the labels' thresholds (subset accuracy " in info, info


def test_label_reliability_bins_by_hand():
    from imgclf.evaluation.multilabel_plots import reliability_bins

    targets = np.array([0, 1, 1, 1, 0, 0])
    probs = np.array([0.05, 0.15, 0.95, 0.91, 0.92, 0.08])
    mean_p, share, counts = reliability_bins(targets, probs, bins=10)
    assert counts.tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    assert mean_p[0] == pytest.approx(0.065) and share[0] == 0.0
    assert share[1] == 1.0 and np.isnan(share[2])
    assert mean_p[9] == pytest.approx(0.9266667) and share[9] == pytest.approx(2 / 3)


def test_binary_calibration_error_by_hand():
    from imgclf.evaluation.multilabel import binary_calibration_error

    # bin of p = 0.9: 2 of 4 positive -> |0.5 - 0.9| = 0.4 on half the pairs; bin of 0.1: 0 of 4 -> 0.1
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1])
    assert binary_calibration_error(y, p) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)
    assert binary_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])) == pytest.approx(0.0)


def test_cli_evaluate_prints_multilabel_scores_not_confusions(ml_run):
    from typer.testing import CliRunner

    from imgclf.cli import app

    run, _, _ = ml_run
    result = CliRunner().invoke(app, ["evaluate", str(run.path)])
    assert result.exit_code == 0, result.output
    assert "mAP" in result.output and "Hamming loss" in result.output
    # not "at their tuned thresholds": labels too rare on validation stay at 0.5, untuned (training warns of them)
    assert "(labels at their thresholds in model.json)" in " ".join(result.output.split())
    assert "most confused" not in result.output
    # accuracy named as the share of whole label sets right, and no image count as the average rows' support
    assert ": subset accuracy " in result.output and "┃ label " in result.output
    macro = next(line for line in result.output.splitlines() if "macro avg" in line)
    assert macro.split("│")[5].strip() == "", macro
    # on another index file too, as docs/multilabel.md shows: it wrote its files, then failed (exit 2) looking
    # for class folders in the index file
    more = run.path.parent / "more-cli.csv"
    more.write_text("images/m001.png,circle\nimages/m002.png,\n")
    result = CliRunner().invoke(app, ["evaluate", str(run.path), "--data", str(more)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output


def test_compare_shows_map_for_multilabel_runs_only(ml_run, tmp_path):
    import shutil

    from imgclf.evaluation.compare import summarize_run
    from imgclf.records import RunDir

    run, _, _ = ml_run
    metrics = run.path / "metrics.json"
    assert summarize_run(run.path).values["test_map"] == json.loads(metrics.read_text())["multilabel"]["map_macro"]
    plain = tmp_path / "plain"
    shutil.copytree(run.path, plain)
    record = RunDir(plain).read_metrics()
    record.multilabel, record.task = None, "single"
    RunDir(plain).write_metrics(record)
    assert summarize_run(plain).values["test_map"] is None  # no column for single-label runs


def test_label_set_captions_wrap_whole_sets_and_keep_each_probability_with_its_label():
    from imgclf.evaluation.multilabel_plots import label_set_caption

    caption = label_set_caption(["coat", "dress", "pullover", "t-shirt"],
                                [("t-shirt", 0.99), ("dress", 0.95), ("pullover", 0.9), ("coat", 0.48)], width=30)
    lines = caption.split("\n")
    assert all(len(line) <= 30 for line in lines) and len(lines) > 2
    flat = " ".join(line.strip() for line in lines)
    for name in ("coat", "dress", "pullover", "t-shirt"):
        assert name in flat.split("Pred:")[0]  # no label cut out of the true set
    assert all(f"{n}\u00a0{p}" in caption for n, p in (("t-shirt", "0.99"), ("coat", "0.48")))
    assert label_set_caption([], []) == "True: none\nPred: none"
    # a hyphen at the wrap point: "ankle-boot" stays whole
    hyphen = label_set_caption(["bag", "ankle-boot"], [("ankle-boot", 0.9)], width=20)
    assert "ankle-boot" in hyphen.replace("\n  ", " ")


def test_runs_lists_label_wise_accuracy_on_both_splits(ml_run, tmp_path):
    """A multi-label run's val column is training's val_acc (label-wise, 1 - Hamming loss) while metrics.json's
    accuracy is subset accuracy: `imgclf runs` put the two side by side as if they were one measure."""
    import shutil

    import imgclf

    run, _, _ = ml_run
    copy = tmp_path / "runs" / "ml"
    shutil.copytree(run.path, copy)
    metrics = json.loads((copy / "metrics.json").read_text())  # the mosaics are learnt whole: make them differ
    metrics["accuracy"] = metrics["multilabel"]["subset_accuracy"] = 0.6
    metrics["multilabel"]["hamming_loss"] = 0.1
    (copy / "metrics.json").write_text(json.dumps(metrics))
    (row,) = imgclf.list_runs(tmp_path / "runs")
    assert row.status == "completed" and row.test_accuracy == pytest.approx(0.9)
    # interrupted before its card: its val mAP from its history, as its val accuracy (it read —)
    stopped = tmp_path / "stopped" / "ml"
    shutil.copytree(copy, stopped, ignore=shutil.ignore_patterns("model.json", "metrics.json"))
    (interrupted,) = imgclf.list_runs(tmp_path / "stopped")
    last = [line for line in (copy / "history.csv").read_text().splitlines() if line][-1].split(",")
    header = (copy / "history.csv").read_text().splitlines()[0].split(",")
    assert interrupted.val_map == pytest.approx(float(last[header.index("val_map")]))
    from imgclf.evaluation.compare import summarize_run

    summary = summarize_run(copy)
    assert summary.values["test_accuracy"] == pytest.approx(0.9)  # compare reads it alike
    assert summary.evaluation.data == ml_run[2].name  # the index file, not the folder its images are under
    # and both say so: the train summary and evaluate print the subset accuracy, 0.6 here
    from rich.console import Console

    from imgclf.evaluation.compare import compare_runs
    from imgclf.evaluation.compare_render import render_table
    from imgclf.runs import render_runs

    for render in (lambda c: render_runs([row], c), lambda c: render_table(compare_runs([copy, run.path]), c)):
        console = Console(record=True, width=200)
        render(console)
        assert "multi-label runs: val and test acc are label-wise" in console.export_text()
    console = Console(record=True, width=200)
    single = row.__class__(**{**row.as_dict(), "task": "single", "name": "single"})
    render_runs([row, single], console)
    text = console.export_text()
    ml_line = next(line for line in text.splitlines() if line.startswith("ml "))
    single_line = next(line for line in text.splitlines() if line.startswith("single "))
    assert "90.0*" in ml_line and "*" not in single_line  # the row whose accuracies are label-wise is marked
    assert "* multi-label runs: val and test acc are label-wise" in text
    console = Console(record=True, width=200)
    render_runs([single], console)
    assert "label-wise" not in console.export_text()
    from imgclf.evaluation.compare_render import write_compare_html

    page = " ".join(write_compare_html(compare_runs([copy, run.path]), tmp_path / "c.html").read_text().split())
    assert "for a multi-label run both accuracies are label-wise" in page  # the page as the terminal


def test_a_serve_request_may_set_one_threshold_for_every_label(ml_run, tiny_run):
    """As predict --threshold: ?threshold=T carries every label whose probability reaches T; refused (400, naming
    it) out of (0, 1), and for a single-label model rather than ignored."""
    from fastapi.testclient import TestClient

    from imgclf.serve import create_app

    run, root, _ = ml_run
    image = sorted((root / "images").glob("*.png"))[0]

    def ask(client, query):
        with open(image, "rb") as f:
            return client.post(f"/predict{query}", files=[("files", (image.name, f, "image/png"))])

    with TestClient(create_app(run.path)) as client:
        assert client.get("/health").json()["unknown"] == "none in this model"  # was "on", for a model with none
        default = ask(client, "?top_k=9").json()["predictions"][0]
        low = ask(client, "?top_k=9&threshold=0.000001").json()["predictions"][0]
        assert [lb["label"] for lb in low["labels"]] == [t["label"] for t in default["top"]]  # every label
        high = ask(client, "?threshold=0.999999").json()["predictions"][0]
        assert all(lb["probability"] >= 0.999999 for lb in high["labels"])
        assert len(high["labels"]) <= len(default["labels"]) <= len(low["labels"])
        for bad in ("1", "0", "x", "nan"):
            refused = ask(client, f"?threshold={bad}")
            assert refused.status_code == 400 and "threshold" in refused.json()["error"], bad
        # an unreadable upload beside a good one: its entry has `labels` too, null
        with open(image, "rb") as f:
            both = client.post("/predict", files=[("files", ("bad.png", b"not an image", "image/png")),
                                                  ("files", (image.name, f, "image/png"))]).json()["predictions"]
        assert both[0]["labels"] is None and both[0]["error"] and isinstance(both[1]["labels"], list)
    with TestClient(create_app(tiny_run)) as client:
        refused = ask(client, "?threshold=0.5")
        assert refused.status_code == 400 and "unset for a single-label model" in refused.json()["error"]


def test_the_gradcam_captions_name_the_most_probable_label_top_not_pred(ml_run, tmp_path, monkeypatch):
    """Grad-CAM explains each image's most probable label, predicted or not: captioned 'Pred: circle (0.34)' it
    contradicted the sample grid, which showed that image's predicted set as empty."""
    import shutil

    from imgclf.evaluation import multilabel_report, plots
    from imgclf.evaluation.plots.image_grids import _caption

    run, _, _ = ml_run
    copy = shutil.copytree(run.path, tmp_path / "run")
    seen = {}
    monkeypatch.setattr(plots, "plot_gradcam_grid", lambda shown, path, **kw: seen.setdefault("shown", shown))
    multilabel_report.write_multilabel_report(copy)
    assert seen["shown"] and all(_caption(s).split("\n")[-1].startswith("Top: ") for s in seen["shown"])
    # an image carrying no label, rightly predicted none, is framed as right (its most probable label is not
    # among its none, and it was framed red as a mistake)
    real = multilabel_report._samples

    def one_empty(*args, **kwargs):
        samples = real(*args, **kwargs)
        samples[0].update(true=[], pred=[], correct=True)
        return samples

    monkeypatch.setattr(multilabel_report, "_samples", one_empty)
    seen.clear()
    multilabel_report.write_multilabel_report(copy)
    assert seen["shown"][0]["correct"] is True and seen["shown"][0]["caption"].startswith("True: none")
    assert _caption({"true": "a", "pred": "b", "prob": 0.5}).split("\n")[1] == "Pred: b (0.50)"  # single-label


def test_a_label_no_validation_image_carries_is_warned_its_threshold_is_untuned(tmp_path, capsys):
    """Its threshold stayed 0.5 without a word, and predict applied it as if tuned."""
    import csv

    import imgclf

    index, _ = make_mosaics(tmp_path, count=40)
    rows = list(csv.reader(index.open()))
    header, body = rows[0], rows[1:]
    with index.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow([*header, "split"])
        for i, row in enumerate(body):
            labels = row[1] + (";rare" if i < 3 else "")  # only in train
            out.writerow([row[0], labels, "train" if i < 28 else "val" if i < 34 else "test"])
    run = imgclf.fit(data=str(index), out=str(tmp_path / "run"), epochs=1, batch_size=16, img_size=32,
                     progress=False, report=False)
    err = capsys.readouterr().err
    # 6 validation images: the other labels have too few positives to tune on as well
    assert "4 labels are carried by fewer than 5 validation images, or missing from fewer than 5 ('circle' (4 of 6), " \
           "'rare' (0 of 6), 'square' (3 of 6), 'triangle' (4 of 6)): their thresholds stay 0.5, untuned" in err, err
    assert json.loads((run.path / "model.json").read_text())["thresholds"]["rare"] == 0.5


def test_evaluate_reads_a_linked_class_folder_tree_as_training_does(ml_run, tmp_path, monkeypatch):
    """A run may train on a tree whose images sit, through links, in each of their labels' folders; its
    evaluation on such a tree was refused: "data must be a CSV / JSON-lines index"."""
    import csv
    import os

    from imgclf.evaluation.run_eval import evaluate_run

    run, root, index = ml_run
    tree, carried = tmp_path / "tree", {}
    for path, labels in list(csv.reader(index.open()))[1:]:
        for label in filter(None, labels.split(";")):
            (tree / label).mkdir(parents=True, exist_ok=True)
            os.link(root / path, tree / label / Path(path).name)
            carried.setdefault(Path(path).name, set()).add(label)
    metrics = evaluate_run(run.path, data=tree, progress=False)
    assert metrics.split == f"{tree}:all" and metrics.count == len(carried)
    # a folder given relative to where the command runs is named whole ("tree:all" named any folder tree alike),
    # and a class folder the model does not know is refused with the class it may misspell, as single-label does
    monkeypatch.chdir(tmp_path)
    assert evaluate_run(run.path, data="tree", progress=False).split == f"{tree}:all"
    (tree / "circle").rename(tree / "Circlee")
    with pytest.raises(ImgclfError, match=r"class folder\(s\) \['Circlee'\] the model does not know; did you mean "
                                          r"Circlee for circle\?"):
        evaluate_run(run.path, data="tree", progress=False)
    rows = {Path(r["path"]).name: set(filter(None, r["true"].split(";")))
            for r in csv.DictReader((run.path / "evaluations").glob("tree-*/predictions.csv").__next__().open())}
    assert rows == carried  # each image once, with every folder it sits in as its label set


def test_the_gradcam_caption_keeps_every_true_label_whole():
    """Cut to 13 characters the caption read "True: big+even…ound"."""
    from imgclf.evaluation.multilabel_report import _gradcam_caption

    caption = _gradcam_caption(["big", "even", "round", "fringed-edge"], ("round", 0.912))
    words = caption.replace("\n", " ").split()
    assert all(label in words for label in ("big", "even", "round", "fringed-edge"))
    assert caption.splitlines()[-1] == "Top: round (0.91)" and max(len(line) for line in caption.splitlines()) <= 26


def test_explain_names_a_multilabel_images_carried_labels_and_the_top_one_it_maps(ml_run, tmp_path):
    """The most probable label, carried or not, read as "the prediction" (as the report's Grad-CAM once did)."""
    from typer.testing import CliRunner

    from imgclf.cli import app

    run, root, index = ml_run
    images = sorted(p for p in root.rglob("*.png") if "run" not in p.parts)[:3]
    result = CliRunner().invoke(app, ["explain", str(run.path), *map(str, images), "-o", str(tmp_path / "w.png")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()[:3]
    assert all(re.fullmatch(r".+\.png: (no label|[a-z;]+) \(top [a-z]+ [01]\.\d{3}\)", line) for line in lines), lines


def test_predict_csv_gives_each_carried_label_its_own_probability(ml_run):
    """`probability` is best_label's: a label carried at a low threshold sat beside another label's probability
    (label=rare, probability=0.2591, blue's), and its own appeared nowhere in the row."""
    import csv
    import io

    import imgclf
    from imgclf.predict_format import format_predictions

    run, root, _ = ml_run
    predictions = imgclf.load(run.path).predict(sorted((root / "images").glob("*.png"))[:6], threshold=0.001)
    rows = list(csv.DictReader(io.StringIO(format_predictions(predictions, "csv"))))
    for row, p in zip(rows, predictions):
        names, probs = row["label"].split(";"), row["label_probabilities"].split(";")
        assert names == [n for n, _ in p.labels] and len(names) > 1
        assert probs == [f"{q:.6g}" for _, q in p.labels]
    assert "label_probabilities" not in format_predictions([], "csv")  # nor in a single-label run's rows
    # the model's task decides the columns: a multi-label run none of whose images could be read keeps them
    from imgclf.inference import Prediction

    unreadable = [Prediction("x.png", None, None, [], "not an image", unknown=None)]
    assert "label_probabilities" in format_predictions(unreadable, "csv", multilabel=True).splitlines()[0]
    # and JSON's entries all have `labels`: an unreadable image's is null (a client reading e["labels"] crashed)
    entries = json.loads(format_predictions(unreadable + predictions[:1], "json", multilabel=True))
    assert entries[0]["labels"] is None and entries[0]["error"] == "not an image"
    assert [e["label"] for e in entries[1]["labels"]] == [n for n, _ in predictions[0].labels]
    # so too the Python API's own dict, which the task reaches through the prediction
    (root / "not-an-image.png").write_bytes(b"not pixels")
    unread = imgclf.load(run.path).predict([root / "not-an-image.png"])[0]
    assert unread.error and unread.multilabel and unread.as_dict()["labels"] is None
    assert json.loads(format_predictions([unread], "json"))[0]["labels"] is None  # the task not passed: its own
    (root / "not-an-image.png").unlink()


def test_evaluating_a_multilabel_run_whose_images_are_gone_is_refused(ml_run, tmp_path):
    """As for a single-label run: scored on what was left, its metrics.json was replaced by another split's."""
    import imgclf
    from conftest import spoilable_copy
    from imgclf.errors import ImgclfError

    run, _, _ = ml_run
    copy = spoilable_copy(run.path, tmp_path / "run")
    dataset = json.loads((copy / "dataset.json").read_text())
    dataset["splits"]["test"]["files"][0] = "nowhere/gone.png"
    (copy / "dataset.json").write_text(json.dumps(dataset))
    metrics = (copy / "metrics.json").read_bytes()
    n = len(dataset["splits"]["test"]["files"])
    with pytest.raises(ImgclfError, match=rf"test split is where dataset.json lists it.*1 of its {n} images are gone"):
        imgclf.evaluate(copy)
    assert (copy / "metrics.json").read_bytes() == metrics


def test_the_report_marks_untuned_thresholds_and_draws_what_the_single_label_report_draws(tmp_path, monkeypatch,
                                                                                         capsys):
    """The per-label table called a threshold that stayed 0.5 (too few validation positives) tuned; the curves
    lacked the kept weights' accuracy after their BatchNorm statistics were recomputed (0.91 against a curve's
    0.64) and the overfitting onset; the sample grid's title said test images on a run scored on val; and the
    time limit's own brackets were wrapped in more ("(time limit (12s))")."""
    import html
    import re

    import imgclf
    from imgclf.evaluation import multilabel_plots, multilabel_report
    from imgclf.multilabel import MIN_TUNING_POSITIVES
    from imgclf.records import RunDir

    index, _ = make_mosaics(tmp_path, count=24)
    run = imgclf.fit(data=str(index), img_size=16, epochs=1, batch_size=8, progress=True, model_args={"width": 4},
                     val_split=0.3, test_split=0, out=str(tmp_path / "r"), report=False)
    assert f": {len(SHAPES)} labels, " in capsys.readouterr().err  # the data line said "3 classes"
    drawn, titles = {}, []
    curves, grid = multilabel_report.plots.plot_training_curves, multilabel_plots.cell_axes

    def spy_curves(history, path, best=None, onset=None, kept=None):
        drawn.update(best=best, kept=kept)
        return curves(history, path, best, onset, kept)

    def spy_grid(*args, title, **kwargs):
        titles.append(title)
        return grid(*args, title=title, **kwargs)

    monkeypatch.setattr(multilabel_report.plots, "plot_training_curves", spy_curves)
    monkeypatch.setattr(multilabel_plots, "cell_axes", spy_grid)
    multilabel_report.write_multilabel_report(run.path)
    page = html.unescape(" ".join(re.sub("<[^>]+>", "", (run.path / "report.html").read_text()).split()))
    card = RunDir(run.path).read_card()
    kept = card.training.val_accuracy_after_batch_norm
    assert kept is not None and drawn["kept"] == kept
    assert f"The kept weights score {kept:.4f} label-wise validation accuracy (the share of label decisions " \
        "right at 0.5) once their BatchNorm statistics" in page
    counts = RunDir(run.path).read_dataset().counts  # each label's images per split, as dataset.json has them
    cells = " ".join(re.sub("<[^>]+>", " ", (run.path / "report.html").read_text()).split())
    for label in card.classes:
        assert f"{label} {' '.join(str(counts[s].get(label, 0)) for s in ('train', 'val') if s in counts)}" in cells
    assert "Images carrying each label in each split" in page and "Validation: 0.3 of" in page
    assert titles and " val images" in titles[0] and "test images" not in titles[0]
    val = RunDir(run.path).read_dataset().counts["val"]
    images = RunDir(run.path).read_dataset().sizes["val"]
    few = {label: n for label, n in val.items() if min(n, images - n) < MIN_TUNING_POSITIVES}
    assert few, "the data should leave some label below the tuning minimum"
    assert page.count("(untuned: ") == len(few)
    for label, n in few.items():
        assert card.thresholds[label] == 0.5 and f"0.500 (untuned: {n} of {images} val)" in page
    assert f"except those marked untuned: fewer than {MIN_TUNING_POSITIVES} validation images carry the label, or " \
           f"fewer than {MIN_TUNING_POSITIVES} lack it" in page
    assert "(completed)" not in page and "1 epoch, completed, best epoch 1" in page
    # a run trained before a rule kept a tuned threshold where today's rule keeps 0.5: not marked untuned
    label = next(iter(few))
    stored = json.loads((run.path / "model.json").read_text())
    stored["thresholds"][label] = 0.264
    (run.path / "model.json").write_text(json.dumps(stored))
    multilabel_report.write_multilabel_report(run.path)
    page = html.unescape(" ".join(re.sub("<[^>]+>", "", (run.path / "report.html").read_text()).split()))
    assert page.count("(untuned: ") == len(few) - 1 and "0.264 (untuned" not in page


def test_the_report_repeats_trainings_warning_of_copies_leaking_into_test(ml_run, tmp_path):
    """dataset.json's leaks (copies in the test rows of images in the train rows, as an index's split column may
    put them) are said on the page whose test scores they inflate, as the single-label report says them."""
    import shutil

    from imgclf.evaluation.multilabel_report import write_multilabel_report

    run, _, _ = ml_run
    copy = Path(shutil.copytree(run.path, tmp_path / "run"))
    dataset = json.loads((copy / "dataset.json").read_text())
    assert dataset["duplicates"] is not None  # the index's images were searched for copies
    write_multilabel_report(copy)
    assert "near-duplicate in" not in (copy / "report.html").read_text()
    dataset["duplicates"]["leaks"] = [{"split": "test", "source": "train", "images": 3, "exact": 1}]
    (copy / "dataset.json").write_text(json.dumps(dataset))
    write_multilabel_report(copy)
    page = (copy / "report.html").read_text()
    assert "<li>3 images in the test rows have a near-duplicate in the train rows (1 exact copy): test scores (mAP, " \
           "F1, accuracies) may be inflated; imgclf audit lists such images for single-label class folders " \
           "only.</li>" in page


def test_labels_no_font_draws_are_named_once_on_the_terminal_and_on_the_page(ml_run, tmp_path, monkeypatch,
                                                                              caplog):
    """As the single-label report does (tests/evaluation/test_eval_user_text.py checks which names those are)."""
    import shutil

    from imgclf.evaluation import multilabel_report

    run, _, _ = ml_run
    copy = Path(shutil.copytree(run.path, tmp_path / "run"))
    asked = []
    monkeypatch.setattr(multilabel_report, "undrawn_names_note",
                        lambda names: asked.append(list(names)) or "labels no font draws")
    multilabel_report.write_multilabel_report(copy)
    assert asked == [json.loads((copy / "model.json").read_text())["classes"]]
    assert [r.getMessage() for r in caplog.records if "no font" in r.getMessage()] == ["labels no font draws"]
    assert "<li>labels no font draws.</li>" in (copy / "report.html").read_text()


def test_a_resume_keeps_the_split_its_multilabel_run_recorded_whichever_release_drew_it(ml_run, tmp_path):
    """A run whose split an older release drew (before near-duplicate groups were kept whole in multi-label
    splits) was refused on resume as "split otherwise": the recorded split is kept where it names every image."""
    import shutil

    import imgclf
    from imgclf.records import RunDir

    run, _, _ = ml_run
    copy = Path(shutil.copytree(run.path, tmp_path / "run"))
    path = copy / "dataset.json"
    record = json.loads(path.read_text())
    train, val = record["splits"]["train"], record["splits"]["val"]
    for key in ("files", "labels", "label_sets"):  # one train and one val image swapped, as another draw
        val[key][0], train[key][0] = train[key][0], val[key][0]
    path.write_text(json.dumps(record))
    recorded = {name: set(split["files"]) for name, split in record["splits"].items()}
    epochs = len(RunDir(copy).read_history())
    imgclf.fit(resume=str(copy), epochs=epochs + 1, report=False)
    after = RunDir(copy).read_dataset()
    assert {name: set(split.files) for name, split in after.splits.items()} == recorded
    assert [r.epoch for r in RunDir(copy).read_history()] == list(range(1, epochs + 2))


def test_runs_compare_and_the_training_summary_show_the_validation_map_a_search_ranks_by(ml_run, tmp_path):
    """`imgclf tune` ranks multi-label trials by the validation mAP, which no listing showed: the chosen trial
    looked worse than another by the label-wise accuracy beside it."""
    import re
    import shutil

    import imgclf
    from rich.console import Console

    from imgclf.cli.run_summary import _kept_line
    from imgclf.evaluation.compare import compare_runs, summarize_run
    from imgclf.evaluation.compare_render import render_table
    from imgclf.records import RunDir
    from imgclf.runs import render_runs

    run, _, _ = ml_run
    copy = tmp_path / "runs" / "ml"
    shutil.copytree(run.path, copy)
    card = RunDir(copy).read_card()
    val_map = card.metrics.val_map
    assert val_map is not None and val_map != card.metrics.val_accuracy
    (row,) = imgclf.list_runs(tmp_path / "runs")
    assert row.val_map == val_map and row.as_dict()["val_map"] == val_map
    assert summarize_run(copy).values["val_map"] == val_map
    console = Console(record=True, width=200)
    render_runs([row], console)
    text = console.export_text()
    assert "mAP %" in text and f"{100 * val_map:.1f}" in text, text
    # and the test mAP beside the test accuracy, as compare shows it (runs had no such column)
    test_map = RunDir(copy).read_metrics().multilabel.map_macro
    assert row.test_map == test_map and f"{100 * test_map:.1f}" in text
    header = " ".join(line for line in text.splitlines() if "mAP" in line or "acc" in line)
    assert header.split().count("mAP") == 2, text
    single = row.__class__(**{**row.as_dict(), "task": "single", "name": "single", "val_map": None,
                              "test_map": None})
    console = Console(record=True, width=200)
    render_runs([single], console)
    assert "mAP" not in console.export_text()  # a single-label listing keeps its columns
    console = Console(record=True, width=200)
    render_table(compare_runs([copy, run.path]), console)
    lines = console.export_text().splitlines()
    header = next(line for line in lines if "mAP %" in line)
    cells = next(line for line in lines if re.match(r"A\s+\d+\s", line))
    assert header.split().count("mAP") == 2  # val mAP beside test mAP
    assert f"{100 * val_map:.2f}" in cells
    assert f"validation mAP {val_map:.4f}" in _kept_line(run, RunDir(copy).read_history())


def test_a_set_of_negatives_prints_no_average_recall(capsys):
    """Two images carrying no label (a set to count false alarms on): the table printed 'macro avg 0.000 0.000
    0.000', a recall of 0 where there was nothing to recall."""
    from imgclf.cli.metrics_table import print_metrics
    from imgclf.evaluation.multilabel import compute_multilabel_metrics

    metrics = compute_multilabel_metrics(np.zeros((2, 3), int), np.array([[0.9, 0.1, 0.2], [0.2, 0.1, 0.3]]),
                                         ["a", "b", "c"], np.full(3, 0.5), "test")
    print_metrics(metrics)
    printed = " ".join(capsys.readouterr().out.replace("│", " ").split())
    macro = re.search(r"macro avg (\S+) (\S+) (\S+)", printed).groups()
    assert macro[1] == "—" and "weighted avg — — —" in printed
    assert "no image of this set carries a label: recall is not measured" in printed
    # and the record says so: its 0 went into the card (GET /model), compare's table and the trackers as a score
    from imgclf.pipeline.card import headline
    from imgclf.records import MetricsRecord

    stored = MetricsRecord.model_validate_json(metrics.model_dump_json())
    assert (stored.macro.recall, stored.weighted.recall, stored.multilabel.micro.recall) == (None, None, None)
    assert headline(stored, [], None).macro_recall is None
    assert metrics.multilabel.per_label["a"].predicted == 1  # the false alarm the rows count
    # none predicted either: a perfect result on such a set, which read 'macro precision 0, F1 0' and 'the labels
    # predicted are false alarms'
    clean = compute_multilabel_metrics(np.zeros((2, 3), int), np.full((2, 3), 0.1), ["a", "b", "c"], np.full(3, 0.5),
                                       "test")
    assert (clean.macro.precision, clean.macro.f1) == (1.0, 1.0)
    micro = clean.multilabel.micro
    assert (micro.precision, micro.f1) == (1.0, 1.0)  # as the macro: micro F1 0 read beside macro F1 1
    assert (clean.macro.recall, micro.recall) == (None, None)
    print_metrics(clean)
    printed = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert re.search(r"macro avg 1.000 — 1.000", printed) and "none was predicted either: no false alarm" in printed


def test_compare_groups_multilabel_seeds_by_their_label_sets_and_ranks_their_draws_together(ml_run, tmp_path):
    """compare digested a multi-label split by each image's rarest label within its split, which the seed's draw
    changes: two seeds of one setting were two groups of one run, and a relabelled test image (same rarest label)
    went unseen. An index without a split column draws its test split too, so groups of other seeds share a
    section."""
    import shutil

    from imgclf.evaluation.compare import compare_runs
    from imgclf.records import RunDir

    run, _, _ = ml_run

    def copy(name, seed, lr=None, redraw=None, relabel=False):
        path = tmp_path / name
        shutil.copytree(run.path, path)
        copied = RunDir(path)
        config = copied.read_config()
        copied.write_config(config.model_copy(update={"seed": seed, "lr": lr or config.lr}))
        record = json.loads((path / "dataset.json").read_text())
        val, test = record["splits"]["val"], record["splits"]["test"]
        if redraw is not None:  # another seed's draw: an image traded between val and test, other rarest labels
            for part in ("files", "labels", "label_sets"):
                val[part][redraw], test[part][redraw] = test[part][redraw], val[part][redraw]
            train = record["splits"]["train"]
            train["labels"] = [(y + 1) % len(record["classes"]) for y in train["labels"]]
        if relabel:  # a label added to a test image: the same rarest label, other ground truth
            test["label_sets"][0] = sorted(set(test["label_sets"][0]) | {0, 1})
        (path / "dataset.json").write_text(json.dumps(record))
        return path

    a = [copy("a0", 0), copy("a1", 1, redraw=0)]
    comparison = compare_runs(a)
    assert [g.n for g in comparison.groups] == [2], [g.label for g in comparison.groups]
    b = [copy("b1", 1, lr=1e-4, redraw=0), copy("b2", 2, lr=1e-4, redraw=1)]  # other seeds than a's
    both = compare_runs([*a, *b])
    assert sorted(g.n for g in both.groups) == [2, 2]
    assert len(both.sections) == 1, [s.title for s in both.sections]  # drawn by the seeds: ranked together
    relabelled = compare_runs([a[0], copy("a1-relabelled", 1, redraw=0, relabel=True)])
    assert sorted(g.n for g in relabelled.groups) == [1, 1]  # other ground truth: not one mean over seeds
    record = RunDir(a[0]).read_dataset()
    assert record.split_drawn("test") and record.split_drawn("val")
    for given in ("val rows of index.csv", "0.2 of the train rows of index.csv (stratified, seed 1)"):
        # an index with a split column: its test rows are the same images whatever the seed
        assert not record.model_copy(update={"val_source": given}).split_drawn("test")
    assert not record.model_copy(update={"val_source": "val rows of index.csv"}).split_drawn("val")


def test_a_resume_on_a_relabelled_index_says_relabelled_not_gone_and_new(ml_run):
    """A label added to one image read "1 of the images dataset.json lists are gone or relabelled, 1 image is new;
    ... train: 1 added, 1 gone": the same image, the same splits."""
    from imgclf.pipeline.same_data import check_same_images
    from imgclf.records import RunDir

    run, _, _ = ml_run
    stored = RunDir(run.path).read_dataset()
    train = stored.splits["train"]
    sets = [list(s) for s in train.label_sets]
    sets[0] = sorted(set(sets[0]) ^ {0})  # one label more or less
    now = stored.model_copy(update={"splits": {**stored.splits,
                                               "train": train.model_copy(update={"label_sets": sets})}})
    with pytest.raises(ImgclfError) as info:
        check_same_images(RunDir(run.path), now, RunDir(run.path).read_config())
    said = str(info.value)
    assert f"1 is labelled otherwise now (e.g. {train.files[0]})" in said and "(train: 1 relabelled)" in said, said
    assert not any(word in said for word in ("is new", "are new", "gone", "added")), said
    # a label added to the index, sorting first: every id moves up one, no image is labelled otherwise
    shifted = stored.model_copy(update={"classes": ["aaa", *stored.classes], "splits": {
        name: split.model_copy(update={"label_sets": [[j + 1 for j in s] for s in split.label_sets]})
        for name, split in stored.splits.items()}})
    check_same_images(RunDir(run.path), shifted, RunDir(run.path).read_config())
