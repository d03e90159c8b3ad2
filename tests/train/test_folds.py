"""k-fold cross-validation (`--folds K`): K ordinary runs, a fixed test split, disjoint stratified validation
folds covering every other image once, folds.json's mean ± std, resuming, and compare's grouping."""

from __future__ import annotations

import json
import re
import shutil
import statistics
from collections import Counter
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

import imgclf
from conftest import make_image_folder
from run_walk import SPOILED_MARK
from imgclf.cli import app
from imgclf.errors import ImgclfError
from imgclf.pipeline.folds import METRICS, read_folds
from imgclf.records import FoldRow, RunDir, json_schemas

K = 3
TINY = {"model": "simple_cnn", "img_size": 16, "epochs": 1, "batch_size": 16, "progress": False,
        "model_args": {"width": 8}, "seed": 0}


@pytest.fixture(scope="module", params=["flat", "splits"])
def cross_validation(request, tmp_path_factory):
    """K=3 folds on a flat folder (test drawn with the seed) and on train/ val/ test/ folders (val/ pooled)."""
    root = tmp_path_factory.mktemp(f"cv-{request.param}")
    if request.param == "flat":
        data = make_image_folder(root / "data", per_class=20)
        extra = {"test_split": 0.2}
    else:
        data = make_image_folder(root / "data", layout="splits", per_split={"train": 9, "val": 4, "test": 5})
        extra = {}
    folds = imgclf.fit({"data": str(data), "out": str(root / "cv"), "folds": K, **TINY, **extra}, report=False)
    return request.param, data, folds


def _split(run: Path, name: str) -> list[tuple[str, int]]:
    s = RunDir(run).read_dataset().splits.get(name)
    return [] if s is None else list(zip(s.files, s.labels))


def test_folds_partition_the_non_test_images(cross_validation):
    layout, data, folds = cross_validation
    runs = [folds.path / f"fold-{i}" for i in range(1, K + 1)]
    assert folds.runs == runs and all(RunDir(r).has("model.json") for r in runs)
    tests = [_split(r, "test") for r in runs]
    assert tests[0] and all(t == tests[0] for t in tests)  # one test split, the same for every fold
    test = set(tests[0])
    every = {(str(p.relative_to(data)), ["cat", "dog", "fox"].index(p.parent.name)) for p in data.rglob("*.png")}
    vals = [set(_split(r, "val")) for r in runs]
    assert sum(len(v) for v in vals) == len(set().union(*vals))  # disjoint
    assert set().union(*vals) == every - test  # every non-test image validates once
    for r, val in zip(runs, vals):
        train = set(_split(r, "train"))
        assert not train & test and not val & test and not train & val
        assert train | val == every - test
        cfg = RunDir(r).read_config()
        assert (cfg.folds, cfg.fold) == (K, runs.index(r) + 1)
        assert "fold" in RunDir(r).read_dataset().val_source
    # stratified: each class spread over the folds as evenly as it can be
    for cls in range(3):
        sizes = [sum(1 for _, y in v if y == cls) for v in vals]
        assert max(sizes) - min(sizes) <= 1, (cls, sizes)
    if layout == "splits":  # the val/ folder is pooled with train/, not kept as a validation split of its own
        folded = {f.split("/")[0] for v in vals for f, _ in v}
        assert folded == {"train", "val"}, folded


def test_folds_json_holds_the_mean_and_std_of_the_fold_metrics(cross_validation):
    _, _, folds = cross_validation
    summary = json.loads((folds.path / "folds.json").read_text())
    assert summary == folds.summary and summary["folds"] == K
    accuracies = [RunDir(r).read_metrics().accuracy for r in folds.runs]
    f1s = [RunDir(r).read_metrics().macro.f1 for r in folds.runs]
    vals = [RunDir(r).read_card().metrics.val_accuracy for r in folds.runs]
    for name, values in (("test_accuracy", accuracies), ("test_macro_f1", f1s), ("val_accuracy", vals)):
        stat = summary["metrics"][name]
        assert stat["mean"] == pytest.approx(statistics.mean(values)), name
        assert stat["std"] == pytest.approx(statistics.stdev(values)), name
        assert [f[name] for f in summary["per_fold"]] == pytest.approx(values)
    assert summary["test_images"] == len(RunDir(folds.runs[0]).read_dataset().splits["test"].files)
    # the file is its record's, and its JSON Schema (docs/schema/folds_json.schema.json) accepts it as written
    Draft202012Validator(json_schemas()["folds.json"]).validate(summary)
    assert read_folds(folds.path).per_fold[0].test_accuracy == summary["per_fold"][0]["test_accuracy"]
    assert set(FoldRow.model_fields) - {"fold", "run", "epochs"} == set(METRICS) == set(summary["metrics"])


def test_a_bad_or_missing_folds_json_gets_a_one_line_error(cross_validation, tmp_path):
    _, _, folds = cross_validation
    summary = json.loads((folds.path / "folds.json").read_text())
    summary["per_fold"][0]["test_acuracy"] = 0.5  # a writer's typo must fail, not drift into the file
    (tmp_path / "folds.json").write_text(json.dumps(summary))
    with pytest.raises(ImgclfError, match=r"out .*folds.json matches its record.*test_acuracy"):
        read_folds(tmp_path)
    (tmp_path / "folds.json").write_text("{not json")
    with pytest.raises(ImgclfError, match=r"out .*folds.json can be read"):
        read_folds(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImgclfError, match=r"out .*no folds.json"):
        read_folds(tmp_path / "empty")


def test_a_fold_is_not_resumed_alone_with_other_settings(cross_validation):
    """Resumed with more epochs, fold 1 left folds.json with its old figures, and the next --folds run refused the
    folder; the cross-validation folder itself given to --resume said only "no config.yaml"."""
    _, _, folds = cross_validation
    before = (folds.path / "folds.json").read_bytes()
    with pytest.raises(ImgclfError, match=r"epochs for --resume .*fold-1 \(fold 1\) must be 1, as the other folds "
                                          r"of .* were trained. Received: epochs=2. Train every fold with it: imgclf "
                                          r"train .* --folds 3 --out .* --overwrite --epochs 2"):
        imgclf.fit(resume=folds.runs[0], epochs=2, report=False)
    assert (folds.path / "folds.json").read_bytes() == before and len(RunDir(folds.runs[0]).read_history()) == 1
    # the hint's command runs: the data as train's argument (--data was no option), --folds once with its new value
    other = make_image_folder(folds.path.parent / "other", per_class=4)
    with pytest.raises(ImgclfError, match=rf"Train every fold with it: imgclf train {re.escape(str(other))} --folds 3 "
                                          r"--out \S+ --overwrite \(and the other"):
        imgclf.fit(resume=folds.runs[0], data=str(other), report=False)
    with pytest.raises(ImgclfError, match=r"Train every fold with it: imgclf train \S+ --folds 2 --out \S+ "
                                          r"--overwrite \(and the other"):
        imgclf.fit(resume=folds.runs[0], folds=2, report=False)
    # a mistyped DATA beside --resume is not the run's own data gone
    typo = folds.path.parent / "typo"
    with pytest.raises(ImgclfError, match=rf"^data must be an existing folder or index file\. Received: "
                                          rf"data='{re.escape(str(typo))}' \(no such path\)"):
        imgclf.fit(resume=folds.runs[0], data=str(typo), report=False)
    # nor is it trained on with --overwrite: the summary was removed and the folder marked as an overwrite begun,
    # and the right command then read "an --overwrite with other settings was interrupted there"
    with pytest.raises(ImgclfError, match=r"^data must be an existing folder or index file"):
        imgclf.fit(data=str(typo), folds=K, out=str(folds.path), overwrite=True, report=False, **TINY)
    one_class = make_image_folder(folds.path.parent / "one-class", classes=("cat",), per_class=4)
    with pytest.raises(ImgclfError, match=r"^data must be a folder with at least 2 class folders"):
        imgclf.fit(data=str(one_class), folds=K, out=str(folds.path), overwrite=True, report=False, **TINY)
    from imgclf.pipeline.folds import OVERWRITE_MARK

    assert (folds.path / "folds.json").read_bytes() == before and not (folds.path / OVERWRITE_MARK).exists()
    with pytest.raises(ImgclfError, match=r"no config.yaml\). It holds a cross-validation: run the same imgclf train "
                                          r"DATA --folds K --out"):
        imgclf.fit(resume=folds.path, epochs=2, report=False)


def test_a_fold_trained_alone_resumes_with_more_epochs(tmp_path):
    """`--folds 3 --fold 2 --out cv/f2` (one machine's share) resumed with --epochs 2 was refused "as the other
    folds of cv were trained", naming a folder of unrelated runs and an --overwrite that would have written into
    it."""
    data = make_image_folder(tmp_path / "data", per_class=12)
    (tmp_path / "cv" / "unrelated").mkdir(parents=True)
    run = imgclf.fit({"data": str(data), "out": str(tmp_path / "cv" / "f2"), "folds": K, "fold": 2, **TINY,
                      "test_split": 0.2}, report=False)
    again = imgclf.fit(resume=run.path, epochs=2, report=False)
    assert again.epochs_run == 2 and len(RunDir(run.path).read_history()) == 2
    # as fold-2 it is a cross-validation's fold, even with no sibling yet (one cut in its first fold has none): its
    # settings are kept, not changed alone
    cut = shutil.copytree(run.path, tmp_path / "cv2" / "fold-2")
    with pytest.raises(ImgclfError, match=r"epochs for --resume .*fold-2 \(fold 2\) must be 2, as the "
                                          r"cross-validation of .*cv2 trains its folds"):  # no "other folds" yet
        imgclf.fit(resume=cut, epochs=3, report=False)


def test_the_summary_says_the_val_accuracy_is_after_the_batch_norm_recompute(cross_validation, tmp_path, capsys,
                                                                             monkeypatch):
    """2 folds of 1 epoch printed val accuracy 0.9487 directly above a val loss of 2.1546 (chance on 10 classes):
    the one the kept weights' after their BatchNorm statistics were recomputed, the other the epoch's line."""
    import shutil

    from imgclf.cli.training import _print_folds
    from imgclf.pipeline.folds import Folds

    layout, data, folds = cross_validation
    if layout != "flat":
        pytest.skip("once is enough")
    copy = Path(shutil.copytree(folds.path, tmp_path / "cv"))
    runs = [copy / r.name for r in folds.runs]
    card = RunDir(runs[0]).read_card()
    before = card.training.val_accuracy_after_batch_norm
    card.training.val_accuracy_after_batch_norm = 0.5 if before is None or abs(before - 0.5) > 0.01 else 0.9
    RunDir(runs[0]).write_card(card)
    monkeypatch.setenv("COLUMNS", "200")  # one row per line, whatever the terminal the tests run in
    _print_folds(Folds(copy, runs, folds.summary))
    said = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "val accuracy (BatchNorm statistics recomputed)" in said and "val loss (raw, as training chose" in said
    assert "after their BatchNorm statistics were recomputed on training images; the epochs' lines read" in said


def test_rerunning_skips_finished_folds_and_resumes_an_interrupted_one(cross_validation):
    layout, data, folds = cross_validation
    if layout != "flat":
        pytest.skip("once is enough")
    stamps = {r.name: (r / "model.json").stat().st_mtime_ns for r in folds.runs}
    # fold 2 interrupted after its last checkpoint: no card, no metrics
    for name in ("model.json", "metrics.json", "predictions.csv"):
        (folds.runs[1] / name).unlink()
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(folds.path), "--folds", str(K),
                                      "--model", "simple_cnn", "--img-size", "16", "--epochs", "1", "--batch-size",
                                      "16", "--model-args", "width=8", "--test-split", "0.2",
                                      "--checkpoint-every", "3"],
                                env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "fold 1/3: finished already, skipped" in result.output and "fold 2/3: resuming" in result.output
    # the resumed fold saves as the re-run asks (accepted, it was then silently dropped)
    assert RunDir(folds.runs[1]).read_config().checkpoint_every == 3
    assert (folds.runs[0] / "model.json").stat().st_mtime_ns == stamps["fold-1"]
    assert (folds.runs[2] / "model.json").stat().st_mtime_ns == stamps["fold-3"]
    assert RunDir(folds.runs[1]).has("metrics.json")
    assert "3 folds: mean ± std" in result.output and "test accuracy" in result.output
    # the two losses are named for what they are: training's raw one, and the one after the temperature
    said = " ".join(result.output.replace("│", " ").split())
    assert "val loss (raw, as training chose the epoch)" in said and "test loss (after the temperature)" in said
    # other settings than the finished folds had: refused, not mixed into one summary
    with pytest.raises(ImgclfError, match=r"differs in epochs \(1 there, 2 asked\)"):
        imgclf.fit({"data": str(data), "out": str(folds.path), "folds": K, **TINY, "epochs": 2, "test_split": 0.2},
                   report=False)
    # how the run saves and logs changes no weights: the finished folds are kept (they were refused as "differs in
    # checkpoint_every"), as for --num-workers
    stamps = {r.name: (r / "model.json").stat().st_mtime_ns for r in folds.runs}
    imgclf.fit({"data": str(data), "out": str(folds.path), "folds": K, **TINY, "test_split": 0.2,
                "checkpoint_every": 3, "logger": ["csv"]}, report=False)
    assert {r.name: (r / "model.json").stat().st_mtime_ns for r in folds.runs} == stamps
    # other images: the folds kept were split from the folder as it was (test sets of 6, 6 and 7 images, validation
    # sets overlapping, where folds.json said one test set)
    added = data / "cat" / "zz_added.png"
    shutil.copy(next((data / "cat").iterdir()), added)
    try:
        with pytest.raises(ImgclfError, match=r"fold-1 was split from other images \(1 added since\).*--overwrite"):
            imgclf.fit({"data": str(data), "out": str(folds.path), "folds": K, **TINY, "test_split": 0.2},
                       report=False)
    finally:
        added.unlink()


def test_folds_of_the_self_sizing_recipe_are_skipped_when_run_again(tmp_path):
    # each fold's config.yaml holds what its probe chose as fixed settings, its sizing.json what the command asked
    # for: the same command again finds them finished, another learning rate or batch (settings the probe
    # rewrites) does not
    data = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=12, size=28, mode="L")
    values = {"data": str(data), "out": str(tmp_path / "cv"), "folds": 2, "recipe": "fast", "time_limit": "5s",
              "batch_size": 16, "test_split": 0.2, "progress": False}
    first = imgclf.fit(values, report=False)
    stamps = [(run / "model.json").stat().st_mtime_ns for run in first.runs]
    assert all(RunDir(run).read_config().sizing == "fixed" for run in first.runs)
    again = imgclf.fit(values, report=False)
    assert [(run / "model.json").stat().st_mtime_ns for run in again.runs] == stamps
    with pytest.raises(ImgclfError, match="differs in label_smoothing"):
        imgclf.fit({**values, "label_smoothing": 0.0}, report=False)
    with pytest.raises(ImgclfError, match="differs in lr"):
        imgclf.fit({**values, "lr": 0.05}, report=False)
    with pytest.raises(ImgclfError, match="differs in batch_size"):
        imgclf.fit({**values, "batch_size": 32}, report=False)
    # the first fold probed; the second trained its choice, with no probe of its own
    assert not RunDir(first.runs[1]).has("sizing.json")
    # folds sized before sizing.json kept the request: the settings the probe rewrote cannot be compared
    for run in first.runs[:1]:
        stored = json.loads((run / "sizing.json").read_text())
        assert stored["requested"]["lr"] == 0.2 and stored["requested"]["sizing"] == "probe"
        (run / "sizing.json").write_text(json.dumps({**stored, "requested": None}))
    imgclf.fit({**values, "lr": 0.05}, report=False)
    assert [(run / "model.json").stat().st_mtime_ns for run in first.runs] == stamps
    (first.runs[0] / "sizing.json").write_text("{")  # damaged: one line naming the option, no traceback
    (first.runs[0] / SPOILED_MARK).write_text("sizing.json damaged on purpose\n")  # out of the walk over runs
    with pytest.raises(ImgclfError, match=r"^out must be a run directory whose sizing.json can be read"):
        imgclf.fit(values, report=False)


def test_compare_groups_the_folds(cross_validation, tmp_path):
    from imgclf.evaluation.compare import compare_runs

    _, _, folds = cross_validation
    comparison = compare_runs(folds.runs)
    assert [g.n for g in comparison.groups] == [K]
    group = comparison.groups[0]
    assert f"{K} of {K} folds" in group.label
    accuracies = [RunDir(r).read_metrics().accuracy for r in folds.runs]
    assert group.stats["test_accuracy"].mean == pytest.approx(statistics.mean(accuracies))
    assert group.stats["test_accuracy"].std == pytest.approx(statistics.stdev(accuracies))
    # a page inside the cross-validation's folder: the next --folds run refused it as a file of another
    from imgclf.evaluation.compare_render import write_compare_html

    with pytest.raises(ImgclfError, match=r"^out must be a page outside the run directories compared\. .*a "
                                          r"cross-validation's, study's or search's folder"):
        write_compare_html(comparison, folds.path / "compare.html")
    assert not (folds.path / "compare.html").exists()
    assert write_compare_html(comparison, tmp_path / "compare.html").is_file()


def test_the_folds_object_stands_for_its_folder_and_gives_its_numbers_as_json(cross_validation):
    """fit(folds=K) returned an object compare refused ("an object of type Folds") and without as_dict."""
    import json

    _, _, folds = cross_validation
    assert imgclf.compare(folds).groups[0].n == K  # the folder of fold runs
    as_json = json.loads(json.dumps(folds.as_dict(), allow_nan=False))
    assert as_json["path"] == str(folds.path) and len(as_json["runs"]) == K
    assert as_json["summary"] == json.loads((folds.path / "folds.json").read_text())


def test_the_compare_figure_calls_folds_folds(cross_validation, tmp_path, monkeypatch):
    from imgclf.evaluation import compare_render
    from imgclf.evaluation.compare import compare_runs

    from imgclf.evaluation import plots

    drawn = []

    monkeypatch.setattr(plots, "plot_compare_curves", lambda groups, path: drawn.extend(groups) or
                        Path(path).write_bytes(b""))
    _, _, folds = cross_validation
    compare_render.write_compare_html(compare_runs(folds.runs), tmp_path / "compare.html")
    assert [g["members"] for g in drawn] == ["folds"]


@pytest.mark.parametrize("k, allowed, extra", [
    (1, "from 2 to 100", {}), (0, "from 2 to 100", {}), (9, "at most 7, the non-test images of the smallest", {}),
    # the cap, not the classes' 7 images, limits K: "the smallest class" was blamed
    (3, r"at most 2, the per_class_max of train each class is cut to.*per_class_max=\{'train': 2\}",
     {"per_class_max": {"train": 2}}),
    (5, "at most 1, the per_class_max of train", {"per_class_max": {"train": 1}}),
    (9, "at most 7, the non-test images of the smallest", {"per_class_max": {"train": 8}}),  # the class
])
def test_bad_k_is_one_error_before_training(tmp_path, k, allowed, extra):
    data = make_image_folder(tmp_path / "data", per_class=8)  # test 10 %: 1 per class, 7 left to fold
    with pytest.raises(ImgclfError, match=allowed) as err:
        imgclf.fit({"data": str(data), "out": str(tmp_path / "cv"), "folds": k, **TINY, **extra}, report=False)
    assert f"folds={k}" in str(err.value) and len(str(err.value).splitlines()) == 1
    assert not (tmp_path / "cv").exists()
    assert Counter(p.parent.name for p in data.rglob("*.png")) == {"cat": 8, "dog": 8, "fox": 8}


def test_a_class_too_small_for_any_folds_is_named_before_a_fold_is_announced(tmp_path):
    """One image in a class: "folds must be at most 1" asked for what --folds cannot be (from 2), named no class,
    and came after "fold 1/2: training"."""
    from typer.testing import CliRunner

    from imgclf.cli import app

    data = make_image_folder(tmp_path / "data", classes=("cat", "dog", "single"), per_class=8)
    for extra in sorted((data / "single").iterdir())[1:]:
        extra.unlink()
    result = CliRunner().invoke(app, ["train", str(data), "--folds", "2", "--out", str(tmp_path / "cv"),
                                      "--epochs", "1", "--img-size", "16", "--model", "simple_cnn"])
    assert result.exit_code == 2 and "fold 1/2" not in result.output, result.output
    said = " ".join(result.output.split())
    assert "folds must be from 2 to the non-test images of the smallest class" in said
    assert "class 'single' has 1 non-test image: no number of folds fits" in said
    assert "leave it out: --drop-classes single" in said
    assert not (tmp_path / "cv").exists()
    # a class that allows fewer folds is named with its count, as the fold's own data refuses it
    with pytest.raises(ImgclfError, match=r"folds must be at most 7, the non-test images of the smallest class "
                                          r"\('cat'\)"):
        imgclf.fit({"data": str(data), "out": str(tmp_path / "cv"), "folds": 9, "drop_classes": ["single"],
                    **TINY}, report=False)


def test_the_fast_recipe_sizes_once_and_every_fold_trains_that_choice(tmp_path, monkeypatch):
    """With sizing=probe the first fold probes and the others train its choice (one model in the mean ± std,
    not whichever width each probe read); the same command, --lr auto included, finds every fold finished."""
    from imgclf.pipeline import sizing as sizing_module
    from imgclf.pipeline.sizing import SIZED_SETTINGS

    probes = []
    size_run = sizing_module.size_run

    def counted(*args, **kwargs):
        probes.append(1)
        return size_run(*args, **kwargs)

    monkeypatch.setattr(sizing_module, "size_run", counted)
    data = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=12, size=28, mode="L")
    asked = {"data": str(data), "recipe": "fast", "time_limit": "5s", "epochs": 2, "folds": 2, "lr": "auto",
             "test_split": 0.2, "progress": False, "out": str(tmp_path / "cv")}
    folds = imgclf.fit(asked, report=False)
    first, second = (RunDir(path) for path in folds.runs)
    chosen = {k: getattr(first.read_config(), k) for k in SIZED_SETTINGS}
    assert probes == [1] and chosen["sizing"] == "fixed"
    assert {k: getattr(second.read_config(), k) for k in SIZED_SETTINGS} == chosen
    assert first.has("sizing.json") and not second.has("sizing.json")
    assert first.read_config().lr_auto  # the finder ran for the first fold; the second trains its rate
    weights = {path: (path / "model.safetensors").stat().st_mtime_ns for path in folds.runs}
    again = imgclf.fit(asked, report=False)
    assert probes == [1] and {path: (path / "model.safetensors").stat().st_mtime_ns for path in again.runs} == weights


def _interrupted_in_fold_2(monkeypatch, cfg: dict, **kwargs):
    """imgclf.fit(cfg) stopped by a Ctrl-C as fold 2 starts its second epoch; the raised TrainingInterrupted."""
    from imgclf.train.callbacks import HistoryWriter
    from imgclf.train.fit import TrainingInterrupted

    original = HistoryWriter.on_train_epoch_start

    def interrupt(self, trainer, pl_module):
        if trainer.current_epoch == 1 and "fold-2" in str(self.run.path):
            raise KeyboardInterrupt
        original(self, trainer, pl_module)

    with monkeypatch.context() as m:
        m.setattr(HistoryWriter, "on_train_epoch_start", interrupt)
        with pytest.raises(TrainingInterrupted) as info:
            imgclf.fit(cfg, report=False, **kwargs)
    return info


def test_an_interrupted_fold_says_to_run_the_folds_command_again(tmp_path, monkeypatch):
    """The fold's own hint (`--resume FOLD`) would finish that fold and leave no folds.json."""
    data = make_image_folder(tmp_path / "data", per_class=12)
    cfg = {"data": str(data), "out": str(tmp_path / "cv"), "folds": K, **TINY, "epochs": 2, "test_split": 0.2}
    info = _interrupted_in_fold_2(monkeypatch, cfg)
    said = str(info.value)
    # with the folder: a command run without --out put its folds in runs/<model>-folds-N, and the same command
    # again started a new cross-validation beside it
    assert "(fold 2 of 3)" in said and f"same imgclf train --folds command again with --out {tmp_path / 'cv'}" in said
    assert f"(Python: the same imgclf.fit call with out={str(tmp_path / 'cv')!r})" in said
    assert "--resume" not in said and info.value.exit_code == 130
    # imgclf runs says the same of the fold (it said imgclf train --resume FOLD, which writes no folds.json)
    listed = {r.name: (r.status, r.reason) for r in imgclf.list_runs(tmp_path / "cv")}
    status, reason = listed["fold-2"]
    assert status == "interrupted" and reason.startswith(f"fold 2 of 3, stopped: run its cross-validation's command "
                                                         f"again, e.g. imgclf train {data} --folds 3 --out ")
    assert "--resume" not in reason and "--overwrite" not in reason
    folds = imgclf.fit(cfg, report=False)  # as it says: fold 1 kept, fold 2 resumed, fold 3 trained
    assert [len(RunDir(r).read_history()) for r in folds.runs] == [2, 2, 2]
    # a fold trained alone into the wrong folder (--fold 2 into fold-1) was counted as fold 1, its scores twice
    import shutil

    shutil.rmtree(tmp_path / "cv" / "fold-1")
    shutil.copytree(tmp_path / "cv" / "fold-2", tmp_path / "cv" / "fold-1")
    with pytest.raises(ImgclfError, match=r"fold-1 holds fold 2 \(its config.yaml\)"):
        imgclf.fit(cfg, report=False)


def test_an_interrupted_overwrite_run_again_keeps_its_own_folds_and_drops_the_old_summary(tmp_path, monkeypatch,
                                                                                          caplog):
    """An overwrite interrupted in fold 2 left the old folds.json describing models no longer there, and the same
    command run again (as the message says) trained fold 1 again; fewer folds than before left the old fold-4 and
    fold-5, which `runs` and `compare` listed with the new ones."""
    import os

    from imgclf.pipeline.folds import OVERWRITE_MARK

    data = make_image_folder(tmp_path / "data", per_class=15)
    base = {"data": str(data), "out": str(tmp_path / "cv"), **TINY, "test_split": 0.2}
    imgclf.fit({**base, "folds": 5}, report=False)
    again = {**base, "folds": K, "epochs": 2}
    info = _interrupted_in_fold_2(monkeypatch, again, overwrite=True)
    assert "with --overwrite too: the folds this overwrite trained are kept" in str(info.value)
    fold_2 = {r.name: r.reason for r in imgclf.list_runs(tmp_path / "cv")}["fold-2"]
    assert fold_2.endswith(f"--folds {K} --out {tmp_path / 'cv'} --overwrite with the same settings (it resumes "
                           "this fold)")
    assert not (tmp_path / "cv" / "folds.json").exists()  # it described the cross-validation being replaced
    first = (tmp_path / "cv" / "fold-1" / "model.safetensors").stat().st_mtime_ns
    folds = imgclf.fit(again, overwrite=True, report=False)  # the same command again
    assert (tmp_path / "cv" / "fold-1" / "model.safetensors").stat().st_mtime_ns == first  # kept, not trained again
    assert [len(RunDir(r).read_history()) for r in folds.runs] == [2, 2, 2]
    assert read_folds(folds.path).folds == K and [r.epochs for r in read_folds(folds.path).per_fold] == [2, 2, 2]
    assert sorted(p.name for p in folds.path.iterdir()) == ["fold-1", "fold-2", "fold-3", "folds.json"]
    assert not (folds.path / OVERWRITE_MARK).exists() and not os.path.exists(folds.path / "fold-4")
    # interrupted again, then finished without --overwrite: the overwrite is finished, not the old folds kept (fold 3
    # predates it: it was kept as it was, the data it was trained on perhaps changed since); the mark goes, so a
    # later --overwrite trains every fold
    mtime = lambda i: (tmp_path / "cv" / f"fold-{i}" / "model.safetensors").stat().st_mtime_ns  # noqa: E731
    third = mtime(3)
    _interrupted_in_fold_2(monkeypatch, again, overwrite=True)
    first = mtime(1)
    import logging

    with caplog.at_level(logging.WARNING, logger="imgclf"):  # said without progress lines too
        imgclf.fit({**again, "progress": False}, report=False)
    assert "an --overwrite of this folder was interrupted: finishing it" in caplog.text
    assert mtime(1) == first and mtime(3) != third
    assert not (folds.path / OVERWRITE_MARK).exists()
    # an overwrite with other settings interrupted: refused without --overwrite, not mixed
    _interrupted_in_fold_2(monkeypatch, {**again, "label_smoothing": 0.05}, overwrite=True)
    with pytest.raises(ImgclfError, match="an --overwrite with other settings was interrupted there"):
        imgclf.fit(again, report=False)


def test_a_time_limit_is_said_to_be_each_folds(tmp_path, caplog):
    """--time-limit 12s with 3 folds ran a minute, and folds it stopped after 2 and 10 epochs were averaged alike.
    Said without progress lines too (--no-progress silenced it with them)."""
    import logging

    data = make_image_folder(tmp_path / "data", per_class=12)
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        folds = imgclf.fit({"data": str(data), "out": str(tmp_path / "cv"), "folds": K, **TINY, "test_split": 0.2,
                            "time_limit": "10m", "progress": False}, report=False)
    assert (f"the time limit (10m) is each fold's: {K} folds take up to {K} times it, and folds it stops may train "
            "different numbers of epochs (folds.json gives each fold's)") in " ".join(caplog.text.split())
    assert [r.epochs for r in read_folds(folds.path).per_fold] == [1, 1, 1]


def test_a_val_split_is_said_to_change_nothing_and_does_not_block_a_rerun(tmp_path, caplog):
    """--val-split 0.3 with --folds trained the same folds as without it, without a word, and a rerun with 0.2 was
    refused as 'fold-1 differs in val_split'."""
    import logging

    data = make_image_folder(tmp_path / "data", per_class=12)
    cfg = {"data": str(data), "out": str(tmp_path / "cv"), "folds": K, **TINY, "test_split": 0.2}
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        first = imgclf.fit({**cfg, "val_split": 0.3}, report=False)
    assert "val_split=0.3 (a cross-validation validates each fold on 1/3 of the non-test images)" in caplog.text
    # its folds of 10 images are small: the advice is the folds', not the --val-split it calls unused
    said = " ".join(caplog.text.split())
    assert "the val split holds 10 images" in said and "give it more (fewer --folds, each fold a larger share, or " \
        "more images)" in said and "(--val-split, or more images)" not in said
    assert "a larger --val-split" not in said and "more validation images (fewer --folds" in said
    # said once, not once per fold (the folds share the data set and the settings)
    assert said.count("the val split holds 10 images") == 1, said
    stamp = (first.runs[0] / "model.json").stat().st_mtime_ns
    again = imgclf.fit({**cfg, "val_split": 0.2}, report=False)  # the same folds: finished, kept
    assert (again.runs[0] / "model.json").stat().st_mtime_ns == stamp


def test_calibrating_one_fold_refreshes_the_cross_validations_summary(cross_validation, tmp_path):
    """folds.json kept the fold's earlier test ECE and loss beside its new metrics.json, so the summary of the
    cross-validation no longer summarised its folds."""
    _, _, folds = cross_validation
    copy = Path(shutil.copytree(folds.path, tmp_path / "cv"))
    before = json.loads((copy / "folds.json").read_text())
    stale = {**before, "per_fold": [{**before["per_fold"][0], "test_ece": 0.999}, *before["per_fold"][1:]]}
    (copy / "folds.json").write_text(json.dumps(stale))  # as a summary of the fold's earlier scores reads
    imgclf.calibrate(copy / "fold-1", calibrate="none", report=False)
    after = json.loads((copy / "folds.json").read_text())
    ece = RunDir(copy / "fold-1").read_metrics().ece
    assert after["per_fold"][0]["test_ece"] == pytest.approx(ece) and ece != 0.999
    assert after["per_fold"][1:] == before["per_fold"][1:]
    # the cross-validation's command again: refused as "fold-1 differs in calibrate"; now the fold is refitted as
    # the command asks, without training, and the summary follows
    layout, data, _ = cross_validation
    trained = (copy / "fold-1" / "model.safetensors").read_bytes()
    from imgclf.config import make_config
    from imgclf.pipeline.folds import fit_folds

    lines: list[str] = []
    again = fit_folds(make_config(data=str(data), out=str(copy), folds=K, **TINY,
                                  **({"test_split": 0.2} if layout == "flat" else {})), report=False, log=lines.append)
    assert "fold 1/3: finished already, calibrated since with other settings: refitted as asked" in lines[0]
    assert RunDir(copy / "fold-1").read_config().calibrate == "temperature"
    assert (copy / "fold-1" / "model.safetensors").read_bytes() == trained
    assert json.loads((copy / "folds.json").read_text())["per_fold"][0]["test_ece"] == pytest.approx(
        before["per_fold"][0]["test_ece"])
    assert again.path == copy


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_of_other_runs_and_files_takes_no_folds_even_with_overwrite(tmp_path, overwrite):
    """`--folds 2 --out misc --overwrite` trained the folds beside misc's own run and notes, and the same command
    without --overwrite then refused the folder: a cross-validation that could no longer be run again."""
    data = make_image_folder(tmp_path / "data", per_class=8)
    misc = tmp_path / "misc"
    shutil.copytree(data, misc / "somerun")  # a folder of the user's (a real run's records would do the same)
    (misc / "notes.txt").write_text("mine")
    with pytest.raises(ImgclfError, match=r"^out must be a new folder, or one holding only fold-1 \.\.\. fold-K and "
                                          r"folds\.json\. .*\(holds notes\.txt, somerun\)\. Choose another --out"
                                          + (r" \(--overwrite replaces a cross-validation's folds, not other files "
                                             r"or runs\)\.$" if overwrite else r"\.$")):
        imgclf.fit({"data": str(data), "out": str(misc), "folds": 2, **TINY}, report=False, overwrite=overwrite)
    assert sorted(p.name for p in misc.iterdir()) == ["notes.txt", "somerun"]
