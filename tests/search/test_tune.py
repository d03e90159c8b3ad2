"""imgclf tune / imgclf.tune (issue 22 item 3): trials are ordinary runs, only the best is tested, best.yaml trains,
a killed search resumes without rerunning a finished trial, the pruner is wired, a bad space is refused."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from imgclf.cli import app
from imgclf.errors import ImgclfError
from conftest import make_image_folder

SETTINGS = {"model": "simple_cnn", "img_size": 12, "epochs": 2, "batch_size": 8, "model_args": {"width": 4},
            "val_split": 0.25, "test_split": 0.25, "num_workers": 0, "group_duplicates": False, "progress": False}
FLAGS = ["--model", "simple_cnn", "--img-size", "12", "--epochs", "2", "--batch-size", "8", "--model-args",
         "width=4", "--val-split", "0.25", "--test-split", "0.25", "--num-workers", "0", "--no-group-duplicates"]
SPACE = {"lr": {"low": 1e-3, "high": 1e-2, "log": True}, "label_smoothing": [0.0, 0.1]}


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    """One torch thread here and in the subprocesses: nothing is timed, and on a shared machine two spinning
    threads per process made these tiny steps many times slower."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("tune-data"), per_class=12, size=12)


def _record(folder: Path) -> dict:
    return json.loads((folder / "tune.json").read_text())


def test_trials_are_runs_only_the_best_is_tested_and_best_yaml_trains(data, tmp_path):
    import optuna

    import imgclf
    from imgclf.records import RunDir, TuneRecord

    class PruneTrialOne(optuna.pruners.BasePruner):  # forced: proves the callback reports and obeys should_prune
        def prune(self, study, trial):
            return trial.number == 1

    out = tmp_path / "search"
    result = imgclf.tune({"data": str(data), **SETTINGS}, trials=3, space=SPACE, out=str(out), pruner=PruneTrialOne())
    record = TuneRecord.model_validate(_record(out))
    states = {t.number: t.state for t in record.trials}
    assert states == {0: "complete", 1: "pruned", 2: "complete"}
    pruned = out / "trials" / "trial-001"
    assert (pruned / "config.yaml").is_file() and not (pruned / "model.json").exists()
    # its first epoch ran, and is named as the run's history numbers it (Optuna's own message says "epoch 0")
    assert "pruned after epoch 1: the pruner" in record.trials[1].stopped and record.trials[1].epochs == 1
    assert [r.epoch for r in RunDir(pruned).read_history()] == [1]  # the epoch it was judged on is on record
    for n in (0, 2):  # ordinary run directories, validated; the test split only for the best
        run = out / "trials" / f"trial-{n:03d}"
        assert (run / "config.yaml").is_file() and (run / "model.safetensors").is_file()
        assert (run / "metrics.json").is_file() == (n == record.best.number)
        assert (run / "report.html").is_file() == (n == record.best.number)
    assert record.best.value == max(t.value for t in record.trials if t.state == "complete")
    assert record.best.test_accuracy is not None and result.best_run == out / record.best.run
    told = json.loads(json.dumps(result.as_dict(), allow_nan=False))  # JSON-ready, as tune.json holds it
    assert told["record"] == _record(out) and told["best_run"] == str(result.best_run)
    page = (out / "tune.html").read_text()
    assert f'href="trials/trial-{record.best.number:03d}/report.html"' in page and "data:image/png;base64," in page
    assert all(f'<a href="trials/trial-{n:03d}/"' in page for n in range(3))  # each trial links its run folder
    # the pruned trial's figure is training's log when it stopped, not a kept score: bracketed, and said so
    logged = record.trials[1].value
    assert logged is not None and f"<td>({100 * logged:.2f} %)</td>" in " ".join(page.split())
    assert "what training logged at the epoch the pruner stopped it" in " ".join(page.split())
    rows = imgclf.list_runs(out)
    status = {r.name: (r.status, r.reason) for r in rows}
    assert status["trials/trial-000"][0] == "completed"
    assert status["trials/trial-001"][0] == "pruned" and "pruned after epoch 1" in status["trials/trial-001"][1]
    # compare leaves it out as pruned: its advice was `train --resume`, which would finish a rejected trial
    import warnings

    from imgclf.evaluation.compare import compare_runs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        skipped = dict(compare_runs([out / "trials" / f"trial-{n:03d}" for n in range(3)]).skipped)
    assert skipped[str(pruned)].startswith("a trial its search pruned (pruned after epoch 1") and \
        "--resume" not in skipped[str(pruned)]

    again = CliRunner().invoke(app, ["train", "--config", str(out / "best.yaml"), "--out", str(tmp_path / "again"),
                                     "--epochs", "1", "--no-progress"])
    assert again.exit_code == 0, again.output
    best_cfg = imgclf.load(result.best_run)  # the same settings, a new run
    trained = (tmp_path / "again" / "config.yaml").read_text()
    assert f"lr: {record.best.params['lr']}" in trained and (tmp_path / "again" / "metrics.json").is_file()
    assert best_cfg is not None


def test_a_search_cut_short_lists_its_pruned_trial_as_pruned(data, tmp_path, monkeypatch):
    import optuna

    import imgclf
    from imgclf.pipeline import run as pipeline_run

    class PruneTrialOne(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.number == 1

    import lightning.pytorch as pl

    from imgclf.train.fit import TrainingInterrupted

    train_run = pipeline_run.train_run

    class CtrlC(pl.Callback):  # what Ctrl-C does once the first epoch is saved
        def on_train_epoch_start(self, trainer, module):
            if trainer.current_epoch == 1:
                raise KeyboardInterrupt

    def ctrl_c_in_trial_two(cfg, callbacks=(), **kwargs):
        extra = [CtrlC()] if cfg.out.endswith("trial-002") else []
        return train_run(cfg, callbacks=[*callbacks, *extra], **kwargs)

    monkeypatch.setattr(pipeline_run, "train_run", ctrl_c_in_trial_two)
    out = tmp_path / "search"
    with pytest.raises(TrainingInterrupted) as stopped:
        imgclf.tune({"data": str(data), **SETTINGS}, trials=3, space=SPACE, out=str(out), pruner=PruneTrialOne())
    # the trial run's own hint (imgclf train --resume TRIAL) would finish it outside the search, which counts it
    # failed: the message, the record and the listing point to the search
    message = " ".join(str(stopped.value).split())
    assert "search interrupted in trial 2 (training interrupted (Ctrl-C) after 1 completed epoch" in message
    assert "same imgclf tune command with --resume" in message and "train --resume" not in message
    assert f"(Python: the same imgclf.tune call with resume=True, out={str(out.absolute())!r})" in message
    assert stopped.value.exit_code == 130
    record = _record(out)
    assert record["stopped"] == "interrupted during trial 2: 2 of 3 trials done" and record["best"]["number"] == 0
    status = {r.name: (r.status, r.reason) for r in imgclf.list_runs(out)}
    assert status["trials/trial-000"][0] == "completed"
    assert status["trials/trial-001"][0] == "pruned" and "pruned after epoch 1" in status["trials/trial-001"][1]
    assert status["trials/trial-002"][0] == "interrupted" and "imgclf tune --resume" in status["trials/trial-002"][1]
    # compare says the same: its advice was `train --resume`, which finished and tested a trial its search had not
    # chosen
    from imgclf.evaluation.compare import unfinished

    said = unfinished(out / "trials" / "trial-002")
    assert "imgclf tune --resume goes on with new ones" in said and "train --resume" not in said, said
    # resumed, the interrupted trial counts as failed; its figure is its last epoch's as logged: in brackets, as a
    # pruned trial's (it read like a kept score, and was plotted as one)
    monkeypatch.setattr(pipeline_run, "train_run", train_run)
    resumed = imgclf.tune(trials=3, resume=True, out=str(out), pruner=PruneTrialOne())
    failed = next(t for t in resumed.record.trials if t.number == 2)
    assert failed.state == "fail" and failed.value is not None
    said = unfinished(out / "trials" / "trial-002")
    assert "imgclf tune --resume goes on with new ones" in said and "train --resume" not in said, said
    page = " ".join((out / "tune.html").read_text().split())
    row = next(r for r in page.split("<tr") if 'title="trials/trial-002">2</a>' in r)
    assert f"<td>({100 * failed.value:.2f} %)</td>" in row


def test_a_killed_search_resumes_without_rerunning_finished_trials(tmp_path):
    import imgclf

    from imgclf.search import search  # noqa: F401  (imported before the search starts: the refusal below is then
    # quick, where its first import took seconds, in which a fast CPU finished most of the six trials)

    # trials long enough (about 0.4 s each on a fast CPU) for trial 2 to be killed while it trains
    data = make_image_folder(tmp_path / "data", per_class=120, size=12)
    out = tmp_path / "search"
    (tmp_path / "space.yaml").write_text("lr: {low: 1e-3, high: 1e-2, log: true}\nlabel_smoothing: [0.0, 0.1]\n")
    cmd = [sys.executable, "-m", "imgclf.cli", "tune", str(data), "--trials", "6", "--out", str(out), "--space",
           str(tmp_path / "space.yaml"), *FLAGS, "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 240
    while not (out / "search.yaml").exists():  # written once the study is made (study.db comes first)
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode() if proc.poll() else "slow"
        time.sleep(0.1)
    # a second search on the folder while the first lives is refused, before it touches the study
    with pytest.raises(ImgclfError, match=r"out .*in use by another imgclf tune"):
        imgclf.tune(data=str(data), trials=3, space=tmp_path / "space.yaml", out=str(out), resume=True,
                    **{k: v for k, v in SETTINGS.items() if k != "progress"}, progress=False)
    assert proc.poll() is None, "the first search must still be running for this check to mean anything"
    while not (out / "trials" / "trial-002").exists():  # trials 0 and 1 finished, trial 2 under way
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode() if proc.poll() else "slow"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    so_far = _record(out)  # rewritten after each trial: the killed search's record of the trials it finished
    assert so_far["stopped"] == "running: 2 of 6 trials done" and so_far["best"]["test_accuracy"] is None
    assert [t["state"] for t in so_far["trials"]][:2] == ["complete", "complete"]
    before = {n: (out / "trials" / f"trial-{n:03d}" / "model.safetensors").stat().st_mtime_ns for n in (0, 1)}

    imgclf.tune(data=str(data), trials=3, space=tmp_path / "space.yaml", out=str(out), resume=True,
                **{k: v for k, v in SETTINGS.items() if k != "progress"}, progress=False)
    record = _record(out)
    states = {t["number"]: t["state"] for t in record["trials"]}
    assert states == {0: "complete", 1: "complete", 2: "fail", 3: "complete"}, states
    assert "interrupted" in record["trials"][2]["stopped"]
    after = {n: (out / "trials" / f"trial-{n:03d}" / "model.safetensors").stat().st_mtime_ns for n in (0, 1)}
    assert after == before  # not trained again
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["trial-000", "trial-001", "trial-002", "trial-003"]
    drawn = [tuple(sorted(t["params"].items())) for t in record["trials"]]
    assert len(set(drawn)) == len(drawn)  # the resumed sampler did not draw trial 0's settings again

    changed = CliRunner().invoke(app, ["tune", str(data), "--trials", "4", "--out", str(out), "--resume", "--space",
                                       str(tmp_path / "space.yaml"), *FLAGS[:-1], "--epochs", "3"])
    assert changed.exit_code == 2 and "epochs" in changed.output and "Received: epochs=3" in changed.output
    # neither data nor space given again: those the search started from (it asked for data, naming imgclf train)
    again = CliRunner().invoke(app, ["tune", "--resume", "--out", str(out), "--trials", "5", "--no-progress"])
    assert again.exit_code == 0, again.output
    assert [t["state"] for t in _record(out)["trials"]] == ["complete"] * 2 + ["fail"] + ["complete"] * 3  # 5 done
    # the data given again, and nothing else: the search's settings with it, where it was refused as a change of the
    # epochs, image size, ... that the defaults of everything not given made
    with_data = CliRunner().invoke(app, ["tune", str(data), "--resume", "--out", str(out), "--trials", "6",
                                         "--no-progress"])
    assert with_data.exit_code == 0, with_data.output
    assert [t["state"] for t in _record(out)["trials"]].count("complete") == 6
    # a --config file given again is compared with the search's settings, not laid under them unread
    (tmp_path / "more.yaml").write_text("epochs: 3\n")
    changed = CliRunner().invoke(app, ["tune", "--resume", "--out", str(out), "--trials", "6", "--config",
                                       str(tmp_path / "more.yaml")])
    assert changed.exit_code == 2 and "as in the search being resumed" in changed.output, changed.output
    assert "epochs" in changed.output.split("changed: ")[1], changed.output
    # fewer trials asked than are done: the record says so, not "3 trials" beside the 5 it lists
    fewer = CliRunner().invoke(app, ["tune", "--resume", "--out", str(out), "--trials", "3", "--no-progress"])
    assert fewer.exit_code == 0, fewer.output
    assert _record(out)["stopped"] == "3 trials asked, 6 already done"


def test_time_limit_is_the_whole_search_budget(data, tmp_path, monkeypatch):
    import optuna

    import imgclf
    from imgclf.search import search

    # the budget's arithmetic, not this machine's speed: every finished trial is taken to have lasted 6 s
    real_used = search._used_seconds
    monkeypatch.setattr(search, "_used_seconds", lambda study: 6.0 * sum(
        t.datetime_complete is not None for t in study.get_trials(deepcopy=False)))
    out = tmp_path / "search"
    result = imgclf.tune({"data": str(data), **SETTINGS}, trials=5, time_limit="5s", space=SPACE, out=str(out))
    record = result.record
    assert len(record.trials) == 1 and record.stopped == "time limit (5s)"  # one trial spent the budget
    assert (out / "trials" / "trial-000" / "config.yaml").read_text().count("time_limit: 1s") == 1
    monkeypatch.setattr(search, "_used_seconds", real_used)

    # each trial trains for 0.8 of its share, the rest left for what it does around its training
    two = imgclf.tune({"data": str(data), **SETTINGS}, trials=2, time_limit="120s", space=SPACE,
                      out=str(tmp_path / "b"))
    limits = [imgclf.pipeline.resolve.read_config_file(tmp_path / "b" / "trials" / f"trial-{n:03d}" / "config.yaml")
              ["time_limit"] for n in (0, 1)]
    first = optuna.load_study(study_name=None, storage=f"sqlite:///{tmp_path / 'b' / 'study.db'}").trials[0]
    outside = (first.datetime_complete - first.datetime_start).total_seconds() - first.user_attrs["train_seconds"]
    assert outside > 0
    assert limits == ["48s", f"{min(48.0, 60 - outside):.0f}s"], (limits, outside)
    assert len(two.record.trials) == 2
    # a trial's share of the search's budget is not a setting of the best model: best.yaml keeps the base's
    # (none here), or `train --config best.yaml --epochs 100` would stop at the share, 60 s
    assert imgclf.pipeline.resolve.read_config_file(tmp_path / "b" / "best.yaml")["time_limit"] is None


def test_a_range_of_an_integer_model_argument_draws_whole_numbers(data, tmp_path):
    """model_args.width {low: 4, high: 8, step: 4} drew 4.0 and 8.0, and every trial failed "must be an integer";
    a float argument (dropout) keeps drawing floats."""
    import imgclf
    from imgclf.search.space import parse_param, typed_for_model

    width, dropout = typed_for_model([parse_param("model_args.width", {"low": 4, "high": 8, "step": 4}),
                                      parse_param("model_args.dropout", {"low": 0, "high": 1})], "simple_cnn")
    assert width.integer and not dropout.integer
    space = {"model_args.width": {"low": 4, "high": 8, "step": 4}}
    record = imgclf.tune({"data": str(data), **SETTINGS}, trials=2, space=space, out=str(tmp_path / "s")).record
    assert all(t.state == "complete" for t in record.trials)
    assert {type(t.params["model_args.width"]) for t in record.trials} == {int}


def test_a_search_whose_every_trial_is_refused_keeps_nothing_and_takes_the_corrected_command(data, tmp_path,
                                                                                            monkeypatch):
    """A base setting no run accepts (an image size below the model's least) failed all ten tries; the folder then
    refused the corrected command (use --resume), and --resume refused the correction."""
    import imgclf

    out = tmp_path / "search"
    with pytest.raises(ImgclfError, match=r"img_size.*Nothing of the search was kept: the corrected command may "
                                          r"use the same --out"):
        imgclf.tune({"data": str(data), **SETTINGS, "img_size": 2}, trials=1, space=SPACE, out=str(out))
    assert not out.exists()  # it made the folder, and takes it away again, as a failed train does its run's
    existing = tmp_path / "mine"
    existing.mkdir()
    with pytest.raises(ImgclfError, match=r"Nothing of the search was kept: the corrected command may use the same "):
        imgclf.tune({"data": str(data), **SETTINGS, "img_size": 2}, trials=1, space=SPACE, out=str(existing))
    assert existing.is_dir() and list(existing.iterdir()) == []  # the user's own folder stays
    record = imgclf.tune({"data": str(data), **SETTINGS}, trials=1, space=SPACE, out=str(out)).record
    assert record.trials[0].state == "complete"
    # an --out through ~ is the folder it names, taken away as well
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ImgclfError, match=r"Nothing of the search was kept"):
        imgclf.tune({"data": str(data), **SETTINGS, "img_size": 2}, trials=1, space=SPACE, out="~/deep/tx")
    assert not (tmp_path / "deep").exists()
    # without --out: no empty tune/<model>-1 (nor tune/) is left behind, and no --out is spoken of
    monkeypatch.chdir(tmp_path / "mine")
    with pytest.raises(ImgclfError, match=r"Nothing of the search was kept\.$"):
        imgclf.tune({"data": str(data), **SETTINGS, "img_size": 2}, trials=1, space=SPACE)
    assert list(existing.iterdir()) == []


def test_a_resume_finishes_the_chosen_trials_testing_that_an_interrupt_cut(data, tmp_path):
    """A Ctrl-C after the chosen trial's metrics.json left it without its report (and its card's test scores),
    and a resume, seeing metrics.json, never wrote them."""
    import imgclf

    out = tmp_path / "search"
    result = imgclf.tune({"data": str(data), **SETTINGS}, trials=1, space=SPACE, out=str(out))
    (result.best_run / "report.html").unlink()  # as the interrupt left it
    again = imgclf.tune(trials=1, resume=True, out=str(out))
    assert again.best_run == result.best_run and (result.best_run / "report.html").is_file()


def test_a_trial_is_not_pruned_at_its_last_epoch(data, tmp_path):
    """Pruned after its last epoch, a fully trained trial saved nothing and was dropped from the choice on one
    epoch's value."""
    import optuna

    import imgclf

    class PruneAll(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    class PruneFirst(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.number == 0

    out = tmp_path / "search"
    record = imgclf.tune({"data": str(data), **SETTINGS}, trials=2, space=SPACE, out=str(out),
                         pruner=PruneFirst()).record  # 2 epochs: pruned after the first
    assert record.trials[0].state == "pruned" and record.trials[0].epochs == 1
    one = imgclf.tune({"data": str(data), **SETTINGS, "epochs": 1}, trials=1, space=SPACE, out=str(tmp_path / "one"),
                      pruner=PruneAll()).record
    assert one.trials[0].state == "complete" and one.best is not None


def test_a_resumed_search_keeps_its_time_limit_unless_given_another(data, tmp_path, monkeypatch):
    """Resumed without --time-limit, a time-limited search trained its next trials to their full epochs: tune.json
    said time_limit_seconds null and 59 s were spent of a 30 s budget."""
    import imgclf
    from imgclf.pipeline.resolve import read_config_file
    from imgclf.search import search

    monkeypatch.setattr(search, "_used_seconds", lambda study: 6.0 * sum(
        t.datetime_complete is not None for t in study.get_trials(deepcopy=False)))
    out = tmp_path / "search"
    imgclf.tune({"data": str(data), **SETTINGS}, trials=1, time_limit="60s", space=SPACE, out=str(out))
    resumed = imgclf.tune(trials=2, resume=True, out=str(out))
    assert resumed.record.time_limit_seconds == 60
    assert read_config_file(out / "trials" / "trial-001" / "config.yaml")["time_limit"] is not None
    longer = imgclf.tune(trials=3, resume=True, out=str(out), time_limit="90s")  # given again: it replaces it
    assert longer.record.time_limit_seconds == 90
    assert imgclf.tune(trials=3, resume=True, out=str(out)).record.time_limit_seconds == 90


@pytest.mark.parametrize("space, expected", [
    ("lrr: {low: 1e-4, high: 1e-2}", "space field must be one of {"),
    ("lr: {low: 1e-2, high: 1e-4}", "space lr must be a range with finite low < high"),
    ("lr: {low: 0, high: 1e-2, log: true}", "space lr must be a range with low > 0 when log is true"),
    ("lr: {low: 1e-3, high: 100}", "space lr must be values the setting accepts"),
    ("optimizer: {low: 1, high: 2}", "space optimizer must be a list of choices: the field is not a number"),
    ("optimizer: [adam, rmsprop]", "optimizer must be one of {adam, adamw, sgd}"),
    ("batch_size: []", "space batch_size must be a non-empty list of distinct choices"),
    ("epochs: [1, 1.0]", "space epochs must be a non-empty list of distinct choices"),  # one setting, drawn twice
    ("data: [a, b]", "space field must be one of {"),
    # trials compared on other validation images: val_split 0.02 won on 4 images
    ("val_split: [0.02, 0.3]", "space field must be a setting other than those that draw the split (seed, "
                               "val_split, test_split, group_duplicates)"),
    ("seed: [0, 1, 2]", "every trial must be scored on the same validation images"),
    # trials ranked on other scores: a multi-label trial's label-wise accuracy against single-label ones
    ("task: [single, multilabel]", "space field must be a setting other than task. Received: space field='task' "
                                   "(it decides what trials are scored by"),
    # read by none of the trials: each trained the same model, and a best was tested
    ("momentum: {low: 0.5, high: 0.99}", "space field must be a setting the trials read: momentum is read with "
                                         "optimizer sgd"),
    ("lr_patience: [1, 5]\nschedule: [none, cosine]", "the trials train with schedule none or cosine"),
    # TrainConfig takes any model name: ten trials failed, then --trials was blamed; or it was never drawn
    ("model: [simple_cnn, nope]", "space model must be values the setting accepts"),
    # the model's own builder: each trial that drew 1.5 failed, one by one, after the search had begun
    ("model_args.dropout: {low: 0, high: 1.5}", "space model_args.dropout must be values the setting accepts. "
                                                "Received: space model_args.dropout={'low': 0.0, 'high': 1.5} (1.5: "
                                                "model_args.dropout for simple_cnn must be >= 0 and < 1"),
    ("model_args.width: [4, 2.5]", "(2.5: model_args.width for simple_cnn must be an integer"),
    # a setting only a timm backbone takes: each trial that drew it failed, and the search stopped on them
    ("features_only: [true, false]", "(True: model must be a timm backbone when features_only is set"),
    # a model_args each model drawn must take: 5 of 9 trials failed on fast_resnet's
    ("model: [simple_cnn, fast_resnet]\nmodel_args.dropout: {low: 0.1, high: 0.3}",
     "space field for model fast_resnet must be one of {model_args.init, model_args.stem, model_args.width}"),
    ("model: [simple_cnn, fast_resnet]\nmodel_args.width: [4, 2.5]",
     "(2.5 with model simple_cnn: model_args.width for simple_cnn must be an integer"),
    # a trial's time limit is its share of the search's: the drawn one was recorded, never trained with
    ("time_limit: [3s, 4s]", "space field must be a setting other than time_limit"),
    ("lr: {low: 1e-3, hi: 1e-2}", "space lr key must be one of {high, log, low, step}. Did you mean: high? "
                                  "Received: space lr key='hi', space lr={'low': '1e-3', 'hi': '1e-2'}\n"),
    ("epochs: {low: 1.5, high: 3}", "space epochs must be a range of whole numbers"),
    ("batch_size: {choices: 32}", "space batch_size choices must be a non-empty list of distinct choices"),
    ("batch_size: {choices: [32], low: 8}", "Choices go alone: {choices: [a, b]}, or the list [a, b]"),
    # the data's task, which --task auto leaves to each trial: a multi-label loss failed trial after trial
    ("loss: [ce, asl]", "('asl': loss must be ce, focal or logitnorm for single-label data"),
    # below the model's minimum: refused by each trial that drew it, while the search drew it again
    ("img_size: [16, 3]", "(3: img_size for model simple_cnn must be at least 4"),
])
def test_a_bad_space_is_one_line_naming_the_field_before_anything_is_written(data, tmp_path, space, expected):
    (tmp_path / "space.yaml").write_text(space + "\n")
    out = tmp_path / "search"
    result = CliRunner().invoke(app, ["tune", str(data), "--trials", "2", "--out", str(out), "--space",
                                      str(tmp_path / "space.yaml"), *FLAGS])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Received:" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists()


def test_the_searchs_own_settings_are_checked_with_each_model_and_named_as_their_own(data, tmp_path):
    """The search's model_args were not built with each model drawn (5 of 9 trials failed on fast_resnet's), and
    its own features_only on a model without a timm backbone was blamed on the space's lr."""
    (tmp_path / "space.yaml").write_text("model: [simple_cnn, fast_resnet]\nlr: {low: 1e-3, high: 1e-2}\n")
    flags = [f for f in FLAGS if f not in ("--model-args", "width=4")]
    drawn = CliRunner().invoke(app, ["tune", str(data), "--trials", "2", "--out", str(tmp_path / "a"), "--space",
                                     str(tmp_path / "space.yaml"), *flags, "--model-args", "dropout=0.2"])
    assert drawn.exit_code == 2, drawn.output
    assert "space model must be values the setting accepts" in drawn.output, drawn.output
    assert "'fast_resnet': model_args key for fast_resnet must be one of" in drawn.output, drawn.output
    (tmp_path / "lr.yaml").write_text("lr: {low: 1e-3, high: 1e-2}\n")
    own = CliRunner().invoke(app, ["tune", str(data), "--trials", "2", "--out", str(tmp_path / "b"), "--space",
                                   str(tmp_path / "lr.yaml"), *FLAGS, "--features-only"])
    assert own.exit_code == 2 and own.output.startswith("error: model must be a timm backbone when features_only"), \
        own.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("trials", [10, "numpy"])
def test_a_budget_under_a_second_a_trial_is_refused_before_any_trial(data, tmp_path, trials):
    """A trial's time limit is whole seconds, at least one: 4 s over 10 trials ran each for 1 s, 2.5x over. A
    numpy whole number is a number of trials too (it was refused as not a whole number)."""
    import numpy as np

    import imgclf

    trials = np.int64(10) if trials == "numpy" else trials
    with pytest.raises(ImgclfError, match=r"^time_limit must be at least 1 s a trial, 10 s for 10 trials .*"
                                          r"Received: time_limit='4s', trials=10.*\(Python: time_limit=, trials=\)"):
        imgclf.tune({"data": str(data), **SETTINGS}, trials=trials, time_limit="4s", out=str(tmp_path / "t"))
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("keyword, value, allowed", [("pruner", "median", "an Optuna pruner"),
                                                     ("log", "tune.log", "a callable taking one line")])
def test_a_pruner_or_log_that_is_not_one_is_refused_before_any_trial(data, tmp_path, keyword, value, allowed):
    """A string for either ran the first trial, then ended in a bare AttributeError or TypeError."""
    import imgclf

    with pytest.raises(ImgclfError, match=rf"^{keyword} must be {allowed}.*Received: {keyword}='{value}'"):
        imgclf.tune({"data": str(data), **SETTINGS}, trials=2, out=str(tmp_path / "t"), **{keyword: value})
    assert not (tmp_path / "t").exists()


def test_a_search_refuses_the_sizing_probe_before_any_trial(data, tmp_path):
    """Each trial's probe would replace the sampled width, batch, learning rate and augmentation."""
    import imgclf

    # a Python caller is told the keywords beside the flags
    with pytest.raises(ImgclfError, match=r"sizing .*fixed for tune.*--sizing fixed .*Python: sizing=\"fixed\""):
        imgclf.tune({"data": str(data), "recipe": "fast", "progress": False}, trials=2, time_limit="30s",
                    out=str(tmp_path / "t"))
    assert not (tmp_path / "t").exists()


def test_a_search_refuses_lr_auto_before_any_trial(data, tmp_path):
    """search.yaml recorded lr: auto and every trial then sampled its own rate: the setting did nothing."""
    import imgclf

    with pytest.raises(ImgclfError, match=r"lr must be a number for tune: a finder run in each trial would replace.*"
                                          r"Pass --lr 0.01 \(Python: lr=0.01\)"):
        imgclf.tune({"data": str(data), "model": "simple_cnn", "lr": "auto", "epochs": 1, "progress": False},
                    trials=2, out=str(tmp_path / "t"))
    assert not (tmp_path / "t").exists()


def test_a_space_as_a_search_records_it_is_a_valid_space_file(tmp_path):
    """search.yaml and tune.json write choices as {choices: [...]}: pasted into a --space file, they read back
    as the same space (they were refused: "space augment key must be one of {high, log, low, step}")."""
    import yaml

    from imgclf.config import make_config
    from imgclf.search.space import default_space, read_space

    space = default_space(make_config(data="d", model="simple_cnn"))
    assert any(p.choices is not None for p in space) and any(p.choices is None for p in space)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({p.name: p.describe() for p in space}))
    assert {p.name: p.describe() for p in read_space(tmp_path / "space.yaml")} == {p.name: p.describe() for p in space}


def test_default_space_follows_the_model_family():
    from imgclf.config import make_config
    from imgclf.search.space import default_space

    adam = {p.name: p for p in default_space(make_config(data="d", model="simple_cnn"))}
    assert (adam["lr"].low, adam["lr"].high, adam["lr"].log) == (1e-4, 1e-2, True)
    assert "model_args.dropout" in adam and adam["augment"].choices == ("shift=0.1,zoom=0.1", "")
    sgd = {p.name: p for p in default_space(make_config(data="d", recipe=None, model="fast_resnet", optimizer="sgd",
                                                        batch_size=256, augment="hflip"))}
    assert sgd["lr"].high == 0.5 and sgd["batch_size"].choices == (128, 256, 512)
    assert "model_args.dropout" not in sgd and sgd["augment"].choices == ("hflip", "")


def test_cli_is_a_thin_layer_over_the_api(monkeypatch, data, tmp_path):
    import imgclf.search.search as search

    seen = {}

    class Fake:
        path = tmp_path / "sp ace"
        best_run = tmp_path / "sp ace" / "trials" / "trial-000"
        record = type("R", (), {"best": type("B", (), {"number": 0, "value": 0.5, "test_accuracy": 0.25,
                                                        "test_map": None})(),
                                "stopped": "time limit (3m)", "objective": "val_accuracy",
                                "trials": [type("T", (), {"state": s})() for s in ("complete", "complete", "fail")]})()

    def fake_tune(**kwargs):
        seen.update(kwargs)
        return Fake()

    monkeypatch.setattr(search, "tune", fake_tune)
    result = CliRunner().invoke(app, ["tune", str(data), "--trials", "7", "--time-limit", "3m", "--recipe",
                                      "fast-fmnist", "--lr", "0.05", "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert seen["trials"] == 7 and seen["time_limit"] == "3m" and seen["recipe"] == "fast-fmnist"
    assert str(seen["lr"]) == "0.05" and seen["data"] == str(data) and seen["out"] == str(tmp_path / "s")
    assert seen["resume"] is False and seen["space"] is None
    assert "best trial 0: validation accuracy 0.5000, test accuracy 0.2500" in result.output
    # the command to paste, quoted where the folder's name has a space (it printed the path bare)
    assert f"train it again: imgclf train --config '{tmp_path / 'sp ace' / 'best.yaml'}'" in result.output
    # a search its time limit cut short says so (only tune.json did)
    assert "stopped by its time limit (3m): 2 of 7 trials completed" in result.output
    # so does one that failed trials stopped: it had exited 0 saying only which trial was best
    Fake.record.stopped = "7 trials in a row failed"  # (failures_to_stop(7) is 7)
    failed = CliRunner().invoke(app, ["tune", str(data), "--trials", "7", "--out", str(tmp_path / "s")])
    assert "stopped early: 7 trials in a row failed: 2 of 7 trials completed" in failed.output, failed.output
    Fake.record.stopped = "7 trials asked, 9 already done"
    assert "stopped" not in CliRunner().invoke(app, ["tune", str(data), "--trials", "7"]).output
    Fake.record.stopped = "7 trials"
    done = CliRunner().invoke(app, ["tune", str(data), "--trials", "7", "--out", str(tmp_path / "s")])
    assert "stopped" not in done.output, done.output


def test_best_yaml_keeps_the_time_limit_the_search_started_from(tiny_run, tmp_path):
    """A recipe's own time limit (fast-fmnist: 10m) stays in best.yaml; only a trial's share is dropped."""
    from imgclf.records import RunDir
    from imgclf.search.outputs import best_settings

    assert best_settings(tmp_path / "best.yaml", RunDir(tiny_run), "10m")["time_limit"] == "10m"
    assert yaml.safe_load((tmp_path / "best.yaml").read_text())["time_limit"] == "10m"


def test_an_empty_choice_is_shown_as_none(data, tmp_path):
    """`augment: ["", hflip]`: the empty choice was shown as augment='' on the terminal and as blank cells."""
    import imgclf

    said = []
    out = tmp_path / "search"
    result = imgclf.tune({"data": str(data), **SETTINGS, "epochs": 1}, trials=2, out=str(out), log=said.append,
                         space={"augment": ["", "hflip"]}, report=False)  # as fit takes it
    assert (result.best_run / "metrics.json").is_file() and not (result.best_run / "report.html").exists()
    page = (out / "tune.html").read_text()
    trials = [line for line in said if line.startswith("trial")]
    assert trials and all("augment=''" not in line for line in trials)
    record = _record(out)
    assert any(t["params"].get("augment") == "" for t in record["trials"])  # the seeded sampler drew it
    assert any("augment=none" in line for line in trials) and "<td>none</td>" in page
    # the test split's figure is the summary's, which the caller prints: the terminal showed it twice
    assert not any("test accuracy" in line for line in said), said
    assert f"testing {result.best_run.name}, the best on validation, on the test split" in said
    # the search space in words, not a Python dict: {'choices': ['', 'hflip']}
    assert "<td class=\"name\">none or hflip</td>" in page and "'choices'" not in page


def test_the_search_space_and_the_parallel_axes_read_as_words():
    from imgclf.search.outputs import _axis, space_text

    assert space_text({"low": 1e-4, "high": 0.01, "log": True}) == "0.0001 to 0.01, log scale"
    assert space_text({"low": 8, "high": 64, "step": 8}) == "8 to 64 in steps of 8"
    assert space_text({"choices": [32, 64, 128]}) == "32, 64 or 128"
    assert space_text({"choices": ["hflip", ""]}) == "hflip or none"
    positions, ticks, labels = _axis(["", "hflip", ""], {"choices": ["hflip", ""]})
    assert labels == ["hflip", "none"] and positions == [1.0, 0.0, 1.0] and ticks == [0.0, 1.0]


def test_a_refused_data_folder_stops_the_search_at_its_first_trial_with_the_whole_message(data, tmp_path):
    """No draw changes the data: a class folder without images failed 3 trials of a search of 2, and the
    search's error ended its hint mid-word, "... remove the folder (img", where the record cut it at 300."""
    import shutil

    import imgclf
    from imgclf.errors import ImgclfError

    folder = tmp_path / "data"
    shutil.copytree(data, folder)
    (folder / "empty").mkdir()
    said = []
    with pytest.raises(ImgclfError) as refusal:
        imgclf.tune({"data": str(folder), **SETTINGS}, trials=2, space=SPACE, out=str(tmp_path / "s"),
                    log=said.append)
    text = str(refusal.value)
    assert refusal.value.argument == "data" and "(imgclf train can also leave the class out: --drop-classes " \
        "empty) (every trial of the search failed with it: 1 in " in text, text
    assert sum(line.startswith("trial") for line in said) == 1 and "stop   the data was refused" in said, said


def test_a_refused_split_setting_stops_the_search_at_its_first_trial(data, tmp_path):
    """Every trial shares the split: --val-split 0 failed 5 trials alike before the search gave up."""
    import imgclf
    from imgclf.errors import ImgclfError

    said = []
    with pytest.raises(ImgclfError) as refusal:
        imgclf.tune({"data": str(data), **SETTINGS, "val_split": 0}, trials=3, space=SPACE, out=str(tmp_path / "s"),
                    log=said.append)
    assert refusal.value.argument == "val_split", str(refusal.value)
    assert sum(line.startswith("trial") for line in said) == 1 and "stop   the val_split was refused" in said, said


def test_a_search_whose_every_trial_fails_stops(data, tmp_path, monkeypatch):
    """A failed trial is redrawn; a failure of every draw (here: a refused engine, before tune checked it) made
    the search draw for ever: 1,200 failed trials in a minute."""
    import imgclf
    import imgclf.pipeline.run as run_module
    from imgclf.errors import ImgclfError, invalid
    from imgclf.search.failures import FAILED_IN_A_ROW, failures_to_stop

    # a search of 2 trials ran 10 failed ones; one of many trials stops after at most 10
    assert (failures_to_stop(1), failures_to_stop(2), failures_to_stop(5), failures_to_stop(50)) == \
        (3, 3, 5, FAILED_IN_A_ROW)

    def refused(*args, **kwargs):
        raise invalid("accelerator", "tpuu", ("auto", "cpu"))

    said = []
    with monkeypatch.context() as m:
        m.setattr(run_module, "train_run", refused)
        # every trial refused alike: that refusal leads, naming its setting (it read "trials must be enough for
        # at least one trial to complete. Received: trials=2", as if more trials would help), and the emptied
        # folder is not offered to look at
        with pytest.raises(ImgclfError) as refusal:
            imgclf.tune({"data": str(data), **SETTINGS}, trials=2, space=SPACE, out=str(tmp_path / "s"),
                        log=said.append)
    text = str(refusal.value)
    assert refusal.value.argument == "accelerator" and re.match(
        r"accelerator must be one of .*'tpuu' \(every trial of the search failed with it: 3 in .*\)\. Nothing of the "
        r"search was kept", text), text
    assert "tune.json" not in text and not (tmp_path / "s").exists()
    assert sum(line.startswith("trial") and "failed" in line for line in said) == 3
    assert any("3 trials in a row failed" in line for line in said)
    # failures for different settings: the count of trials is what failed, and the last cause is named
    causes = iter(["accelerator", "devices"] * 5)

    def refused_by_turns(*args, **kwargs):
        raise invalid(next(causes), "x", ("y",))

    with monkeypatch.context() as m:
        m.setattr(run_module, "train_run", refused_by_turns)
        with pytest.raises(ImgclfError, match=r"^trials must be enough for at least one trial to complete\. Received: "
                                              r"trials=2 \(none completed in .*: 3 failed, the last with: "
                                              r"accelerator must be"):
            imgclf.tune({"data": str(data), **SETTINGS}, trials=2, space=SPACE, out=str(tmp_path / "u"))
    with pytest.raises(ImgclfError, match=r"accelerator must be one of .*Received: accelerator='tpuu'"):
        imgclf.tune({"data": str(data), **SETTINGS}, trials=2, out=str(tmp_path / "t"), accelerator="tpuu")
    assert not (tmp_path / "t").exists()


def test_the_train_it_again_line_gives_the_epochs_a_time_cut_best_trial_trained(tiny_run, tmp_path):
    """best.yaml keeps the search's --epochs 30 and no time limit; the best trial, cut by its 8 s share after 10
    epochs, was not repeated by `train --config best.yaml` as the line said."""
    import shutil

    from imgclf.io import read_json, write_json
    from imgclf.records import TuneRecord
    from imgclf.search.outputs import best_trial_budget_note as _best_trial_budget_note, write_page

    run = shutil.copytree(tiny_run, tmp_path / "trial")
    assert _best_trial_budget_note(run) == ""  # finished its epochs: best.yaml repeats it as it is
    card = read_json(run / "model.json")
    card["training"]["stopped"], card["training"]["epochs_run"] = "time limit (8s)", 1
    write_json(run / "model.json", card)
    note = _best_trial_budget_note(run)
    assert note.startswith(" --epochs 1 to repeat the trial") and "stopped after 1 of " in note
    # best.yaml has the search's own time limit, often none: it said "keeps the search's epochs and time limit"
    assert note.endswith("(best.yaml keeps the search's epochs, without the trial's share of its time budget)")
    # the page says it too, after the command (it gave `imgclf train --config best.yaml` alone)
    record = TuneRecord.model_validate({
        "created": "2026-12-06T00:00:00Z", "imgclf_version": "0", "optuna_version": "0", "data": "d",
        "model": "simple_cnn", "sampler": "TPESampler", "pruner": "MedianPruner", "seed": 0, "trials_asked": 1,
        "seconds_used": 1.0, "stopped": "done", "space": {"lr": {"low": 1e-3, "high": 1e-1, "log": True}},
        "trials": [{"number": 0, "state": "complete", "value": 0.5, "params": {"lr": 0.01}, "run": "trial",
                    "epochs": 1, "seconds": 1.0, "stopped": "time limit (8s)"}],
        "best": {"number": 0, "value": 0.5, "params": {"lr": 0.01}, "run": "trial"}, "importances": {}})
    page = " ".join(write_page(tmp_path / "tune.html", record, None).read_text().split())
    assert "imgclf train --config best.yaml</code> --epochs 1 to repeat the trial" in page
    # no importances: every reason the search gives none is named (3 trials scoring alike were put down to fewer
    # than 3 trials, or no parameter varied)
    assert "Not computed: fewer than 3 complete trials, every complete trial scored the same, or no parameter " \
        "varied." in page
    # a schedule over the whole span: --epochs 1 would decay the rate within that one epoch, another trial
    from imgclf.records import RunDir

    for schedule, span in (("cosine", "epochs"), ("budget", "its time limit")):
        RunDir(run).write_config(RunDir(run).read_config().model_copy(update={"schedule": schedule,
                                                                              "time_limit": "8s"}))
        note = _best_trial_budget_note(run)
        assert "--epochs 1 would decay the rate sooner" in note, note
        assert f"imgclf train --config {run / 'config.yaml'}" in note and span in note


def test_a_learning_rate_given_centres_the_default_space_on_it(data, tmp_path):
    """--lr 0.0151 (lr-find's suggestion) was recorded in search.yaml and dropped: the trials drew from Adam's fixed
    1e-4..1e-2, which did not even hold it. Given, it centres the range a decade either side; not given, the
    model family's range stays."""
    import imgclf
    from imgclf.config import make_config
    from imgclf.search.space import default_space

    result = imgclf.tune({"data": str(data), **SETTINGS, "epochs": 1, "lr": 0.02}, trials=1, out=str(tmp_path / "t"),
                         report=False)
    space = yaml.safe_load((tmp_path / "t" / "search.yaml").read_text())["space"]
    assert space["lr"]["low"] == pytest.approx(0.002) and space["lr"]["high"] == pytest.approx(0.2)
    assert 0.002 <= result.record.trials[0].params["lr"] <= 0.2
    plain = {p.name: p for p in default_space(make_config(data="d", model="simple_cnn", lr=0.02))}["lr"]
    assert (plain.low, plain.high) == (1e-4, 1e-2)  # a recipe's or the default rate does not move the range
    sgd = {p.name: p for p in default_space(make_config(data="d", model="simple_cnn", optimizer="sgd", lr=2), True)}
    assert (sgd["lr"].low, sgd["lr"].high) == (pytest.approx(0.2), 10.0)  # a range to 20 was refused as no lr
    # a --config file's rate too (best.yaml, lr-find's suggestion written down): the range ignored it
    config = tmp_path / "cfg.yaml"
    config.write_text("lr: 0.05\n")
    cli = CliRunner().invoke(app, ["tune", str(data), *FLAGS, "--epochs", "1", "--config", str(config), "--trials",
                                   "1", "--out", str(tmp_path / "f"), "--no-progress"])
    assert cli.exit_code == 0, cli.output
    space = yaml.safe_load((tmp_path / "f" / "search.yaml").read_text())["space"]
    assert (space["lr"]["low"], space["lr"]["high"]) == (pytest.approx(0.005), pytest.approx(0.5))


def test_a_searchs_trials_say_the_datas_warnings_once(tmp_path, capsys):
    """Every trial's run prepares the same data: the search said each split warning once per trial (a screenful
    each), the leak warning too although it names the trial's own run in its audit command."""
    import shutil

    import imgclf

    data = make_image_folder(tmp_path / "d", per_class=12, size=12, layout="splits",
                             per_split={"train": 12, "test": 4})
    shutil.copyfile(data / "train" / "cat" / "cat_000.png", data / "test" / "cat" / "copy.png")  # a leak
    settings = {**SETTINGS, "group_duplicates": True, "epochs": 1}
    imgclf.tune(data=str(data), trials=2, space=SPACE, out=str(tmp_path / "s"), **settings)
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning ")]
    leaks = [line for line in said if "near-duplicate in train/" in line]
    assert len(leaks) == 1 and "trial-000" in leaks[0], said
    assert len(said) == len(set(said)) and any("the val split holds 9 images" in line for line in said), said
    # outside a search each run says its own again
    imgclf.fit(data=str(data), out=str(tmp_path / "run"), **settings)
    assert any("near-duplicate in train/" in line for line in capsys.readouterr().err.splitlines())


@pytest.mark.parametrize("complete, hinted", [(3, True), (12, False)])
def test_importances_from_few_trials_are_called_a_hint(tmp_path, complete, hinted):
    """Optuna computes importances from 3 complete trials; from so few they move with every trial added, and the
    page showed them bare, like a finding."""
    from imgclf.records import TuneRecord
    from imgclf.search.outputs import write_page

    trials = [{"number": i, "state": "complete", "value": 0.5 + i / 100, "params": {"lr": 10 ** (-3 + i / 10)},
               "run": f"trials/trial-{i:03d}", "epochs": 1, "seconds": 1.0, "stopped": "completed"}
              for i in range(complete)]
    record = TuneRecord.model_validate({
        "created": "2026-12-06T00:00:00Z", "imgclf_version": "0", "optuna_version": "0", "data": "d",
        "model": "simple_cnn", "sampler": "TPESampler", "pruner": "MedianPruner", "seed": 0,
        "trials_asked": complete, "seconds_used": 1.0, "stopped": "done", "space": {"lr": {"low": 1e-3,
                                                                                          "high": 1e-1, "log": True}},
        "trials": trials, "best": {"number": complete - 1, "value": trials[-1]["value"], "params": {"lr": 0.01},
                                   "run": trials[-1]["run"]},
        "importances": {"lr": 1.0}})
    page = " ".join(write_page(tmp_path / "tune.html", record, None).read_text().split())
    assert "parameter importances" in page
    assert (f"From {complete} complete trials only" in page) is hinted


def test_a_diverged_trial_is_listed_as_failed_not_as_one_to_resume(data, tmp_path, monkeypatch):
    """A trial whose training diverged was listed by `imgclf runs` as interrupted, "imgclf train --resume
    TRIAL", and skipped by compare as "interrupted ... --resume continues it": resuming it diverges again."""
    import imgclf
    import imgclf.train.fit as fit
    from imgclf.evaluation.compare import unfinished

    out = tmp_path / "search"
    monkeypatch.setattr(fit, "non_finite_tensors", lambda model: ["conv.weight"])  # as NaN weights are found
    with pytest.raises(ImgclfError, match="none completed"):
        imgclf.tune({"data": str(data), **SETTINGS}, trials=1, space=SPACE, out=str(out))
    record = _record(out)
    assert {t["state"] for t in record["trials"]} == {"fail"}
    assert all("diverged" in t["stopped"] for t in record["trials"])
    trial = out / "trials" / "trial-000"
    assert (trial / "checkpoints" / "last.ckpt").is_file()  # a folder train --resume would take
    (row,) = [r for r in imgclf.list_runs(out) if r.name == "trials/trial-000"]
    assert row.status == "failed" and row.reason.startswith("search trial failed: training diverged"), row
    assert "--resume" not in row.reason
    assert unfinished(trial).startswith("a trial that failed in its search (failed: training diverged")


def test_a_search_out_inside_the_data_folder_is_refused_before_any_trial(data, tmp_path):
    """It ran every trial into a failure, then left data/tune behind, which training then refused as a class folder
    with no image."""
    import imgclf

    with pytest.raises(ImgclfError, match=r"out must be a folder outside the data folder.*inside the data folder"):
        imgclf.tune({"data": str(data), **SETTINGS}, trials=1, space=SPACE, out=str(data / "tune"))
    assert not (data / "tune").exists()


def test_an_interrupt_while_optuna_makes_its_study_keeps_nothing_to_refuse_the_same_command(data, tmp_path,
                                                                                           monkeypatch):
    """A Ctrl-C in the first seconds left search.yaml and a study.db without a study: the same command was refused
    (holds study.db), and with --resume it failed with Optuna's KeyError."""
    import optuna

    import imgclf
    from imgclf.search.interrupt import SearchInterrupted

    out = tmp_path / "search"
    made = optuna.create_study

    def ctrl_c(*args, **kwargs):
        made(*args, **kwargs)  # the database written, as the signal found it
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(optuna, "create_study", ctrl_c)
        with pytest.raises(SearchInterrupted, match="search interrupted before its first trial \\(Ctrl-C\\): "
                                                    "nothing was kept, so the same command starts it again"):
            imgclf.tune({"data": str(data), **SETTINGS}, trials=1, space=SPACE, out=str(out))
    assert list(out.iterdir()) == []
    result = imgclf.tune({"data": str(data), **SETTINGS}, trials=1, space=SPACE, out=str(out))  # the same command
    assert result.record.trials[0].state == "complete"
    # a folder an earlier release left so (search.yaml, and a database with no study) is named, not a KeyError
    left = tmp_path / "left"
    left.mkdir()
    (left / "search.yaml").write_bytes((out / "search.yaml").read_bytes())
    optuna.storages.RDBStorage(f"sqlite:///{left / 'study.db'}")
    with pytest.raises(ImgclfError, match=r"out must be a search folder to resume.*its study.db holds no study"):
        imgclf.tune(trials=1, resume=True, out=str(left))
    # killed (SIGKILL) between the database and search.yaml: each command named the other, and --resume the wrong file
    (left / "search.yaml").unlink()
    with pytest.raises(ImgclfError, match=r"\(no search.yaml\)\. Delete the folder and run the command without "
                                          r"--resume: nothing of the search was kept"):
        imgclf.tune(trials=1, resume=True, out=str(left))
    with pytest.raises(ImgclfError, match=r"holds study.db without search.yaml: a search stopped before its first "
                                          r"trial\)\. Delete the folder"):
        imgclf.tune({"data": str(data), **SETTINGS}, trials=1, space=SPACE, out=str(left))


def test_an_interrupt_while_the_best_trial_is_tested_says_how_to_finish(data, tmp_path, monkeypatch):
    """It exited without a word, tune.json saying "running: 1 of 1 trials done"."""
    import imgclf
    import imgclf.search.search as search
    from imgclf.search.interrupt import SearchInterrupted

    out = tmp_path / "search"

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(search, "finish", ctrl_c)
        with pytest.raises(SearchInterrupted, match=rf"search interrupted while testing the best trial \(Ctrl-C\)\. "
                                                    rf"Finish it by running the same imgclf tune command with --resume "
                                                    rf"--out {out}"):
            imgclf.tune({"data": str(data), **SETTINGS}, trials=1, space=SPACE, out=str(out))
    assert _record(out)["stopped"] == "interrupted while testing the best trial: 1 of 1 trials done"
    assert imgclf.tune(trials=1, resume=True, out=str(out)).best_run is not None


def test_a_resume_with_another_model_names_the_model_not_the_space(data, tmp_path):
    """It said "space field for model model_s must be one of {model_args.conv_l2, ...}. Received: space
    field='model_args.dropout'": the stored default space read against the new model, before the settings were
    compared."""
    import imgclf

    out = tmp_path / "search"
    imgclf.tune({"data": str(data), **SETTINGS, "epochs": 1}, trials=1, out=str(out), report=False)
    with pytest.raises(ImgclfError, match=r"model for --resume .* must be 'simple_cnn' as in the search being "
                                          r"resumed\. Received: model='model_s'"):
        imgclf.tune(trials=2, resume=True, out=str(out), model="model_s")


@pytest.fixture
def interactive_ctrl_c():
    """SIGINT as an interactive shell leaves it (Python's handler): pytest-xdist's workers start with it ignored,
    which a search keeps, and then no Ctrl-C ever reaches it."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, inherited)


def test_a_ctrl_c_that_python_dropped_still_stops_the_search(data, tmp_path, monkeypatch, interactive_ctrl_c):
    """A Ctrl-C raised inside a garbage collector's weakref callback is printed and dropped by Python ("Exception
    ignored in: ... KeyboardInterrupt"): the search then ran every trial to the end and exited 0. Here trial 0's
    Ctrl-C is dropped as that callback drops it; the search must stop before trial 1."""
    import imgclf
    import imgclf.search.search as search
    from imgclf.search.interrupt import SearchInterrupted

    run_trial = search._run_trial

    def dropped_ctrl_c(*args, **kwargs):
        run_trial(*args, **kwargs)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)  # the handler runs here
        except KeyboardInterrupt:
            pass  # as Python's weakref callback machinery does

    monkeypatch.setattr(search, "_run_trial", dropped_ctrl_c)
    out = tmp_path / "search"
    with pytest.raises(SearchInterrupted, match="search interrupted between trials"):
        imgclf.tune({"data": str(data), **SETTINGS, "epochs": 1}, trials=3, space=SPACE, out=str(out))
    record = _record(out)
    assert len(record["trials"]) == 1 and record["stopped"].startswith("interrupted between trials")
    # the handler is Python's own again once the search ended
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # dropped during the last trial: the best is not tested, the search says how to finish (it exited 0)
    with pytest.raises(SearchInterrupted, match="search interrupted while testing the best trial"):
        imgclf.tune({"data": str(data), **SETTINGS, "epochs": 1}, trials=1, space=SPACE, out=str(tmp_path / "last"))
    assert not (tmp_path / "last" / "best.yaml").exists()
    # a process that ignores Ctrl-C (started in the background by a script) keeps ignoring it
    from imgclf.train.interrupts import remembered_ctrl_c

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with remembered_ctrl_c() as came:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
        assert not came() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("around, expected", [(1.0, [8.0, 8.0, 8.0]), (2.0, [8.0, 8.0, 8.0]),
                                               (3.0, [8.0, 7.0, 7.0])])
def test_time_cut_trials_train_alike(around, expected):
    """30 s for 3 trials, each spending `around` s outside its training. They trained 10, 8 and 6 s (the last
    paying for the first's overhead), then 10, 8 and 8: the first, its overhead unknown before it ran, trained
    more than the others and was favoured. Every trial now trains alike while the overheads leave it that."""
    from imgclf.search.budget import trial_seconds

    budget, trials = 30.0, 3
    share, used, overheads, trained = budget / trials, 0.0, [], []
    for _ in range(trials):
        seconds = trial_seconds(share, budget - used, overheads)
        trained.append(seconds)
        used += seconds + around
        overheads.append(around)
    assert trained == expected
    assert used <= budget + around  # over the budget by the first trial's overhead at most
    assert trial_seconds(10.0, 3.0, [2.0, 2.0]) == 3.0  # a budget overrun by more is still kept to


def test_a_trial_interrupted_while_it_trains_records_the_epochs_it_finished(data, tmp_path, monkeypatch,
                                                                            interactive_ctrl_c):
    """tune.json gave an interrupted trial `epochs: null` where its history held the epochs it had trained."""
    import lightning as L

    import imgclf
    import imgclf.pipeline.run as pipeline_run
    from imgclf.search.interrupt import SearchInterrupted

    class CtrlCInSecondEpoch(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, index):
            if trainer.current_epoch == 1:
                raise KeyboardInterrupt

    real = pipeline_run.train_run
    monkeypatch.setattr(pipeline_run, "train_run",
                        lambda cfg, **kw: real(cfg, **{**kw, "callbacks": [*kw["callbacks"], CtrlCInSecondEpoch()]}))
    out = tmp_path / "search"
    with pytest.raises(SearchInterrupted):
        imgclf.tune({"data": str(data), **SETTINGS, "epochs": 3}, trials=2, space=SPACE, out=str(out))
    trial = _record(out)["trials"][0]
    assert trial["stopped"] == "interrupted" and trial["epochs"] == 1, trial


def test_a_resume_on_a_data_folder_that_changed_since_its_trials_is_refused(data, tmp_path):
    """Ten images added to each class between two tunes of one search: trials 0-1 were split 36/3/3 and 2-3
    60/6/6 without a word, and the best was picked from validation accuracies on other images."""
    import shutil

    import imgclf

    grown = Path(shutil.copytree(data, tmp_path / "data"))
    out = tmp_path / "search"
    imgclf.tune({"data": str(grown), **SETTINGS, "epochs": 1}, trials=1, out=str(out), report=False)
    extra = sorted((grown / "cat").iterdir())[0]
    shutil.copyfile(extra, grown / "cat" / "new-1.png")
    shutil.copyfile(extra, grown / "dog" / "new-2.png")
    with pytest.raises(ImgclfError, match=r"^data for --resume .* must be the images the search's trials were split "
                                          r"from\. Received: .*\(2 added since trial-000 was split\)\. Start a new "
                                          r"search"):
        imgclf.tune(trials=2, resume=True, out=str(out))
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["trial-000"]
    # the images back as they were: the search goes on
    for new in grown.rglob("new-*.png"):
        new.unlink()
    # a link to a cat added under dog is a new labelled image, though its file is not new
    (grown / "dog" / "linked-cat.png").symlink_to(extra)
    with pytest.raises(ImgclfError, match=r"\(1 added since trial-000 was split\)"):
        imgclf.tune(trials=2, resume=True, out=str(out))
    (grown / "dog" / "linked-cat.png").unlink()
    record = imgclf.tune(trials=2, resume=True, out=str(out), report=False).record
    assert len(record.trials) == 2


def test_a_resume_on_an_index_file_that_changed_since_its_trials_is_refused(data, tmp_path):
    """An index of label sets grown by rows between two tunes of one search: not checked, as folders were."""
    import imgclf

    rows = [f"{p.relative_to(data)},{p.parent.name}" for p in sorted(data.rglob("*.png"))]
    index = tmp_path / "index.csv"
    index.write_text("path,labels\n" + "\n".join(rows[1:]) + "\n")
    (tmp_path / "cat").symlink_to(data / "cat")
    (tmp_path / "dog").symlink_to(data / "dog")
    (tmp_path / "fox").symlink_to(data / "fox")
    out = tmp_path / "search"
    imgclf.tune({"data": str(index), **SETTINGS, "epochs": 1}, trials=1, out=str(out), report=False)
    index.write_text("path,labels\n" + "\n".join(rows[:1] + rows[1:]) + "\n")  # one image more
    with pytest.raises(ImgclfError, match=r"must be the images the search's trials were split from\. .*\(1 added "
                                          r"since trial-000 was split\)"):
        imgclf.tune(trials=2, resume=True, out=str(out))
    index.write_text("path,labels\n" + "\n".join(rows[1:-1] + [rows[-1].rsplit(",", 1)[0] + ",cat"]) + "\n")
    with pytest.raises(ImgclfError, match=r"\(1 relabelled since trial-000 was split\)"):
        imgclf.tune(trials=2, resume=True, out=str(out))
    # a label added to an image: it was "1 added" (its new label's pair), and a label taken away "1 gone"
    for labels in ("cat;dog", ""):
        index.write_text("path,labels\n" + "\n".join(rows[1:-1] + [rows[-1].rsplit(",", 1)[0] + f",{labels}"]) + "\n")
        with pytest.raises(ImgclfError, match=r"\(1 relabelled since trial-000 was split\)"):
            imgclf.tune(trials=2, resume=True, out=str(out))


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_a_finished_trial_is_told_waits_until_it_is(data, tmp_path, monkeypatch, interactive_ctrl_c,
                                                                   sent):
    """A signal 0.02 s after a trial's run completed, while its score was read and told to Optuna: the trial stayed
    "running", the search said "interrupted between trials", and the resume marked the finished run failed (a best
    trial lost). Now it is told first, and the search stops between trials."""
    import imgclf
    from imgclf.records import RunDir
    from imgclf.search.interrupt import SearchInterrupted

    real = RunDir.read_card

    def signalled(self, *args, **kwargs):
        if sys._getframe(1).f_code.co_name == "_tell_finished":
            os.kill(os.getpid(), sent)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RunDir, "read_card", signalled)
    out = tmp_path / "search"
    lines = []
    with pytest.raises(SearchInterrupted) as stopped:
        imgclf.tune({"data": str(data), **SETTINGS, "epochs": 1}, trials=2, space=SPACE, out=str(out),
                    log=lines.append)
    assert stopped.value.exit_code == {signal.SIGTERM: 143, signal.SIGINT: 130}[sent]
    said = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C"}[sent]
    assert f"search interrupted between trials ({said})" in str(stopped.value) and "--resume" in str(stopped.value)
    (trial,) = _record(out)["trials"]
    assert trial["state"] == "complete" and trial["value"] is not None, trial
    assert any(line.startswith("trial   0") for line in lines)  # its line said, as for any told trial
    monkeypatch.setattr(RunDir, "read_card", real)
    record = imgclf.tune(trials=2, resume=True, out=str(out), report=False).record
    assert [t.state for t in record.trials] == ["complete", "complete"]


def test_a_signal_while_tune_json_is_rewritten_between_trials_says_how_to_resume(data, tmp_path, monkeypatch):
    """SIGTERM right after a trial's line, while tune.json was rewritten: nothing caught it, the command said only
    "imgclf tune interrupted" with no --resume, and tune.json stayed a trial behind."""
    import imgclf
    import imgclf.search.search as search
    from imgclf.search.interrupt import SearchInterrupted

    real = search._write_record

    def signalled(folder, study, search_, trials, budget, stop_reason, final=True):
        if stop_reason.startswith("running"):
            os.kill(os.getpid(), signal.SIGTERM)
        return real(folder, study, search_, trials, budget, stop_reason, final=final)

    monkeypatch.setattr(search, "_write_record", signalled)
    out = tmp_path / "search"
    with pytest.raises(SearchInterrupted) as stopped:
        imgclf.tune({"data": str(data), **SETTINGS, "epochs": 1}, trials=2, space=SPACE, out=str(out))
    assert stopped.value.exit_code == 143 and "--resume" in str(stopped.value)
    assert [t["state"] for t in _record(out)["trials"]] == ["complete"]


def test_a_finished_search_leaves_its_study_database_closed(data, tmp_path):
    """The first tune of a process kept study.db open for the life of the process: Optuna's first import keeps the
    traceback of its failed redis import, which held the search's frame and its storage. A fresh interpreter, so
    that the search imports Optuna itself, as a notebook's first tune does."""
    import json
    import subprocess
    import sys

    script = f"""
import json, os, imgclf
imgclf.tune({{"data": {str(data)!r}, **{SETTINGS!r}, "epochs": 1}}, trials=1, out={str(tmp_path / "t")!r},
            report=False)
links = []
for fd in os.listdir("/proc/self/fd"):
    try:
        links.append(os.readlink(f"/proc/self/fd/{{fd}}"))
    except OSError:
        pass
print(json.dumps([link for link in links if "study.db" in link]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
