"""`imgclf audit`: what in an image folder makes its results untrustworthy. Exact and near-duplicates (within a
class, across classes, across train/val/test), likely label errors (confident learning), outliers and nearly
empty images; written as audit.json (`imgclf.records.AuditRecord`) and a self-contained audit.html.

    from imgclf.audit import audit
    result = audit("data/flowers")             # or audit("data/flowers", run="runs/flowers-1")
    result.record.counts                        # what imgclf inspect prints
    result.duplicates.group_ids()               # one id per image, shared within a duplicate group

The duplicate search alone, on pixels already decoded (the uint8 cache), is `duplicate_groups(pixels)`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["audit", "duplicate_groups"]


def audit(data: Any, run: Any = None, **options: Any):
    """See `imgclf.audit.pipeline.audit`."""
    from .pipeline import audit as _audit

    return _audit(data, run=run, **options)


def duplicate_groups(pixels: np.ndarray, paths: list[str] | None = None, seed: int = 0):
    """Exact (when `paths` are given: same file bytes) and near-duplicate groups of (N, S, S, C) uint8 pixels,
    as a `duplicates.Duplicates`: `.group_ids()` for a group-aware split, `.groups` for the members."""
    from .duplicates import find_duplicates
    from .hashing import content_digests, perceptual_signatures
    from .images import grey_thumbnails

    thumbs = grey_thumbnails(pixels)
    digests = content_digests(list(paths)) if paths is not None else None
    return find_duplicates(thumbs, perceptual_signatures(thumbs, seed=seed), digests)
