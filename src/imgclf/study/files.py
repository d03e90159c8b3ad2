"""study.json written and read through its record (`imgclf.records.StudyRecord`): a writer's misspelt key fails
where it is written, and a damaged file is one clear line naming the study folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..io import write_json
from ..records import StudyRecord

STUDY_FILE = "study.json"


def write_study(out: str | os.PathLike, study: dict[str, Any]) -> dict[str, Any]:
    """Check `study` against StudyRecord and write OUT/study.json; returns what was written (the keys given, and
    schema_version)."""
    written = StudyRecord.model_validate(study).model_dump(mode="json", exclude_unset=True)
    write_json(Path(out) / STUDY_FILE, written)
    return written


def read_study(out: str | os.PathLike) -> StudyRecord | None:
    """OUT/study.json checked against its record, or None when OUT holds no study yet."""
    from ..records.base import read_record

    path = Path(out) / STUDY_FILE
    if not path.exists():
        return None
    return read_record(path, StudyRecord, "out", out, "a new folder, or one")


def any_epoch_saved(out: Path) -> bool:
    """Whether any cell of the study in `out` has an epoch to keep."""
    from ..records.run_dir import saved_an_epoch

    runs = out / "runs"
    return runs.is_dir() and any(saved_an_epoch(cell) for cell in runs.iterdir())


def any_cell_in_use(out: Path) -> bool:
    """Whether a process is training a cell of the study in `out` now (it holds the cell's train.lock): a study
    started with other settings beside it would have deleted its folders under it."""
    from ..locks import is_locked
    from ..records.run_dir import LOCK_FILE

    runs = out / "runs"
    return runs.is_dir() and any(is_locked(cell / LOCK_FILE) for cell in runs.iterdir())
