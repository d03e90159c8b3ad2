"""The interpretation layer and the metrics, checked against scikit-learn on known predictions; overfitting onset
and learning-rate changes on scripted sequences (no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from imgclf.errors import ImgclfError
from imgclf.evaluation.interpret import (
    Interpretation,
    best_val_accuracy,
    detect_overfitting,
    lr_changes,
    mean_recall,
    overfitting_onset,
)
from imgclf.evaluation.metrics import compute_metrics, expected_calibration_error
from imgclf.io import write_csv
from imgclf.records import ClassScores, HistoryRow, SkippedFile

CLASSES = ["ant", "bee", "cat", "dog"]


def known_predictions(n: int = 200, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASSES), n)
    logits = rng.normal(size=(n, len(CLASSES)))
    logits[np.arange(n), y] += 1.2  # better than chance, far from perfect
    logits[y == 3, 2] += 1.5  # dogs are often taken for cats: the top confused pair
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs


def write_predictions(path, y, probs, skipped=()):
    header = ["path", "true", "pred", "prob", "loss", "error"] + [f"p_{c}" for c in CLASSES]
    rows = [[f"img{i}.png", CLASSES[t], CLASSES[p.argmax()], f"{p.max():.6f}", "0", ""] + [f"{v:.9f}" for v in p]
            for i, (t, p) in enumerate(zip(y, probs))]
    rows += [[s, "", "", "", "", "truncated file"] + [""] * len(CLASSES) for s in skipped]
    write_csv(path, header, rows)
    return path


def test_metrics_match_scikit_learn_on_known_predictions():
    y, probs = known_predictions()
    m = compute_metrics(y, probs, CLASSES)
    pred = probs.argmax(1)
    assert m.accuracy == pytest.approx(accuracy_score(y, pred))
    assert m.loss == pytest.approx(log_loss(y, probs), rel=1e-6)
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(4), zero_division=0)
    for i, c in enumerate(CLASSES):
        assert m.per_class[c].precision == pytest.approx(p[i])
        assert m.per_class[c].recall == pytest.approx(r[i])
        assert m.per_class[c].f1 == pytest.approx(f[i])
        assert m.per_class[c].support == s[i]
        assert m.auc[c] == pytest.approx(roc_auc_score(y == i, probs[:, i]))
    mp, mr, mf, _ = precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    assert (m.macro.precision, m.macro.recall, m.macro.f1) == pytest.approx((mp, mr, mf))
    assert m.macro_auc == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    assert m.confusion == confusion_matrix(y, pred).tolist()
    worst = min(range(4), key=lambda i: r[i])
    assert (m.worst_class.name, m.worst_class.recall) == (CLASSES[worst], pytest.approx(r[worst]))


def test_macro_averages_leave_out_a_class_the_split_does_not_hold():
    """Evaluated on data without one class (evaluate --data with fewer classes), every image right: the absent
    class has no recall, and counting it as 0 put the macro recall (0.667) below the worst class's (1.0)."""
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(4)[y] * 0.9 + 0.025
    m = compute_metrics(y, probs, CLASSES)
    assert m.classes_present == CLASSES[:3] and m.per_class[CLASSES[3]].support == 0
    assert (m.macro.precision, m.macro.recall, m.macro.f1) == (1.0, 1.0, 1.0)
    assert m.macro.recall >= m.worst_class.recall
    # a prediction of the absent class is still an error: it costs accuracy, the recall of the image's class, and
    # macro precision, which takes in the absent class the model predicted (at 0: macro precision was 1.0 beside
    # a row of precision 0)
    probs[0] = [0.1, 0.1, 0.1, 0.7]
    m = compute_metrics(y, probs, CLASSES)
    assert m.accuracy == pytest.approx(5 / 6) and m.macro.recall == pytest.approx((0.5 + 1 + 1) / 3)
    assert m.macro.precision == pytest.approx((1 + 1 + 1 + 0) / 4)
    # and so does macro F1, defined there (2TP / (2TP + FP + FN) = 0) and shown in its row: over the present
    # classes alone it read 0.83 beside a macro precision of 0.67 and a recall of 0.75
    f1 = [2 * 0.5 / 1.5, 1.0, 1.0, 0.0]  # class 0: precision 1, recall 0.5
    assert m.macro.f1 == pytest.approx(sum(f1) / 4) and m.per_class[CLASSES[3]].f1 == 0.0


def test_tables_show_a_dash_where_a_score_divides_by_nothing(tiny_run, image_folder, tmp_path):
    """A class with no image has no recall or F1, and one never predicted no precision: the console and the report
    showed 0.000 beside macro averages that (rightly) leave the class out."""
    import shutil

    from typer.testing import CliRunner

    from imgclf.cli import app
    from imgclf.evaluation.interpret import scores_shown
    from imgclf.records import ClassScores

    absent = ClassScores(precision=0.0, recall=0.0, f1=0.0, support=0)
    assert scores_shown(absent, predicted=0) == {"precision": None, "recall": None, "f1": None}
    assert scores_shown(absent, predicted=2) == {"precision": 0.0, "recall": None, "f1": None}
    missed = ClassScores(precision=0.0, recall=0.0, f1=0.0, support=3)
    assert scores_shown(missed, predicted=0) == {"precision": None, "recall": 0.0, "f1": 0.0}
    # multi-label: the confusion matrix is label co-occurrence, so nothing is known of predictions
    assert scores_shown(missed, predicted=None) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}

    two = tmp_path / "two"
    for name in ("cat", "dog"):
        shutil.copytree(image_folder / name, two / name)
    run = shutil.copytree(tiny_run, tmp_path / "run")
    result = CliRunner().invoke(app, ["evaluate", str(run), "--data", str(two)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    fox = next(line for line in result.output.splitlines() if " fox " in line)
    cells = [c.strip() for c in fox.strip("│┃ ").split("│")]
    assert cells[2:5] == ["—", "—", "0"] or cells[1:5] == ["—", "—", "—", "0"], fox  # the report's dash


def test_expected_calibration_error_by_hand():
    # Two bins used: conf 0.9 (2 images, 1 right) and conf 0.6 (2 images, both right).
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    ece, table = expected_calibration_error(probs, y, bins=10)
    assert ece == pytest.approx(0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.6))
    assert sum(b["count"] for b in table) == 4


def test_interpretation_reads_predictions_and_matches_scikit_learn(tmp_path):
    y, probs = known_predictions()
    path = write_predictions(tmp_path / "predictions.csv", y, probs, skipped=["broken.jpg"])
    interp = Interpretation.from_predictions(path, CLASSES)
    assert len(interp.paths) == len(y) and interp.skipped == [SkippedFile(path="broken.jpg", reason="truncated file")]
    np.testing.assert_allclose(interp.probs, probs, atol=1e-8)
    cm = confusion_matrix(y, probs.argmax(1))
    np.testing.assert_array_equal(interp.confusion, cm)

    pairs = interp.most_confused(top=3)
    off = [(cm[t, p], t, p) for t in range(4) for p in range(4) if t != p]
    assert pairs[0].count == max(off)[0]
    assert (pairs[0].true, pairs[0].pred) == ("dog", "cat")
    assert pairs[0].rate == pytest.approx(cm[3, 2] / cm[3].sum())
    assert [p.count for p in pairs] == sorted([p.count for p in pairs], reverse=True)

    losses = -np.log(probs[np.arange(len(y)), y])
    top = interp.top_losses(5)
    assert top == list(np.argsort(-losses)[:5])
    assert interp.describe(top[0])["loss"] == pytest.approx(losses.max())
    assert not interp.describe(top[0])["correct"]


def test_sample_mixes_right_and_wrong_and_is_seeded(tmp_path):
    y, probs = known_predictions()
    interp = Interpretation.from_predictions(write_predictions(tmp_path / "p.csv", y, probs), CLASSES)
    picked = interp.sample(16, seed=3)
    wrong = sum(interp.y_pred[i] != interp.y_true[i] for i in picked)
    assert len(set(picked)) == 16 and wrong == 8
    assert picked == interp.sample(16, seed=3)


def test_sample_with_few_mistakes_fills_with_right_ones(tmp_path):
    y = np.array([0, 1, 2, 3, 0, 1])
    probs = np.eye(4)[y] * 0.9 + 0.025
    probs[0] = [0.1, 0.7, 0.1, 0.1]  # the one mistake
    interp = Interpretation.from_predictions(write_predictions(tmp_path / "p.csv", y, probs), CLASSES)
    picked = interp.sample(4)
    assert 0 in picked and len(picked) == 4


def test_missing_predictions_and_unknown_class_are_clear_errors(tmp_path):
    with pytest.raises(ImgclfError, match="predictions must be an existing nope.csv.*imgclf evaluate"):
        Interpretation.from_predictions(tmp_path / "nope.csv", CLASSES)
    y, probs = known_predictions(10)
    path = write_predictions(tmp_path / "p.csv", y, probs)
    with pytest.raises(ImgclfError, match=r"predictions must be a p.csv with the columns .* \(without \['p_eel'\]\)"):
        Interpretation.from_predictions(path, CLASSES[:3] + ["eel"])
    renamed = tmp_path / "renamed.csv"  # a probability column per class, but true labels the model lacks
    renamed.write_text(path.read_text().replace("p_dog", "p_eel"))
    with pytest.raises(ImgclfError, match=r"true labels are among the model's classes .* \(true label 'dog'\)"):
        Interpretation.from_predictions(renamed, ["ant", "bee", "cat", "eel"])


def test_mean_recall_and_best_val_accuracy():
    def scores(recall: float, support: int) -> ClassScores:
        return ClassScores(precision=recall, recall=recall, f1=recall, support=support)

    per_class = {"a": scores(1.0, 5), "b": scores(0.5, 4), "c": scores(0.0, 0)}
    assert mean_recall(per_class, ["b", "c"]) == 0.5  # c has no test images: not counted as 0
    assert mean_recall(per_class, []) is None
    history = [HistoryRow(epoch=1, val_acc=0.5), HistoryRow(epoch=2, val_acc=0.8), HistoryRow(epoch=3, val_acc=0.7)]
    assert best_val_accuracy(history, 2) == 0.8
    assert best_val_accuracy(history, None) == 0.7
    assert best_val_accuracy([HistoryRow(epoch=1, val_acc=None)], 1) is None
    assert best_val_accuracy([HistoryRow(epoch=1, val_acc=math.nan)], 1) is None


# --------------------------------------------------------------------------- overfitting onset, scripted
FALLING = [2.0, 1.5, 1.1, 0.8, 0.6, 0.45, 0.35, 0.28, 0.22, 0.18]


@pytest.mark.parametrize(
    "train, val, expected",
    [
        # S4-like: validation loss bottoms out at epoch 4, then climbs while training loss keeps falling.
        (FALLING, [1.9, 1.4, 1.1, 1.0, 1.05, 1.12, 1.2, 1.3, 1.4, 1.5], 5),
        # both keep falling: no overfitting
        (FALLING, [1.9, 1.6, 1.3, 1.1, 0.95, 0.85, 0.8, 0.76, 0.74, 0.73], None),
        # one bad epoch, then a new minimum: noise, not overfitting
        (FALLING, [1.9, 1.5, 1.2, 1.0, 1.3, 0.9, 0.85, 0.8, 0.78, 0.75], None),
        # validation rises but so does training loss (diverging learning rate): not overfitting
        ([1.0, 0.8, 0.7, 0.75, 0.9, 1.1, 1.4, 1.8, 2.3, 2.9], [1.0, 0.85, 0.8, 0.9, 1.0, 1.2, 1.5, 1.9, 2.4, 3.0], None),
        # rise too short to be a trend (patience 3 needs three epochs after the minimum)
        (FALLING[:6], [1.9, 1.4, 1.1, 1.0, 1.05, 1.1], None),
        # a flat tail within 1 %: converged, not overfitting
        (FALLING, [1.9, 1.4, 1.1, 1.0, 0.9, 0.8, 0.801, 0.802, 0.801, 0.803], None),
        # missing validation values (no validation that epoch) are skipped, epochs keep their numbers
        (FALLING, [math.nan, 1.4, 1.1, 1.0, 1.05, 1.12, 1.2, 1.3, 1.4, 1.5], 5),
        ([], [], None),
    ],
)
def test_overfitting_onset_on_scripted_sequences(train, val, expected):
    assert overfitting_onset(train, val) == expected


# Issue 26: a run reported "No overfitting detected" although validation loss rose from 0.03 (epoch 13) to 0.24
# (epoch 30). Its training loss had flattened near 0.01 and wobbled (not falling at every step, last value above
# the one at epoch 13), which the former rule required.
RISING_VAL = [1.10, 0.62, 0.41, 0.30, 0.22, 0.16, 0.12, 0.09, 0.07, 0.055, 0.045, 0.036, 0.030,
              0.048, 0.041, 0.066, 0.058, 0.089, 0.081, 0.107, 0.12, 0.105, 0.142, 0.158, 0.149, 0.183, 0.176,
              0.205, 0.221, 0.240]
FLAT_TRAIN = [1.45, 0.71, 0.45, 0.31, 0.22, 0.15, 0.10, 0.070, 0.048, 0.034, 0.025, 0.018, 0.012,
              0.014, 0.010, 0.013, 0.009, 0.012, 0.011, 0.008, 0.013, 0.010, 0.009, 0.012, 0.011, 0.010, 0.014,
              0.009, 0.011, 0.013]
# No overfitting: validation loss settles near 0.30 and wobbles by +-0.03. Its minimum (0.26, epoch 26) sits in a
# lucky trough and the last three epochs happen to be high (0.327 on average): 26 % above the minimum, yet within
# the wobble the whole run shows.
NOISY_FLAT_VAL = [1.05, 0.58, 0.40, 0.33, 0.30, 0.31, 0.28, 0.32, 0.29, 0.33, 0.27, 0.31, 0.30, 0.34, 0.29, 0.31,
                  0.28, 0.32, 0.30, 0.33, 0.29, 0.31, 0.34, 0.28, 0.27, 0.26, 0.30, 0.33, 0.31, 0.34]


def test_a_noisy_sustained_rise_with_a_flat_training_loss_is_overfitting():
    assert np.argmin(RISING_VAL) == 12 and RISING_VAL[-1] == 0.24
    found = detect_overfitting(FLAT_TRAIN, RISING_VAL)
    assert found is not None
    assert (found.best_epoch, found.onset, found.best_loss) == (13, 14, 0.03)
    assert found.final_loss == pytest.approx((0.205 + 0.221 + 0.240) / 3)
    assert overfitting_onset(FLAT_TRAIN, RISING_VAL) == 14
    assert "from 0.03 (its lowest, epoch 13) to 0.222" in found.text()


@pytest.mark.parametrize("train", [FLAT_TRAIN, list(np.linspace(1.4, 0.02, 30))], ids=["flat train", "falling train"])
def test_a_noisy_but_flat_validation_loss_is_not_overfitting(train):
    assert overfitting_onset(train, NOISY_FLAT_VAL) is None


def test_one_lucky_epoch_does_not_set_the_bar():
    # flat at 0.30 +- 0.01 with a single epoch at 0.20: the end is 0.31, 55 % above that epoch but not above the level
    val = [0.9, 0.5, 0.35, 0.31, 0.30, 0.31, 0.30, 0.29, 0.31, 0.30, 0.31, 0.29, 0.30, 0.31, 0.30, 0.29, 0.31, 0.20,
           0.30, 0.31, 0.30, 0.31, 0.30, 0.32]
    assert overfitting_onset(list(np.linspace(1.0, 0.05, len(val))), val) is None


def test_a_rise_below_the_absolute_threshold_is_not_overfitting():
    # a smooth rise from 0.010 to 0.016: 50 % up, but 0.006 nats is immaterial; the same curve ten times larger is
    val = [0.5, 0.2, 0.08, 0.03, 0.012, 0.010, 0.011, 0.012, 0.013, 0.014, 0.015, 0.016]
    train = [0.6, 0.3, 0.1, 0.05, 0.03, 0.02, 0.015, 0.012, 0.01, 0.009, 0.008, 0.007]
    assert overfitting_onset(train, val) is None
    assert overfitting_onset([10 * t for t in train], [10 * v for v in val]) == 7
    # the digits demo's curve (0.013 at epoch 10, 0.018 at the end; its first epochs jump by 0.1 and more)
    val = [1.26, 0.41, 0.15, 0.23, 0.19, 0.036, 0.020, 0.041, 0.019, 0.013, 0.015, 0.0175, 0.0177, 0.0167, 0.0183]
    train = [1.96, 0.85, 0.25, 0.14, 0.10, 0.068, 0.052, 0.048, 0.031, 0.021, 0.022, 0.017, 0.014, 0.0089, 0.0073]
    assert overfitting_onset(train, val) is None


def test_overfitting_onset_needs_equal_lengths():
    with pytest.raises(ImgclfError, match="same length"):
        overfitting_onset([1.0, 0.9], [1.0])


def test_lr_changes_lists_every_change_with_its_epoch():
    assert lr_changes([1e-3, 1e-3, 1e-4, 1e-4, 1e-5]) == [(3, 1e-3, 1e-4), (5, 1e-4, 1e-5)]
    assert lr_changes([0.1, 0.1, 0.1]) == []
    assert lr_changes([0.1, math.nan, 0.1]) == []


def test_divergence_is_a_training_loss_that_ends_above_its_first_epoch():
    from imgclf.evaluation.interpret import detect_divergence

    assert detect_divergence([2.3, 1.5, 1.0, 0.7, 0.5, 0.4]) is None
    assert detect_divergence([2.3, 2.5]) is None  # too short to call
    found = detect_divergence([2.3, 1.9, 2.6, float("nan"), 3.4, 4.1, 5.0, 4.8, 6.0])
    assert found is not None and found.first_loss == 2.3 and found.epochs == 2 and found.final_loss == 5.4
    # a wobble that ends below the start is not divergence, however high the middle went
    assert detect_divergence([2.3, 9.0, 7.0, 3.0, 2.0, 1.0]) is None


def test_no_better_than_guessing_compares_macro_recall_with_chance():
    from imgclf.evaluation.guessing import no_better_than_guessing

    y = np.repeat([0, 1, 2, 3], [40, 20, 20, 20])
    always_first = np.tile([0.7, 0.1, 0.1, 0.1], (len(y), 1))
    assert no_better_than_guessing(compute_metrics(y, always_first, list("abcd"))) == pytest.approx(0.25)
    learnt = np.eye(4)[y] * 0.9 + 0.025
    assert no_better_than_guessing(compute_metrics(y, learnt, list("abcd"))) is None
    # 90/10 imbalance: recalls 0.93 and 0.90 (accuracy 0.927, below the majority's 0.9 + 2 standard errors) learnt
    y = np.repeat([0, 1], [180, 20])
    pred = np.concatenate([np.r_[np.zeros(167), np.ones(13)], np.r_[np.ones(18), np.zeros(2)]]).astype(int)
    assert no_better_than_guessing(compute_metrics(y, np.eye(2)[pred] * 0.8 + 0.1, ["a", "b"])) is None
    # one class present: nothing to guess between
    assert no_better_than_guessing(compute_metrics(np.zeros(10, int), np.tile([0.9, 0.1], (10, 1)), ["a", "b"])) is None


def test_every_image_right_is_never_called_a_guess():
    """4 test images of 2 classes: chance plus two standard errors reaches 1.0, and a perfect run's summary said
    'no better than guessing'."""
    from imgclf.evaluation.guessing import no_better_than_guessing

    y = np.array([0, 0, 1, 1])
    assert no_better_than_guessing(compute_metrics(y, np.eye(2)[y] * 0.8 + 0.1, ["a", "b"])) is None
    assert no_better_than_guessing(compute_metrics(y, np.tile([0.6, 0.4], (4, 1)), ["a", "b"])) == 0.5


def test_the_stored_unknown_verdicts_reach_the_grids_and_the_grad_cam_counts(tiny_run, tmp_path):
    """predictions.csv's unknown column was read by nothing that drew the report's grids: an image scored unknown
    was captioned and counted as an ordinary (right) prediction."""
    import csv

    from conftest import spoilable_copy
    from imgclf.evaluation.explain import explain_run
    from imgclf.evaluation.interpret import Interpretation

    run = spoilable_copy(tiny_run, tmp_path / "run")
    with open(run / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["unknown"] = "1"  # every test image scored unknown
    with open(run / "predictions.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    interp = Interpretation.from_run(run)
    assert interp.unknown.all() and all(interp.describe(i)["unknown"] for i in range(len(interp.paths)))
    counted = explain_run(run)
    # right and wrong by the top class, as accuracy counts them; every one of them scored unknown
    shown = counted["correct"] + counted["wrong"]
    assert counted["unknown"] == shown > 0 and counted["unknown_wrong"] == counted["wrong"]
    assert counted["wrong"] == min(6, int((interp.y_pred != interp.y_true).sum())), counted
