"""Write labelled uint8 arrays as a class-per-folder PNG tree, each file through a temp name and a rename."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ...io import default_file_mode, new_temp_file


def write_tree(out: Path, split: str | None, images: np.ndarray, labels: np.ndarray, classes: list[str],
               present: set[int] | None = None) -> int:
    """Write images[i] as out/[split/]<classes[labels[i]]>/<i>.png; files already there are kept (resumable).
    Only the classes of `present` (the labels some image of the data set carries; default: of these images) get
    a folder: a class with no image anywhere left empty folders, which made training refuse the whole tree."""
    base = out / split if split else out
    mode = default_file_mode()
    for label in sorted(present if present is not None else {int(y) for y in labels}):
        (base / classes[label]).mkdir(parents=True, exist_ok=True)
    for i, (img, y) in enumerate(zip(images, labels)):
        path = base / classes[int(y)] / f"{i:05d}.png"
        if not path.exists():
            # a name of its own: two fetches into one folder renamed each other's temp file away (a crash)
            fd, tmp = new_temp_file(path)
            try:
                with os.fdopen(fd, "wb") as handle:
                    Image.fromarray(np.ascontiguousarray(img)).save(handle, format="PNG")
                os.chmod(tmp, mode)  # mkstemp's 0600 would keep other users out of the data
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    return len(images)
