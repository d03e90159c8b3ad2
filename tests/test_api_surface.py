"""The top-level Python API a notebook reaches for: the command line's verbs as functions (or a hint to the one
that does the job), each taking what the command takes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import imgclf
from imgclf.errors import ImgclfError


def test_compare_takes_one_folder_of_runs_as_a_path_and_writes_the_page(tiny_run, tmp_path, monkeypatch, caplog):
    """compare_runs("runs") iterated the string: "/" of an absolute path became a folder searched from the file
    system's root (given relative here, so that a regression fails at once rather than walk the disk)."""
    folder = tmp_path / "runs"
    for name in ("a", "b"):
        shutil.copytree(tiny_run, folder / name)
    monkeypatch.chdir(tmp_path)
    import logging
    import re

    with caplog.at_level(logging.WARNING, logger="imgclf"):  # copies: once, said as README's warnings are
        comparison = imgclf.compare("runs", out=tmp_path / "c.html")
    assert any(re.search("runs/b: the same settings and seed 0 as .*runs/a", r.getMessage()) for r in caplog.records)
    assert [s.name for g in comparison.groups for s in g.runs] == ["a"]
    assert "<table" in (tmp_path / "c.html").read_text()
    assert len(imgclf.compare(folder).groups) == len(comparison.groups)  # a Path alike


def test_calibrate_and_report_are_the_commands_functions(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    card = imgclf.calibrate(run, unknown_acceptance=0.9, report=False)
    assert card.unknown.acceptance == 0.9 and imgclf.load(run).card.unknown.acceptance == 0.9
    page = imgclf.report(run, explain=False)
    assert page == run / "report.html" and page.is_file()


@pytest.mark.parametrize("name, hint", [("predict", "imgclf.load(RUN).predict(images)"),
                                        ("export_run", "from imgclf.export import export_run")])
def test_a_verb_that_is_elsewhere_says_where(name, hint):
    with pytest.raises(AttributeError, match=rf"no attribute '{name}': .*{hint.replace('(', '.').replace(')', '.')}"):
        getattr(imgclf, name)


def test_train_says_fit_in_a_fresh_process():
    """imgclf.train is the training subpackage once anything imported it; in a fresh notebook it is the hint."""
    import subprocess
    import sys

    code = "import imgclf\ntry:\n    imgclf.train\nexcept AttributeError as e:\n    print(e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "no attribute 'train': imgclf.fit(data=..., ...) trains a run" in out


def test_the_audit_export_and_serve_subpackages_are_reachable_from_the_package():
    assert callable(imgclf.audit.audit) and callable(imgclf.export.export_run) and callable(imgclf.serve.create_app)


def test_explain_with_a_figure_asked_and_nothing_readable_is_refused(tiny_run, tmp_path):
    """The second call left the first call's figure in place without a word: a notebook showed old maps as new."""
    out = tmp_path / "why.png"
    broken = tmp_path / "typo.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ImgclfError, match=r"^images must be at least one readable image to draw into out.*"
                                          r"Received: 1 image\(s\), none readable"):
        imgclf.explain(tiny_run, [str(broken)], out=out)
    with pytest.raises(ImgclfError, match=r"Received: no image"):
        imgclf.explain(tiny_run, [], out=out)
    assert not out.exists()
    assert imgclf.explain(tiny_run, [str(broken)])[0].prediction.error  # without a figure: the list, as before


def test_what_the_api_returns_prints_as_one_readable_line(tiny_run, image_folder, tmp_path):
    """An AuditResult printed 46 KB in a notebook, a Comparison every run's config, an Explanation two arrays."""
    from imgclf.audit import audit

    result = audit(image_folder, out=tmp_path / "audit", page=False)
    text = repr(result)
    assert result.as_dict() == json.loads(result.json_path.read_text())  # JSON-ready: what audit.json holds
    assert text.startswith("AuditResult(folder=") and f"images={result.record.counts.images}" in text
    explanation = imgclf.explain(tiny_run, [str(next((image_folder / "cat").iterdir()))])[0]
    assert repr(explanation).startswith("Explanation(path=") and "heatmap=16x16)" in repr(explanation)
    shutil.copytree(tiny_run, tmp_path / "runs" / "a")
    other = shutil.copytree(tiny_run, tmp_path / "runs" / "b")
    (other / "config.yaml").write_text((other / "config.yaml").read_text().replace("seed: 0", "seed: 1"))
    comparison = imgclf.compare(tmp_path / "runs")
    assert repr(comparison).startswith("Comparison(runs=2, groups=[A: ")
    for shown in (text, repr(explanation), repr(comparison)):
        assert len(shown) < 400 and "\n" not in shown
    # and each gives its numbers as JSON, as Run and Prediction do (Explanation and Comparison had no as_dict)
    told = json.loads(json.dumps(explanation.as_dict(), allow_nan=False))
    assert told["prediction"] == explanation.prediction.as_dict() and told["explained"] == explanation.explained
    assert np.allclose(told["heatmap"], explanation.heatmap, atol=1e-4) and told["image_shape"][:2] == [16, 16]
    told = json.loads(json.dumps(comparison.as_dict(), allow_nan=False))
    assert [g["key"] for g in told["groups"]] == [g.key for g in comparison.groups] == ["A"]  # seeds: one group
    assert told["differing"] == comparison.differing and sum(len(g["runs"]) for g in told["groups"]) == 2
    by_group = {g["key"]: g for g in told["groups"]}
    for group in comparison.groups:
        assert [r["path"] for r in by_group[group.key]["runs"]] == [str(r.path) for r in group.runs]
        assert by_group[group.key]["stats"]["test_accuracy"]["mean"] == group.stats["test_accuracy"].mean


@pytest.mark.parametrize("call", [lambda: imgclf.report(None), lambda: imgclf.compare(None),
                                  lambda: imgclf.compare(3), lambda: imgclf.compare(["runs/a", None]),
                                  lambda: imgclf.export.export_run(3)])
def test_the_new_functions_name_what_is_not_a_run(call):
    """A bare TypeError ('NoneType' object is not iterable) named no argument."""
    with pytest.raises(ImgclfError, match=r"^(run_dir|runs|run) must be .*Received: an object of type (NoneType|int)"):
        call()


def test_a_word_for_a_switch_is_refused_and_the_run_is_kept(tiny_run, image_folder, tmp_path):
    """Python reads "no" as true: fit(overwrite="no") replaced the run it was meant to keep."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(ImgclfError, match=r"^overwrite must be one of \{False, True\}. Received: overwrite='no'"):
        imgclf.fit(data=str(image_folder), model="simple_cnn", img_size=16, epochs=1, out=str(run), overwrite="no")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("name, call", [
    ("report", lambda run, tmp: imgclf.fit(data=str(tmp), report="no")),
    ("tta", lambda run, tmp: imgclf.load(run).predict([str(tmp / "x.png")], tta="false")),
    ("explain", lambda run, tmp: imgclf.report(run, explain="no")),
    ("report", lambda run, tmp: imgclf.calibrate(run, report="no")),
    ("reverse", lambda run, tmp: imgclf.list_runs(str(tmp), reverse="no")),
    ("resume", lambda run, tmp: imgclf.tune(data=str(tmp), trials=2, resume="no")),
    ("page", lambda run, tmp: imgclf.audit.audit(str(tmp), page="no")),
    ("overwrite", lambda run, tmp: imgclf.lr_find(data=str(tmp), overwrite="no")),
    ("tta", lambda run, tmp: imgclf.load(run).predict([str(tmp / "x.png")], tta=__import__("torch").tensor(True))),
], ids=["fit-report", "predict-tta", "report-explain", "calibrate-report", "list_runs-reverse", "tune-resume",
        "audit-page", "lr_find-overwrite", "predict-tta-tensor"])
def test_every_switch_of_the_api_takes_true_or_false_only(name, call, tiny_run, tmp_path):
    with pytest.raises(ImgclfError, match=rf"^{name} must be one of \{{False, True\}}\. (.* )?Received: {name}="):
        call(tiny_run, tmp_path)


@pytest.mark.parametrize("name, call", [
    ("run_dir", lambda run, tmp: imgclf.load(3)),
    ("run_dir", lambda run, tmp: imgclf.evaluate(3)),
    ("run_dir", lambda run, tmp: imgclf.calibrate(3)),
    ("run_dir", lambda run, tmp: imgclf.explain(3, [])),
    ("resume", lambda run, tmp: imgclf.fit(resume=3)),
    ("config_file", lambda run, tmp: imgclf.fit(config_file=3)),
    ("data", lambda run, tmp: imgclf.evaluate(run, data=3)),
    ("folder", lambda run, tmp: imgclf.list_runs(3)),
    ("out", lambda run, tmp: imgclf.compare([run, run], out=3)),
    ("out", lambda run, tmp: imgclf.explain(run, [], out=3)),
    ("out", lambda run, tmp: imgclf.export.export_run(run, "onnx", 3)),
    ("data", lambda run, tmp: imgclf.audit.audit(3)),
    ("pattern", lambda run, tmp: imgclf.list_models(3)),
], ids=["load", "evaluate", "calibrate", "explain", "fit-resume", "fit-config_file", "evaluate-data", "list_runs",
        "compare-out", "explain-out", "export-out", "audit", "list_models"])
def test_what_is_not_a_path_is_refused_naming_the_keyword(name, call, tiny_run, tmp_path):
    """Path(3) raised a bare TypeError naming no argument; the API names its own keyword (run_dir, not RUN)."""
    with pytest.raises(ImgclfError, match=rf"^{name} must be "):
        call(tiny_run, tmp_path)


def test_a_missing_config_file_is_named_by_its_keyword(tmp_path):
    with pytest.raises(ImgclfError, match=r"^config_file must be an existing YAML file"):
        imgclf.fit(config_file=str(tmp_path / "nowhere.yaml"))


def test_compare_warns_of_a_page_without_html_as_the_command_does(tiny_run, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="imgclf"):
        imgclf.compare([tiny_run, shutil.copytree(tiny_run, tmp_path / "again")], out=tmp_path / "table.txt")
    assert any(f"out {tmp_path / 'table.txt'} has no .html extension" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "table.txt").read_text().lstrip().lower().startswith("<!doctype html")


def test_paths_starting_with_a_tilde_are_read_as_a_shell_reads_them(tiny_run, image_folder, tmp_path, monkeypatch):
    """fit and lr_find expanded "~"; load, evaluate, list_runs, compare, audit and predict took "~/x" literally
    ("no such folder", a prediction row "file not found")."""
    import shutil

    import imgclf
    from imgclf.audit import audit

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path / "..")  # where a "~" taken literally would be made (not the repository)
    shutil.copytree(tiny_run, tmp_path / "runs" / "a")
    shutil.copytree(tiny_run, tmp_path / "runs" / "b")
    shutil.copytree(image_folder, tmp_path / "col")
    image = next(p for p in sorted((tmp_path / "col").rglob("*.png")))
    tilde_image = "~/" + str(image.relative_to(tmp_path))
    clf = imgclf.load("~/runs/a")
    (row,) = clf.predict([tilde_image])
    assert row.error is None and row.path == str(image)
    count = len(list((tmp_path / "col").rglob("*.png")))
    assert imgclf.evaluate("~/runs/a", data="~/col").count == count
    assert len(imgclf.list_runs("~/runs")) == 2
    comparison = imgclf.compare(["~/runs/a", "~/runs/b"])  # copies of one run: compared as twins
    assert [why for _, why in comparison.skipped] == [f"the same settings and seed 0 as {tmp_path}/runs/a (a copy or "
                                                     "a rerun): counted once"]
    assert len(audit("~/col", out=str(tmp_path / "audit"), page=False).images.paths) == count
    # written where they were checked: "~/why.png" went to ./~/why.png
    imgclf.explain("~/runs/a", [tilde_image], out="~/why.png")
    assert (tmp_path / "why.png").is_file() and not (tmp_path / ".." / "~").exists()
    # the lock that keeps calibrate, report and evaluate off a training run is taken on the folder itself
    from imgclf.pipeline.run_folder import LOCK_FILE, not_while_training

    with not_while_training("~/runs/a", "report"):
        assert (tmp_path / "runs" / "a" / LOCK_FILE).exists()
    # "~name" of no user is a name, as a shell leaves it: refused as no run, not a RuntimeError
    with pytest.raises(ImgclfError, match="run"):
        imgclf.load("~nosuchuser_imgclf/r1")


def test_predicted_paths_keep_the_spelling_they_were_given(tiny_run, image_folder, monkeypatch):
    """"./a.png" came back as "a.png", "col//a.png" as "col/a.png" and a URL as "http:/host/x.png" ('file not
    found'): results could not be matched to their inputs. A column of paths as a numpy array (df.path.values)
    was refused as "not an image shape"."""
    import numpy as np

    import imgclf

    monkeypatch.chdir(image_folder)
    name = sorted(p for p in image_folder.rglob("*.png"))[0].relative_to(image_folder)
    given = [f"./{name}", f"{name.parent}//{name.name}", "http://example.com/x.png", f"{name.parent}/*.png"]
    rows = imgclf.load(tiny_run).predict(given)
    assert [r.path for r in rows] == given
    assert rows[0].error is None and rows[1].error is None and rows[0].label == rows[1].label
    assert rows[2].error == "a URL, not a file: imgclf reads local files (download it first)"
    # a shell's pattern, which Python does not expand: not a bare "file not found"
    assert rows[3].error == "file not found: a pattern is not expanded (pass glob.glob(pattern), or the folder)"
    column = np.array([str(name), f"./{name}"])
    assert [r.path for r in imgclf.load(tiny_run).predict(column)] == column.tolist()
    objects = np.array([str(name), f"./{name}"], dtype=object)  # pandas' df.path.to_numpy()
    assert [r.path for r in imgclf.load(tiny_run).predict(objects)] == objects.tolist()


def test_a_loaded_classifier_given_as_the_run_keeps_its_precision(tiny_run, image_folder, tmp_path, monkeypatch):
    """evaluate(clf) of a clf loaded at precision "32" scored at bf16 on a machine with native bf16, and
    explain(clf) predicted other probabilities than clf.predict."""
    import shutil

    import imgclf
    from imgclf import hardware

    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: True)  # auto would mean bf16 here
    run = shutil.copytree(tiny_run, tmp_path / "run")  # evaluate rewrites the run's scores: not the shared run's
    clf = imgclf.load(run, precision="32")
    assert imgclf.evaluate(clf, progress=False).precision == "32"
    image = sorted(image_folder.rglob("*.png"))[0]
    (explanation,) = imgclf.explain(clf, [image])
    assert explanation.prediction.probability == clf.predict([image])[0].probability
    assert imgclf.evaluate(clf, precision="bf16-mixed", progress=False).precision == "bf16-mixed"


def test_a_pil_image_closed_before_it_was_read_is_named_as_such_not_as_a_damaged_file(tiny_run, image_folder):
    from PIL import Image

    import imgclf

    path = sorted(image_folder.rglob("*.png"))[0]
    with Image.open(path) as img:
        pass
    (row,) = imgclf.load(tiny_run).predict([img])
    assert row.error.startswith("a PIL image closed before its pixels were read") and "damaged" not in row.error


def test_a_label_index_given_to_predict_points_to_evaluate(tiny_run, tmp_path):
    import imgclf

    index = tmp_path / "index.csv"
    index.write_text("a.png,cat\n")
    (row,) = imgclf.load(tiny_run).predict([str(index)])
    assert row.error.startswith("not an image: a label index? Score a run on one with imgclf evaluate RUN --data")


def test_the_package_is_typed_and_every_public_function_says_what_it_returns():
    """No py.typed: a user's type checker skipped imgclf ("missing library stubs or py.typed marker") and every
    result was Any; evaluate, compare, calibrate, report, list_runs, lr_find and tune had no return type."""
    import inspect
    import tomllib
    import typing
    from importlib.resources import files
    from pathlib import Path

    import imgclf

    assert files("imgclf").joinpath("py.typed").is_file()
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["imgclf"]  # in the wheel too
    for name in imgclf.__all__:
        function = getattr(imgclf, name)
        if inspect.isfunction(function):
            hints = typing.get_type_hints(function, {**vars(imgclf), **_type_names()})
            assert "return" in hints and hints["return"] is not typing.Any, name


def _type_names() -> dict:
    """The names the functions' string annotations use (imported under TYPE_CHECKING in the package)."""
    import os
    from collections.abc import Mapping
    from pathlib import Path

    from imgclf.config import TrainConfig
    from imgclf.evaluation.compare import Comparison
    from imgclf.evaluation.explain import Explanation
    from imgclf.inference import Classifier
    from imgclf.pipeline import Run
    from imgclf.pipeline.folds import Folds
    from imgclf.pipeline.lr_find import LRFindResult
    from imgclf.records import MetricsRecord, ModelCard
    from imgclf.runs import RunRow
    from imgclf.search.search import TuneResult

    return {"os": os, "Mapping": Mapping, "Path": Path, "TrainConfig": TrainConfig, "Comparison": Comparison,
            "Explanation": Explanation, "Classifier": Classifier, "Run": Run, "Folds": Folds,
            "LRFindResult": LRFindResult, "MetricsRecord": MetricsRecord, "ModelCard": ModelCard, "RunRow": RunRow,
            "TuneResult": TuneResult}


def test_a_train_config_built_or_changed_by_hand_answers_with_the_config_error():
    with pytest.raises(ImgclfError, match=r"img_size must be from 1 to 4,096. Received: img_size=-3"):
        imgclf.TrainConfig(data="d", img_size=-3)
    with pytest.raises(ImgclfError, match="Did you mean: epochs"):
        imgclf.TrainConfig(data="d", epoch=3)
    config = imgclf.TrainConfig(data="d")
    with pytest.raises(ImgclfError, match=r"Received: img_size=0"):
        config.img_size = 0
    assert config.img_size == imgclf.TrainConfig(data="d").img_size


def test_a_run_trained_quietly_from_python_is_repeated_with_output_from_its_config(tiny_run):
    """fit(progress=False) is the notebook's terminal, not the experiment: `imgclf train --config RUN/config.yaml`
    must not inherit the silence."""
    from imgclf.config import make_config
    from imgclf.io import read_yaml

    saved = read_yaml(tiny_run / "config.yaml")
    assert "progress" not in saved
    assert make_config(**saved).progress is True


def test_the_error_a_notebook_catches_is_reachable_from_the_package():
    from imgclf.errors import ImgclfError as Defined

    assert imgclf.ImgclfError is Defined and "ImgclfError" in imgclf.__all__
    with pytest.raises(imgclf.ImgclfError, match="epochs"):
        imgclf.fit(data="nowhere", epochs=-1)
    assert "imgclf.load" in imgclf.Classifier.__doc__


@pytest.mark.parametrize("call", [imgclf.load, imgclf.evaluate, imgclf.report, imgclf.calibrate,
                                  lambda run: imgclf.explain(run, [])])
def test_a_run_folder_that_is_not_there_is_named_by_the_apis_keyword(call, tmp_path):
    """'run must be ...' answered imgclf.load(run_dir=...) for a typo in the path."""
    missing = tmp_path / "runs" / "nope"
    with pytest.raises(ImgclfError, match=rf"^run_dir must be a run directory containing model\.json\. Received: "
                                          rf"run_dir='{missing}' \(no such folder\)"):
        call(str(missing))
    # a folder that is there but holds no run: the readers deeper named it `run` (the command line's RUN)
    for folder, problem in ((tmp_path / "empty", r"not a run: no model\.json"),
                            (tmp_path / "images", r"(an image folder|not a run)")):
        folder.mkdir()
        if folder.name == "images":
            (folder / "cat.png").write_bytes(b"")
        with pytest.raises(ImgclfError, match=rf"^run_dir must be a run directory containing model\.json\. "
                                              rf"Received: run_dir='{folder}' \((.* )?{problem}"):
            call(str(folder))
