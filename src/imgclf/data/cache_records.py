"""The records of the cache folder ($IMGCLF_CACHE): KEY.json beside each decoded-image array (data/cache.py) and
each feature array (train/features.py), and audits/KEY.json, the pointer to a folder's last audit.json.

Derived data, not run files: a record that does not parse only costs the entry (built again) or the pointer
(inspect then omits the audit's counts), so they live with the cache, not in `imgclf.records`. Unlike the run
records they ignore keys they do not know, since a cache is shared by every release a user runs: an older one must
keep serving an entry that a newer one wrote with one more field, not treat it as damaged and build it again over
the other's. An entry's `version` is its decoding rules' (a part of its key), not the file's layout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CacheRecordT = TypeVar("CacheRecordT", bound="CacheRecord")


class CacheRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @classmethod
    def read(cls: type[CacheRecordT], path: Path) -> CacheRecordT:
        """The record in `path`; OSError when it cannot be read, ValueError when it is not this record."""
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except ValidationError as exc:  # a ValueError too; said on one line, as the warnings quote it
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "the file"
            raise ValueError(f"{where}: {first['msg']}") from None


class ImageCacheRecord(CacheRecord):
    """KEY.json beside KEY.npy, the decoded pixels (uint8, N x size x size x channels), written after the array:
    an array without it is a build in progress or a killed one's."""

    version: int = Field(description="the decoding rules' version (data/cache.py CACHE_VERSION), part of the key")
    size: int = Field(ge=1, description="the side every image was resized to, in pixels")
    color: str = Field(description="rgb or grayscale")
    count: int = Field(ge=0, description="the images, in the order of the paths the key was made of")
    source: str | None = Field(None, description="the folder holding them all, for `imgclf cache list` (absent in "
                                                  "entries written before 2026-12-07)")
    failures: dict[int, str] = Field(description="row -> why that image could not be decoded (its pixels are 0)")


class FeatureCacheRecord(CacheRecord):
    """features/KEY.json beside features/KEY.npy, a backbone's pooled features (float32, N x D)."""

    version: int = Field(description="train/features.py FEATURE_CACHE_VERSION, part of the key")
    pixels: str = Field(description="the key of the decoded-image entry the features were computed from")
    arch: str = Field(description="the backbone's registered name; empty when it had none")
    shape: tuple[int, int] = Field(description="the array's (images, feature dimension)")


class AuditPointer(CacheRecord):
    """audits/KEY.json (KEY: a hash of the folder's real path): the audit.json written of that folder last."""

    root: str = Field(description="the audited folder, symbolic links resolved")
    audit: str = Field(description="the absolute path of its audit.json")
