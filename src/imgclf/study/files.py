"""study.json written and read through its record (`imgclf.records.StudyRecord`): a writer's misspelt key fails
where it is written, and a damaged file is one clear line naming the study folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import invalid
from ..io import read_json, write_json
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
    from pydantic import ValidationError

    from ..records import validation_problems

    path = Path(out) / STUDY_FILE
    if not path.exists():
        return None
    try:
        return StudyRecord.model_validate(read_json(path))
    except ValidationError as exc:  # before ValueError: pydantic's error is one
        raise invalid("out", out, f"a new folder, or one whose {STUDY_FILE} matches its record (StudyRecord)",
                      note=validation_problems(exc)) from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise invalid("out", out, f"a new folder, or one whose {STUDY_FILE} can be read",
                      note=(str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]) from None
