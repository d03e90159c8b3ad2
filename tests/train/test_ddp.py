"""Data-parallel training goes through Lightning's engine: 2 processes on CPU (gloo) match 1 process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import imgclf
from conftest import make_image_folder
from imgclf.io import read_csv

IMGCLF = [sys.executable, "-m", "imgclf.cli"]


def test_two_process_ddp_matches_one_process(tmp_path, monkeypatch):
    data = make_image_folder(tmp_path / "data", classes=("a", "b", "c", "d"), per_class=40)
    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path / "cache")}
    monkeypatch.setenv("IMGCLF_CACHE", env["IMGCLF_CACHE"])
    settings = {"img_size": 16, "epochs": 3, "progress": False, "accelerator": "cpu", "model_args": {"width": 8},
                "seed": 0}
    common = ["train", str(data), "--img-size", "16", "--epochs", "3", "--no-progress", "--accelerator", "cpu",
              "--model-args", "width=8", "--seed", "0"]
    # 2 x 8 per process = the same 16 images per optimiser step as one process with batch 16 (each rank takes
    # alternate batches of one shared permutation); only per-rank BatchNorm statistics differ. The one process
    # runs here (the same settings through the API, without the report): only the launch needs the CLI.
    imgclf.fit({**settings, "data": str(data), "batch_size": 16}, out=str(tmp_path / "one"), report=False)
    launched = subprocess.run(IMGCLF + common + ["--batch-size", "8", "--devices", "2", "--strategy", "ddp",
                                                 "--no-report", "--out", str(tmp_path / "two")], env=env,
                              capture_output=True, text=True, timeout=300)
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout.count("test accuracy") == 1, "only rank 0 reports"
    h1, h2 = read_csv(tmp_path / "one" / "history.csv"), read_csv(tmp_path / "two" / "history.csv")
    assert len(h1) == len(h2) == 3
    # stated tolerance: validation accuracy within 5 points, validation loss within 0.15
    assert abs(float(h1[-1]["val_acc"]) - float(h2[-1]["val_acc"])) <= 0.05
    assert abs(float(h1[-1]["val_loss"]) - float(h2[-1]["val_loss"])) <= 0.15
    assert (tmp_path / "two" / "model.safetensors").exists() and (tmp_path / "two" / "metrics.json").exists()
    # the kept weights' BatchNorm statistics are recomputed over the same images as one process reads them (they
    # were left as training ran them on rank 0: 0.67 test accuracy where one process scored 1.0)
    from imgclf.records import RunDir

    one, two = RunDir(tmp_path / "one").read_card().training, RunDir(tmp_path / "two").read_card().training
    assert two.batch_norm_images == one.batch_norm_images > 0
    assert two.val_accuracy_after_batch_norm is not None and "BatchNorm" not in launched.stderr
    # each checkpoint says how many processes trained it, which a resume inside an epoch must start again
    from imgclf.train.checkpoint_state import saved_processes_of

    assert [saved_processes_of(tmp_path / name / "checkpoints" / "last.ckpt") for name in ("one", "two")] == [1, 2]


def test_the_start_line_gives_each_processs_share_of_the_cores(monkeypatch):
    """Lightning gives each of N processes on a CPU its share of the cores inside fit, after the line is printed:
    it said "2 threads" where each of 2 processes ran 1 (and "1 threads")."""
    from imgclf.config import make_config
    from imgclf.pipeline.announce import threads_said

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # the machine's, where a cpuset or scheduler allows 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert threads_said(make_config(data="d", devices="2", accelerator="cpu"), "cpu") == "2 processes x 4 threads"
    assert threads_said(make_config(data="d", devices="4", accelerator="cpu"), "cpu") == "4 processes x 2 threads"
    assert threads_said(make_config(data="d", devices="2"), "cuda") == "2 processes x 4 threads"
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert threads_said(make_config(data="d", devices="2", accelerator="cpu"), "cpu") == "2 processes x 1 thread"


def test_several_devices_from_an_interactive_session_are_refused(monkeypatch):
    """In a notebook Lightning forks the processes inside fit (ddp_fork, chosen by itself): each trained and
    validated on rank 0's share, and the card said 0 epochs."""
    import sys

    from imgclf.errors import ImgclfError
    from imgclf.train.engine_choice import check_launch

    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    with pytest.raises(ImgclfError, match=r"^devices must be 1 in an interactive session .*imgclf train \.\.\. "
                                          r"--devices N --strategy ddp"):
        check_launch("2", 1, {})
    check_launch("1", 1, {})
    check_launch("2", 1, {"WORLD_SIZE": "2"})  # a launcher's processes (torchrun) are no notebook's


def test_launches_that_would_not_form_the_group_asked_for_are_refused(tmp_path, monkeypatch):
    """torchrun started 2 processes for a run of 1 device: 2 whole runs trained into one folder, each alone. Two
    nodes with nothing saying which node this is waited for the other node for ever."""
    from typer.testing import CliRunner

    from imgclf.cli import app
    from imgclf.errors import ImgclfError
    from imgclf.train.engine_choice import check_launch

    with pytest.raises(ImgclfError, match=r"^devices must be 2 devices in all .*WORLD_SIZE=2.*--devices 2"):
        check_launch("1", 1, {"WORLD_SIZE": "2"})
    check_launch("2", 1, {"WORLD_SIZE": "2"})
    check_launch("2", 2, {"WORLD_SIZE": "4", "NODE_RANK": "1"})
    check_launch("1", 1, {})
    for variable in ("MASTER_ADDR", "NODE_RANK", "SLURM_NTASKS", "TORCHELASTIC_RUN_ID", "WORLD_SIZE", "GROUP_RANK",
                     "OMPI_COMM_WORLD_SIZE", "LSB_JOBID"):
        monkeypatch.delenv(variable, raising=False)
    data = make_image_folder(tmp_path / "data", per_class=4)
    result = CliRunner().invoke(app, ["train", str(data), "--num-nodes", "2", "--devices", "2", "--strategy", "ddp",
                                      "--accelerator", "cpu", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "must be 1 outside a multi-node launch" in result.output, result.output
    assert not (tmp_path / "run").exists()  # refused before anything is written


@pytest.mark.parametrize("sample", [[], ["--val-steps", "100"]], ids=["whole-split", "val-steps"])
def test_two_processes_score_the_whole_validation_split_once(tmp_path, sample):
    """597 validation images are 3 batches of 256, 256 and 85: rank 1 took batch 0 again, and history.csv's val_acc
    read 0.175 where the same weights scored 0.25 on the split. Then the ranks' shares (341 and 256 images) were
    averaged as integers, 298 for 298.5, and every score read k/596. The epoch's val_acc must be the weights'
    accuracy on the split. With --val-steps (100 batches of 8: a sample that is the whole split) the sample was
    batched as training is, 75 batches on 2 ranks, and rank 1 scored batch 0 again."""
    from imgclf.records import RunDir

    data = make_image_folder(tmp_path / "data", classes=("a", "b", "c"), layout="splits",
                             per_split={"train": 20, "val": 199})
    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path / "cache")}
    run = tmp_path / "run"
    trained = subprocess.run(IMGCLF + ["train", str(data), "--img-size", "40", "--epochs", "1", "--no-progress",
                                       "--accelerator", "cpu", "--model", "caltech_cnn", "--batch-size", "8",
                                       "--precision", "32", "--devices", "2", "--strategy", "ddp", "--no-report",
                                       "--out", str(run), *sample], env=env, capture_output=True, text=True,
                                      timeout=300)
    assert trained.returncode == 0, trained.stderr
    # the card says a step took 2 x 8 images; the weights scored after training are those of the last epoch (a
    # network without BatchNorm, whose statistics rank 0 would recompute after training)
    assert RunDir(run).read_card().training.processes == 2
    history = RunDir(run).read_history()
    scored = subprocess.run(IMGCLF + ["evaluate", str(run), "--split", "val", "--precision", "32"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert scored.returncode == 0, scored.stderr
    metrics = RunDir(run / "evaluations" / "val").read_metrics()
    assert metrics.count == 597
    assert round(history[-1].val_acc * 597, 3) == round(metrics.accuracy * 597), (history[-1].val_acc, metrics)


def test_a_sigterm_to_the_main_process_alone_stops_both_and_the_run_resumes(tmp_path):
    """`timeout`, `kill PID` and schedulers signal the process they started: Lightning's handler broadcast from inside
    the signal handler while the other rank sat in a gradient reduction, and both processes hung for good."""
    import signal
    import time

    from imgclf.records import RunDir

    data = make_image_folder(tmp_path / "data", classes=("a", "b", "c", "d"), per_class=150)
    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path / "cache")}
    run = tmp_path / "run"
    common = ["--img-size", "16", "--no-progress", "--accelerator", "cpu", "--model-args", "width=4",
              "--batch-size", "4", "--precision", "32", "--devices", "2", "--strategy", "ddp", "--no-report"]
    proc = subprocess.Popen(IMGCLF + ["train", str(data), "--epochs", "6", "--out", str(run), *common], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 240
        while not ((run / "history.csv").exists() and len(RunDir(run).read_history()) >= 1):
            assert proc.poll() is None and time.time() < deadline, "training ended or never reached epoch 2"
            time.sleep(0.2)
        time.sleep(1.0)  # inside epoch 2
        proc.send_signal(signal.SIGTERM)  # the main process (rank 0) only
        _, err = proc.communicate(timeout=120)  # hung for good before
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    assert "--resume" in err
    assert err.count("error: training interrupted") == 1, err  # said by every process, the same words twice
    epochs_before = len(RunDir(run).read_history())
    resumed = subprocess.run(IMGCLF + ["train", "--resume", str(run), "--no-report"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert [r.epoch for r in RunDir(run).read_history()] == list(range(1, 7)) and epochs_before < 6


def test_a_stop_asked_of_one_process_is_agreed_at_the_same_step_by_all():
    """The handler only notes the request (nothing collective inside a signal handler); at each step's end every
    process adds up the requests, and all stop there together, whichever process the signal reached."""
    import signal
    from types import SimpleNamespace

    import torch

    from imgclf.train.stop_together import StopTogether

    stops = [StopTogether(), StopTogether()]

    def reduce(value, reduce_op):  # the collective: every process gets the sum of both requests
        assert reduce_op == "sum"
        return torch.tensor([float(sum(stop.asked for stop in stops))])

    trainers = [SimpleNamespace(world_size=2, strategy=SimpleNamespace(root_device="cpu", reduce=reduce),
                                _signal_connector=SimpleNamespace(received_sigterm=False)) for _ in stops]
    previous = signal.getsignal(signal.SIGTERM)
    try:
        stops[1].on_train_start(trainers[1], None)
        assert signal.getsignal(signal.SIGTERM) == stops[1]._ask  # over Lightning's, which broadcast in it
    finally:
        signal.signal(signal.SIGTERM, previous)
    for stop, trainer in zip(stops, trainers):  # a step before any request: nobody stops
        stop.on_train_batch_end(trainer, None, None, None, 0)
    assert not any(t._signal_connector.received_sigterm for t in trainers)
    stops[1]._ask(signal.SIGTERM, None)  # the signal reaches rank 1 only, mid-step
    for stop, trainer in zip(stops, trainers):
        stop.on_train_batch_end(trainer, None, None, None, 1)
    assert all(t._signal_connector.received_sigterm for t in trainers)  # both stop at this step's end


def test_a_checkpoint_inside_an_epoch_continues_only_on_the_processes_that_trained_it(tmp_path):
    """Each rank skips the batches its own share trained: a checkpoint saved inside an epoch by 2 processes, resumed
    with --devices auto (one process on a CPU), trained the rest of the other rank's batches again. "auto" on
    either side had let any count through: the checkpoint now says how many processes trained it."""
    import torch

    from imgclf.config import make_config
    from imgclf.errors import ImgclfError
    from imgclf.io import write_yaml
    from imgclf.pipeline.resume_checks import _check_processes
    from imgclf.records import RunDir

    def run_with(devices: str, processes: int | None) -> Path:
        folder = tmp_path / f"{devices}-{processes}"
        folder.mkdir()
        write_yaml(folder / "config.yaml", make_config(data="d", devices=devices, accelerator="cpu",
                                                       strategy="ddp" if devices != "auto" else "auto")
                   .model_dump(mode="json"))
        state = {"saved_epochs": 1, "saved_steps": 3, **({"processes": processes} if processes else {})}
        torch.save({"loops": {"fit_loop": {"epoch_loop.batch_progress": {"is_last_batch": False},
                                           "state_dict": {"combined_loader": [{"batches_done": 3}]}}},
                    "callbacks": {"LastCheckpoint": state}}, folder / "last.ckpt")
        return folder

    def resume(folder: Path, devices: str) -> None:
        cfg = make_config(data="d", devices=devices, accelerator="cpu", strategy="ddp" if devices != "auto" else "auto")
        _check_processes(RunDir(folder), folder / "last.ckpt", cfg)

    with pytest.raises(ImgclfError, match=r"^devices for --resume .* must be 2 on 1 node\(s\), 2 processes in all, as the run was "
                                          r"trained: its checkpoint stopped inside an epoch.*\(1 process here\)"):
        resume(run_with("2", 2), "auto")
    with pytest.raises(ImgclfError, match=r"must be auto on 1 node\(s\), 1 process in all.*\(2 processes here\)"):
        resume(run_with("auto", 1), "2")
    resume(run_with("auto", 2), "2")  # auto had meant 2 there: the same processes
    resume(run_with("auto", None), "2")  # written before the count was kept: nothing says otherwise
    with pytest.raises(ImgclfError, match=r"2 processes in all"):
        resume(run_with("2", None), "auto")  # the settings say 2 without the count


def test_a_process_that_stops_alone_leaves_the_others_an_interruption_not_an_internal_error(tmp_path):
    """SIGINT sent to one worker of a data-parallel run stopped it; the others met gloo's "Connection closed by
    peer" and said "internal error ... please report it", without a word of the checkpoint the run had kept."""
    from types import SimpleNamespace

    from imgclf.train.callbacks import LastCheckpoint
    from imgclf.train.fit import _run_trainer
    from imgclf.train.interrupts import TrainingInterrupted

    def peer_closed(*args, **kwargs):
        raise RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer "
                           "[127.0.0.1]:11686. This is typically caused by a remote worker crashing.")

    last = LastCheckpoint(tmp_path / "checkpoints" / "last.ckpt")
    last.saved_epochs = 1
    trainer = SimpleNamespace(callbacks=[], fit=peer_closed, current_epoch=1, world_size=2)
    with pytest.raises(TrainingInterrupted) as stopped:
        _run_trainer(trainer, None, None, None, None, tmp_path, last)
    assert str(stopped.value) == ("training interrupted (another process of the run stopped) after 1 completed "
                                  "epoch; epoch 1 is saved in checkpoints/last.ckpt. Continue with: imgclf train "
                                  f"--resume {tmp_path} (Python: imgclf.fit(resume={str(tmp_path)!r}))")
    with pytest.raises(RuntimeError, match="Connection closed by peer"):  # one process: no peer to have stopped
        _run_trainer(SimpleNamespace(**{**vars(trainer), "world_size": 1}), None, None, None, None, tmp_path, last)
