"""What every record shares: the schema versions, the base class that refuses unknown keys and
upgrades unversioned files, and validation errors on one line."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION = 1
# model.json and metrics.json are at version 2: cards carry `calibration` and `unknown`, metrics the matching
# test-split scores. Version-1 files (without them) still load: probabilities are the raw softmax, no image is
# called unknown.
CARD_SCHEMA_VERSION = 2
METRICS_SCHEMA_VERSION = 2
Interpolation = Literal["nearest", "bilinear", "bicubic", "lanczos", "box"]


class Record(BaseModel):
    """A run file's content. Unknown keys are refused: a typo in a writer must fail a test, not drift."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = Field(SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "schema_version" not in data:
            data = {**data, "schema_version": 1}
        return data


def _blank_to_none(row: dict[str, str]) -> dict[str, Any]:
    return {k: (None if v == "" else v) for k, v in row.items()}


def validation_problems(exc: ValidationError, limit: int = 5) -> str:
    """A record's validation errors on one line: `field.path: message; ...`."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors()[:limit])
