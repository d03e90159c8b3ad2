"""`imgclf calibrate RUN` (`pipeline.recalibrate`): a finished run's temperature and unknown detector fitted again
on its own images, without training; every file that depends on them follows, and nothing else moves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import make_image_folder
from imgclf.cli import app
from imgclf.errors import ImgclfError
from imgclf.inference import Classifier
from imgclf.io import read_json
from imgclf.pipeline.recalibrate import recalibrate
from imgclf.records import RunDir


def _train(base: Path) -> Path:
    import imgclf

    data = make_image_folder(base / "data", classes=("cat", "dog", "fox"), per_class=40, size=16, seed=5)
    return imgclf.fit({"data": str(data), "model": "simple_cnn", "img_size": 16, "epochs": 3, "batch_size": 16,
                       "augment": "hflip",  # so that evaluation scores test-time views too
                       "out": str(base / "run"), "progress": False, "seed": 0, "model_args": {"width": 8},
                       "val_split": 0.3, "test_split": 0.2}, report=False).path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("recalibrate"))


@pytest.fixture
def run(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


def _val_pixels(run: Path, clf: Classifier) -> np.ndarray:
    files, _ = RunDir(run).read_dataset().split_paths("val")
    return np.stack([clf.decode(f) for f in files])


def test_another_acceptance_rate_moves_the_threshold_and_every_file_that_holds_it(run):
    before = read_json(run / "model.json")
    predictions_before = (run / "predictions.csv").read_text()
    card = recalibrate(run, unknown_acceptance=0.7, report=False)
    clf = Classifier.load(run)
    kept = 1.0 - clf.infer_pixels(_val_pixels(run, clf)).unknown.mean()
    assert card.unknown.acceptance == 0.7 and 0.7 <= kept < before["unknown"]["accepted"]
    assert read_json(run / "metrics.json")["unknown"]["threshold"] == card.unknown.threshold
    assert "unknown_acceptance: 0.7" in (run / "config.yaml").read_text()
    # the statistics moved to the name the card did not use, the old file is gone, the weights did not move
    assert card.unknown.statistics == "unknown-refit.safetensors" and not (run / "unknown.safetensors").exists()
    assert card.calibration.temperature == pytest.approx(before["calibration"]["temperature"])
    assert card.metrics.accuracy == before["metrics"]["accuracy"]
    assert read_json(run / "metrics.json")["tta"] is not None  # evaluated as training evaluates
    assert (run / "predictions.csv").read_text() != predictions_before  # the unknown column follows the threshold
    recalibrate(run, report=False)  # and back: the other name again
    assert RunDir(run).read_card().unknown.statistics == "unknown.safetensors"
    assert not (run / "unknown-refit.safetensors").exists()


def test_a_run_fitted_on_the_pre_logits_reads_what_the_current_version_fits(run):
    """A run whose detector read the pre-logits (every run before the map's mean and max): refitted, the card
    says map-mean-max and predictions use it."""
    from imgclf.data.dataset import prepare_data
    from imgclf.pipeline.trust import fit_trust

    stored = RunDir(run)
    cfg = stored.read_config()
    data = prepare_data(cfg.data, cfg.img_size, cfg.color, cfg.val_split, cfg.test_split, cfg.seed)
    _, unknown = fit_trust(cfg, data, Classifier.load(run).model, stored.read_card(), run, features="pre-logits")
    card = read_json(run / "model.json")
    card["unknown"] = {k: v for k, v in unknown.model_dump(mode="json").items() if k != "features"}
    card.pop("file_sha256")  # statistics refitted by hand: a card without the digests, as before them
    (run / "model.json").write_text(json.dumps(card))
    assert Classifier.load(run).feature_source == "pre-logits"
    recalibrate(run, report=False)
    assert Classifier.load(run).feature_source == "map-mean-max"
    assert RunDir(run).read_card().unknown.feature_dim == 2 * unknown.feature_dim


def test_a_run_whose_data_changed_is_refused_before_anything_is_written(tmp_path):
    run = _train(tmp_path)
    first = Path(RunDir(run).read_dataset().split_paths("train")[0][0])
    first.unlink()
    card_before = (run / "model.json").read_text()
    with pytest.raises(ImgclfError, match=r"its train split is not the one dataset.json lists"):
        recalibrate(run, unknown_acceptance=0.8)
    assert (run / "model.json").read_text() == card_before


def test_images_added_to_the_data_folder_since_are_left_out_of_the_refit(run, caplog):
    """One image added to a class (and a class folder added) made calibrate redraw the automatic split and refuse
    the run as if its images were gone; the refit reads the split the run recorded, and says what it left out."""
    import logging

    from PIL import Image

    data = Path(RunDir(run).read_config().data)
    Image.new("RGB", (16, 16), (200, 10, 10)).save(data / "cat" / "brand new.png")
    (data / "owl").mkdir()
    Image.new("RGB", (16, 16), (10, 10, 200)).save(data / "owl" / "o.png")
    record, scored = read_json(run / "dataset.json"), read_json(run / "metrics.json")["count"]
    try:
        with caplog.at_level(logging.WARNING, logger="imgclf"):
            card = recalibrate(run, unknown_acceptance=0.9, report=False)
    finally:  # the data folder is the module's trained run's
        (data / "cat" / "brand new.png").unlink()
        shutil.rmtree(data / "owl")
    assert card.unknown.acceptance == 0.9
    assert read_json(run / "dataset.json")["splits"] == record["splits"]
    assert read_json(run / "metrics.json")["count"] == scored  # its own test split, scored again
    assert "2 images of the data folder are not among the run's (dataset.json; added since it trained): left out" in \
        caplog.text


def test_a_run_that_left_classes_or_images_out_is_refitted_without_a_word_of_added_images(tmp_path, caplog):
    """A run trained with --drop-classes was refused by calibrate ("drop_classes must be one of {a, b}": the class
    holds none of the run's files, and the refit's scan lost it), after a warning that its images were added
    since; --classes left out images the warning called added too."""
    import logging

    import imgclf

    data = make_image_folder(tmp_path / "data", classes=("cat", "dog", "fox"), per_class=12, size=16, seed=3)
    common = {"data": str(data), "model": "simple_cnn", "img_size": 16, "epochs": 1, "batch_size": 8,
              "progress": False, "model_args": {"width": 4}, "val_split": 0.3, "test_split": 0.2}
    for name, selection in (("drop", {"drop_classes": ["fox"]}), ("keep", {"classes": ["cat", "dog"]})):
        run = imgclf.fit({**common, **selection, "out": str(tmp_path / name)}, report=False).path
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="imgclf"):
            assert recalibrate(run, unknown_acceptance=0.8, report=False).unknown.acceptance == 0.8
        assert "not among the run's" not in caplog.text, (name, caplog.text)


def test_a_file_the_run_skipped_as_unreadable_is_not_called_added(tmp_path, caplog):
    """Files training skipped (unreadable) are in no split of dataset.json: the refit that leaves out what the run
    never saw called them added since training."""
    import logging

    import imgclf

    data = make_image_folder(tmp_path / "data", classes=("cat", "dog"), per_class=12, size=16, seed=3)
    (data / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not the rest")
    run = imgclf.fit({"data": str(data), "model": "simple_cnn", "img_size": 16, "epochs": 1, "batch_size": 8,
                      "out": str(tmp_path / "run"), "progress": False, "model_args": {"width": 4},
                      "val_split": 0.3, "test_split": 0.2}, report=False).path
    assert [Path(s.path).name for s in RunDir(run).read_dataset().skipped] == ["broken.png"]
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        recalibrate(run, unknown_acceptance=0.8, report=False)
    assert "added since it trained" not in caplog.text


def test_a_run_trained_through_a_symlinked_folder_is_refitted(tmp_path):
    """dataset.json records the data folder's real path; calibrate compared it with the path as given, so every
    file of a run trained through a symlink "differed" and the refit was refused."""
    import imgclf

    real = make_image_folder(tmp_path / "real", classes=("cat", "dog"), per_class=12, size=16, seed=3)
    (tmp_path / "linked").symlink_to(real, target_is_directory=True)
    run = imgclf.fit({"data": str(tmp_path / "linked"), "model": "simple_cnn", "img_size": 16, "epochs": 1,
                      "batch_size": 8, "out": str(tmp_path / "run"), "progress": False, "model_args": {"width": 4},
                      "val_split": 0.3, "test_split": 0.2}, report=False).path
    card = recalibrate(run, unknown_acceptance=0.8, report=False)
    assert card.unknown.acceptance == 0.8


def test_the_split_the_run_recorded_is_refitted_whichever_release_drew_it(run):
    """Another release's draw (simulated: a val and a train image of one class swapped in dataset.json) is what
    the refit reads: a new draw would differ from the recorded split and be refused as changed data."""
    path = run / "dataset.json"
    record = read_json(path)
    train, val = record["splits"]["train"], record["splits"]["val"]
    j = train["labels"].index(val["labels"][0])
    val["files"][0], train["files"][j] = train["files"][j], val["files"][0]
    path.write_text(json.dumps(record))
    card = recalibrate(run, unknown_acceptance=0.9, report=False)
    assert card.unknown.acceptance == 0.9
    assert read_json(path) == record


def test_the_cli_refits_and_names_a_bad_value_in_one_line(run):
    runner = CliRunner()
    done = runner.invoke(app, ["calibrate", str(run), "--unknown-detector", "energy", "--no-report"])
    assert done.exit_code == 0, done.output
    assert "unknown: energy, threshold" in done.output and RunDir(run).read_card().unknown.detector == "energy"
    bad = runner.invoke(app, ["calibrate", str(run), "--unknown-detector", "knn"])
    # named with its flag, as train's errors are (it named only the setting, unknown_detector)
    assert bad.exit_code == 2 and "unknown_detector (--unknown-detector) must be" in bad.output and "'knn'" in bad.output
    assert "Traceback" not in bad.output and RunDir(run).read_card().unknown.detector == "energy"


def test_the_cli_says_when_no_temperature_was_fitted_and_why(run, monkeypatch):
    """It printed "temperature 1.000" as if one had been fitted."""
    from imgclf.calibration import TemperatureFit
    from imgclf.pipeline import trust

    why = "every validation image is classified correctly, so no temperature can be fitted"
    monkeypatch.setattr(trust, "fit_temperature", lambda logits, labels: TemperatureFit(1.0, 0.1, 0.1, why))
    done = CliRunner().invoke(app, ["calibrate", str(run), "--no-report"], env={"COLUMNS": "250"})
    assert done.exit_code == 0, done.output
    assert f"no temperature fitted ({why})" in " ".join(done.output.split()) and "temperature 1.000" not in done.output


def test_a_card_naming_no_statistics_file_keeps_its_file_until_the_new_card_is_written(run):
    """statistics null means unknown.safetensors (the readers' fallback): the refit must write the other name, or
    an interruption would leave the old card reading new statistics. And the old file is not needed to refit."""
    card = read_json(run / "model.json")
    card["unknown"]["statistics"] = None
    (run / "model.json").write_text(json.dumps(card))
    assert Classifier.load(run).head.needs_features  # still readable through the fallback name
    (run / "unknown.safetensors").write_bytes(b"damaged")
    refit = recalibrate(run, report=False)
    assert refit.unknown.statistics == "unknown-refit.safetensors" and not (run / "unknown.safetensors").exists()
    assert Classifier.load(run).infer_pixels(_val_pixels(run, Classifier.load(run, plain=True))).scores.size


def test_a_run_never_evaluated_is_not_evaluated_by_a_refit(run):
    """A tuning trial is trained without evaluation, so that the test split stays unseen: a refit keeps it so."""
    (run / "metrics.json").unlink()
    (run / "predictions.csv").unlink()
    recalibrate(run, unknown_acceptance=0.8)
    assert not (run / "metrics.json").exists() and not (run / "predictions.csv").exists()
    assert RunDir(run).read_card().unknown.acceptance == 0.8


def test_evaluations_of_other_splits_are_said_to_hold_the_earlier_scores(run, caplog):
    """evaluations/val/metrics.json kept the earlier threshold after a refit, with nothing to say so."""
    from imgclf.evaluation.run_eval import evaluate_run

    evaluate_run(run, split="val", progress=False)
    before = read_json(run / "evaluations" / "val" / "metrics.json")["unknown"]["threshold"]
    with caplog.at_level("WARNING", logger="imgclf"):
        card = recalibrate(run, unknown_acceptance=0.7, report=False)
    assert card.unknown.threshold != before
    assert "1 evaluation of this run (evaluations/val) was scored with the earlier" in caplog.text


def test_calibrate_and_resume_name_the_run_whose_data_moved(tiny_run, tmp_path):
    """Both read the run's own images again; they said "data must be an existing folder", naming a setting
    neither command takes."""
    import yaml

    import imgclf
    from conftest import spoilable_copy

    run_dir = spoilable_copy(tiny_run, tmp_path / "moved")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["data"] = str(tmp_path / "gone")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ImgclfError, match=r"^run must be a run whose data is where it was trained.*gone is no longer "
                                          r"there.*calibrate reads the run's own images again"):
        recalibrate(run_dir)
    with pytest.raises(ImgclfError, match=r"^resume must be a run whose data is where it was trained.*gone is no "
                                          "longer there"):
        imgclf.fit(resume=str(run_dir), epochs=3)


def test_calibrate_of_a_run_whose_data_folder_moved_offers_no_evaluate(tmp_path):
    """The folder really moved (dataset.json's root gone): the refusal offered `imgclf evaluate RUN --data FOLDER`,
    which scores another folder and refits nothing."""
    import imgclf
    from conftest import make_image_folder

    data = make_image_folder(tmp_path / "data", per_class=10)
    run = imgclf.fit(data=str(data), img_size=16, epochs=1, batch_size=16, progress=False, model="simple_cnn",
                     model_args={"width": 4}, out=str(tmp_path / "r"), report=False)
    data.rename(tmp_path / "moved")
    with pytest.raises(ImgclfError) as err:
        recalibrate(run.path)
    text = str(err.value)
    assert f"{data} is no longer a folder" in text and "calibrate reads the run's own images again" in text, text
    assert "imgclf evaluate" not in text


def test_a_run_object_given_to_calibrate_or_evaluate_shows_its_rewritten_files(run):
    """After calibrate(run, unknown_acceptance=0.8) the Run still said 0.95 and its metrics the old threshold:
    repr, as_dict() and the files disagreed."""
    import imgclf
    from imgclf.pipeline.run import Run

    files = RunDir(run)
    given = Run(run, files.read_config(), files.read_metrics(), None, 3, 1.0, "completed")
    imgclf.calibrate(given, unknown_acceptance=0.8, report=False)
    assert given.config.unknown_acceptance == 0.8 == files.read_config().unknown_acceptance
    assert given.metrics == files.read_metrics()
    assert given.as_dict()["metrics"]["unknown"] == json.loads((run / "metrics.json").read_text())["unknown"]
    (run / "metrics.json").unlink()
    imgclf.evaluate(given, progress=False)
    assert given.metrics == files.read_metrics()


def test_a_loaded_classifier_given_to_calibrate_predicts_with_the_new_fit(run):
    """calibrate(clf) rewrote the run, and clf went on predicting with the old temperature and threshold, where
    evaluate(clf) and a fresh load read the new ones."""
    import imgclf

    clf = imgclf.load(run, precision="32")
    images = sorted(str(p) for p in (Path(RunDir(run).read_dataset().root) / "cat").iterdir())[:12]
    before = clf.predict(images)
    # None is "not given", as fit takes it: the run's own detector kept (it was refused as "a valid number")
    imgclf.calibrate(clf, calibrate="none", unknown_acceptance=0.5, unknown_detector=None, report=False)
    after, fresh = clf.predict(images), imgclf.load(run, precision="32").predict(images)
    assert clf.card == RunDir(run).read_card() and clf.card.unknown.acceptance == 0.5
    assert [(p.probability, p.unknown) for p in after] == [(p.probability, p.unknown) for p in fresh]
    assert [(p.probability, p.unknown) for p in after] != [(p.probability, p.unknown) for p in before]
    # one loaded plain (a bare softmax) stays plain: it became a calibrated, unknown-flagging classifier
    plain = Classifier.load(run, plain=True, precision="32")
    raw = [(p.probability, p.unknown) for p in plain.predict(images)]
    imgclf.calibrate(plain, calibrate="temperature", unknown_acceptance=0.6, report=False)
    assert [(p.probability, p.unknown) for p in plain.predict(images)] == raw
    assert plain.card.unknown.acceptance == 0.6


def test_a_refit_that_cannot_be_scored_writes_nothing_and_one_cut_short_leaves_no_old_page(tmp_path, monkeypatch):
    """Test images gone: the card and config.yaml were rewritten before the evaluation refused them, and the old
    metrics.json, predictions.csv and report stood beside the new card, which `imgclf report` then mixed (the old
    detector's scores drawn against the new threshold). Interrupted while it scores, no page of the earlier fit
    is left to be read as the run's."""
    import imgclf
    from imgclf.evaluation import run_eval

    run = _train(tmp_path)
    imgclf.report(run, explain=False)
    before = {name: (run / name).read_bytes() for name in ("model.json", "config.yaml", "metrics.json")}
    files = sorted(p.name for p in run.iterdir())
    gone = Path(RunDir(run).read_dataset().split_paths("test")[0][0])
    moved = gone.rename(tmp_path / "moved.png")
    with pytest.raises(ImgclfError, match=r"a run whose test split is where dataset.json lists it"):
        recalibrate(run, unknown_acceptance=0.8)
    assert {name: (run / name).read_bytes() for name in before} == before and (run / "report.html").exists()
    assert sorted(p.name for p in run.iterdir()) == files  # refused before the refit wrote its statistics
    moved.rename(gone)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_eval, "evaluate_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        recalibrate(run, unknown_acceptance=0.8)
    assert RunDir(run).read_card().unknown.acceptance == 0.8 and not (run / "report.html").exists()


def test_the_cli_names_what_it_wrote_the_split_it_quotes_and_a_temperature_at_its_bound(run, monkeypatch):
    """On a tuning trial (never evaluated, its card's headline a validation score) it printed "test accuracy"
    and "wrote ... metrics.json, predictions.csv, report.html", none of which it wrote; and T = 50, the search's
    upper bound, read as an ordinary fitted temperature."""
    from imgclf.calibration import T_MAX
    from imgclf.pipeline import recalibrate as refit

    (run / "metrics.json").unlink()
    (run / "predictions.csv").unlink()
    card = RunDir(run).read_card()
    RunDir(run).write_card(card.model_copy(update={"metrics": card.metrics.model_copy(update={"split": "val"})}))
    done = CliRunner().invoke(app, ["calibrate", str(run)], env={"COLUMNS": "250"})
    assert done.exit_code == 0, done.output
    said = " ".join(done.output.split())
    assert "val accuracy " in said and "test accuracy" not in said
    assert "the run was never evaluated, so no metrics.json, predictions.csv or report.html" in said
    assert not (run / "metrics.json").exists() and not (run / "report.html").exists()

    fitted = refit.recalibrate  # a fit that stopped at the search's bound (the pipeline keeps it where ECE falls)
    def at_the_bound(*args, **kwargs):
        card = fitted(*args, **kwargs)
        bounded = card.calibration.model_copy(update={"method": "temperature", "temperature": T_MAX, "skipped": ""})
        return card.model_copy(update={"temperature": T_MAX, "calibration": bounded})

    monkeypatch.setattr(refit, "recalibrate", at_the_bound)
    said = " ".join(CliRunner().invoke(app, ["calibrate", str(run)], env={"COLUMNS": "250"}).output.split())
    assert "temperature 50.000 (the search's upper bound (50): the logits carry almost no information" in said


def test_an_export_made_before_the_refit_is_warned_of(run, caplog):
    """The export kept the old temperature and threshold, and code running it without imgclf was not told."""
    import logging

    (run / "export").mkdir()
    (run / "export" / "model.onnx").write_bytes(b"an earlier export")
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        recalibrate(run, unknown_acceptance=0.8, report=False)
    assert "export/model.onnx holds the earlier temperature and unknown threshold" in caplog.text
    assert f"imgclf export {run} --format onnx" in caplog.text and "model.pt2" not in caplog.text
