"""Typed access to a run directory's files."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..config import TrainConfig
from ..errors import ImgclfError, bad_path, invalid, path_argument
from ..io import (
    checked_row,
    file_sha256,
    from_spreadsheet_safe,
    read_csv,
    read_json,
    read_yaml,
    write_csv,
    write_json,
    write_yaml,
)
from .base import (
    CARD_SCHEMA_VERSION,
    METRICS_SCHEMA_VERSION,
    _blank_to_none,
    dump_json,
    read_record,
    validation_problems,
)
from .card import ModelCard
from .dataset import DatasetRecord
from .exported import ExportedCard
from .metrics import MetricsRecord
from .rows import HistoryRow, PredictionRow
from ..run_markers import FINISHING_FILE, WEIGHTS_FILE, is_run_dir
from .lr_find import LR_FIND_FILE, LRFindRecord
from .side_files import RESUMES_FILE, SIZING_FILE, ResumesRecord, SizingRecord
from ..file_names import shell_word


LOCK_FILE = "train.lock"  # held by the process training into the folder; gone when it ends
EXPORT_CARD = "export/model.onnx.json"  # the card `imgclf export` writes beside the ONNX graph it exports
UNKNOWN_STATS_FILE = "unknown.safetensors"  # the detector's statistics when model.json names none (ood.STATS_FILE)
# MLflow's artefact stores: `--logger mlflow` copies each run's files (config.yaml, model.json) into mlartifacts/
# beside the runs (mlruns/ for a file store), and those copies are not runs of their own
TRACKER_STORES = frozenset({"mlartifacts", "mlruns"})


def find_run_dirs(folder: Path) -> list[Path]:
    """Every run directory at or below `folder` (not inside another run), hidden folders and MLflow's artefact
    stores skipped, sorted."""
    found = []
    stack = [folder]
    while stack:
        directory = stack.pop()
        if is_run_dir(directory):
            found.append(directory)
            continue
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir() and not entry.name.startswith(".") and entry.name not in TRACKER_STORES:
                    stack.append(Path(entry.path))
            except OSError:
                continue
    return sorted(found)


def run_path(value: Any, argument: str = "run") -> Path:
    """A run directory given as a path (str, os.PathLike: a Run, a loaded Classifier), else the usual error
    naming `argument` (the caller's keyword: `run_dir` for the Python API's functions)."""
    return path_argument(argument, value, "a run directory's path (str or os.PathLike, e.g. a Run or a loaded "
                         "Classifier)")


def saved_an_epoch(run_dir: str | os.PathLike) -> bool:
    """Whether a run folder holds a trained epoch (its history, checkpoint or scores): what a study or a search
    must not delete when it replaces a folder whose runs all failed before their first epoch."""
    path = Path(run_dir)
    return any((path / name).exists() for name in ("history.csv", "checkpoints/last.ckpt", "metrics.json"))


class RunDir:
    """Typed access to one run directory's files. Readers raise ImgclfError naming the file when it is missing
    or does not match its record."""

    def __init__(self, path: str | os.PathLike):
        self.path = run_path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    # ----- generic ------------------------------------------------------------------------------
    def _load(self, name: str, record: type[BaseModel], data: Any) -> Any:
        try:
            return record.model_validate(data)
        except ValidationError as exc:
            raise invalid("run", self.path, f"a run directory whose {name} matches its record ({record.__name__})",
                          note=validation_problems(exc)) from None

    def _unreadable(self, name: str, exc: BaseException) -> ImgclfError:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return invalid("run", self.path, f"a run directory whose {name} can be read",
                       note=f"{name} cannot be read: {first}")

    def missing(self, name: str) -> ImgclfError:
        """The error for a run file that is not there: a run that never finished differs from a folder that
        holds no run at all (a data folder or an audit given where the run goes)."""
        if not self.path.exists():
            problem = "no such folder"
        elif self.path.is_file() and is_run_dir(self.path.parent):  # runs/s1/model.json for runs/s1
            problem = f"a file of the run {self.path.parent}: give that folder"
        elif self.path.is_file():
            problem = "a file, not a folder"
        elif is_run_dir(self.path) and name != "model.json" and (self.path / "model.json").is_file():
            # a finished run (its card written) lost the file: --resume would say the same again (and no --config
            # of the file that is gone)
            again = (f"imgclf train --config {shell_word(self.path / 'config.yaml')} --out NEW"
                     if name != "config.yaml" and (self.path / "config.yaml").is_file() else "imgclf train with its "
                     "settings (model.json gives the model and its arguments) and --out NEW")
            problem = f"no {name}, though its training finished (model.json): removed since? Train it again with {again}"
        elif is_run_dir(self.path) and _training_now(self.path):  # a resume would be refused as in use
            problem = f"no {name} yet: the run is training now (its imgclf train holds {LOCK_FILE}); retry once it ends"
        elif is_run_dir(self.path):
            problem = f"no {name}: training unfinished? (imgclf train --resume {shell_word(self.path)} finishes it)"
        elif (self.path / "folds.json").is_file() or (self.path / "fold-1").is_dir():
            problem = f"a cross-validation folder: its runs are {self.path / 'fold-1'}, fold-2, ..."
        elif (self.path / "model.onnx").is_file():  # what `imgclf export RUN --out FOLDER` wrote
            problem = ("an ONNX export, not a run: imgclf predict and imgclf serve take it with --backend onnx "
                       "(Python: imgclf.export.load_onnx)")
        else:
            problem = f"not a run: no {name} nor any other file imgclf train writes (config.yaml, checkpoints/)"
        return bad_path("run", self.path, f"a run directory containing {name}", problem)

    def _read_mapping(self, name: str, reader) -> Any:
        path = self.path / name
        if not path.is_file():
            raise self.missing(name)
        try:
            data = reader(path)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise self._unreadable(name, exc) from None
        except Exception as exc:  # yaml's errors are not ValueErrors
            raise invalid("run", self.path, f"a run directory whose {name} can be read",
                          note=f"{name} cannot be read: {type(exc).__name__}") from None
        if not isinstance(data, dict):
            raise invalid("run", self.path, f"a run directory whose {name} holds a mapping",
                          note=f"{name} holds a {type(data).__name__}")
        return data

    def epochs_past_card(self) -> int:
        """`epochs_past_card` of this run's own history.csv and model.json; 0 where either cannot be read (the
        caller reports those)."""
        if not self.has("model.json"):
            return 0
        try:
            return epochs_past_card(self.read_history(), self.read_card())
        except ImgclfError:
            return 0

    # ----- config.yaml --------------------------------------------------------------------------
    def read_config(self) -> TrainConfig:
        return self._load("config.yaml", TrainConfig, self._read_mapping("config.yaml", read_yaml))

    def decode_cache_settings(self) -> dict[str, Any]:
        """The decode cache this run was trained with, as `decode_all`'s keywords (cache_dir, budget_bytes,
        workers), for the commands that decode its images again (evaluate, audit --run): they used the default
        folder, refused where that is read-only, and cached a run trained with --cache-budget 0. Empty where
        config.yaml is missing or unreadable (the defaults then)."""
        try:
            cfg = self.read_config()
        except (OSError, ImgclfError):
            return {}
        return {"cache_dir": cfg.cache_dir, "budget_bytes": cfg.cache_budget_bytes, "workers": cfg.num_workers}

    def write_config(self, config: TrainConfig) -> None:
        # progress is the caller's terminal, not the experiment: `fit(progress=False)` in a notebook saved it,
        # and `imgclf train --config RUN/config.yaml` then trained without a line of output
        write_yaml(self.path / "config.yaml", config.model_dump(mode="json", exclude={"progress"}))

    # ----- dataset.json -------------------------------------------------------------------------
    def read_dataset(self) -> DatasetRecord:
        return self._load("dataset.json", DatasetRecord, self._read_mapping("dataset.json", read_json))

    def write_dataset(self, record: DatasetRecord) -> None:
        write_json(self.path / "dataset.json", record.model_dump(mode="json"))

    # ----- model.json ---------------------------------------------------------------------------
    def read_card(self) -> ModelCard:
        return self._load("model.json", ModelCard, self._read_mapping("model.json", read_json))

    def write_card(self, card: ModelCard) -> None:
        """model.json, with the digests of the weight files beside it as they are now (`checked_file`)."""
        names = [WEIGHTS_FILE] + ([card.unknown.statistics or UNKNOWN_STATS_FILE] if card.unknown else [])
        card.file_sha256 = {name: file_sha256(self.path / name) for name in names if self.has(name)} or None
        # the layout written is this version's, whatever the card was read as (Record._legacy reads a dict
        # without schema_version as version 1, and a card built in code is such a dict)
        write_json(self.path / "model.json", {**card.model_dump(mode="json"), "schema_version": CARD_SCHEMA_VERSION})

    def finishing_now(self) -> str | None:
        """What holds the run while its weights, card and scores are rewritten one after the other (FINISHING_FILE
        is there): a training finishing it now, or one interrupted there. None when it is not being finished."""
        if not self.has(FINISHING_FILE):
            return None
        from ..locks import is_locked

        if is_locked(self.path / LOCK_FILE):
            return "another process is finishing the run now (its imgclf train holds train.lock): retry once it ends"
        return f"it was interrupted while being finished; finish it with: imgclf train --resume {shell_word(self.path)}"

    def checked_file(self, name: str, card: ModelCard) -> Path:
        """The run's weight file `name`, refused when its bytes are not those `card` recorded (a damaged copy, a
        disk's error): such a file loads without complaint and predicts garbage."""
        path = self.path / name
        recorded = (card.file_sha256 or {}).get(name)
        if recorded is not None and path.is_file() and file_sha256(path) != recorded:
            finishing = self.finishing_now()
            if finishing:
                raise invalid("run", self.path, f"a run whose {name} is the file its model.json was written with",
                              note=f"{name} was rewritten and model.json not yet: {finishing}")
            raise invalid("run", self.path, f"a run directory whose {name} is the file its model.json was written "
                          "with", note="its SHA-256 differs from model.json's file_sha256: the file changed since "
                          "(a damaged copy or disk?)", hint="Copy the run again from where it was trained, or "
                          "train it again; a run interrupted while being finished (its weights rewritten, model.json "
                          "not yet) is finished with: imgclf train --resume RUN")
        return path

    # ----- export/model.onnx.json: the card an ONNX export carries, beside it ------------------------
    def read_export_card(self) -> ExportedCard:
        return self._load(EXPORT_CARD, ExportedCard, self._read_mapping(EXPORT_CARD, read_json))

    # ----- metrics.json -------------------------------------------------------------------------
    def read_metrics(self, name: str = "metrics.json") -> MetricsRecord:
        return self._load(name, MetricsRecord, self._read_mapping(name, read_json))

    def write_metrics(self, metrics: MetricsRecord, name: str = "metrics.json") -> None:
        write_json(self.path / name, {**dump_json(metrics), "schema_version": METRICS_SCHEMA_VERSION})

    # ----- history.csv --------------------------------------------------------------------------
    def read_history(self) -> list[HistoryRow]:
        """[] when the run has no history yet."""
        path = self.path / "history.csv"
        if not path.is_file():
            return []
        try:
            rows = read_csv(path)
        except (UnicodeDecodeError, csv.Error, OSError) as exc:
            raise self._unreadable("history.csv", exc) from None
        return [self._load("history.csv", HistoryRow, _blank_to_none(r)) for r in rows]

    def write_history(self, rows: Iterable[HistoryRow]) -> None:
        write_csv(self.path / "history.csv", HistoryRow.COLUMNS, [r.cells() for r in rows])

    # ----- predictions.csv ----------------------------------------------------------------------
    def read_predictions(self, classes: Sequence[str], name: str = "predictions.csv") -> list[PredictionRow]:
        path = self.path / name
        if not path.is_file():
            raise bad_path("predictions", path, f"an existing {name}",
                           hint="Run `imgclf evaluate RUN` to write it")
        try:
            return self._read_prediction_rows(path, classes, name)
        except (UnicodeDecodeError, csv.Error, OSError) as exc:
            raise self._unreadable(name, exc) from None

    def _read_prediction_rows(self, path: Path, classes: Sequence[str], name: str) -> list[PredictionRow]:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            reader.fieldnames = [from_spreadsheet_safe(h) for h in reader.fieldnames or []]
            header = reader.fieldnames
            columns = [f"p_{c}" for c in classes]
            missing = [c for c in (*PredictionRow.FIXED, *columns) if c not in header]
            if missing:
                raise invalid("predictions", path, f"a {name} with the columns "
                              f"{[*PredictionRow.FIXED, *columns]}",
                              note=f"without {missing}")
            out = []
            for raw in reader:
                raw = {k: from_spreadsheet_safe(v or "") for k, v in checked_row(reader, raw).items()}
                row = _blank_to_none({k: raw[k] for k in (*PredictionRow.FIXED, *PredictionRow.OPTIONAL) if k in raw})
                row = {k: ("" if v is None and k in ("true", "pred", "error") else v) for k, v in row.items()}
                row["path"] = raw["path"]
                try:
                    row["probs"] = [float(raw[c]) for c in columns] if not raw.get("error") else []
                except (TypeError, ValueError):
                    raise invalid("predictions", path, "a file with a probability in every p_<class> cell of a "
                                  "predicted row", note=f"row {reader.line_num}, {raw['path']!r}") from None
                out.append(self._load(name, PredictionRow, row))
        return out

    def write_predictions(self, rows: Iterable[PredictionRow], classes: Sequence[str],
                          name: str = "predictions.csv") -> None:
        def cells(r: PredictionRow) -> list[str]:
            # a probability or a loss is never below 0: rounding's -1e-9 (or -0.0) is written 0.000000; NaN stays
            num = lambda v: "" if v is None else f"{0.0 if v <= 0 else v:.6f}"  # noqa: E731
            # six significant digits, not decimals: the report undoes the temperature from these (the reliability
            # before calibration), and at T = 0.2 a probability of 1e-20 is a raw softmax of 1e-4, which 0.000000 lost
            probs = [f"{0.0 if p <= 0 else p:.6g}" for p in r.probs] if r.probs else [""] * len(classes)
            score = "" if r.score is None else f"{r.score:.6g}"
            unknown = "" if r.unknown is None else str(int(r.unknown))
            return [r.path, r.true, r.pred, num(r.prob), num(r.loss), r.error, score, unknown, *probs]

        write_csv(self.path / name, PredictionRow.header(classes), [cells(r) for r in rows])

    # ----- every file ---------------------------------------------------------------------------
    def validate(self) -> list[str]:
        """Read every run file present through its record; returns the names checked."""
        checked = []
        if self.has("config.yaml"):
            self.read_config()
            checked.append("config.yaml")
        for name, reader in (("dataset.json", self.read_dataset), ("metrics.json", self.read_metrics),
                             ("history.csv", self.read_history)):
            if self.has(name):
                reader()
                checked.append(name)
        if self.has("model.json"):
            card = self.read_card()
            checked.append("model.json")
            if self.has("predictions.csv"):
                self.read_predictions(card.classes)
                checked.append("predictions.csv")
        for name, record in ((SIZING_FILE, SizingRecord), (RESUMES_FILE, ResumesRecord),
                             (LR_FIND_FILE, LRFindRecord)):
            if self.has(name):
                read_record(self.path / name, record, "run", self.path, "a run directory")
                checked.append(name)
        return checked


def epochs_past_card(history: list[HistoryRow], card: ModelCard | None) -> int:
    """Epochs `history` holds beyond those the card says the run trained: a finished run resumed for more epochs,
    which is training now or was interrupted (its card, metrics and report still describe the epochs before). 0
    without a card, or with one as old as its history."""
    recorded = card.training.epochs_run if card is not None else 0
    # 0: a card that does not say (written before it counted them), not a run that trained none
    return max(0, len(history) - recorded) if recorded else 0


def load_card(run_dir: str | os.PathLike) -> ModelCard:
    """The validated model card of a run directory."""
    return RunDir(run_dir).read_card()


def _training_now(path: Path) -> bool:
    from ..locks import held_elsewhere

    return held_elsewhere(path / LOCK_FILE)
