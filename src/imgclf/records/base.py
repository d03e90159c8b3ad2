"""What every record shares: the schema versions, the base class that refuses unknown keys and
upgrades unversioned files, and validation errors on one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .._version import newer_layout

RecordT = TypeVar("RecordT", bound=BaseModel)

SCHEMA_VERSION = 1
# model.json and metrics.json are at version 2: cards carry `calibration` and `unknown`, metrics the matching
# test-split scores. Version-1 files (without them) still load: probabilities are the raw softmax, no image is
# called unknown.
CARD_SCHEMA_VERSION = 2
METRICS_SCHEMA_VERSION = 2
Interpolation = Literal["nearest", "bilinear", "bicubic", "lanczos", "box"]
# A field added after files were shared: written only when it differs from its default, so that a file made
# without the feature keeps the shape the releases before the field read (records refuse keys they do not know).
OMITTED_AT_DEFAULT = {"omitted_at_default": True}


def dump_json(record: BaseModel) -> dict[str, Any]:
    """`record.model_dump(mode="json")` less the `OMITTED_AT_DEFAULT` fields that hold their default, at any depth."""
    data = record.model_dump(mode="json")
    _drop_defaults(record, data)
    return data


def _drop_defaults(record: BaseModel, data: dict[str, Any]) -> None:
    for name, field in type(record).model_fields.items():
        value = getattr(record, name)
        extra = field.json_schema_extra
        # (get_default: a field with a default_factory, such as an empty dict, has no `default`)
        if isinstance(extra, dict) and extra.get("omitted_at_default") and \
                value == field.get_default(call_default_factory=True):
            data.pop(name, None)
        elif isinstance(value, BaseModel) and isinstance(data.get(name), dict):
            _drop_defaults(value, data[name])


class Record(BaseModel):
    """A run file's content. Unknown keys are refused: a typo in a writer must fail a test, not drift."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = Field(SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "schema_version" not in data:
            data = {**data, "schema_version": 1}
        newer = newer_layout(data.get("schema_version") if isinstance(data, dict) else None,
                             cls.model_fields["schema_version"].default)
        if newer:
            raise ValueError(newer)
        return data


def _blank_to_none(row: dict[str, str]) -> dict[str, Any]:
    return {k: (None if v == "" else v) for k, v in row.items()}


def validation_problems(exc: ValidationError, limit: int = 5) -> str:
    """A record's validation errors on one line: `field.path: message; ...`."""
    # a validator's own message goes as written, without pydantic's "Value error, " in front
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg'].removeprefix('Value error, ')}"
                     for e in exc.errors()[:limit])


def read_record(path: Path, record: type[RecordT], argument: str, value: Any, folder: str) -> RecordT:
    """`path` checked against `record`, for a file beside runs that a command was pointed at through `argument`:
    unreadable or mismatched content is the house one-line error naming the argument, never a traceback.
    `folder` says what the argument must be ("a folder", "a new folder, or one")."""
    from ..errors import invalid
    from ..io import read_json

    try:
        return record.model_validate(read_json(path))
    except ValidationError as exc:  # before ValueError: pydantic's error is one
        raise invalid(argument, value, f"{folder} whose {path.name} matches its record ({record.__name__})",
                      note=validation_problems(exc)) from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise invalid(argument, value, f"{folder} whose {path.name} can be read",
                      note=(str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]) from None
