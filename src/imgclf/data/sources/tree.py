"""Write labelled uint8 arrays as a class-per-folder PNG tree, each file through a temp name and a rename."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image


def write_tree(out: Path, split: str | None, images: np.ndarray, labels: np.ndarray, classes: list[str]) -> int:
    """Write images[i] as out/[split/]<classes[labels[i]]>/<i>.png; files already there are kept (resumable)."""
    base = out / split if split else out
    for name in classes:
        (base / name).mkdir(parents=True, exist_ok=True)
    for i, (img, y) in enumerate(zip(images, labels)):
        path = base / classes[int(y)] / f"{i:05d}.png"
        if not path.exists():
            tmp = path.with_name(f".{path.name}.tmp")
            Image.fromarray(np.ascontiguousarray(img)).save(tmp, format="PNG")
            os.replace(tmp, path)
    return len(images)
