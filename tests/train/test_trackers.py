"""--logger csv|tensorboard|mlflow: what each tracker received, read back with the tracker's own reader (the CSV
file, TensorBoard's EventAccumulator, mlflow.search_runs on the SQLite store and its artefact listing)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import imgclf
from conftest import make_image_folder
from imgclf.config import ConfigError, make_config
from imgclf.records import RunDir
from imgclf.train.fit import TrainingInterrupted
from imgclf.train.callbacks import HistoryWriter

EPOCHS = 3
BASE = {"img_size": 16, "epochs": EPOCHS, "batch_size": 8, "progress": False, "model_args": {"width": 4},
        "val_split": 0.25, "test_split": 0.2, "seed": 0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("trackers"), per_class=12)


@pytest.fixture(scope="module")
def tracked_run(data, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    run = imgclf.fit(data=str(data), out=str(runs / "r1"), logger=["csv", "tensorboard", "mlflow"], **BASE)
    return run, runs


def test_tensorboard_holds_step_loss_lr_epoch_metrics_and_test_scores(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, _ = tracked_run
    acc = EventAccumulator(str(run.path / "logs" / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"step_loss", "lr-Adam", "loss", "val_loss", "val_acc", "test_accuracy", "test_macro_f1"} <= tags
    steps = RunDir(run.path).read_card().training  # per-step points: more than one per epoch
    assert len(acc.Scalars("step_loss")) > EPOCHS and len(acc.Scalars("lr-Adam")) > EPOCHS
    assert [round(e.value, 6) for e in acc.Scalars("val_acc")] == \
        [round(r.val_acc, 6) for r in RunDir(run.path).read_history()]
    assert acc.Scalars("test_accuracy")[-1].value == pytest.approx(run.metrics.accuracy)
    assert steps.epochs_run == EPOCHS


def test_csv_logger_writes_lightning_metrics_file(tracked_run):
    run, _ = tracked_run
    with open(run.path / "logs" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"step_loss", "lr-Adam", "val_acc", "test_accuracy"} <= set(rows[0])
    assert sum(1 for r in rows if r["val_acc"]) == EPOCHS
    assert (run.path / "logs" / "csv" / "hparams.yaml").read_text().count("batch_size: 8") == 1


def test_mlflow_sqlite_store_has_params_metrics_and_artifacts(tracked_run):
    import mlflow
    from mlflow.tracking import MlflowClient

    run, runs = tracked_run
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    found = mlflow.search_runs(experiment_names=["imgclf"], output_format="list")
    assert len(found) == 1
    r = found[0]
    assert r.info.run_name == "r1" and r.info.status == "FINISHED"
    assert r.data.params["lr"] == "0.001" and r.data.params["batch_size"] == "8"
    assert r.data.params["model_args/width"] == "4"  # nested settings flattened
    assert r.data.metrics["test_accuracy"] == pytest.approx(run.metrics.accuracy)
    client = MlflowClient(uri)
    assert len(client.get_metric_history(r.info.run_id, "step_loss")) > EPOCHS
    assert len(client.get_metric_history(r.info.run_id, "val_acc")) == EPOCHS
    names = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"model.json", "report.html", "config.yaml", "plots"} <= names
    plots = {a.path for a in client.list_artifacts(r.info.run_id, "plots")}
    assert any(p.endswith(".png") for p in plots)
    assert (runs / "mlartifacts").is_dir()  # beside the store, not in the working folder
    # its copies of config.yaml and model.json are no run of their own: `imgclf runs` listed every run twice
    from imgclf.runs import list_runs

    assert [Path(r.path).name for r in list_runs(runs)] == ["r1"]


def test_a_new_mlflow_store_says_nothing_on_a_first_run(data, tmp_path):
    """MLflow set its own loggers to INFO when imported, after imgclf had quietened them: every first run printed
    "INFO mlflow.store.db.utils: Creating initial MLflow database tables...". A fresh process: an earlier test's
    import of mlflow would hide it."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "imgclf.cli", "train", str(data), "--img-size", "16", "--epochs",
                           "1", "--model-args", "width=4", "--no-progress", "--no-report", "--logger", "mlflow",
                           "--out", str(tmp_path / "runs" / "r1")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs" / "mlflow.db").exists()
    assert "INFO" not in done.stderr, done.stderr


def test_no_logger_writes_no_logs(data, tmp_path):
    run = imgclf.fit(data=str(data), out=str(tmp_path / "plain"), **{**BASE, "epochs": 1})
    assert not (run.path / "logs").exists() and not (tmp_path / "mlflow.db").exists()


def test_resume_continues_the_same_mlflow_run_tensorboard_folder_and_csv_file(data, tmp_path, monkeypatch):
    import mlflow
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    original = HistoryWriter.on_train_epoch_start

    def interrupt(self, trainer, pl_module):
        if trainer.current_epoch == 2:
            raise KeyboardInterrupt
        original(self, trainer, pl_module)

    monkeypatch.setattr(HistoryWriter, "on_train_epoch_start", interrupt)
    out = tmp_path / "runs" / "r"
    with pytest.raises(TrainingInterrupted):
        imgclf.fit(data=str(data), out=str(out), logger=["mlflow", "tensorboard", "csv"], **BASE)
    monkeypatch.setattr(HistoryWriter, "on_train_epoch_start", original)
    with open(out / "logs" / "csv" / "metrics.csv") as f:
        before = [r for r in csv.DictReader(f) if r["val_acc"]]
    assert [int(r["epoch"]) for r in before] == [0, 1]
    imgclf.fit(resume=str(out))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    found = mlflow.search_runs(experiment_names=["imgclf"], output_format="list")
    assert len(found) == 1  # the resumed process logged into the interrupted run's MLflow run
    client = mlflow.tracking.MlflowClient()
    assert [m.step for m in client.get_metric_history(found[0].info.run_id, "val_acc")] == \
        sorted({m.step for m in client.get_metric_history(found[0].info.run_id, "val_acc")})
    assert len({m.step for m in client.get_metric_history(found[0].info.run_id, "val_acc")}) == EPOCHS
    acc = EventAccumulator(str(out / "logs" / "tensorboard"))
    acc.Reload()
    assert len({e.step for e in acc.Scalars("val_acc")}) == EPOCHS
    # Lightning's CSV writer deleted the file on start: the resumed file began at epoch 3
    with open(out / "logs" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows if r["val_acc"]] == list(range(EPOCHS))  # each epoch once, in order
    assert [r["val_acc"] for r in rows if r["val_acc"]][:2] == [r["val_acc"] for r in before]
    steps = [int(r["step"]) for r in rows if r["step_loss"]]
    assert len(steps) > EPOCHS and steps == sorted(set(steps)) and any(r["test_accuracy"] for r in rows)


def test_bad_logger_name_is_one_line():
    with pytest.raises(ConfigError) as exc:
        make_config(data="x", logger=["csv", "wandb"])
    assert "logger" in str(exc.value) and "wandb" in str(exc.value) and "mlflow" in str(exc.value)
    assert make_config(data="x", logger="csv,mlflow").logger == ["csv", "mlflow"]


def test_an_unreachable_tracking_server_is_refused_at_once_before_the_run_folder_is_written(data, tmp_path):
    """MLflow retried a server that was not there for minutes, then failed with an internal error, the run folder
    written. A server that answers, whatever it answers, passes."""
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from imgclf.errors import ImgclfError
    from imgclf.train.trackers import check_tracking_server

    with socket.socket() as free:  # a port nothing listens on once this closes
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(ImgclfError, match=rf"^mlflow_uri must be the address of a running MLflow tracking server.*"
                                          rf"127.0.0.1:{port}.*no answer: .*refused"):
        imgclf.fit(data=str(data), out=str(tmp_path / "r"), logger="mlflow", mlflow_uri=f"http://127.0.0.1:{port}",
                   **BASE)
    assert not (tmp_path / "r").exists()

    class Answers(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    for path in ("", "/no-such-prefix"):  # /health answered 200, then 404: both are a server
        server = HTTPServer(("127.0.0.1", 0), Answers)
        threading.Thread(target=server.handle_request, daemon=True).start()
        try:
            check_tracking_server(f"http://127.0.0.1:{server.server_address[1]}{path}")
        finally:
            server.server_close()
    server = HTTPServer(("127.0.0.1", 0), Answers)  # https:// to a plain HTTP server: no TLS there at all
    threading.Thread(target=server.handle_request, daemon=True).start()
    try:
        with pytest.raises(ImgclfError, match=r"^mlflow_uri must be .*no answer: .*SSL"):
            check_tracking_server(f"https://127.0.0.1:{server.server_address[1]}")
    finally:
        server.server_close()
    check_tracking_server("sqlite:///nowhere/mlflow.db")  # not a server: nothing to reach
    with socket.socket() as other:  # another service on the port, answering in its own protocol
        other.bind(("127.0.0.1", 0))
        other.listen(1)

        def banner():
            conn, _ = other.accept()
            conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
            conn.close()

        threading.Thread(target=banner, daemon=True).start()
        with pytest.raises(ImgclfError, match=r"^mlflow_uri must be .*speaks no HTTP"):
            check_tracking_server(f"http://127.0.0.1:{other.getsockname()[1]}")


def test_resumed_csv_drops_the_steps_the_resumed_run_trains_again(tmp_path):
    """Killed mid-epoch, the interrupted process logged steps after its last checkpoint; the resumed run trains
    them again, so its first logged step replaces those rows instead of adding a second copy."""
    from imgclf.train.csv_resume import ContinuedCSVWriter

    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,step_loss,val_acc\n" + "".join(
        f"0,{s},{1 - s / 10},\n" for s in range(4)) + "0,3,,0.5\n" + "".join(f"1,{s},0.9,\n" for s in (5, 6)))
    writer = ContinuedCSVWriter(str(tmp_path))
    assert path.is_file()  # Lightning's own writer deletes it here
    for step in (5, 6, 7):
        writer.log_metrics({"step_loss": 0.4, "epoch": 1, "lr-SGD": 0.1}, step)
    writer.save()
    rows = list(csv.DictReader(path.open()))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3, 3, 5, 6, 7]
    assert [r["step_loss"] for r in rows[5:]] == ["0.4"] * 3 and rows[4]["val_acc"] == "0.5"
    assert set(rows[0]) == {"epoch", "step", "step_loss", "val_acc", "lr-SGD"}  # a new column joins the header
    writer.log_metrics({"step_loss": 0.3, "epoch": 1}, 8)
    writer.save()  # later saves append, as Lightning's
    assert [int(r["step"]) for r in csv.DictReader(path.open())][-2:] == [7, 8]


def test_a_missing_tracker_package_is_refused_before_overwrite_removes_the_run(data, tmp_path, monkeypatch):
    """Without imgclf[track], `--logger mlflow --overwrite` on a finished run removed the run, then refused the
    logger, leaving a stub (config.yaml, dataset.json) that refused the corrected command's --out."""
    import sys

    from imgclf.errors import ImgclfError

    out = tmp_path / "r"
    imgclf.fit(data=str(data), out=str(out), **{**BASE, "epochs": 1})
    before = sorted(p.name for p in out.iterdir())
    monkeypatch.setitem(sys.modules, "mlflow", None)  # find_spec("mlflow") is then None: as if not installed
    import importlib.util

    assert importlib.util.find_spec("mlflow") is None
    with pytest.raises(ImgclfError, match=r"logger must be a tracker whose package is installed.*imgclf\[track\]"):
        imgclf.fit(data=str(data), out=str(out), logger=["mlflow"], overwrite=True, **{**BASE, "epochs": 1})
    assert sorted(p.name for p in out.iterdir()) == before  # the finished run is whole
    fresh = tmp_path / "new"
    with pytest.raises(ImgclfError):
        imgclf.fit(data=str(data), out=str(fresh), logger=["mlflow"], **{**BASE, "epochs": 1})
    assert not fresh.exists() or not any(fresh.iterdir())  # no stub to refuse the corrected command


def test_a_corrupt_mlflow_store_is_refused_before_overwrite_removes_the_run(data, tmp_path):
    """A runs/mlflow.db that is no database failed when the loggers were made, after --overwrite had removed the
    finished run it replaced."""
    from imgclf.errors import ImgclfError

    out = tmp_path / "runs" / "r"
    imgclf.fit(data=str(data), out=str(out), **{**BASE, "epochs": 1})
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (tmp_path / "runs" / "mlflow.db").write_bytes(b"this is not an SQLite file" * 100)
    with pytest.raises(ImgclfError, match=r"mlflow_uri must be an MLflow store that opens.*mlflow\.db.*nothing of "
                                          r"the run being replaced was removed") as info:
        imgclf.fit(data=str(data), out=str(out), logger=["mlflow"], overwrite=True, **{**BASE, "epochs": 1})
    assert "\n" not in str(info.value)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # the finished run is whole, untouched
