"""The run directory's contract: one typed record per file, each with a `schema_version`.

Every stage writes and reads a run directory through these records and `RunDir`, never through raw JSON, so a
key means the same thing everywhere and a run made yesterday on another machine loads (or fails with one clear
line naming the file). JSON Schemas of the records are generated into `docs/schema/` by `write_schemas`.

Version 1 is the first versioned layout. Files written before versioning (no `schema_version`, the model card's
`format_version`, the metrics' `f1-score` averages) are upgraded on read, so older runs still load.

One module per file: `dataset`, `metrics`, `card`, `rows` (the CSV files), `run_dir` (reading and writing a run
directory), `side_files` and `lr_find` (run files the card quotes); the files written beside runs rather than in
one: `audit`, `tune`, `folds`, `study`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..config import TrainConfig
from ..io import atomic_write_text
from .audit import (
    AuditCounts,
    AuditDuplicateGroup,
    AuditFeatures,
    AuditFingerprint,
    AuditFlag,
    AuditImage,
    AuditLabelIssue,
    AuditOutlier,
    AuditPixelIssue,
    AuditRecord,
    AuditSettings,
    PixelIssue,
)
from .base import (
    CARD_SCHEMA_VERSION,
    METRICS_SCHEMA_VERSION,
    SCHEMA_VERSION,
    Interpolation,
    Record,
    dump_json,
    validation_problems,
)
from .card import (
    CalibrationInfo,
    HeadlineMetrics,
    LRFindInfo,
    ModelCard,
    ResumeInfo,
    SettingChange,
    SizingCandidate,
    SizingInfo,
    TrainingSummary,
    UnknownInfo,
)
from .dataset import DatasetRecord, DuplicateGrouping, ImbalanceStats, LabelStats, SkippedFile, SplitFiles, SplitLeak
from .exported import ExportedCard, ExportInfo, QuantizationCheck
from .folds import FoldMetric, FoldRow, FoldsRecord, FoldStats
from .lr_find import LR_FIND_FILE, LRFindRecord
from .metrics import (
    AverageScores,
    CalibrationScores,
    ClassScores,
    LabelScores,
    MetricsRecord,
    MultiLabelScores,
    SeenImages,
    TTAScores,
    UnknownScores,
    WorstClass,
)
from .rows import HistoryRow, PredictionRow, cut_epochs_text, epochs_text, epochs_trained
from .run_dir import RunDir, load_card
from .study import (CellCurves, ClassRecall, ConfigCurves, ConfigurationSettings, SeedStats, StudyCell,
                    StudyProtocol, StudyRecord, StudyRequest, StudyRun, SubsetSummary, SummaryRow)
from .side_files import RESUMES_FILE, SIZING_FILE, ResumesRecord, SizingRecord
from .tune import TUNE_FILE, TuneBest, TuneRecord, TuneTrial

RECORDS: dict[str, type[BaseModel]] = {
    "config.yaml": TrainConfig, "dataset.json": DatasetRecord, "model.json": ModelCard,
    "metrics.json": MetricsRecord, "history.csv": HistoryRow, "predictions.csv": PredictionRow,
    # kept until the card takes them: the sizing probe's record, each --resume
    SIZING_FILE: SizingRecord, RESUMES_FILE: ResumesRecord,
    # an --lr auto run's sweep, which the card's lr_find quotes (and imgclf lr-find's folder)
    LR_FIND_FILE: LRFindRecord,
    # not run files: written beside the audit's page, in the search folder, beside the fold runs, in the
    # imbalance study's folder
    "audit.json": AuditRecord, TUNE_FILE: TuneRecord, "folds.json": FoldsRecord, "study.json": StudyRecord,
}

__all__ = [
    "CARD_SCHEMA_VERSION", "METRICS_SCHEMA_VERSION", "RECORDS", "SCHEMA_VERSION", "TUNE_FILE", "AuditCounts",
    "AuditDuplicateGroup", "AuditFeatures", "AuditFingerprint", "AuditFlag", "AuditImage", "AuditLabelIssue",
    "AuditOutlier", "AuditPixelIssue", "AuditRecord", "AuditSettings", "AverageScores", "CalibrationInfo",
    "CalibrationScores", "ClassScores", "DatasetRecord", "DuplicateGrouping", "ExportInfo", "ExportedCard",
    "FoldMetric", "FoldRow", "FoldStats", "FoldsRecord", "HeadlineMetrics", "HistoryRow", "ImbalanceStats",
    "Interpolation", "LR_FIND_FILE", "LRFindInfo", "LRFindRecord", "LabelScores", "LabelStats", "MetricsRecord", "ModelCard", "MultiLabelScores",
    "PixelIssue", "PredictionRow", "QuantizationCheck", "RESUMES_FILE", "Record", "ResumeInfo", "ResumesRecord", "RunDir", "SeenImages",
    "SIZING_FILE", "SizingCandidate", "SizingInfo", "SizingRecord",
    "SkippedFile", "SplitFiles", "SplitLeak", "CellCurves", "ClassRecall", "dump_json", "ConfigCurves", "ConfigurationSettings",
    "SeedStats", "SettingChange", "StudyCell", "StudyProtocol", "StudyRecord", "StudyRequest", "StudyRun",
    "SubsetSummary", "SummaryRow", "TTAScores", "TrainingSummary", "TuneBest", "TuneRecord", "TuneTrial",
    "UnknownInfo", "UnknownScores", "WorstClass", "cut_epochs_text", "epochs_text", "epochs_trained", "json_schemas",
    "load_card", "schema_texts", "validation_problems", "write_schemas"
]


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every record, keyed by the file name it describes."""
    out = {}
    for name, record in RECORDS.items():
        schema = record.model_json_schema(mode="validation")
        field = record.model_fields.get("schema_version")
        version = field.default if field is not None else SCHEMA_VERSION
        schema["$comment"] = f"imgclf run file {name}, schema_version {version}; generated from imgclf.records"
        out[name] = schema
    return out


def schema_texts() -> dict[str, str]:
    """File name under docs/schema/ -> its text (what `write_schemas` writes and the test compares)."""
    return {f"{name.replace('.', '_')}.schema.json": json.dumps(schema, indent=2, sort_keys=True) + "\n"
            for name, schema in json_schemas().items()}


def write_schemas(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    paths = []
    for name, text in schema_texts().items():
        atomic_write_text(folder / name, text)
        paths.append(folder / name)
    return paths
