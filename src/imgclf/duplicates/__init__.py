"""Which images of a set are copies of one another: exact copies (same file bytes) and near-duplicates (the same
picture re-encoded, resized, brightened or shifted), as groups. The audit (`imgclf.audit`) says what the groups
mean for a data set; the group-aware split (`imgclf.data.groups`) keeps each group inside one split. Numpy, scipy
and torch only: it imports no other part of imgclf.

    from imgclf.duplicates import duplicate_groups
    found = duplicate_groups(pixels, paths)     # (N, S, S, C) uint8, as the decode cache holds them
    found.group_ids()                           # one id per image, shared within a group
"""

from __future__ import annotations

import numpy as np

__all__ = ["duplicate_groups"]


def duplicate_groups(pixels: np.ndarray, paths: list[str] | None = None, seed: int = 0):
    """Exact (when `paths` are given: same file bytes) and near-duplicate groups of (N, S, S, C) uint8 pixels,
    as a `search.Duplicates`: `.group_ids()` for a group-aware split, `.groups` for the members."""
    from .hashing import content_digests, perceptual_signatures
    from .search import find_duplicates
    from .thumbnails import grey_thumbnails

    thumbs = grey_thumbnails(pixels)
    digests = content_digests(list(paths)) if paths is not None else None
    return find_duplicates(thumbs, perceptual_signatures(thumbs, seed=seed), digests)
