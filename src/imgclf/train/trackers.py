"""Experiment trackers through Lightning's own loggers (CSV, TensorBoard, MLflow).

The run directory stays the source of truth: trackers receive copies (the resolved config as parameters, per-step
loss and learning rate, per-epoch metrics, the final test metrics, and model.json, report.html and the figures as
MLflow artefacts). MLflow is imported only when it is asked for: its import alone takes seconds.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import invalid

TRACKERS = ("csv", "tensorboard", "mlflow")
LOGS_FOLDER = "logs"  # inside the run directory: logs/csv/metrics.csv, logs/tensorboard/events.*
EXPERIMENT = "imgclf"
RUN_DIR_TAG = "imgclf.run_dir"


def mlflow_uri(cfg: TrainConfig, run_dir: Path) -> str:
    """--mlflow-uri, or a SQLite store next to the run (runs/mlflow.db): one store for every run of the folder."""
    return cfg.mlflow_uri or f"sqlite:///{(run_dir.parent / 'mlflow.db').absolute()}"


def make_loggers(cfg: TrainConfig, run_dir: Path, resume: bool) -> list[Any]:
    """The Lightning loggers `cfg.logger` names; on resume each continues where the interrupted process stopped
    (the same CSV file and TensorBoard folder, the same MLflow run)."""
    loggers: list[Any] = []
    for name in dict.fromkeys(cfg.logger):
        if name == "csv":
            from lightning.pytorch.loggers import CSVLogger

            logger = CSVLogger(save_dir=str(run_dir / LOGS_FOLDER), name="", version="csv")
            if resume:
                from .csv_resume import ContinuedCSVWriter

                # Lightning's writer deletes an existing metrics.csv when it starts: the epochs before the
                # interruption would be gone (its experiment is made on first use; this one is made first)
                logger._experiment = ContinuedCSVWriter(logger.log_dir)
            loggers.append(logger)
        elif name == "tensorboard":
            _require("tensorboard", "tensorboard")
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(save_dir=str(run_dir / LOGS_FOLDER), name="", version="tensorboard",
                                             default_hp_metric=False))
        elif name == "mlflow":
            loggers.append(_mlflow_logger(cfg, run_dir, resume))
        else:  # TrainConfig refuses unknown names; this guards callers that build the list themselves
            raise invalid("logger", name, TRACKERS)
    return loggers


def require_tracker_packages(cfg: TrainConfig) -> None:
    """Each asked tracker's package is installed: checked before the run's folder is touched (a missing one was
    found after --overwrite had removed the run it replaced, and left a stub that refused the corrected command)."""
    for name in dict.fromkeys(cfg.logger):
        if name in ("tensorboard", "mlflow"):
            _require(name, name)


def _require(module: str, tracker: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise invalid("logger", tracker, "a tracker whose package is installed",
                      note=f"the {module} package is not installed", hint="pip install 'imgclf[track]'")


def _mlflow_logger(cfg: TrainConfig, run_dir: Path, resume: bool) -> Any:
    _require("mlflow", "mlflow")
    import logging

    import mlflow  # noqa: F401  (it sets its loggers' level when imported: ours must come after)
    from lightning.pytorch.loggers import MLFlowLogger

    # "Creating initial MLflow database tables", "Experiment with name imgclf not found. Creating it.": a new
    # store and experiment are expected on a first run, not news
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.loggers.mlflow").setLevel(logging.ERROR)

    uri = mlflow_uri(cfg, run_dir)
    run_id = _existing_mlflow_run(uri, run_dir) if resume else None
    # artefacts beside the SQLite store, not in ./mlartifacts of whatever folder the command ran in
    artifacts = (run_dir.parent / "mlartifacts").absolute().as_uri() if uri.startswith("sqlite:") else None
    return MLFlowLogger(experiment_name=EXPERIMENT, run_name=run_dir.name, tracking_uri=uri, run_id=run_id,
                        tags={RUN_DIR_TAG: str(run_dir.absolute())}, artifact_location=artifacts)


def check_tracking_store(cfg: TrainConfig, run_dir: Path) -> None:
    """The MLflow store the run would log to opens: checked before --overwrite removes the run it replaces (a
    corrupt mlflow.db failed only when the loggers were made, the old run already gone)."""
    if "mlflow" not in cfg.logger:
        return
    _require("mlflow", "mlflow")
    import mlflow  # noqa: F401  (imported before its loggers' level is set, as `_mlflow_logger` does)
    import logging

    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    uri = mlflow_uri(cfg, run_dir)
    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as exc:  # MLflow's own errors (a file that is no database, a schema it cannot migrate)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise invalid("mlflow_uri", uri, "an MLflow store that opens", note=f"{type(exc).__name__}: {first}",
                      hint="Mend or move that store (the runs beside it keep their own files), or pass "
                           "--mlflow-uri for another; nothing of the run being replaced was removed") from None


def check_tracking_server(uri: str, timeout: float = 5.0) -> None:
    """An http(s) tracking URI must answer now: MLflow retries an unreachable server for minutes (7 retries with
    backoff per request), then fails with an internal error, the run folder written."""
    import ssl
    from http.client import HTTPException
    from urllib.error import HTTPError, URLError
    from urllib.request import urlopen

    if not uri.lower().startswith(("http://", "https://")):
        return
    problem = None
    try:
        with urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
            return
    except HTTPError:  # it answered: a server (or a proxy before it) is there, whatever it thinks of /health
        return
    except HTTPException as exc:  # something answered, not in HTTP (another service on that port)
        problem = f"what answers there speaks no HTTP ({type(exc).__name__})"
    except (URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, ssl.SSLCertVerificationError):  # a TLS server answered: whether its certificate
            return  # is to be trusted is for MLflow's own settings (MLFLOW_TRACKING_SERVER_CERT_PATH), not urllib's
        waited = isinstance(reason, TimeoutError) or "timed out" in str(reason)
        problem = f"no answer within {timeout:g} s" if waited else f"no answer: {reason}"
    raise invalid("mlflow_uri", uri, "the address of a running MLflow tracking server", note=problem,
                  hint="Start it (mlflow server --port 5000), or leave --mlflow-uri out: the runs then share a SQLite "
                       "store beside them (mlflow.db)")


def _existing_mlflow_run(uri: str, run_dir: Path) -> str | None:
    """The MLflow run an interrupted run directory logged to, if any (the newest one, after an --overwrite)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return None
    path = str(run_dir.absolute()).replace("'", "\\'")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{RUN_DIR_TAG}` = '{path}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id if runs else None


def log_config(loggers: list[Any], cfg: TrainConfig, resume: bool) -> None:
    """The resolved config as the trackers' parameters (nested settings flattened by Lightning). A resumed run
    logged them already; MLflow refuses a parameter whose value changes (a resume that adds epochs)."""
    if resume:
        return
    params = cfg.model_dump(mode="json")
    for logger in loggers:
        logger.log_hyperparams(params)


def log_final(loggers: list[Any], run_dir: Path, metrics: Any, step: int) -> None:
    """After evaluation and the report: the test scores as metrics, and the run's files as MLflow artefacts."""
    if not loggers or metrics is None:
        return
    final = {f"{metrics.split}_accuracy": metrics.accuracy, f"{metrics.split}_macro_f1": metrics.macro.f1,
             f"{metrics.split}_macro_recall": metrics.macro.recall}
    if metrics.loss is not None:
        final[f"{metrics.split}_loss"] = metrics.loss
    for logger in loggers:  # (a multi-label set of negatives has no recall: None is left out, not logged as 0)
        logger.log_metrics({k: float(v) for k, v in final.items() if v is not None}, step=step)
        logger.save()
        if type(logger).__name__ == "MLFlowLogger":
            _log_artifacts(logger, run_dir)
        logger.finalize("success")


def _log_artifacts(logger: Any, run_dir: Path) -> None:
    client, run_id = logger.experiment, logger.run_id
    for name in ("model.json", "report.html", "config.yaml", "metrics.json", "history.csv", "lr_find.png",
                 "lr_find.json"):
        if (run_dir / name).is_file():
            client.log_artifact(run_id, str(run_dir / name))
    if (run_dir / "plots").is_dir():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.log_artifacts(run_id, str(run_dir / "plots"), artifact_path="plots")
