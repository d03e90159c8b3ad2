import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import imgclf
from conftest import make_image_folder
from imgclf.cli import app
from imgclf.errors import ImgclfError
from imgclf.io import read_csv, read_json, read_yaml

IMGCLF = [sys.executable, "-m", "imgclf.cli"]
BATCH_NORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def test_demo_on_digits_reaches_095(tmp_path):
    from imgclf.demo import run_demo

    run = run_demo(tmp_path, epochs=15, progress=False)
    assert run.metrics.accuracy >= 0.95
    assert run.metrics.split == "test" and 170 <= run.metrics.count <= 190  # 10 % per class, rounded
    dataset = json.loads((run.path / "dataset.json").read_text())
    assert dataset["color"] == "grayscale" and len(dataset["classes"]) == 10
    assert set(dataset["splits"]) == {"train", "val", "test"}


def test_run_directory_contents(tiny_run):
    config = read_yaml(tiny_run / "config.yaml")
    assert config["img_size"] == 16 and config["color"] in ("rgb", "grayscale")
    history = read_csv(tiny_run / "history.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2, 3, 4, 5]
    assert set(history[0]) >= {"lr", "loss", "acc", "val_loss", "val_acc", "seconds", "images_per_s"}
    card = json.loads((tiny_run / "model.json").read_text())
    assert card["training"]["best_epoch"] in (1, 2, 3, 4, 5)
    assert card["metrics"]["accuracy"] == json.loads((tiny_run / "metrics.json").read_text())["accuracy"]
    preds = read_csv(tiny_run / "predictions.csv")
    assert len(preds) == json.loads((tiny_run / "metrics.json").read_text())["count"]


def test_existing_run_is_not_overwritten(tiny_run, image_folder):
    with pytest.raises(ImgclfError, match="holds another run"):
        imgclf.fit({"data": str(image_folder), "out": str(tiny_run), "epochs": 1, "progress": False})


def test_a_model_that_cannot_be_built_leaves_no_run_behind(tmp_path, image_folder):
    cfg = {"data": str(image_folder), "out": str(tmp_path / "run"), "model": "fast_resnet", "img_size": 16,
           "epochs": 1, "batch_size": 16, "progress": False}
    with pytest.raises(ImgclfError, match="model_args.stem"):
        imgclf.fit({**cfg, "model_args": {"width": 8, "stem": "patch"}})
    assert not (tmp_path / "run" / "config.yaml").exists()
    run = imgclf.fit({**cfg, "model_args": {"width": 8}})  # the corrected command takes the same --out
    assert (run.path / "model.safetensors").exists()


def test_lightning_refusing_to_start_leaves_no_run_behind(tmp_path, image_folder, monkeypatch):
    """Lightning's own refusal of the machine (its MisconfigurationException, a ValueError of its own) left
    config.yaml and dataset.json, and the corrected command was refused: 'holds another run'."""
    import imgclf.train.fit as fit_module

    cfg = {"data": str(image_folder), "out": str(tmp_path / "run"), "img_size": 16, "epochs": 1, "batch_size": 16,
           "progress": False, "model_args": {"width": 4}}

    from lightning.fabric.utilities.exceptions import MisconfigurationException

    def refuse(*args, **kwargs):
        raise MisconfigurationException("the machine said no")

    with monkeypatch.context() as m:
        m.setattr(fit_module, "train_model", refuse)
        with pytest.raises(MisconfigurationException, match="the machine said no"):
            imgclf.fit(cfg)
    assert not (tmp_path / "run" / "config.yaml").exists() and not (tmp_path / "run" / "dataset.json").exists()
    assert imgclf.fit(cfg).path == tmp_path / "run"


def test_seeded_runs_are_reproducible_on_cpu(tmp_path, image_folder):
    cfg = {"data": str(image_folder), "img_size": 16, "epochs": 2, "batch_size": 16, "progress": False,
           "model_args": {"width": 8}, "augment": "hflip,rotate=15,zoom=0.1", "seed": 3}
    a = imgclf.fit({**cfg, "out": str(tmp_path / "a")})
    b = imgclf.fit({**cfg, "out": str(tmp_path / "b")})
    wa, wb = load_file(str(a.path / "model.safetensors")), load_file(str(b.path / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_restore_best_keeps_the_best_val_loss_epoch(tmp_path, image_folder):
    run = imgclf.fit({"data": str(image_folder), "img_size": 16, "epochs": 4, "progress": False, "lr": 0.05,
                      "optimizer": "sgd", "model_args": {"width": 8}, "out": str(tmp_path / "r")})
    history = read_csv(run.path / "history.csv")
    best = min(history, key=lambda r: float(r["val_loss"]))
    assert run.best_epoch == int(best["epoch"])
    saved = load_file(str(run.path / "model.safetensors"))
    best_w = load_file(str(run.path / "checkpoints" / "best.safetensors"))
    # the learnt tensors are the best epoch's; the BatchNorm statistics are recomputed for them (batch_norm_stats)
    assert all(torch.equal(saved[k], best_w[k]) for k in saved if not k.endswith(BATCH_NORM_STATISTICS))
    assert any(not torch.equal(saved[k], best_w[k]) for k in saved if k.endswith("running_var"))


def test_without_restore_best_the_kept_epoch_is_the_last(tmp_path, image_folder):
    """restore_best false keeps the last epoch's weights, and the card, the report and the headline validation
    accuracy say that epoch, not the monitor's best (a 20-second `fast` run quoted 93 % validation accuracy from
    its epoch 113 while it kept the weights of epoch 204, at 83 %)."""
    run = imgclf.fit({"data": str(image_folder), "img_size": 16, "epochs": 8, "progress": False, "lr": 0.05,
                      "optimizer": "sgd", "schedule": "none", "monitor": "val_acc", "restore_best": False,
                      "early_stopping": None, "model_args": {"width": 8}, "out": str(tmp_path / "last")})
    history = read_csv(run.path / "history.csv")
    accuracies = [float(r["val_acc"]) for r in history]
    assert accuracies.index(max(accuracies)) + 1 < len(history)  # the monitor's best is an earlier epoch
    card = read_json(run.path / "model.json")
    assert run.best_epoch == card["training"]["best_epoch"] == len(history) == 8
    # the quoted validation accuracy is the kept weights' own, measured after their BatchNorm statistics were
    # recomputed (history.csv's are training's, with its running averages)
    assert card["metrics"]["val_accuracy"] == card["training"]["val_accuracy_after_batch_norm"] is not None
    saved = load_file(str(run.path / "model.safetensors"))
    best_w = load_file(str(run.path / "checkpoints" / "best.safetensors"))
    learnt = [k for k in saved if not k.endswith(BATCH_NORM_STATISTICS)]
    assert not all(torch.equal(saved[k], best_w[k]) for k in learnt)  # the best checkpoint was not restored
    assert "weights of epoch 8 kept" in (run.path / "report.html").read_text()


def test_early_stopping_and_plateau_schedule(tmp_path, image_folder):
    run = imgclf.fit({"data": str(image_folder), "img_size": 16, "epochs": 30, "progress": False,
                      "early_stopping": 1, "min_delta": 10.0, "schedule": "plateau", "lr_patience": 0,
                      "model_args": {"width": 8}, "out": str(tmp_path / "es")})
    history = read_csv(run.path / "history.csv")
    assert len(history) == 2, "min_delta=10 means no epoch improves: stop after patience 1"
    assert run.stopped_reason == "early stopping"


def test_the_weights_kept_with_ema_are_the_averaged_ones(tmp_path, image_folder):
    """With --ema and restore_best (the default) the best epoch was chosen on the averaged weights' validation
    score, but the raw weights were saved for it: the model kept was byte for byte the run without --ema. Now the
    averaged weights are kept; where the best epoch is the last, they are the ones a run without restore_best ends
    with."""
    base = {"data": str(image_folder), "img_size": 16, "epochs": 3, "progress": False, "model_args": {"width": 8},
            "seed": 0}
    runs = {name: imgclf.fit({**base, **extra, "out": str(tmp_path / name)}, report=False)
            for name, extra in (("plain", {}), ("ema", {"ema": 0.5}),
                                ("ema_last", {"ema": 0.5, "restore_best": False}))}
    weights = {name: (run.path / "model.safetensors").read_bytes() for name, run in runs.items()}
    assert weights["ema"] != weights["plain"]
    best = runs["ema"].best_epoch
    assert (weights["ema"] == weights["ema_last"]) == (best == 3), best


def test_a_ctrl_c_that_python_dropped_still_stops_training(tmp_path, image_folder, monkeypatch):
    """A Ctrl-C raised inside a garbage collector's weakref callback is printed and dropped by Python ("Exception
    ignored in: ... KeyboardInterrupt"), and training went on to its last epoch. Here one is dropped at the first
    batch's end: training stops there, as for any Ctrl-C, and the caller's Ctrl-C handler is back afterwards."""
    import lightning as L

    import imgclf.train.fit as fit
    from imgclf.train.interrupts import TrainingInterrupted

    class DropsACtrlC(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.current_epoch == 0 and trainer.global_step == 1:
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(1.0)  # the handler runs here
                except KeyboardInterrupt:
                    pass  # as Python's weakref callback machinery does

    extra = fit._extra_callbacks
    monkeypatch.setattr(fit, "_extra_callbacks", lambda cfg, model: [*extra(cfg, model), DropsACtrlC()])
    # SIGINT as an interactive shell leaves it: pytest-xdist's workers start with it ignored
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(TrainingInterrupted, match=r"training interrupted \(Ctrl-C\) after 0 completed epochs") \
                as info:
            imgclf.fit({"data": str(image_folder), "img_size": 16, "epochs": 4, "batch_size": 8, "progress": False,
                        "model_args": {"width": 8}, "out": str(tmp_path / "run")})
        assert info.value.exit_code == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert not (tmp_path / "run" / "history.csv").exists() or not read_csv(tmp_path / "run" / "history.csv")


def test_a_ctrl_c_before_training_starts_says_so_and_leaves_the_out_free(tmp_path, image_folder, monkeypatch):
    """Ctrl-C between the run's config.yaml and Lightning's fit (the data's mean and std, the trainer's set-up)
    ended with a bare KeyboardInterrupt and no word, and the stub left refused the same command's --out."""
    import imgclf.train.fit as fit
    from imgclf.train.interrupts import TrainingInterrupted

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    settings = {"data": str(image_folder), "img_size": 16, "epochs": 1, "batch_size": 8, "progress": False,
                "model_args": {"width": 8}, "out": str(tmp_path / "run")}
    with monkeypatch.context() as m:
        m.setattr(fit, "training_loaders", ctrl_c)
        with pytest.raises(TrainingInterrupted, match=r"training interrupted \(Ctrl-C\) before it started; nothing "
                                                      r"was kept: the same command may use the same --out") as info:
            imgclf.fit(settings)
    assert info.value.exit_code == 130
    assert imgclf.fit(settings, report=False).epochs_run == 1  # the same --out
    # with a tracker, during its set-up (it ended with no word) or after it had written logs/ (which refused the
    # same --out as "not empty")
    import imgclf.train.trackers as trackers

    settings = {**settings, "out": str(tmp_path / "logged"), "logger": ["csv"]}
    for module, name in ((trackers, "log_config"), (fit, "training_loaders")):
        with monkeypatch.context() as m:
            m.setattr(module, name, ctrl_c)
            with pytest.raises(TrainingInterrupted, match="before it started; nothing was kept"):
                imgclf.fit(settings)
        assert not (tmp_path / "logged" / "logs").exists()
    assert imgclf.fit(settings, report=False).epochs_run == 1
    # a resume stopped before it started keeps the run: the command and the Python call that continue it
    run = str(tmp_path / "logged")
    with monkeypatch.context() as m:
        m.setattr(fit, "training_loaders", ctrl_c)
        with pytest.raises(TrainingInterrupted, match=rf"before it started; continue with: imgclf train --resume "
                                                      rf"{run} \(Python: imgclf\.fit\(resume='{run}'\)\)"):
            imgclf.fit(resume=run, epochs=2, report=False)
    # during the split warnings (they hash every file), before the trackers: it ended with no word
    import imgclf.pipeline.run as run_module

    settings = {**settings, "out": str(tmp_path / "split"), "logger": None}
    with monkeypatch.context() as m:
        m.setattr(run_module, "warn_about_splits", ctrl_c)
        with pytest.raises(TrainingInterrupted, match="before it started; nothing was kept"):
            imgclf.fit(settings)
    # an empty folder given as --out: all of it was the run's (it kept logs/, which refused the same command)
    (tmp_path / "empty").mkdir()
    with monkeypatch.context() as m:
        m.setattr(fit, "training_loaders", ctrl_c)
        with pytest.raises(TrainingInterrupted, match="before it started; nothing was kept"):
            imgclf.fit({**settings, "out": str(tmp_path / "empty"), "logger": ["csv"]})
    assert not any((tmp_path / "empty").iterdir())
    # a folder given with --overwrite keeps the user's own files, logs/ and export/ among them (a finished run
    # keeps them): only what the run wrote is taken back
    mine = tmp_path / "mine"
    (mine / "logs").mkdir(parents=True)
    (mine / "logs" / "diary.txt").write_text("my notes")
    (mine / "export").mkdir()
    (mine / "export" / "model_v1.onnx").write_bytes(b"mine")
    with monkeypatch.context() as m:
        m.setattr(fit, "training_loaders", ctrl_c)
        with pytest.raises(TrainingInterrupted, match="before it started"):
            imgclf.fit({**settings, "out": str(mine)}, overwrite=True)
    assert (mine / "logs" / "diary.txt").read_text() == "my notes"
    assert (mine / "export" / "model_v1.onnx").read_bytes() == b"mine"
    # SIGTERM (a scheduler's) right after config.yaml was written: it kept config.yaml alone, which neither
    # --resume nor the same command took, and any such stop before training was said as Ctrl-C, exit status 130
    from imgclf.records import RunDir
    from imgclf.train.interrupts import Terminated

    def sigterm(*args, **kwargs):
        raise Terminated

    settings = {**settings, "out": str(tmp_path / "termed"), "logger": None}
    with monkeypatch.context() as m:
        m.setattr(RunDir, "write_dataset", sigterm)
        with pytest.raises(TrainingInterrupted, match=r"training interrupted \(SIGTERM\) before it started; "
                                                      "nothing was kept") as info:
            imgclf.fit(settings)
    assert info.value.exit_code == 143 and not (tmp_path / "termed").exists()
    assert imgclf.fit(settings, report=False).epochs_run == 1


def test_nan_loss_stops_with_a_clear_message_and_keeps_best(tmp_path, image_folder, monkeypatch):
    from imgclf.train.module import ImageClassifierModule

    original = ImageClassifierModule.loss_fn

    def poisoned(self, logits, y):
        loss = original(self, logits, y)
        return loss * float("nan") if self.current_epoch >= 1 else loss

    monkeypatch.setattr(ImageClassifierModule, "loss_fn", poisoned)
    run = imgclf.fit({"data": str(image_folder), "img_size": 16, "epochs": 3, "progress": False,
                      "model_args": {"width": 8}, "out": str(tmp_path / "nan")})
    assert "loss became nan at epoch 2, batch 1" in run.stopped_reason
    assert "lower learning rate" in run.stopped_reason
    weights = load_file(str(run.path / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
    assert run.metrics.accuracy > 0


def test_nan_loss_in_the_first_epoch_is_an_error_not_a_run(tmp_path, image_folder, monkeypatch):
    """Stopped before any epoch completed there are no best weights: the run was evaluated with its initial
    weights, listed as completed, and the command exited 0 (found with all-zero class weights)."""
    from imgclf.train.module import ImageClassifierModule

    original = ImageClassifierModule.loss_fn
    monkeypatch.setattr(ImageClassifierModule, "loss_fn",
                        lambda self, logits, y: original(self, logits, y) * float("nan"))
    out = tmp_path / "nan"
    settings = {"data": str(image_folder), "img_size": 16, "epochs": 2, "progress": False, "model_args": {"width": 8},
                "out": str(out), "logger": ["csv"], "report": False}
    report = settings.pop("report")
    with pytest.raises(ImgclfError, match=r"loss became nan at epoch 1, batch 1, before any epoch completed, so "
                                          r"there is no model to keep\. Try a lower .* Nothing of the run was kept"):
        imgclf.fit(settings, report=report)
    assert not out.exists()  # the loggers' files included: the corrected command may use the same --out
    monkeypatch.setattr(ImageClassifierModule, "loss_fn", original)
    assert imgclf.fit(settings, report=report).path == out


def test_weights_kept_with_non_finite_values_are_an_error_naming_them(tmp_path, image_folder, monkeypatch):
    """SGD at lr 10: the loss grew to 1e16 and stayed finite, the BatchNorm running variances overflowed to NaN,
    and fitting the unknown detector on the kept weights' features failed as an internal error."""
    import imgclf.train.fit as fit

    trained = fit.train_model

    def overflowed(*args, **kwargs):
        result = trained(*args, **kwargs)
        next(m for m in result.model.modules() if isinstance(m, torch.nn.BatchNorm2d)).running_var[1] = float("nan")
        return result

    monkeypatch.setattr(fit, "train_model", overflowed)
    out = tmp_path / "overflowed"
    with pytest.raises(ImgclfError, match=r"^training diverged: the weights kept \(epoch \d\) hold NaN or infinite "
                                          r"values in [\w.]+\.running_var .*Try a lower learning rate \(lr=0\.001 now"):
        imgclf.fit({"data": str(image_folder), "img_size": 16, "epochs": 1, "progress": False,
                    "model_args": {"width": 8}, "out": str(out)}, report=False)
    assert (out / "history.csv").exists() and not (out / "model.json").exists()
    assert fit.non_finite_tensors(torch.nn.BatchNorm2d(2)) == []


def _train_cmd(data, out, *extra):
    return IMGCLF + ["train", str(data), "--model", "simple_cnn", "--img-size", "16", "--epochs", "5",
                     "--batch-size", "16", "--augment", "hflip,rotate=10", "--schedule", "step", "--lr-step", "2",
                     "--no-progress", "--model-args", "width=16", "--no-report", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The data of the interrupt tests and the run on it that nothing interrupted (one for both signals)."""
    root = tmp_path_factory.mktemp("uninterrupted")
    data = make_image_folder(root / "data", classes=("a", "b", "c", "d"), per_class=120)
    env = {**os.environ, "IMGCLF_CACHE": str(root / "cache")}
    subprocess.run(_train_cmd(data, root / "full"), check=True, env=env, capture_output=True)
    return data, root / "full"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_run_resumes_to_identical_weights(tmp_path, sig, uninterrupted):
    data, full = uninterrupted
    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path / "cache")}
    # a shell without job control starts background commands with SIGINT ignored, and Python keeps that: a suite
    # run as `make test &` would then see the run finish; the child gets the default disposition back
    proc = subprocess.Popen(_train_cmd(data, tmp_path / "cut"), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    history = tmp_path / "cut" / "history.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not history.exists() or len(history.read_text().splitlines()) < 3):
        time.sleep(0.02)
    time.sleep(0.1)
    proc.send_signal(sig)
    output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], output  # a shell's status
    said = {signal.SIGINT: "training interrupted (Ctrl-C)", signal.SIGTERM: "training interrupted (SIGTERM)"}[sig]
    assert said in output and "imgclf train --resume" in output and "Traceback" not in output
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    done = subprocess.run(IMGCLF + ["train", "--resume", str(tmp_path / "cut"), "--no-progress", "--no-report"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a = load_file(str(full / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    ha, hb = read_csv(full / "history.csv"), read_csv(tmp_path / "cut" / "history.csv")
    assert [(r["epoch"], r["lr"], r["val_loss"]) for r in ha] == [(r["epoch"], r["lr"], r["val_loss"]) for r in hb]


# Training done, the run being finished: the signal arrives at the stage named (module:function)
_SIGNAL_WHILE_FINISHING = """
import importlib, os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # a background shell may have left SIGINT ignored
SENT = getattr(signal, sys.argv[1])
module, function = sys.argv[2].split(":")
def stage(*args, **kwargs):
    os.kill(os.getpid(), SENT)
    time.sleep(30)
    raise AssertionError("the signal did not stop the stage")
setattr(importlib.import_module(module), function, stage)
from imgclf.cli import main
sys.argv = ["imgclf", *sys.argv[3:]]
main()
"""
EVALUATING = "imgclf.evaluation.run_eval:evaluate_run"
# the kept weights' BatchNorm statistics, recomputed right after trainer.fit: Ctrl-C there ended silently
RECOMPUTING = "imgclf.train.fit:recompute_batch_norm"


@pytest.mark.parametrize("sig, stopped_early, stage", [("SIGTERM", False, EVALUATING), ("SIGINT", False, EVALUATING),
                                                       ("SIGINT", True, EVALUATING), ("SIGINT", False, RECOMPUTING),
                                                       ("SIGTERM", False, RECOMPUTING), ("SIGINT", True, RECOMPUTING)])
def test_a_signal_after_training_says_how_to_finish_the_run(tmp_path, image_folder, sig, stopped_early, stage):
    """After the last epoch Lightning's handlers are gone: SIGTERM ended the process without a word (status 143,
    no card, no scores) and Ctrl-C as click's bare "Aborted!". Both now say what is kept and how to finish, and
    --resume finishes it without training any epoch again."""
    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    # stopped early, the checkpoint does not hold the stop: a plain --resume would train a third epoch
    epochs = ["--epochs", "10", "--early-stopping", "1", "--min-delta", "10"] if stopped_early else ["--epochs", "2"]
    args = ["train", str(image_folder), "--img-size", "16", *epochs, "--batch-size", "8", "--no-progress",
            "--model-args", "width=8", "--out", str(out)]
    cut = subprocess.run([sys.executable, "-c", _SIGNAL_WHILE_FINISHING, sig, stage, *args], env=env,
                         capture_output=True, text=True, timeout=300)
    assert cut.returncode == {"SIGTERM": 143, "SIGINT": 130}[sig], cut.stderr
    said = {"SIGTERM": "SIGTERM", "SIGINT": "Ctrl-C"}[sig]
    assert f"interrupted ({said}) after training" in cut.stderr and "epochs 1-2 are saved" in cut.stderr
    hint = cut.stderr.partition("Finish it with: ")[2].split()
    assert hint[:4] == ["imgclf", "train", "--resume", str(out)] and "Traceback" not in cut.stderr, cut.stderr
    assert hint[4:] == (["--epochs", "2"] if stopped_early else []), cut.stderr
    assert not (out / "metrics.json").exists()
    if stopped_early and not (out / "model.json").exists():
        # before the card: a plain --resume, without the hint's --epochs (a fold run again does so), trains none
        # either (it trained on; with a card it is refused, saying --epochs 2)
        import shutil

        plain = shutil.copytree(out, tmp_path / "plain")
        done = CliRunner().invoke(app, ["train", "--resume", str(plain), "--no-progress", "--no-report"],
                                  env={"IMGCLF_CACHE": env["IMGCLF_CACHE"]})
        assert done.exit_code == 0, done.output
        assert [int(r["epoch"]) for r in read_csv(plain / "history.csv")] == [1, 2]
    # the hint's command, run here (the signal needed a process of its own, finishing it does not)
    done = CliRunner().invoke(app, hint[1:] + ["--no-progress"], env={"IMGCLF_CACHE": env["IMGCLF_CACHE"]})
    assert done.exit_code == 0, done.output
    assert [int(r["epoch"]) for r in read_csv(out / "history.csv")] == [1, 2]  # no epoch ran twice
    assert json.loads((out / "metrics.json").read_text())["accuracy"] >= 0


def test_no_report_leaves_the_report_to_imgclf_report(tmp_path, image_folder):
    """`imgclf train --no-report` (the API's report=False) scores the run and writes no report.html; resumed
    further without one, the earlier report is removed, since it shows the run before its later epochs."""
    out = tmp_path / "run"
    args = ["train", str(image_folder), "--img-size", "16", "--epochs", "1", "--batch-size", "8", "--no-progress",
            "--model-args", "width=8", "--out", str(out), "--no-report"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "metrics.json").exists() and not (out / "report.html").exists()
    assert f"write it with: imgclf report {out}" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0 and (out / "report.html").exists(), result.output
    assert (out / "plots" / "confusion_counts.png").exists()
    result = CliRunner().invoke(app, ["train", "--resume", str(out), "--epochs", "2", "--no-progress", "--no-report"])
    assert result.exit_code == 0, result.output
    assert [int(r["epoch"]) for r in read_csv(out / "history.csv")] == [1, 2]
    # the page and its figures showed epoch 1's model (a tracker would log the figures as this run's)
    assert not (out / "report.html").exists() and not (out / "plots" / "confusion_counts.png").exists()
    # so did recalibrating without a report
    assert CliRunner().invoke(app, ["report", str(out)]).exit_code == 0
    result = CliRunner().invoke(app, ["calibrate", str(out), "--no-report"])
    assert result.exit_code == 0 and "no report.html (--no-report)" in result.output, result.output
    assert not (out / "report.html").exists() and not (out / "plots" / "confusion_counts.png").exists()


def test_resume_a_finished_run_with_more_epochs_keeps_its_history(tmp_path, image_folder):
    cfg = {"data": str(image_folder), "img_size": 16, "epochs": 2, "batch_size": 8, "progress": False,
           "model_args": {"width": 8}, "out": str(tmp_path / "r")}
    imgclf.fit(cfg, report=False)
    run = imgclf.fit(None, resume=str(tmp_path / "r"), epochs=3, report=False)
    assert [int(r["epoch"]) for r in read_csv(run.path / "history.csv")] == [1, 2, 3]

    # What the checkpoint cannot continue is refused on one line before anything is written: the run's files stay
    # as they were, and it resumes afterwards (refused inside Lightning, config.yaml held the new value for good)
    files = {name: (run.path / name).read_bytes() for name in ("config.yaml", "dataset.json", "history.csv")}
    for values, words in (({"epochs": 2}, "epochs for --resume"), ({"model": "model_s"}, "model for --resume"),
                          ({"model_args": {"width": 4}}, "model_args for --resume"),
                          ({"seed": 5}, "seed for --resume"), ({"data": str(tmp_path)}, "data for --resume")):
        with pytest.raises(ImgclfError) as refused:
            imgclf.fit(None, resume=str(run.path), report=False, **values)
        assert words in str(refused.value) and "Traceback" not in str(refused.value)
        # the hint's command runs: train has no --data flag, the data folder is its argument
        name = next(iter(values))
        hint = str(refused.value).partition("instead: ")[2]
        assert hint.startswith("imgclf train DATA --config" if name == "data" else "imgclf train --config") or \
            name == "epochs", str(refused.value)
        assert "--data" not in hint
        assert {name: (run.path / name).read_bytes() for name in files} == files
    again = imgclf.fit(None, resume=str(run.path), epochs=4, report=False)
    assert [int(r["epoch"]) for r in read_csv(again.path / "history.csv")] == [1, 2, 3, 4]


def test_data_over_the_cache_budget_streams_and_skips_broken_files(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=12)
    (data / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    run = imgclf.fit({"data": str(data), "img_size": 16, "epochs": 2, "batch_size": 8, "progress": False,
                      "cache_budget": "1KB", "num_workers": 1, "model_args": {"width": 8},
                      "augment": "crop=1",  # a translation, so that evaluation has TTA views (shifts)
                      "out": str(tmp_path / "s")}, report=False)
    dataset = json.loads((run.path / "dataset.json").read_text())
    assert dataset["streamed"] is True
    assert any(s["path"].endswith("broken.png") for s in dataset["skipped"])
    assert run.metrics.count > 0 and len(read_csv(run.path / "history.csv")) == 2
    assert run.metrics.tta is not None, "the streaming evaluation path computes TTA in the same decode pass"


def test_normalisation_methods_and_auto_per_model(image_folder):
    from imgclf.config import make_config
    from imgclf.data.dataset import prepare_data
    from imgclf.train.fit import normalisation

    data = prepare_data(image_folder, 16, "rgb", seed=0)
    mean, std = data.pixel_mean_std()

    def resolved(model, normalize):
        return normalisation(make_config(data=str(image_folder), model=model, normalize=normalize), data, object())

    assert resolved("simple_cnn", "auto") == (mean, std)
    assert resolved("simple_cnn", "rescale") == ([0.0] * 3, [1.0] * 3)
    # S4's network: mean subtracted in pixel units (MATLAB's imageInputLayer), so (x/255 - mean)/std == x - 255*mean
    assert resolved("caltech_cnn", "auto") == resolved("simple_cnn", "zerocenter") == (mean, [1 / 255] * 3)
    assert resolved("caltech_cnn", "dataset") == (mean, std)


def test_batch_norm_statistics_are_recomputed_for_the_kept_weights(tmp_path, digits_dir):
    """8 epochs on 300 digits: the BatchNorm running averages lag weights that move fast, and scored validation
    at about 57 % while each batch's own statistics scored 98 % of the training images; recomputed from the
    training images through the kept weights, test accuracy is that of the fit, and the card quotes the kept
    weights' validation accuracy, not training's."""
    run = imgclf.fit({"data": str(digits_dir), "per_class_max": 30, "epochs": 8, "progress": False,
                      "out": str(tmp_path / "short")})
    card = read_json(run.path / "model.json")
    training = card["training"]
    assert training["batch_norm_images"] == 300 == training["train_images"]
    assert card["metrics"]["accuracy"] >= 0.85
    assert card["metrics"]["val_accuracy"] == training["val_accuracy_after_batch_norm"] >= 0.85


def test_a_trial_headline_pairs_the_accuracy_with_a_loss_of_the_same_weights():
    """history.csv's validation loss was measured with training's BatchNorm statistics: beside the accuracy after
    their recompute it would describe other weights, so the headline has none; without a recompute, the kept
    epoch's."""
    from imgclf.pipeline.card import validation_headline
    from imgclf.records import HistoryRow, TrainingSummary

    history = [HistoryRow(epoch=1, val_loss=0.9, val_acc=0.6), HistoryRow(epoch=2, val_loss=0.5, val_acc=0.8)]
    plain = validation_headline(history, TrainingSummary(best_epoch=2))
    assert (plain.accuracy, plain.loss) == (0.8, 0.5)
    after = validation_headline(history, TrainingSummary(best_epoch=2, val_accuracy_after_batch_norm=0.85))
    assert (after.accuracy, after.loss) == (0.85, None)


def test_batch_size_one_with_batch_norm_is_warned(image_folder, tmp_path, caplog):
    """Each image normalised by its own statistics in training: the digits at --batch-size 1 scored chance, without
    a word (the statistics pass skips batches of one, and recomputing them over larger batches does not help)."""
    import logging

    import imgclf

    with caplog.at_level(logging.WARNING, logger="imgclf"):
        imgclf.fit(data=str(image_folder), model="simple_cnn", model_args={"width": 4}, img_size=8, epochs=1,
                   batch_size=1, out=str(tmp_path / "one"), progress=False, report=False, group_duplicates=False)
    assert [r.getMessage() for r in caplog.records if "batch_size 1 with a network that has BatchNorm" in
            r.getMessage()] != []
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        imgclf.fit(data=str(image_folder), model="simple_cnn", model_args={"width": 4}, img_size=8, epochs=1,
                   batch_size=2, out=str(tmp_path / "two"), progress=False, report=False, group_duplicates=False)
    assert not any("BatchNorm" in r.getMessage() for r in caplog.records)
