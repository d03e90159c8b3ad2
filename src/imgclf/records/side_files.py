"""Two run files that hold what the card takes only once training ends: sizing.json (the probe's record, read
back by a resume or a re-run of the same command) and resumes.json (each --resume and what it changed)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from .base import Record
from .card import ResumeInfo, SizingInfo

SIZING_FILE = "sizing.json"
RESUMES_FILE = "resumes.json"


class SizingRecord(Record, SizingInfo):
    """sizing.json: the card's `sizing` (SizingInfo) with the file's schema_version."""

    def info(self) -> SizingInfo:
        return SizingInfo.model_validate(self.model_dump(exclude={"schema_version"}))

    @classmethod
    def of(cls, info: SizingInfo) -> SizingRecord:
        return cls.model_validate(info.model_dump())


class ResumesRecord(Record):
    """resumes.json: each --resume of the run, in order (the card's `training.resumes` once it is written)."""

    resumes: list[ResumeInfo] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, data: Any) -> Any:  # before schema_version the file was the bare list
        return {"resumes": data, "schema_version": 1} if isinstance(data, list) else data
