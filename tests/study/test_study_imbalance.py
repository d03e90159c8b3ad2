import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from pydantic import ValidationError
from typer.testing import CliRunner

from conftest import make_image_folder
from imgclf.errors import ImgclfError
from imgclf.records import CellCurves, StudyRecord, json_schemas
from imgclf.study.files import write_study
from imgclf.study.configurations import built_in_regularisation, configuration_settings
from imgclf.study.cells import run_cell
from imgclf.study.imbalance import run_imbalance_study

TINY = {"img_size": 8, "epochs": 1, "batch_size": 16, "model_args": {"width": 4}, "test_split": 0.3,
        "val_split": 0.15, "num_workers": 0}


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("pool"), classes=("a", "b", "c", "d"), per_class=24, size=8)


@pytest.fixture(scope="module")
def study_dir(pool, tmp_path_factory):
    """2 ratios x 2 configurations x 1 seed, 1 epoch each, run through the CLI."""
    from imgclf.cli import app

    out = tmp_path_factory.mktemp("study") / "s"
    args = ["study", "imbalance", str(pool), "--out", str(out), "--per-class", "8", "--rhos", "1,3",
            "--configs", "none,oversample", "--seeds", "0", "--model", "simple_cnn", "--model-args", "width=4",
            "--img-size", "8", "--epochs", "1", "--batch-size", "16", "--test-split", "0.3", "--val-split", "0.15",
            "--num-workers", "0", "--no-progress", "--no-run-reports"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.count(": trained") == 4
    # said before the first cell trains (test_the_study_says_what_its_model_keeps reads the record and page)
    assert "simple_cnn keeps batch norm (5 layers) in every configuration" in result.output
    return out


def test_study_writes_runs_json_and_html(study_dir):
    study = json.loads((study_dir / "study.json").read_text())
    assert study["state"] == "complete" and study["finished_runs"] == 4
    assert {(r["rho"], r["config"]) for r in study["summary"]} == {(1.0, "none"), (1.0, "oversample"),
                                                                 (3.0, "none"), (3.0, "oversample")}
    assert study["minority"] == ["a", "b"]
    assert study["subsets"]["3"]["counts"] == {"a": 4, "b": 4, "c": 12, "d": 12}
    for run in study["runs"]:
        run_dir = study_dir / run["run"]
        assert (run_dir / "metrics.json").exists() and (run_dir / "history.csv").exists()
        assert 0 <= run["accuracy"] <= 1 and 0 <= run["minority_recall"] <= 1
        assert len(run["curves"]["val_loss"]) == 1 == run["epochs"]
        assert set(run["per_class"]) == {"a", "b", "c", "d"}
    config = json.loads((study_dir / "runs" / "rho3-oversample-seed0" / "model.json").read_text())["training"]
    assert config["sampler"] == "oversample" and config["class_weight"] == "none"
    # the S4 table: per-class precision and recall for every ratio, per configuration
    assert set(study["table"]) == {"none", "oversample"} and set(study["table"]["none"]) == {"1", "3"}
    html = (study_dir / "study.html").read_text()
    # metrics vs rho, configurations overlaid, recall by config, (recall, curves) x 2
    assert html.count("data:image/png;base64,") == 7
    assert 'class="minority"' in html and "overfitting onset" in html
    assert "protocol <b>standard</b>" in html and "optimistic" not in html
    assert 'name="viewport"' in html and "<code>epochs=1</code>" in html and "{'" not in html  # settings as given
    assert all(set(r["curves"]) == {"loss", "acc", "val_loss", "val_acc"} for r in study["runs"])
    for png in ("metrics_vs_rho.png", "curves_by_config.png", "curves_none.png", "class_recall_oversample.png",
                "class_recall_by_config.png"):
        assert (study_dir / "plots" / png).stat().st_size > 5000
    # the file is its record's, and its JSON Schema (docs/schema/study_json.schema.json) accepts it as written
    Draft202012Validator(json_schemas()["study.json"]).validate(study)
    assert StudyRecord.model_validate(study).runs[0].curves.val_loss is not None


def test_study_curves_tick_whole_epochs(study_dir, monkeypatch, tmp_path):
    """A 3-epoch study's curves read 1.0, 1.5, 2.0, 2.5, 3.0 on the epoch axis."""
    from imgclf.study import figures

    study = json.loads((study_dir / "study.json").read_text())
    for run in study["runs"]:  # three epochs each, as the page's figures would draw them
        run["curves"] = {key: [0.5, 0.6, 0.7] for key in run["curves"]}
    for by_config in study["curves_by_config"].values():
        for curves in by_config.values():
            curves.update({key: [0.5, 0.6, 0.7] for key in curves})
    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: drawn.append(fig) or Path(path))
    figures.plot_curves(study, "none", tmp_path / "a.png")
    figures.plot_configs_overlaid(study, tmp_path / "b.png")
    figures.plot_curves(json.loads((study_dir / "study.json").read_text()), "none", tmp_path / "c.png")  # 1 epoch
    for fig in drawn:
        fig.canvas.draw()
        ticks = [t for ax in fig.axes if ax.get_xlabel() == "epoch" for t in ax.get_xticks()
                 if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_study_json_is_written_through_its_record(tmp_path):
    running = {"request": {"data": "/d", "mu": 0.5, "per_class": 8, "minority": None, "model": "simple_cnn",
                           "subset_seed": 0, "overrides": {}},
               "state": "running", "cells": [{"rho": 3.0, "config": "none", "seed": 0, "run": "runs/r"}]}
    written = write_study(tmp_path, running)
    assert json.loads((tmp_path / "study.json").read_text()) == written == {**running, "schema_version": 1}
    # a writer's misspelt key, or a finished study without its numbers, fails where it is written
    with pytest.raises(ValidationError, match="celss"):
        write_study(tmp_path / "typo", {**running, "celss": []})
    with pytest.raises(ValidationError, match="a complete study needs classes"):
        write_study(tmp_path / "bare", {**running, "state": "complete"})
    assert not (tmp_path / "typo").exists() and not (tmp_path / "bare").exists()
    # a cell's held-out curves go under one split's name
    with pytest.raises(ValidationError, match="under one name"):
        CellCurves(loss=[1.0], acc=[0.5], val_loss=[1.0], test_acc=[0.5])


@pytest.mark.parametrize("spoil, message", [
    (lambda d: d["cells"][0].update(seed=-1), r"whose study.json matches its record \(StudyRecord\).*cells\.0\.seed"),
    (lambda d: d.update(state="done"), r"whose study.json matches its record \(StudyRecord\).*state"),
    (None, r"whose study.json can be read"),
])
def test_a_damaged_study_json_is_one_clear_error(study_dir, pool, tmp_path, spoil, message):
    out = tmp_path / "s"
    out.mkdir()
    if spoil is None:
        (out / "study.json").write_text("{ not json")
    else:
        study = json.loads((study_dir / "study.json").read_text())
        spoil(study)
        (out / "study.json").write_text(json.dumps(study))
    with pytest.raises(ImgclfError, match=r"out must be a new folder, or one " + message):
        run_imbalance_study(pool, out, per_class=8, rhos=[1, 3], configs=["none"], model="simple_cnn",
                            overrides={**TINY, "progress": False})
    assert sorted(p.name for p in out.iterdir()) == ["study.json"], "nothing trained on a damaged study"


def test_a_study_from_before_protocols_is_extended_as_a_standard_one(study_dir, pool, tmp_path):
    out = tmp_path / "old"
    shutil.copytree(study_dir, out, symlinks=True)
    study = json.loads((out / "study.json").read_text())
    # as written before protocols (commit 2016752^): no protocol, no curves_by_config, no split or sizes per run
    del study["request"]["protocol"], study["schema_version"], study["protocol"], study["curves_by_config"]
    for run in study["runs"]:
        del run["split"], run["sizes"]
    (out / "study.json").write_text(json.dumps(study))
    log = []
    extended = run_imbalance_study(pool, out, per_class=8, rhos=[1, 3], configs=["none"], seeds=[0],
                                   model="simple_cnn", overrides={**TINY, "progress": False}, run_reports=False,
                                   log=log.append)
    assert extended["request"]["protocol"] == "standard" and extended["schema_version"] == 1
    assert log == ["[1/2] rho1-none-seed0: skipped (finished)", "[2/2] rho3-none-seed0: skipped (finished)"]


def test_rerun_skips_finished_cells_and_resumes_interrupted_ones(study_dir, pool):
    finished = study_dir / "runs" / "rho1-none-seed0" / "metrics.json"
    stamp = finished.stat().st_mtime_ns
    # an interrupted cell: trained, but stopped before evaluation (checkpoint there, no metrics.json)
    interrupted = study_dir / "runs" / "rho3-none-seed0"
    (interrupted / "metrics.json").unlink()
    # killed while being finished (metrics.json written, the report not yet), and a metrics.json left empty: both
    # were skipped as finished for good (the first kept its marker, `imgclf runs` calling it interrupted; the
    # second failed the study's summary after every other cell had trained)
    from imgclf.run_markers import FINISHING_FILE

    cut = study_dir / "runs" / "rho3-oversample-seed0"
    (cut / FINISHING_FILE).write_text("")
    emptied = study_dir / "runs" / "rho1-oversample-seed0"
    (emptied / "metrics.json").write_text("")
    log = []
    study = run_imbalance_study(pool, study_dir, per_class=8, rhos=[1, 3], configs=["none", "oversample"], seeds=[0],
                                model="simple_cnn", overrides={**TINY, "progress": False, "checkpoint_every": 7},
                                run_reports=False, log=log.append)
    assert sorted(log) == sorted([
        "[1/4] rho1-none-seed0: skipped (finished)", "[2/4] rho1-oversample-seed0: resumed",
        "[3/4] rho3-none-seed0: resumed", "[4/4] rho3-oversample-seed0: resumed"])
    assert finished.stat().st_mtime_ns == stamp
    # a resumed cell runs as the re-run asks (its checkpoint_every was accepted, then dropped)
    assert yaml.safe_load((interrupted / "config.yaml").read_text())["checkpoint_every"] == 7
    assert (interrupted / "metrics.json").exists() and study["state"] == "complete"
    assert not (cut / FINISHING_FILE).exists() and json.loads((emptied / "metrics.json").read_text())
    # a command that found every cell finished keeps the time of the one that trained (the page said "took 0.0 s")
    again = run_imbalance_study(pool, study_dir, per_class=8, rhos=[1, 3], configs=["none", "oversample"],
                                seeds=[0], model="simple_cnn", overrides={**TINY, "progress": False},
                                run_reports=False, log=lambda _: None)
    assert again["seconds"] == study["seconds"] and study["seconds"] > 0


def test_a_study_folder_refuses_other_settings(study_dir, pool):
    with pytest.raises(ImgclfError, match=r"out must be a new folder.*holds a study with other settings"):
        run_imbalance_study(pool, study_dir, per_class=6, rhos=[1, 3], configs=["none"], model="simple_cnn",
                            overrides={**TINY, "progress": False})
    with pytest.raises(ImgclfError, match=r"holds a study with other settings: \{'epochs': '1 -> 3'\}"):
        run_imbalance_study(pool, study_dir, per_class=8, rhos=[1, 3], configs=["none"], model="simple_cnn",
                            overrides={**TINY, "epochs": 3, "progress": False})


def test_a_rerun_differing_only_in_how_it_runs_continues_the_study(study_dir, pool):
    """--progress, --num-workers, --cache-dir change nothing a cell learns: the study was refused for them."""
    log = []
    run_imbalance_study(pool, study_dir, per_class=8, rhos=[1, 3], configs=["none"], seeds=[0], model="simple_cnn",
                        overrides={**TINY, "progress": True, "num_workers": 1, "checkpoint_every": 5},
                        run_reports=False, log=log.append)
    assert all(line.endswith("skipped (finished)") for line in log) and len(log) == 2
    # nor for a default given (--optimizer adam) or a value spelt otherwise (--lr 1e-3, the default 0.001)
    log = []
    run_imbalance_study(pool, study_dir, per_class=8, rhos=[1, 3], configs=["none"], seeds=[0], model="simple_cnn",
                        overrides={**TINY, "progress": False, "optimizer": "adam", "lr": "1e-3"}, run_reports=False,
                        log=log.append)
    assert all(line.endswith("skipped (finished)") for line in log) and len(log) == 2


def test_none_switches_off_a_declared_l2_and_the_study_names_what_its_model_cannot_switch_off():
    """model_s's 'none' trained with its Keras L2 penalties, dropout 0.5 and six batch norms, and nothing said so."""
    assert configuration_settings("none", "model_s")[1] == {"conv_l2": 0.0, "dense_l2": 0.0}
    assert configuration_settings("weighted", "fer_cnn")[1] == {"l2": 0.0}
    assert built_in_regularisation("model_s") == ["dropout 0.5 (2 layers)", "batch norm (6 layers)"]
    assert built_in_regularisation("simple_cnn") == ["batch norm (5 layers)"]
    assert built_in_regularisation("caltech_cnn") == []


def test_the_study_says_what_its_model_keeps_in_its_record_and_page(study_dir):
    record = json.loads((study_dir / "study.json").read_text())
    assert record["model_keeps"] == ["batch norm (5 layers)"]
    page = " ".join((study_dir / "study.html").read_text().split())
    assert "<strong>simple_cnn keeps batch norm (5 layers) in every configuration</strong>: it has no argument to " \
           "switch it off, so <code>none</code> is not free of regularisation" in page


def test_an_img_size_the_model_cannot_take_is_refused_before_anything_is_written(pool, tmp_path):
    """--img-size 32 with caltech_cnn (at least 37) was refused by the first cell, after the subsets and a
    study.json 'interrupted' were written."""
    with pytest.raises(ImgclfError, match=r"img_size for model caltech_cnn must be at least 37. Received: img_size=32"):
        run_imbalance_study(pool, tmp_path / "s", per_class=8, rhos=[1, 3], configs=["none"], seeds=[0],
                            model="caltech_cnn", overrides={**TINY, "img_size": 32, "model_args": {}})
    assert not (tmp_path / "s").exists()


def test_a_blank_out_is_refused_where_an_unset_variable_gave_the_current_folder(pool, tmp_path, monkeypatch):
    """out='' (an unset $OUT in a script) wrote a whole study, and a search, into the current folder."""
    from imgclf.search.folder import search_folder

    monkeypatch.chdir(tmp_path)
    for blank in ("", "  "):
        with pytest.raises(ImgclfError, match=r"^out must be a folder for the study"):
            run_imbalance_study(pool, blank, per_class=8, rhos=[1], configs=["none"], seeds=[0], model="simple_cnn",
                                overrides=TINY)
        with pytest.raises(ImgclfError, match=r"^out must be a folder for the search, or left out"):
            search_folder(blank, "simple_cnn", resume=False, data=str(pool))
    assert list(tmp_path.iterdir()) == []


def test_cells_an_earlier_release_configured_otherwise_are_not_averaged_with_new_ones(study_dir, pool, tmp_path):
    """model_s's 'none' cells trained with its L2 before the configurations switched it off: extended with another
    seed, the study averaged them with cells trained without it, under one name."""
    import shutil

    import yaml

    out = shutil.copytree(study_dir, tmp_path / "s")
    config = out / "runs" / "rho1-none-seed0" / "config.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["model_args"].pop("dropout")  # as a release whose 'none' left the model's own value
    config.write_text(yaml.safe_dump(settings))
    with pytest.raises(ImgclfError, match=r"^out must be a folder whose cells were trained with the configurations "
                                          r"as they are now.*rho1-none-seed0 was trained with model_args "
                                          r"\{'width': 4\}, where none now sets \{'dropout': 0.0\}"):
        run_imbalance_study(pool, out, per_class=8, rhos=[1, 3], configs=["none", "oversample"],
                            seeds=[0, 1], model="simple_cnn", overrides=TINY)


def test_configurations_map_to_settings():
    train, args = configuration_settings("none", "caltech_cnn")
    assert train == {"weight_decay": 0.0, "augment": "", "class_weight": "none", "sampler": "none", "loss": "ce"}
    assert args == {"dropout": 0.0, "batch_norm": False}
    train, args = configuration_settings("reg+bn", "caltech_cnn")
    assert train["weight_decay"] == 5e-4 and train["augment"] == "rotate=20,hflip,crop=3,fill=constant"
    assert args == {"dropout": 0.5, "batch_norm": True}
    assert configuration_settings("weighted", "caltech_cnn")[0]["class_weight"] == "balanced"
    assert configuration_settings("focal", "caltech_cnn")[0]["loss"] == "focal"
    assert configuration_settings("none", "simple_cnn")[1] == {"dropout": 0.0}  # simple_cnn has no batch_norm switch


def test_the_s4_recipes_train_as_the_study_configurations_of_the_same_name():
    """S4's configurations 2 and 3 as recipes and as study cells: the same augmentation, MATLAB's zero fill
    included (its imageDataAugmenter fills what rotation and translation uncover with 0)."""
    from imgclf.recipes import load_recipe

    for recipe, configuration in (("s4-caltech-cnn-reg", "reg"), ("s4-caltech-cnn-reg-bn", "reg+bn")):
        train, args = configuration_settings(configuration, "caltech_cnn")
        config = load_recipe(recipe)
        assert config["augment"] == train["augment"] and "fill=constant" in config["augment"], recipe
        assert config["weight_decay"] == train["weight_decay"] and config["model_args"]["dropout"] == args["dropout"]


@pytest.mark.parametrize("name, message", [
    ("regularised", "configs must be one of"),
    ("none+reg", "distinct"),
    ("oversample+undersample", "one sampler"),
])
def test_bad_configurations_are_refused(name, message):
    with pytest.raises(ImgclfError, match=message):
        configuration_settings(name, "caltech_cnn")


def test_configurations_need_the_model_arguments_they_switch():
    with pytest.raises(ImgclfError, match=r"model must be a model with the argument\(s\) \['batch_norm'\], which "
                                          r"configs entry 'reg\+bn' switches. Received: model='simple_cnn'"):
        configuration_settings("reg+bn", "simple_cnn")


def test_overrides_cannot_change_what_the_configurations_decide(pool, tmp_path):
    with pytest.raises(ImgclfError, match=r"Received: overrides=\{'weight_decay': 0.1\}"):
        run_imbalance_study(pool, tmp_path / "s", per_class=8, configs=["none"], overrides={"weight_decay": 0.1})
    with pytest.raises(ImgclfError, match="too few"):
        run_imbalance_study(pool, tmp_path / "s", per_class=20, rhos=[15], configs=["none"], model="simple_cnn")
    # nor which images and classes the cells train on: the subset decides (a class filter crashed the summary,
    # per_class_max levelled rho 4 to 1.25, folds left every cell unsummarised)
    for name, value in (("classes", ["a", "b"]), ("per_class_max", 5), ("folds", 3), ("drop_classes", ["a"])):
        with pytest.raises(ImgclfError, match=rf"Received: overrides=\{{'{name}': .*--per-class, --rhos"):
            run_imbalance_study(pool, tmp_path / "s", per_class=8, configs=["none"], overrides={name: value})
    assert not os.path.exists(tmp_path / "s"), "bad requests fail before anything is written"


def test_cli_takes_s4_recipes_but_lets_the_configurations_decide_regularisation(pool, tmp_path):
    from imgclf.cli import app

    # per-class 100 is too many for the pool: the command stops before training, after reading the recipe
    result = CliRunner().invoke(app, ["study", "imbalance", str(pool), "--out", str(tmp_path / "s"), "--per-class",
                                      "100", "--recipe", "s4-caltech-cnn-reg-bn", "--no-progress"])
    assert result.exit_code == 2
    assert "configurations set augment, weight_decay, model_args.batch_norm, model_args.dropout" in result.output
    assert "too few" in result.output
    flag = CliRunner().invoke(app, ["study", "imbalance", str(pool), "--out", str(tmp_path / "s"), "--per-class",
                                    "8", "--model-args", "dropout=0.2"])
    assert flag.exit_code == 2 and "model_args (--model-args) must be free of ['dropout']" in flag.output
    # a setting the configurations decide, given as a flag: the study's own refusal and the token that sets it, where
    # click said "No such option: --class-weight (Possible options: --weights)" (the pretrained weights' file)
    for flags, received, token in ((["--class-weight", "balanced"], "{'class_weight': 'balanced'}",
                                    "class_weight: --configs weighted"),
                                   (["--loss", "focal", "--seed", "3"], "{'loss': 'focal', 'seed': 3}",
                                    "loss: --configs focal")):
        given = CliRunner().invoke(app, ["study", "imbalance", str(pool), "--out", str(tmp_path / "g"),
                                         "--per-class", "8", *flags])
        said = " ".join(given.output.split())
        assert given.exit_code == 2 and f"Received: overrides={received}" in said and token in said, said
        assert "No such option" not in said and not (tmp_path / "g").exists()
    assert "--class-weight" not in CliRunner().invoke(app, ["study", "imbalance", "--help"]).output


def test_a_study_refuses_the_fast_recipes_probe_before_writing_anything(pool, tmp_path):
    from imgclf.cli import app

    # each cell's probe would pick its own width and add erasing and EMA to the configurations being compared
    result = CliRunner().invoke(app, ["study", "imbalance", str(pool), "--out", str(tmp_path / "s"), "--per-class",
                                      "8", "--recipe", "fast", "--no-progress"])
    assert result.exit_code == 2 and "sizing for a study" not in result.output
    assert "sizing must be fixed for a study" in " ".join(result.output.split()) and not (tmp_path / "s").exists()


def test_a_study_whose_first_cell_was_refused_takes_the_corrected_command_in_the_same_folder(pool, tmp_path):
    """A first cell refused by its model (an argument it lacks) left study.json and the subsets behind, and the
    corrected command was refused: "holds a study with other settings"; the folder had to be deleted by hand."""
    out = tmp_path / "s"
    args = dict(per_class=8, rhos=[1], configs=["none"], overrides={**TINY, "progress": False}, run_reports=False)
    # caltech_cnn has no width: refused by the cell's model (an image size too small is refused before any file)
    refused = {**args, "overrides": {**args["overrides"], "img_size": 40}}
    with pytest.raises(ImgclfError, match="width"):
        run_imbalance_study(pool, out, model="caltech_cnn", **refused)
    assert (out / "study.json").exists()
    study = run_imbalance_study(pool, out, model="simple_cnn", **args)
    assert study["state"] == "complete" and [c["config"] for c in study["runs"]] == ["none"]
    # once a cell has an epoch to keep, other settings are refused as before
    with pytest.raises(ImgclfError, match="holds a study with other settings"):
        run_imbalance_study(pool, out, model="simple_cnn", **{**args, "per_class": 6})
    # and while a cell is being trained (its train.lock held), even before its first epoch: nothing is deleted
    from filelock import FileLock

    busy = tmp_path / "busy"
    with pytest.raises(ImgclfError, match="width"):
        run_imbalance_study(pool, busy, model="caltech_cnn", **refused)
    cell = busy / "runs" / "rho1-none-seed0"
    cell.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cell / "train.lock")):
        with pytest.raises(ImgclfError, match="holds a study with other settings"):
            run_imbalance_study(pool, busy, model="simple_cnn", **args)
    assert cell.is_dir()


def test_a_study_out_inside_the_data_folder_is_refused_before_anything_is_written(pool, tmp_path):
    """The refusal came from the first subset's links, after study.json was written inside the data folder: the
    folder then read as one more class of the data, and the next study of it failed."""
    data = Path(shutil.copytree(pool, tmp_path / "data"))
    with pytest.raises(ImgclfError, match=r"^out must be a folder outside the data folder.*Received: out=.*data/study"):
        run_imbalance_study(data, data / "study", per_class=8, rhos=[1], configs=["none"], model="simple_cnn",
                            overrides={**TINY, "progress": False}, run_reports=False)
    assert sorted(p.name for p in data.iterdir()) == ["a", "b", "c", "d"]


def test_a_cell_that_stopped_early_is_finished_at_the_epochs_it_ran(study_dir, tmp_path):
    """Resumed at its whole --epochs, the same patience would stop it again at once, which the resume refuses."""
    import shutil

    from imgclf.study.cells import _finishing_epochs

    cell = Path(shutil.copytree(study_dir / "runs" / "rho1-none-seed0", tmp_path / "cell"))
    assert _finishing_epochs(cell) == {}
    card = json.loads((cell / "model.json").read_text())
    card["training"].update(stopped="early stopping", epochs_run=1)
    (cell / "model.json").write_text(json.dumps(card))
    assert _finishing_epochs(cell) == {"epochs": 1}


def test_a_cell_does_not_claim_the_recipe_its_settings_came_from(tmp_path):
    seen = {}
    status = run_cell(lambda values, overwrite: seen.update(values), tmp_path / "cell", tmp_path / "data",
                      "caltech_cnn", 0, *configuration_settings("none", "caltech_cnn"),
                      {"recipe": "s4-caltech-cnn-reg-bn", "epochs": 3})
    assert status == "trained" and seen["epochs"] == 3 and seen["seed"] == 0
    assert "recipe" not in seen  # config "none" differs from that recipe; study.json names it instead


# ---------------------------------------------------------------------------------------------------------
# protocol s4: S4's 70/30 train/test split, test curves per epoch, the three configurations overlaid
# ---------------------------------------------------------------------------------------------------------
S4_EPOCHS = 2


@pytest.fixture(scope="module")
def s4_study(tmp_path_factory):
    """S4's three configurations on caltech_cnn, 2 ratios, 2 epochs, through the CLI with --protocol s4 and S4's
    recipe (whose val_split / test_split the protocol replaces). 20 per class: 20 at 1:1, 10 / 30 at 3:1, so
    30 % of every class is a whole number of images."""
    from imgclf.cli import app
    from imgclf.models import get_model_info

    pool = make_image_folder(tmp_path_factory.mktemp("s4pool"), classes=("a", "b", "c", "d"), per_class=30, size=8)
    out = tmp_path_factory.mktemp("s4study") / "s"
    size = get_model_info("caltech_cnn").min_img_size
    result = CliRunner().invoke(app, [
        "study", "imbalance", str(pool), "--out", str(out), "--per-class", "20", "--rhos", "1,3", "--seeds", "0",
        "--protocol", "s4", "--recipe", "s4-caltech-cnn", "--img-size", str(size), "--epochs", str(S4_EPOCHS),
        "--batch-size", "16", "--lr", "0.01", "--num-workers", "0", "--no-progress", "--no-run-reports"])
    assert result.exit_code == 0, result.output
    assert result.output.count(": trained") == 6
    assert "configurations and protocol set" in result.output and "test_split, val_split" in result.output
    # the runs' threshold on S4's test split, said once; not each run's advice to enlarge its val split by
    # --val-split, which the protocol refuses (every cell's 24 or so images asked for it)
    assert result.output.count("protocol s4: each run still sets its unknown threshold on its 30 % split") == 1
    assert "--val-split" not in result.output and "the val split holds" not in result.output, result.output
    study = json.loads((out / "study.json").read_text())
    Draft202012Validator(json_schemas()["study.json"]).validate(study)
    return out, study


def test_s4_protocol_splits_every_subset_70_30_into_train_and_test(s4_study):
    out, study = s4_study
    assert study["protocol"]["name"] == "s4" and study["request"]["protocol"] == "s4"
    for run in study["runs"]:
        dataset = json.loads((out / run["run"] / "dataset.json").read_text())
        counts = study["subsets"][f"{run['rho']:g}"]["counts"]
        # the run's one held-out split (its 'val') is the test split: 30 % of every class, no third split
        assert set(dataset["sizes"]) == {"train", "val"}
        assert dataset["counts"]["val"] == {c: n * 3 // 10 for c, n in counts.items()}
        assert dataset["counts"]["train"] == {c: n - n * 3 // 10 for c, n in counts.items()}
        assert run["sizes"] == {"train": 56, "test": 24}
        # scored on that 30 % at the end, named for what it is (study.json said "val", as metrics.json does)
        assert run["split"] == "test" and run["test_images"] == 24
        assert json.loads((out / run["run"] / "metrics.json").read_text())["split"] == "val"
        card = json.loads((out / run["run"] / "model.json").read_text())
        assert run["batch_norm_images"] == card["training"]["batch_norm_images"]
        train = dataset["counts"]["train"].values()
        assert run["train_rho"] == pytest.approx(max(train) / min(train), abs=1e-4)
        config = (out / run["run"] / "config.yaml").read_text()
        assert "restore_best: false" in config and "early_stopping: null" in config
        # no temperature fitted on the split its ECE is measured on
        assert "calibrate: none" in config
        assert json.loads((out / run["run"] / "model.json").read_text())["calibration"]["method"] == "none"


def test_s4_protocol_records_train_and_test_curves_per_epoch(s4_study):
    out, study = s4_study
    for run in study["runs"]:
        assert run["epochs"] == S4_EPOCHS
        assert set(run["curves"]) == {"loss", "acc", "test_loss", "test_acc"}
        assert all(len(v) == S4_EPOCHS and None not in v for v in run["curves"].values())
        history = (out / run["run"] / "history.csv").read_text().splitlines()
        header = history[0].split(",")
        column = [float(row.split(",")[header.index("val_loss")]) for row in history[1:]]
        assert run["curves"]["test_loss"] == pytest.approx(column, abs=1e-5)
        assert run["best_epoch"] == 1 + min(range(len(column)), key=column.__getitem__)


def test_s4_protocols_lowest_test_loss_column_is_where_the_test_loss_is_lowest(s4_study, tmp_path):
    """s4 keeps the last epoch, as S4 did: the page's "lowest test loss" column showed that kept epoch whatever the
    curve did."""
    from imgclf.study.cells import read_cell

    out, study = s4_study
    run = shutil.copytree(out / study["runs"][0]["run"], tmp_path / "run")
    history = (run / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    at = header.index("val_loss")
    rows = [row.split(",") for row in history[1:]]
    for k, row in enumerate(rows):  # the test loss rises after the first epoch
        row[at] = f"{0.5 + k:.4f}"
    (run / "history.csv").write_text("\n".join([history[0]] + [",".join(r) for r in rows]) + "\n")
    cell = read_cell(run, study["minority"], "s4")
    assert cell["best_epoch"] == 1 and cell["epochs"] == S4_EPOCHS > 1


def test_s4_protocol_overlays_the_three_configurations(s4_study):
    out, study = s4_study
    overlay = study["curves_by_config"]
    assert set(overlay) == {"1", "3"}
    for by_config in overlay.values():
        assert list(by_config) == ["none", "reg", "reg+bn"]
        assert all(len(c["test_acc"]) == S4_EPOCHS == len(c["acc"]) for c in by_config.values())
    assert (out / "plots" / "curves_by_config.png").stat().st_size > 5000
    html = (out / "study.html").read_text()
    assert "Configurations compared: train and test curves per ratio" in html and "optimistic" in html


def test_s4_protocol_refuses_what_would_choose_on_the_test_split(pool, tmp_path):
    from imgclf.cli import app

    base = dict(per_class=8, configs=["none"], model="simple_cnn", protocol="s4")
    with pytest.raises(ImgclfError, match=r"free of val_split, test_split, restore_best, early_stopping, calibrate "
                                          r"under protocol s4.*Received: overrides=\{'early_stopping': 3\}"):
        run_imbalance_study(pool, tmp_path / "s", overrides={"early_stopping": 3}, **base)
    with pytest.raises(ImgclfError, match=r"schedule must be a schedule that does not watch the held-out split "
                                          r"under protocol s4.*Received: schedule='plateau', protocol='s4'"):
        run_imbalance_study(pool, tmp_path / "s", overrides={"schedule": "plateau"}, **base)
    with pytest.raises(ImgclfError, match=r"protocol must be one of \{s4, standard\}. Did you mean: s4\? "
                                          r"Received: protocol='S4 '"):
        run_imbalance_study(pool, tmp_path / "s", **{**base, "protocol": "S4 "})
    splits = make_image_folder(tmp_path / "splits", classes=("a", "b"), per_class=12, size=8, layout="splits")
    with pytest.raises(ImgclfError, match=r"data must be a folder of class folders under protocol s4"):
        run_imbalance_study(splits, tmp_path / "s", rhos=[1], **{**base, "per_class": 4})
    assert not (tmp_path / "s").exists(), "bad requests fail before anything is written"
    flag = CliRunner().invoke(app, ["study", "imbalance", str(pool), "--out", str(tmp_path / "s"), "--per-class", "8",
                                    "--protocol", "s4", "--val-split", "0.2"])
    assert flag.exit_code == 2 and "Received: overrides={'val_split': 0.2}" in flag.output


def test_a_study_folder_refuses_another_protocol(s4_study):
    out, study = s4_study
    with pytest.raises(ImgclfError, match=r"holds a study with other settings: \{.*'protocol': \"'s4' -> 'standard'\""):
        run_imbalance_study(study["request"]["data"], out, per_class=20, rhos=[1, 3], configs=["none"],
                            model="caltech_cnn", overrides=study["request"]["overrides"])


def test_the_api_applies_a_recipe_as_the_cli_does(pool, tmp_path, monkeypatch):
    """run_imbalance_study(overrides={"recipe": ...}) trains with the recipe's settings and model, the given
    overrides on top; it used to drop the recipe's name in each cell and with it every setting the recipe held."""
    import imgclf.pipeline

    seen = []

    class Stop(Exception):
        pass

    def fit(values, **kwargs):
        seen.append(values)
        raise Stop

    monkeypatch.setattr(imgclf.pipeline, "fit", fit)
    with pytest.raises(Stop):
        run_imbalance_study(pool, tmp_path / "s", per_class=8, rhos=[1], configs=["none"],
                            overrides={"recipe": "s4-caltech-cnn", "epochs": 2, "img_size": 37})
    cell = seen[0]
    assert cell["model"] == "caltech_cnn"
    assert (cell["optimizer"], cell["batch_size"], cell["lr_step"], cell["normalize"]) == ("sgd", 10, 10, "zerocenter")
    assert (cell["epochs"], cell["img_size"]) == (2, 37)  # the overrides win over the recipe


@pytest.mark.parametrize("saved_epochs", [0, 1])
def test_an_interrupted_cell_says_to_run_the_study_again(pool, tmp_path, monkeypatch, saved_epochs):
    """The cell's own hint (imgclf train --resume CELL) finishes that cell only; the study command resumes it and
    trains the cells after it. Both shapes of the run's message (before or after an epoch was saved) lose it."""
    import imgclf.pipeline
    from imgclf.train.fit import TrainingInterrupted, interrupt_message, interrupt_state

    def interrupted(*args, **kwargs):
        state = interrupt_state("KeyboardInterrupt", saved_epochs, saved_epochs)
        raise TrainingInterrupted(interrupt_message(state, saved_epochs, tmp_path / "cell"), state=state)

    monkeypatch.setattr(imgclf.pipeline, "fit", interrupted)
    with pytest.raises(TrainingInterrupted) as stopped:
        run_imbalance_study(pool, tmp_path / "st", per_class=8, rhos=[1], configs=["none"], model="simple_cnn",
                            overrides=TINY, run_reports=False)
    message = str(stopped.value)
    assert f"after {saved_epochs} completed epoch" in message and "study cell rho1-none-seed0" in message
    assert "imgclf study imbalance command again" in message and "imgclf train --resume" not in message
    assert "(Python: the same run_imbalance_study call)" in message
    from imgclf.records import StudyRecord

    study = StudyRecord.model_validate_json((tmp_path / "st" / "study.json").read_text())
    assert study.state == "interrupted" and [c.run for c in study.cells] == ["runs/rho1-none-seed0"]


def test_a_study_stopped_before_its_cells_says_interrupted(pool, tmp_path, monkeypatch):
    """Ctrl-C while the subsets are drawn left study.json at "running" (only a cell's interruption was caught)."""
    import imgclf.data.subset
    from imgclf.records import StudyRecord

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(imgclf.data.subset, "build_subset", ctrl_c)
    with pytest.raises(KeyboardInterrupt) as stopped:
        run_imbalance_study(pool, tmp_path / "st", per_class=8, rhos=[1], configs=["none"], model="simple_cnn",
                            overrides=TINY, run_reports=False)
    assert StudyRecord.model_validate_json((tmp_path / "st" / "study.json").read_text()).state == "interrupted"
    # and says how to go on, as a cell's stop does: the command said only "imgclf imbalance interrupted (Ctrl-C)"
    assert str(stopped.value).startswith("imgclf study imbalance interrupted (Ctrl-C). Continue the study by "
                                         "running the same imgclf study imbalance command again"), stopped.value
    assert getattr(stopped.value, "exit_code", None) == 130


def test_a_command_of_a_group_interrupted_is_named_with_its_group(pool, tmp_path, monkeypatch):
    """A plain Ctrl-C in a group's command (study imbalance, cache clear) named the command alone."""
    import imgclf.study.imbalance
    from imgclf.cli import app

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(imgclf.study.imbalance, "run_imbalance_study", ctrl_c)
    result = CliRunner().invoke(app, ["study", "imbalance", str(pool), "--out", str(tmp_path / "st"),
                                      "--per-class", "8"])
    assert result.exit_code == 130 and result.output.strip() == "error: imgclf study imbalance interrupted (Ctrl-C)", \
        result.output


def test_the_python_api_takes_a_settings_file_as_the_command_does(pool, tmp_path):
    """`imgclf study imbalance --config FILE` was merged by the command: run_imbalance_study had no config_file."""
    from imgclf.study.imbalance import run_imbalance_study

    config = tmp_path / "cell.yaml"
    config.write_text("model: caltech_cnn\nweight_decay: 0.01\nepochs: 1\n")
    said = []
    with pytest.raises(ImgclfError, match="too few"):  # stops after reading the file, before any training
        run_imbalance_study(pool, tmp_path / "s", per_class=100, config_file=config, log=said.append)
    assert any("configurations set weight_decay" in line for line in said), said


def test_the_model_given_drops_a_recipes_model_args_for_another_model(pool, tmp_path, monkeypatch):
    """`--recipe fast-fmnist --model simple_cnn` kept the recipe's fast_resnet model_args (width 16), as
    `imgclf train` would not."""
    import imgclf.study.settings as settings
    from imgclf.study.imbalance import run_imbalance_study

    layered = []
    real = settings.study_settings
    monkeypatch.setattr(settings, "study_settings", lambda *a, **k: layered.append(real(*a, **k)) or layered[-1])
    with pytest.raises(ImgclfError, match="too few"):
        run_imbalance_study(pool, tmp_path / "s", per_class=100, model="simple_cnn", configs=["none"],
                            overrides={"recipe": "fast-fmnist", "epochs": 1})
    model, values, _ = layered[0]
    assert model == "simple_cnn" and "width" not in (values.get("model_args") or {}), values


def test_a_bad_value_in_the_settings_file_is_blamed_on_the_file_and_an_empty_data_on_data(pool, tmp_path):
    """`study imbalance --config FILE` said `epochs must be ...` without the file; `study imbalance ""` blamed
    out ("inside the data folder"): "" was the working folder."""
    from imgclf.study.imbalance import run_imbalance_study

    config = tmp_path / "cell.yaml"
    config.write_text("epochs: many\n")
    with pytest.raises(ImgclfError, match=r"^epochs in .*cell\.yaml must be a valid integer"):
        run_imbalance_study(pool, tmp_path / "s", per_class=8, config_file=config)
    with pytest.raises(ImgclfError, match=r"^epochs must be a valid integer"):  # the flag replaced the file's
        run_imbalance_study(pool, tmp_path / "s", per_class=8, config_file=config, overrides={"epochs": "x"})
    with pytest.raises(ImgclfError, match=r"^data must be a path"):
        run_imbalance_study("", tmp_path / "s", per_class=8)
    assert not (tmp_path / "s").exists()


def test_a_setting_only_some_configurations_read_is_given_to_them_alone(pool, tmp_path, capsys):
    """--focal-gamma beside configurations none,focal: the focal cell trains with it, the plain cell without it
    and without a warning that it went unread (the study asked for it for the focal cells); a setting no
    configuration reads is warned of once, for the study."""
    import yaml

    study = run_imbalance_study(pool, tmp_path / "s", per_class=8, rhos=[1.0], configs=["none", "focal"],
                                model="simple_cnn", overrides={**TINY, "focal_gamma": 1.0, "lr_step": 3},
                                run_reports=False)
    err = " ".join(capsys.readouterr().err.split())
    assert study["finished_runs"] == 2
    assert "settings this run does not use" not in err
    assert err.count("settings no configuration of this study reads") == 1
    assert "reads, so they change nothing: lr_step (configurations: none, focal)" in err
    used = {c: yaml.safe_load((tmp_path / "s" / "runs" / f"rho1-{c}-seed0" / "config.yaml").read_text())
            for c in ("none", "focal")}
    assert used["focal"]["focal_gamma"] == 1.0 and used["focal"]["loss"] == "focal"
    assert used["none"]["focal_gamma"] == 2.0 and used["none"]["loss"] == "ce"  # the default: it read none
    assert used["none"]["lr_step"] == used["focal"]["lr_step"] != 3
    # the request keeps what was asked: extending the study with the same command is accepted
    assert json.loads((tmp_path / "s" / "study.json").read_text())["request"]["overrides"]["focal_gamma"] == 1.0


def test_study_figure_titles_fit_their_figures(study_dir, monkeypatch, tmp_path):
    """One ratio's curve figure is 4 inches wide; its one-line title was cut at both edges."""
    from imgclf.study import figures

    study = json.loads((study_dir / "study.json").read_text())
    one_ratio = {**study, "runs": [r for r in study["runs"] if r["rho"] == 1.0],
                 "curves_by_config": {k: v for k, v in study["curves_by_config"].items() if float(k) == 1.0}}
    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: drawn.append(fig) or Path(path))
    figures.plot_curves(one_ratio, "none", tmp_path / "a.png")
    figures.plot_configs_overlaid(one_ratio, tmp_path / "b.png")
    for fig in drawn:
        fig.canvas.draw()
        title, frame = fig._suptitle.get_window_extent(), fig.bbox
        assert frame.x0 <= title.x0 and title.x1 <= frame.x1, (fig._suptitle.get_text(), title, frame)


@pytest.mark.parametrize("stop", ["ctrl-c", "error"])
def test_a_study_extension_stopped_midway_keeps_the_finished_cells_results(pool, tmp_path, monkeypatch, stop):
    """More seeds added to a finished study, stopped after the first new cell: study.json kept only the request and
    the grid ("interrupted"), the earlier results gone, and study.html still read "2 of 2 runs finished". A cell
    that failed with an error left the state "running"."""
    import imgclf.pipeline
    from imgclf.errors import ImgclfError
    from imgclf.records import StudyRecord

    out = tmp_path / "st"
    settings = dict(per_class=8, rhos=[1], configs=["none"], model="simple_cnn", overrides=TINY, run_reports=False)
    run_imbalance_study(pool, out, seeds=[0, 1], **settings)
    fit = imgclf.pipeline.fit

    def stopped_after_one(*args, **kwargs):
        if "seed2" in str(kwargs.get("out") or (args[0] or {}).get("out", "")):
            fit(*args, **kwargs)
            return
        raise KeyboardInterrupt if stop == "ctrl-c" else ImgclfError("a setting this cell refused")

    monkeypatch.setattr(imgclf.pipeline, "fit", stopped_after_one)
    with pytest.raises(KeyboardInterrupt if stop == "ctrl-c" else ImgclfError):
        run_imbalance_study(pool, out, seeds=[0, 1, 2, 3], **settings)
    study = StudyRecord.model_validate_json((out / "study.json").read_text())
    assert study.state == "partial" and study.finished_runs == 3 and len(study.runs) == 4
    assert study.summary[0].seeds == [0, 1, 2]
    page = " ".join((out / "study.html").read_text().split())
    assert "3 of 4 runs finished" in page and "This study is partial" in page


@pytest.mark.parametrize("flag, value, words", [
    ("--configs", "none,none", "configs must be distinct configurations"),
    # one configuration spelled two ways trained every cell twice, shown as two configurations scoring alike
    ("--configs", "weighted+focal,focal+weighted", "configs entry must be a configuration not given already in "
                                                   "another order. Received: configs entry='focal+weighted' (the "
                                                   "same tokens as another entry, 'weighted+focal')"),
    ("--rhos", "1,,3", "rhos must be a comma-separated list of float values such as 1,3,7,15. Received: rhos='1,,3' "
                       "(an item is empty)"),
    ("--seeds", "0,1,", "seeds must be a comma-separated list of int values such as 0,1,2. Received: seeds='0,1,' "
                        "(an item is empty)"),
    ("--configs", "", "configs must be a comma-separated list of str values such as none,reg,reg+bn. Received: "
                      "configs=''"),
    # two ratios printed alike would share a subset folder and cell names (rho1): refused before anything is written
    ("--rhos", "1,1.0000001", "rhos must be ratios that differ in their first 6 digits such as 1,3,7,15. Received: "
                              "rhos=[1.0, 1.0000001] (1 named twice"),
])
def test_a_repeated_configuration_or_an_empty_list_item_is_refused(pool, tmp_path, flag, value, words):
    """--configs none,none ran the grid with the second "skipped (finished)", and --rhos 1,,3 ran 1 and 3 without
    a word, where --rhos 1,1 and --seeds 0,0 were refused."""
    from imgclf.cli import app

    result = CliRunner().invoke(app, ["study", "imbalance", str(pool), "--out", str(tmp_path / "s"), flag, value,
                                      "--per-class", "8", "--model", "simple_cnn", "--epochs", "1", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert words in " ".join(result.output.split()), result.output
    assert not (tmp_path / "s" / "study.json").exists()


def test_a_study_extended_with_a_configuration_it_holds_in_another_order_is_refused():
    """Extended with bn+reg after reg+bn, every cell of that configuration was trained again under a new name."""
    from imgclf.study.configurations import refuse_respelled

    refuse_respelled(["reg+bn", "none"], ["none", "reg+bn"])  # the same spelling extends the same cells
    with pytest.raises(ImgclfError, match=r"configs entry must be .*Received: configs entry='bn\+reg' \(the same "
                                          r"tokens as the study's own 'reg\+bn'\)\. Name it 'reg\+bn' \(its cells "
                                          r"are trained already\)"):
        refuse_respelled(["bn+reg"], ["none", "reg+bn"])


def test_a_subset_whose_total_moved_says_so_in_the_log_the_record_and_the_page(pool, study_dir, tmp_path):
    """rho 2.5 = 5/2 makes a minority class a multiple of 2 images and a majority class the same multiple of 5: 28
    images where 4 x 8 were asked. `imgclf subset` said so; the study trained on them without a word, and its page
    said "base set 8 per class"."""
    from imgclf.records import StudyRecord

    said = []
    run_imbalance_study(pool, tmp_path / "st", per_class=8, rhos=[2.5], configs=["none"], model="simple_cnn",
                        overrides=TINY, run_reports=False, log=said.append)
    text = ("the total is 28 images instead of 32 (-12 %); with rho 2.5 = 5/2, a minority class holds a multiple of 2 "
            "images and a majority class the same multiple of 5, so totals come in steps of 14 (2 x 2 + 2 x 5); "
            "--per-class 7 gives exactly 28")
    assert f"warning: rho 2.5: {text}" in said, said
    study = StudyRecord.model_validate_json((tmp_path / "st" / "study.json").read_text())
    assert study.subsets["2.5"].notes == [text] and study.subsets["2.5"].total == 28
    assert f"<strong>ρ 2.5:</strong> {text}" in (tmp_path / "st" / "study.html").read_text()
    # exact subsets carry no note
    assert json.loads((study_dir / "study.json").read_text())["subsets"]["3"]["notes"] == []


def test_a_test_split_without_the_minority_classes_is_said_on_the_page(pool, tmp_path):
    """At rho 16 of 8 images a class, each minority class has 1 image, all of it in train: macro recall was the mean
    over the majority classes alone, and the page said only that the test split is "imbalanced in the same way"."""
    run_imbalance_study(pool, tmp_path / "st", per_class=8, rhos=[16], configs=["none"], model="simple_cnn",
                        overrides=TINY, run_reports=False)
    page = " ".join((tmp_path / "st" / "study.html").read_text().split())
    study = json.loads((tmp_path / "st" / "study.json").read_text())
    absent = [c for c, v in study["runs"][0]["per_class"].items() if v["support"] == 0]
    assert absent, "the data should leave a class out of the test split"
    assert "In 1 of 1 runs the test split holds no image of some classes</strong> (ρ 16): their macro recall is " \
           "the mean over the classes it holds" in page
