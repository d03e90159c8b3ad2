"""scikit-learn's bundled handwritten digits: the one data set that needs neither network nor files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .tree import write_tree


def export_digits(out: str | os.PathLike) -> Path:
    """scikit-learn's bundled 1,797 8x8 handwritten digits as PNGs (0..16 scaled to 0..255)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(digits.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    out = Path(out)
    write_tree(out, None, images, digits.target, [str(d) for d in range(10)])
    return out
