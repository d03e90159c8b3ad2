"""`imgclf runs` / `imgclf.list_runs`: every run under a folder, finished or not, and never a crash on a bad one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import imgclf
from conftest import spoilable_copy
from imgclf.cli import app
from imgclf.errors import ImgclfError
from imgclf.runs import SORT_KEYS

KEYS = ["name", "path", "model", "data", "epochs", "val_accuracy", "test_accuracy", "macro_f1", "train_seconds",
        "created", "status", "reason", "task", "val_map", "test_map",  # task, val_map, test_map: added after the others
        "data_path"]  # added last


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory, tiny_run) -> Path:
    """A completed run, an interrupted one (checkpoint and history, no card or metrics), one killed before its
    first checkpoint, three with a corrupt file each, one of them inside a sub-folder, one without weights and one
    with its weights cut short."""
    root = tmp_path_factory.mktemp("listing")
    shutil.copytree(tiny_run, root / "done")
    stopped = spoilable_copy(tiny_run, root / "stopped")
    for name in ("model.json", "metrics.json", "predictions.csv", "report.html", "model.safetensors"):
        (stopped / name).unlink(missing_ok=True)
    assert (stopped / "checkpoints" / "last.ckpt").is_file()
    # a Ctrl-C just after epoch 6's line: its row is in history.csv, not in the checkpoint (5 epochs)
    history = (stopped / "history.csv").read_text().splitlines()
    (stopped / "history.csv").write_text("\n".join([*history, history[-1].replace("5,", "6,", 1)]) + "\n")
    early = spoilable_copy(tiny_run, root / "early")
    for name in ("model.json", "metrics.json", "history.csv"):
        (early / name).unlink()
    shutil.rmtree(early / "checkpoints")
    (spoilable_copy(tiny_run, root / "bad-metrics") / "metrics.json").write_bytes(bytes(range(256)))
    (spoilable_copy(tiny_run, root / "bad-config") / "config.yaml").write_text("epochs: [unclosed\n")
    (spoilable_copy(tiny_run, root / "study" / "bad-card") / "model.json").write_text('{"architecture": 3}')
    (spoilable_copy(tiny_run, root / "no-weights") / "model.safetensors").unlink()
    # evaluate, compare, calibrate and --resume refuse it: it was listed as completed
    (spoilable_copy(tiny_run, root / "no-config") / "config.yaml").unlink()
    # the unknown detector's statistics, without which load refuses the run: it was listed as completed
    (spoilable_copy(tiny_run, root / "no-stats") / json.loads((tiny_run / "model.json").read_text())["unknown"][
        "statistics"]).unlink()
    # ...which an msp detector does not read (its file keeps validation scores for the report): completed still
    msp = spoilable_copy(tiny_run, root / "msp-no-stats")
    card = json.loads((msp / "model.json").read_text())
    (msp / card["unknown"]["statistics"]).unlink()
    card["unknown"]["detector"] = "msp"
    (msp / "model.json").write_text(json.dumps(card))
    cut = spoilable_copy(tiny_run, root / "cut-weights") / "model.safetensors"
    cut.write_bytes(cut.read_bytes()[:-1000])  # a copy that stopped short: listed as completed, then refused
    (root / "notes").mkdir()  # not a run: no run file
    (root / "notes" / "todo.txt").write_text("try a bigger model\n")
    return root


def _by_name(rows) -> dict:
    return {r.name: r for r in rows}


def test_every_status_a_run_can_have_is_in_the_help_the_docstring_and_readme():
    """'running' was listed by `imgclf runs` and named nowhere a user would look it up."""
    from imgclf.runs import STATUSES

    help_text = " ".join(CliRunner().invoke(app, ["runs", "--help"], env={"COLUMNS": "200"}).output.split())
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    for status in STATUSES:
        assert status in help_text and status in imgclf.list_runs.__doc__, status
        listed = readme[readme.index("when and status ("):readme.index("`--sort COLUMN`")]
        assert any(f"{before}{status}" in listed for before in ("status (", "; ", "; or ")), status


def test_every_run_is_listed_with_its_status(runs_folder, tiny_run):
    rows = _by_name(imgclf.list_runs(runs_folder))
    assert set(rows) == {"done", "stopped", "early", "bad-metrics", "bad-config", "study/bad-card", "no-weights",
                         "no-config", "cut-weights", "no-stats", "msp-no-stats"}
    done = rows["done"]
    card = json.loads((tiny_run / "model.json").read_text())
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert done.status == "completed" and done.reason == ""
    assert rows["msp-no-stats"].status == "completed", rows["msp-no-stats"]
    data_folder = Path(json.loads((tiny_run / "dataset.json").read_text())["root"]).name
    assert (done.model, done.data, done.epochs) == ("simple_cnn", data_folder, 5)
    assert done.test_accuracy == metrics["accuracy"] and done.macro_f1 == metrics["macro"]["f1"]
    assert done.val_accuracy == card["metrics"]["val_accuracy"]
    assert done.train_seconds == card["training"]["train_seconds"] and done.created == card["created"]
    assert rows["stopped"].status == "interrupted" and "--resume" in rows["stopped"].reason
    assert rows["stopped"].reason.startswith("stopped after epoch 5:")  # the checkpoint's, not history's 6 rows
    assert rows["stopped"].epochs == 6 and rows["stopped"].test_accuracy is None
    assert rows["stopped"].val_accuracy is not None and rows["stopped"].model == "simple_cnn"
    assert rows["early"].status == "interrupted" and "first checkpoint" in rows["early"].reason
    # with the command, as every other interrupted state has (resume trains it from epoch 1)
    assert "imgclf train --resume" in rows["early"].reason and "from its first epoch" in rows["early"].reason
    for name, file in (("bad-metrics", "metrics.json"), ("bad-config", "config.yaml"), ("study/bad-card", "model.json"),
                       ("no-weights", "model.safetensors"), ("no-config", "config.yaml: missing"),
                       ("cut-weights", "a truncated or damaged copy"),
                       ("no-stats", "unknown.safetensors: missing")):
        assert rows[name].status == "failed" and file in rows[name].reason, rows[name]
    # what could be read is still shown: the model from config.yaml when metrics.json is garbage
    assert rows["bad-metrics"].model == "simple_cnn" and rows["bad-metrics"].test_accuracy is None


def test_a_run_interrupted_while_being_finished_is_told_to_resume_and_that_finishes_it(tiny_run, tmp_path):
    """It said `imgclf evaluate RUN`, which scored it but left the card's headline and the report unwritten (the
    listing then read training's validation accuracy from before the batch-norm recompute)."""
    run = shutil.copytree(tiny_run, tmp_path / "run")
    for name in ("metrics.json", "predictions.csv", "report.html"):
        (run / name).unlink(missing_ok=True)
    (row,) = imgclf.list_runs(tmp_path)
    assert row.status == "interrupted"
    # the command to copy names the run's own folder, not a placeholder
    assert row.reason == f"not evaluated (no metrics.json): imgclf train --resume {run.resolve()} finishes it"
    imgclf.fit(resume=str(run), progress=False)
    (row,) = imgclf.list_runs(tmp_path)
    assert row.status == "completed" and (run / "metrics.json").is_file() and (run / "report.html").is_file()
    assert row.val_accuracy == json.loads((tiny_run / "model.json").read_text())["metrics"]["val_accuracy"]
    # a run that stopped before its last epoch: a plain --resume would train on
    card = json.loads((run / "model.json").read_text())
    card["training"]["stopped"] = "early stopping"
    (run / "model.json").write_text(json.dumps(card))
    (run / "metrics.json").unlink()
    assert imgclf.list_runs(tmp_path)[0].reason.endswith(f"imgclf train --resume {run.resolve()} --epochs "
                                                         f"{card['training']['epochs_run']} finishes it")


def test_json_is_a_list_of_objects_with_stable_keys(runs_folder):
    result = CliRunner().invoke(app, ["runs", str(runs_folder), "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert isinstance(listed, list) and len(listed) == 11
    assert all(list(item) == KEYS for item in listed)


def test_runs_of_folders_with_one_name_are_told_apart(tiny_run, tmp_path):
    """Runs of ml/index.csv and ml2/index.csv both read 'index.csv', and --json held no path to filter by."""
    import shutil

    from imgclf.records import RunDir

    for name, data in (("a", tmp_path / "ml" / "index.csv"), ("b", tmp_path / "ml2" / "index.csv"),
                       ("c", tmp_path / "ml2" / "index.csv")):
        run = RunDir(shutil.copytree(tiny_run, tmp_path / "runs" / name))
        run.write_config(run.read_config().model_copy(update={"data": str(data)}))
    rows = {r.name: r for r in imgclf.list_runs(tmp_path / "runs")}
    assert rows["a"].data_path == str(tmp_path / "ml" / "index.csv") and rows["a"].data == "index.csv"
    result = CliRunner().invoke(app, ["runs", str(tmp_path / "runs")], env={"COLUMNS": "200"})
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.split()[:1] in (["a"], ["b"], ["c"])}
    assert "ml/index.csv" in lines["a"] and "ml2/index.csv" in lines["b"] and "ml2/index.csv" in lines["c"]


@pytest.mark.parametrize("column", SORT_KEYS)
def test_sort_by_any_column(runs_folder, column):
    result = CliRunner().invoke(app, ["runs", str(runs_folder), "--json", "--sort", column])
    assert result.exit_code == 0, result.output
    values = [item[column] for item in json.loads(result.output)]
    present = [v for v in values if v is not None]
    assert values[:len(present)] == present  # empty cells last
    best_first = column in ("val_accuracy", "test_accuracy", "macro_f1", "val_map", "test_map")
    assert present == sorted(present, reverse=best_first), values
    flipped = CliRunner().invoke(app, ["runs", str(runs_folder), "--json", "--sort", column, "--reverse"])
    again = [item[column] for item in json.loads(flipped.output) if item[column] is not None]
    assert again == sorted(present, reverse=not best_first)


def test_bad_sort_column_is_one_line_listing_the_columns(runs_folder):
    result = CliRunner().invoke(app, ["runs", str(runs_folder), "--sort", "accuracy"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "sort='accuracy'" in lines[0]
    assert all(key in lines[0] for key in SORT_KEYS)
    with pytest.raises(ImgclfError, match="sort='accuracy'"):
        imgclf.list_runs(runs_folder, sort="accuracy")


def test_missing_folder_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a checkout where `make demo` ran has imgclf-demo/runs, which the hint names
    result = CliRunner().invoke(app, ["runs", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not found" in result.output and "Traceback" not in result.output
    assert "Give the folder: imgclf runs FOLDER" in " ".join(result.output.split())


def test_runs_after_the_demo_names_the_demos_folder(tmp_path, monkeypatch):
    """`imgclf runs` right after `imgclf demo` found no ./runs: the demo trains in imgclf-demo/runs."""
    (tmp_path / "imgclf-demo" / "runs").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["runs"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "Give the folder: imgclf runs imgclf-demo/runs (where imgclf demo trains)" in " ".join(result.output.split())


def test_table_fits_80_columns_and_shows_every_run(runs_folder, tiny_run):
    from rich.console import Console

    from imgclf.runs import render_runs

    console = Console(width=80, record=True, color_system=None)
    render_runs(imgclf.list_runs(runs_folder), console, runs_folder)
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    done = next(line for line in lines if line.startswith("done "))
    # numbers are whole, not squeezed into an ellipsis
    assert f"{100 * metrics['accuracy']:.1f}" in done and "completed" in done and "…" not in done, text
    for status in ("interrupted", "failed"):
        assert status in text
    assert "bad-metrics: " in text and "metrics.json" in text  # the reason, one line per unfinished run
    for header in ("run", "model", "data", "val", "test", "F1", "time", "when", "status"):
        assert header in text


def test_cli_table_is_the_same_listing(runs_folder):
    result = CliRunner().invoke(app, ["runs", str(runs_folder)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "11 runs in" in result.output and "study/bad-card" in result.output


def test_redirected_table_keeps_each_run_on_one_line(tmp_path, tiny_run):
    """Piped or written to a file (no terminal, no COLUMNS), a long run name is not folded over several rows:
    `imgclf runs | grep NAME` finds the whole row."""
    name = "seed-sweep-fast-resnet-width-48-lr-0.05-batch-512-erase-0.5-" + "x" * 30
    shutil.copytree(tiny_run, tmp_path / name)
    result = CliRunner().invoke(app, ["runs", str(tmp_path)], env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    row = [line for line in result.output.splitlines() if name in line]
    assert len(row) == 1 and "completed" in row[0], result.output


def test_compare_skips_unfinished_runs_with_a_warning(runs_folder, tmp_path, caplog):
    import logging

    from imgclf.evaluation.compare import compare_runs

    done, stopped, early = (runs_folder / n for n in ("done", "stopped", "early"))
    import yaml

    again = spoilable_copy(done, tmp_path / "again")  # a second finished run: done's settings at another seed
    config = yaml.safe_load((again / "config.yaml").read_text())
    (again / "config.yaml").write_text(yaml.safe_dump({**config, "seed": config["seed"] + 1}))
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        comparison = compare_runs([done, again, stopped])
    assert any("stopped" in r.getMessage() and "--resume" in r.getMessage() for r in caplog.records)
    assert sorted(r.name for g in comparison.groups for r in g.runs) == ["again", "done"]
    assert [Path(run).name for run, _ in comparison.skipped] == ["stopped"]
    # a copy of the finished run is a second readable run: shown once, the copy named as counted once
    copied = compare_runs([done, spoilable_copy(done, tmp_path / "copy"), stopped], say_skipped=False)
    assert [r.name for g in copied.groups for r in g.runs] == ["done"]
    assert any("a copy or a rerun" in why for _, why in copied.skipped)
    result = CliRunner().invoke(app, ["compare", str(done), str(again), str(stopped), str(early), "--out",
                                      str(tmp_path / "c.html")], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert f"skipped {stopped}: interrupted" in result.output and f"skipped {early}: unfinished" in result.output
    assert "UserWarning" not in result.output and "warning compare" not in result.output  # said once, in the table
    # one finished run left: a page of one run compared with nothing, where one run given is refused
    result = CliRunner().invoke(app, ["compare", str(done), str(stopped), str(early), "--out",
                                      str(tmp_path / "one.html")], env={"COLUMNS": "250"})
    assert result.exit_code == 2 and not (tmp_path / "one.html").exists()
    said = " ".join(result.output.split())
    assert "runs must be at least two readable, finished run directories" in said and f"{stopped}: interrupted" in said
    with pytest.raises(ImgclfError, match="at least one finished run"):
        compare_runs([stopped, early])


def test_compare_takes_a_folder_of_runs_and_skips_unreadable_ones(runs_folder, tmp_path):
    """`imgclf compare runs/` compares the runs under the folder (a k-fold parent or a study was refused as "at
    least two run directories"), and a run with a corrupt file is skipped with its reason, as an unfinished one
    is, instead of ending the whole comparison."""
    folder = tmp_path / "runs"
    shutil.copytree(runs_folder, folder)
    (spoilable_copy(folder / "done", folder / "bad-history") / "history.csv").write_bytes(bytes(range(256)))
    (spoilable_copy(folder / "done", folder / "bad-scores") / "metrics.json").write_text('{"accuracy": "high"}')
    import yaml

    other = spoilable_copy(folder / "done", folder / "done-seed-1")  # a second readable run to compare with
    config = yaml.safe_load((other / "config.yaml").read_text())
    (other / "config.yaml").write_text(yaml.safe_dump({**config, "seed": config["seed"] + 1}))
    # -o as predict and explain take it for the file they write (compare had --out only)
    result = CliRunner().invoke(app, ["compare", str(folder), "-o", str(tmp_path / "c.html")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    for name in ("bad-metrics", "bad-config", "bad-card", "bad-history", "bad-scores"):
        assert f"{name}: unreadable: " in said, result.output
    assert "stopped: interrupted" in said and "early: unfinished" in said
    assert (tmp_path / "c.html").is_file()


@pytest.mark.parametrize("content", ["{not json", '{"trials": "none"}'])
def test_a_search_trial_beside_an_unreadable_tune_json_keeps_its_own_status(tmp_path, content):
    """A trial's search summary is read as a TuneRecord; garbage or a mismatched record there never breaks the
    listing: the trial keeps the status its own files give."""
    search = tmp_path / "search"
    trial = search / "trials" / "trial-000"
    trial.mkdir(parents=True)  # stopped before its first checkpoint: its config, so the summary is consulted
    for name in ("config.yaml", "dataset.json"):  # (training writes the one right after the other)
        shutil.copy(Path(__file__).parent / "fixtures" / "legacy_run_v0" / name, trial)
    (search / "tune.json").write_text(content)
    rows = imgclf.list_runs(search)
    assert [(r.name, r.status) for r in rows] == [("trials/trial-000", "interrupted")]


def test_an_image_folder_given_where_a_run_goes_says_the_run_comes_first(tmp_path):
    """`imgclf predict data/digits runs/s1` said "no model.json: training unfinished?"."""
    from conftest import make_image_folder

    data = make_image_folder(tmp_path / "data", per_class=2)
    for arguments in (["predict", str(data), str(tmp_path)], ["serve", str(data)]):  # serve takes no images
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 2
        assert "an image folder, not a run: give the folder imgclf train wrote; the commands that read images " \
            "take them after the run" in " ".join(result.output.split()), result.output
    (tmp_path / "model.onnx").write_bytes(b"")
    for command in ("predict", "explain"):  # explain has no --backend: the hint sent it to "No such option"
        result = CliRunner().invoke(app, [command, str(tmp_path / "model.onnx"), str(data)])
        assert "an exported ONNX model: imgclf predict and imgclf serve read it with --backend onnx (Python: " \
            "imgclf.export.load_onnx); the other commands need its run folder" in " ".join(result.output.split()), \
            result.output
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "empty"), str(tmp_path)])
    assert "not a run: no model.json" in result.output and "training unfinished" not in result.output
    # a folder of runs, or a run's plots/: their PNGs are no data set
    runs = tmp_path / "runs" / "r1"
    (runs / "plots").mkdir(parents=True)
    (runs / "config.yaml").write_text("")
    (runs / "dataset.json").write_text("")  # training writes it right after config.yaml
    (runs / "plots" / "curves.png").write_bytes(b"")
    for folder in (tmp_path / "runs", runs / "plots"):
        result = CliRunner().invoke(app, ["predict", str(folder), str(tmp_path)])
        assert result.exit_code == 2 and "an image folder" not in result.output, result.output


def test_a_run_listed_on_its_own_goes_by_its_folder_name(tiny_run):
    (row,) = imgclf.list_runs(tiny_run)
    assert row.name == tiny_run.name  # it was "."


def test_a_loss_rounded_below_zero_is_written_as_zero(tmp_path):
    """A certain prediction's loss, -log(p) with p rounded a hair above 1, was written -0.000000."""
    from imgclf.records import PredictionRow, RunDir

    run = RunDir(tmp_path)
    run.write_predictions([PredictionRow(path="a.png", true="cat", pred="cat", prob=1.0, loss=-1e-9, probs=[1.0, 0.0]),
                           PredictionRow(path="b.png", true="cat", pred="cat", prob=1.0, loss=-0.0, probs=[1.0, 0.0])],
                          ["cat", "dog"])
    text = (tmp_path / "predictions.csv").read_text()
    assert "-0.000000" not in text and text.count(",0.000000,") >= 2
    run.write_predictions([PredictionRow(path="c.png", true="cat", pred="cat", prob=float("nan"), loss=float("nan"),
                                         probs=[1.0, 0.0])], ["cat", "dog"])
    assert "c.png,cat,cat,nan,nan," in (tmp_path / "predictions.csv").read_text()  # a diverged run shows as one


@pytest.mark.parametrize("command", ["evaluate", "report", "export"])
def test_a_folder_that_holds_no_run_is_not_called_an_unfinished_run(command, tmp_path):
    """evaluate, report and export given a data folder (or an audit's) said "no model.json: training
    unfinished?", which sends a user looking for a training that never was."""
    from conftest import make_image_folder

    data = make_image_folder(tmp_path / "data", per_class=2)
    result = CliRunner().invoke(app, [command, str(data)])
    assert result.exit_code == 2
    assert "not a run: no model.json" in " ".join(result.output.split()), result.output
    started = tmp_path / "runs" / "my run"  # the command to copy quotes the folder (it resumed runs/my, runs/run)
    started.mkdir(parents=True)
    (started / "config.yaml").write_text("")
    (started / "dataset.json").write_text("")  # training writes it right after config.yaml
    result = CliRunner().invoke(app, [command, str(started)], env={"COLUMNS": "400"})
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "no model.json: training unfinished?" in said
    assert f"(imgclf train --resume '{started}' finishes it)" in said, said



def test_a_run_whose_training_holds_its_lock_is_running_not_interrupted(runs_folder, tmp_path):
    """A training under way was listed 'interrupted' with a --resume hint, which the lock then refused."""
    from imgclf.locks import exclusive
    from imgclf.records.run_dir import LOCK_FILE

    stopped = runs_folder / "stopped"
    with exclusive(stopped, LOCK_FILE, "out", "free", "in use", "wait"):
        row = _by_name(imgclf.list_runs(runs_folder))["stopped"]
        assert (row.status, row.reason) == ("running", "in use now (another process holds train.lock: its training, "
                                                       "or an evaluate, calibrate or report of it)")
        assert "running" in CliRunner().invoke(app, ["runs", str(runs_folder)]).output
        from imgclf.evaluation.compare import unfinished  # compare said "interrupted", with the --resume hint too

        assert unfinished(stopped).startswith("running, no model.json yet")
    assert unfinished(stopped).startswith("interrupted, no model.json (imgclf train --resume")
    assert _by_name(imgclf.list_runs(runs_folder))["stopped"].status == "interrupted"
    # a finished run: its resume for more epochs, or an evaluate rewriting its files, holds the lock
    with exclusive(runs_folder / "done", LOCK_FILE, "out", "free", "in use", "wait"):
        assert _by_name(imgclf.list_runs(runs_folder))["done"].status == "running"
    assert _by_name(imgclf.list_runs(runs_folder))["done"].status == "completed"


def test_predictions_keep_what_the_report_needs_to_undo_the_temperature(tmp_path):
    """The reliability diagram before calibration is rebuilt from predictions.csv: at a low temperature the
    calibrated probabilities of the other classes are tiny, and written to six decimals they were all 0 (a run
    at T = 0.21: the figure said ECE 0.029 where metrics.json said 0.092)."""
    import numpy as np

    from imgclf.calibration import uncalibrated
    from imgclf.evaluation.metrics import expected_calibration_error
    from imgclf.records import PredictionRow, RunDir

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (200, 4))
    y = rng.integers(0, 4, 200)
    raw = np.exp(logits - logits.max(1, keepdims=True))
    raw /= raw.sum(1, keepdims=True)
    temperature = 0.21
    calibrated = raw ** (1 / temperature)
    calibrated /= calibrated.sum(1, keepdims=True)
    classes = ["a", "b", "c", "d"]
    run = RunDir(tmp_path)
    run.write_predictions([PredictionRow(path=f"{i}.png", true=classes[t], pred=classes[p.argmax()],
                                         prob=float(p.max()), loss=0.0, probs=[float(v) for v in p])
                           for i, (t, p) in enumerate(zip(y, calibrated))], classes)
    read = np.array([r.probs for r in run.read_predictions(classes)])
    rebuilt = uncalibrated(read, temperature)
    assert np.abs(rebuilt - raw).max() < 1e-4
    assert abs(expected_calibration_error(rebuilt, y)[0] - expected_calibration_error(raw, y)[0]) < 1e-4


def test_a_finished_run_that_lost_a_file_is_not_told_to_resume(tiny_run, tmp_path):
    """A finished run without its dataset.json was told "training unfinished? (imgclf train --resume RUN finishes
    it)", and --resume answered the same."""
    import shutil

    from run_walk import SPOILED_MARK

    run = shutil.copytree(tiny_run, tmp_path / "my run")  # the command given quotes the path, as a shell reads it
    (run / SPOILED_MARK).write_text("dataset.json removed on purpose\n")
    (run / "dataset.json").unlink()
    said = " ".join(CliRunner().invoke(app, ["evaluate", str(run)], env={"COLUMNS": "400"}).output.split())
    assert "no dataset.json, though its training finished (model.json)" in said and "--resume" not in said
    assert f"imgclf train --config '{run / 'config.yaml'}' --out NEW" in said, said
    run = shutil.copytree(tiny_run, tmp_path / "no-config")
    (run / SPOILED_MARK).write_text("config.yaml removed on purpose\n")
    (run / "config.yaml").unlink()  # then --config of the very file missing was the advice
    said = " ".join(CliRunner().invoke(app, ["calibrate", str(run)]).output.split())
    assert "no config.yaml, though its training finished" in said and "--config" not in said, said


def test_a_folder_without_runs_says_so_and_where_the_demos_are(tmp_path, monkeypatch):
    """`imgclf runs DATA` (a data folder given by mistake) printed an empty table, exit 0, nothing more."""
    from conftest import make_image_folder

    data = make_image_folder(tmp_path / "data", classes=("a", "b"), per_class=2, size=8)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["runs", str(data)], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    said = " ".join(result.output.split())
    assert said == f"no run directories in {data} (a run holds model.json, or config.yaml and dataset.json while " \
                   "it trains)", said
    (tmp_path / "imgclf-demo" / "runs").mkdir(parents=True)
    said = " ".join(CliRunner().invoke(app, ["runs", str(data)], env={"COLUMNS": "200"}).output.split())
    assert said.endswith("; imgclf demo's are in imgclf-demo/runs: imgclf runs imgclf-demo/runs"), said
    assert "imgclf demo's" not in CliRunner().invoke(app, ["runs", "imgclf-demo/runs"]).output


def test_the_summaries_of_run_groups_are_named_alike_everywhere():
    """compare refuses a page inside a folder holding one of these (its next run refuses other files): the names it
    goes by are the ones the cross-validation, the study and the search write."""
    from imgclf.pipeline.folds_summary import FOLDS_FILE
    from imgclf.records.tune import TUNE_FILE
    from imgclf.run_markers import RUN_GROUP_FILES
    from imgclf.study.files import STUDY_FILE

    assert RUN_GROUP_FILES == (FOLDS_FILE, STUDY_FILE, TUNE_FILE)
