"""Calibrated probabilities (issue 21 item 3): temperature scaling fitted on validation logits, applied wherever
probabilities leave the program (Python API, CLI, server, ONNX graph, evaluation), argmax unchanged."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from imgclf.calibration import fit_temperature, nll, uncalibrated
from imgclf.evaluation.metrics import expected_calibration_error
from imgclf.inference import Classifier
from conftest import spoilable_copy
from imgclf.io import read_json, write_json
from trust_run import trust_run


def _softmax(z: np.ndarray, t: float = 1.0) -> np.ndarray:
    return torch.softmax(torch.from_numpy(np.asarray(z, dtype=np.float64)) / t, dim=1).numpy()


def _overconfident(n: int = 3000, k: int = 5, scale: float = 4.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a model that is right about 70 % of the time, multiplied by `scale`: as sure as a network that
    has memorised its training set, no more often right."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k))
    z[np.arange(n), y] += 1.5
    return scale * z, y


def test_temperature_lowers_nll_and_ece_of_an_overconfident_model_and_keeps_argmax():
    logits, y = _overconfident()
    fit = fit_temperature(logits, y)
    # z_y ~ N(1.5, 1), the others N(0, 1): the true posterior is softmax(1.5 z), so logits 4 z are 4 / 1.5 too sharp
    assert 2.3 < fit.temperature < 3.0, fit
    assert fit.nll_after < 0.7 * fit.nll_before and fit.nll_after == pytest.approx(nll(logits, y, fit.temperature))
    before, after = _softmax(logits), _softmax(logits, fit.temperature)
    ece_before, _ = expected_calibration_error(before, y)
    ece_after, _ = expected_calibration_error(after, y)
    assert ece_after <= 0.5 * ece_before, (ece_before, ece_after)
    assert (after.argmax(1) == before.argmax(1)).all()
    # an under-confident model is sharpened, not softened
    soft, y2 = _overconfident(scale=0.3, seed=1)
    assert fit_temperature(soft, y2).temperature < 0.5


def test_a_minimum_just_above_the_lower_bound_is_found_not_the_bound():
    """L-BFGS over a log T clamped to [0.02, 50] stopped at 0.02 where the minimum lay at 0.02-0.06 (the clamp's
    flat gradient past the bound): 40 of 73 such problems. The fit must reach a fine grid's minimum."""
    grid = np.exp(np.linspace(np.log(0.02), np.log(50.0), 4001))
    for seed, target in ((0, 0.025), (1, 0.039), (2, 0.055), (3, 30.0)):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 6, 400)
        z = rng.normal(size=(400, 6))
        z[np.arange(400), y] += 2.0
        best_raw = grid[np.argmin([nll(z, y, t) for t in grid])]
        logits = z * target / best_raw  # the same problem, its minimum moved to `target`
        fit = fit_temperature(logits, y)
        reference = min(grid * target / best_raw, key=lambda t: nll(logits, y, t) if 0.02 <= t <= 50 else np.inf)
        assert fit.temperature == pytest.approx(reference, rel=2e-3), (target, fit)
        assert fit.nll_after <= nll(logits, y, reference) + 1e-9


def test_no_temperature_when_every_validation_image_is_right():
    logits = np.array([[3.0, 0.0], [0.0, 2.0], [4.0, 1.0]])
    fit = fit_temperature(logits, np.array([0, 1, 0]))
    assert fit.temperature == 1.0 and "correctly" in fit.skipped


def test_uncalibrated_recovers_the_raw_softmax():
    logits, _ = _overconfident(n=50)
    assert np.abs(uncalibrated(_softmax(logits, 2.7), 2.7) - _softmax(logits)).max() < 1e-9


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory) -> Path:
    return trust_run(tmp_path_factory.getbasetemp())


def _split(run: Path, clf: Classifier, split: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    dataset = read_json(run / "dataset.json")
    files = [str(Path(dataset["root"]) / f) for f in dataset["splits"][split]["files"]]
    return files, np.stack([clf.decode(f) for f in files]), np.asarray(dataset["splits"][split]["labels"])


def test_training_fits_the_temperature_on_the_validation_split(calibrated_run):
    card = read_json(calibrated_run / "model.json")["calibration"]
    clf = Classifier.load(calibrated_run)
    _, pixels, labels = _split(calibrated_run, clf, "val")
    logits, _ = clf.embed_pixels(pixels)
    expected = fit_temperature(logits, labels)
    assert card["method"] == "temperature" and card["images"] == len(labels) and not card["skipped"]
    assert card["temperature"] == pytest.approx(expected.temperature, rel=1e-3) and card["temperature"] != 1.0
    assert card["nll_after"] < card["nll_before"] and card["ece_after"] <= card["ece_before"]
    # and every probability the run gives out is softmax(logits / T)
    assert np.abs(clf.predict_pixels(pixels) - _softmax(logits, card["temperature"])).max() < 1e-5


def test_evaluation_writes_calibrated_probabilities_with_the_same_accuracy(calibrated_run):
    metrics = read_json(calibrated_run / "metrics.json")
    card = read_json(calibrated_run / "model.json")
    t = card["calibration"]["temperature"]
    assert metrics["calibration"]["temperature"] == t and metrics["schema_version"] == 2
    clf = Classifier.load(calibrated_run)
    files, pixels, labels = _split(calibrated_run, clf, "test")
    logits, _ = clf.embed_pixels(pixels)
    rows = {r["path"]: r for r in csv.DictReader(open(calibrated_run / "predictions.csv"))}
    written = np.array([[float(rows[f][f"p_{c}"]) for c in card["classes"]] for f in files])
    assert np.abs(written - _softmax(logits, t)).max() < 2e-6  # the file's 6 decimals
    raw = _softmax(logits)
    assert metrics["accuracy"] == pytest.approx(float((raw.argmax(1) == labels).mean()))  # argmax unchanged
    ece_raw, _ = expected_calibration_error(raw, labels)
    ece_cal, _ = expected_calibration_error(_softmax(logits, t), labels)
    assert metrics["calibration"]["ece_before"] == pytest.approx(ece_raw, abs=1e-4)
    assert metrics["ece"] == pytest.approx(ece_cal, abs=1e-4)


def test_calibrate_none_keeps_the_raw_softmax(calibrated_run, tmp_path):
    from imgclf.data.dataset import prepare_data
    from imgclf.pipeline.trust import fit_trust
    from imgclf.records import RunDir

    run = RunDir(calibrated_run)
    cfg = run.read_config().model_copy(update={"calibrate": "none"})
    data = prepare_data(cfg.data, cfg.img_size, cfg.color, cfg.val_split, cfg.test_split, cfg.seed)
    clf = Classifier.load(calibrated_run)
    calibration, _ = fit_trust(cfg, data, clf.model, run.read_card(), tmp_path)
    assert calibration.method == "none" and calibration.temperature == 1.0
    assert calibration.ece_after == calibration.ece_before


def test_the_report_says_when_the_temperature_sits_at_a_bound_or_worsens_the_test_split(calibrated_run, tmp_path):
    """A temperature pinned at the search's lower bound was shown as any other, and a test ECE that calibration
    made worse was reported as '0.107 → 0.458, accuracy unchanged' without a word."""
    from imgclf.calibration import T_MAX, T_MIN
    from imgclf.evaluation.report import write_report

    run = Path(shutil.copytree(calibrated_run, tmp_path / "run"))
    card, metrics = read_json(run / "model.json"), read_json(run / "metrics.json")
    card["calibration"]["temperature"] = T_MIN
    metrics["calibration"]["ece_before"] = 0.0  # below any calibrated ECE: temperature made this split worse
    write_json(run / "model.json", card)
    write_json(run / "metrics.json", metrics)
    html = write_report(run, explain=False).read_text()
    assert f"This temperature is the search&#39;s lower bound ({T_MIN})" in html
    assert (f"worse on test: the temperature fitted on {card['calibration']['images']} validation images does not "
            "carry over") in html
    card["calibration"]["temperature"], metrics["calibration"]["ece_before"] = T_MAX, 1.0
    write_json(run / "model.json", card)
    write_json(run / "metrics.json", metrics)
    html = write_report(run, explain=False).read_text()
    assert "the search&#39;s upper bound (50)" in html and "worse on test" not in html
    card["calibration"]["temperature"] = 1.7
    write_json(run / "model.json", card)
    assert "This temperature is" not in write_report(run, explain=False).read_text()


def test_one_calibration_verdict_weighs_the_overall_gap_and_the_ece():
    """The findings said 'over-confident' (confidence above accuracy by any margin) where the section's verdict
    said 'well calibrated' (gap within a point), for one and the same run with an ECE of 0.2."""
    from imgclf.evaluation.interpret import calibration_verdict

    assert calibration_verdict(0.05, 0.06) == "over-confident"
    assert calibration_verdict(-0.05, 0.06) == "under-confident"
    assert calibration_verdict(0.005, 0.2) == "over- and under-confident by bins"
    assert calibration_verdict(0.005, 0.02) == "well calibrated"


def test_a_temperature_that_raises_the_validation_ece_is_not_applied(calibrated_run, tmp_path, monkeypatch,
                                                                     capsys):
    """A 1-epoch model that answers one class for everything got T = 0.39 from the NLL fit, and its validation
    ECE went 0.105 → 0.449: the run kept the raw softmax's better calibration only if something checks."""
    from imgclf.calibration import TemperatureFit
    from imgclf.data.dataset import prepare_data
    from imgclf.pipeline import trust
    from imgclf.records import RunDir

    run = RunDir(calibrated_run)
    cfg = run.read_config()
    data = prepare_data(cfg.data, cfg.img_size, cfg.color, cfg.val_split, cfg.test_split, cfg.seed)
    clf = Classifier.load(calibrated_run)
    monkeypatch.setattr(trust, "fit_temperature", lambda logits, labels: TemperatureFit(40.0, 1.0, 0.9))
    calibration, _ = trust.fit_trust(cfg, data, clf.model, run.read_card(), tmp_path)
    assert calibration.method == "none" and calibration.temperature == 1.0
    assert calibration.ece_after == calibration.ece_before
    assert calibration.skipped.startswith("the fitted T = 40 lowered the validation NLL but raised its ECE (")
    # said where the run is watched too: config.yaml says temperature, and only the card and report said otherwise
    assert f"warning no temperature: {calibration.skipped}" in " ".join(capsys.readouterr().err.split())


def test_a_temperature_skipped_because_validation_is_all_right_is_said_in_training_and_the_report(
        calibrated_run, tmp_path, monkeypatch, capsys):
    """Every validation image right (common with a 10-image split): no temperature, recorded only in model.json,
    while training, evaluate and the report's summary said nothing, and the test split was badly under-confident."""
    import imgclf
    from imgclf.calibration import TemperatureFit
    from imgclf.pipeline import trust

    skip = "every validation image is already classified correctly, so sharper probabilities always score better"
    monkeypatch.setattr(trust, "fit_temperature", lambda logits, labels: TemperatureFit(1.0, 0.5, 0.5, skip))
    run = spoilable_copy(calibrated_run, tmp_path / "run")
    assert imgclf.calibrate(run).calibration.skipped == skip
    assert f"warning no temperature: {skip}" in " ".join(capsys.readouterr().err.split())
    page = " ".join(re.sub("<[^>]+>", " ", (run / "report.html").read_text()).split())
    assert f"Probabilities are not calibrated (no temperature): {skip}." in page


@pytest.fixture(scope="module")
def hot_run(tiny_run, tmp_path_factory) -> Path:
    """The tiny run with a temperature of 2.5 written into its card: far from 1, so a path that forgets it shows."""
    run = Path(shutil.copytree(tiny_run, tmp_path_factory.mktemp("hot") / "run"))
    card = read_json(run / "model.json")
    card["calibration"] = {"method": "temperature", "temperature": 2.5}
    write_json(run / "model.json", card)
    return run


def test_the_temperature_is_applied_in_predict_serve_and_onnx(hot_run, image_folder):
    from fastapi.testclient import TestClient

    from imgclf.cli import app
    from imgclf.export import export_run, load_onnx
    from imgclf.serve import create_app

    files = [sorted(image_folder.glob(f"{c}/*.png"))[1] for c in ("cat", "dog", "fox")]
    # every path in fp32, as the ONNX graph runs: bf16 against fp32 is tests/test_inference_precision.py
    clf = Classifier.load(hot_run, precision="32")
    pixels = np.stack([clf.decode(str(f)) for f in files])
    logits, _ = clf.embed_pixels(pixels)
    expected = _softmax(logits, 2.5)
    assert np.abs(expected - _softmax(logits)).max() > 0.05  # so that leaving T out cannot pass unnoticed

    def best(probs: np.ndarray) -> list[float]:
        return [float(p.max()) for p in probs]

    api = [p.probability for p in clf.predict([str(f) for f in files], top_k=3, unknown=False)]
    assert api == pytest.approx(best(expected), abs=1e-5)
    assert np.abs(clf.predict_pixels(pixels, tta=True) - np.mean(
        [_softmax(clf.embed_pixels(v)[0], 2.5) for v in _views(clf, pixels)], axis=0)).max() < 1e-5

    result = CliRunner().invoke(app, ["predict", str(hot_run), *map(str, files), "--format", "json", "--unknown", "off",
                                      "--precision", "32"])
    assert result.exit_code == 0, result.output
    assert [e["probability"] for e in json.loads(result.output)] == pytest.approx(best(expected), abs=1e-5)

    with TestClient(create_app(hot_run, threads=1, precision="32")) as client:
        r = client.post("/predict?top_k=3&unknown=off",
                        files=[("files", (f.name, f.read_bytes(), "image/png")) for f in files])
    assert r.status_code == 200, r.text
    served = [{t["label"]: t["probability"] for t in e["top"]} for e in r.json()["predictions"]]
    classes = clf.classes
    assert np.abs(np.array([[s[c] for c in classes] for s in served]) - expected).max() < 1e-5

    export_run(hot_run, "onnx")
    assert np.abs(load_onnx(hot_run).predict_pixels(pixels) - expected).max() < 1e-5


def _views(clf: Classifier, pixels: np.ndarray) -> list[np.ndarray]:
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float()
    return [v.permute(0, 2, 3, 1).round().to(torch.uint8).numpy() for v in clf.tta_views.require()(x)]


def test_the_report_shows_reliability_before_and_after_and_the_unknown_scores(calibrated_run):
    from imgclf.evaluation.report import write_report

    html = write_report(calibrated_run, explain=False).read_text()
    for key in ("reliability", "reliability_before", "unknown_scores"):
        assert (calibrated_run / "plots" / f"{key}.png").is_file() and f'id="fig-{key}"' in html, key
    t = read_json(calibrated_run / "model.json")["calibration"]["temperature"]
    assert f"T = {t:.2f}, fitted on the validation split" in html and 'id="unknown"' in html
    unknown = read_json(calibrated_run / "model.json")["unknown"]
    assert unknown["detector"] == "mahalanobis-l2" and unknown["features"] == "map-mean-max"  # what it reads, said
    assert (f"<dt>features</dt><dd>the last feature map&#39;s per-channel mean and max ({unknown['feature_dim']} "
            "values per image)</dd>") in html
    low, high = unknown["rejection_range"]
    assert f"on new images like them it rejects {100 * low:.1f} % to {100 * high:.1f} % (90 % range" in html
