"""`imgclf audit`: what in an image folder makes its results untrustworthy. Exact and near-duplicates (within a
class, across classes, across train/val/test), likely label errors (confident learning), outliers and nearly
empty images; written as audit.json (`imgclf.records.AuditRecord`) and a self-contained audit.html.

    from imgclf.audit import audit
    result = audit("data/flowers")             # or audit("data/flowers", run="runs/flowers-1")
    result.record.counts                        # what imgclf inspect prints
    result.duplicates.group_ids()               # one id per image, shared within a duplicate group

The duplicate search alone, on pixels already decoded (the uint8 cache), is `duplicate_groups(pixels)`
(`imgclf.duplicates`, the layer below both the audit and the data sets' group-aware split).
"""

from __future__ import annotations

from typing import Any

from ..duplicates import duplicate_groups

__all__ = ["audit", "duplicate_groups"]


def audit(data: Any, run: Any = None, **options: Any):
    """See `imgclf.audit.pipeline.audit`."""
    from .pipeline import audit as _audit

    return _audit(data, run=run, **options)
