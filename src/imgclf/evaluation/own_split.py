"""The run's own split, as its dataset.json lists it, checked on disk before it is scored: scored on what is left
of it, the run's metrics.json would stand for another split than the one it trained against."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import invalid
from ..records import RunDir
from ..file_names import shell_word


def check_on_disk(run: RunDir, dataset: Any, files: list[str], split: str, own_only: str | None = None) -> None:
    """Refuse a split whose data folder, or any of whose images, is gone (moved, renamed, deleted). own_only: why
    the command needs the run's own splits (calibrate refits on them), said in place of `imgclf evaluate --data`,
    which scores another folder and would not do what was asked."""
    gone = [root for root in dataset.roots or [dataset.root] if not Path(root).is_dir()]
    if gone:  # else every file would be "unreadable", which names no cause
        raise invalid("run", run.path, "a run whose data folder is where it was trained (dataset.json's root)",
                      note=f"{gone[0]} is no longer a folder",
                      hint=f"Put the folder back at {gone[0]}" + (f": {own_only}" if own_only else
                           f", or evaluate on a folder of your own: imgclf evaluate {shell_word(run.path)} "
                           "--data FOLDER"))
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise invalid("run", run.path, f"a run whose {split} split is where dataset.json lists it",
                      note=f"{len(missing):,} of its {len(files):,} images are gone (e.g. {missing[0]}): moved, "
                           "renamed or deleted since training",
                      hint="Put them back (a renamed class folder under its old name)" + (f": {own_only}" if own_only
                           else "; to score the images the folder holds now, evaluate it as another folder (written "
                           f"under {run.path / 'evaluations'}, beside the run's own scores): imgclf evaluate "
                           f"{shell_word(run.path)} --data FOLDER"))
