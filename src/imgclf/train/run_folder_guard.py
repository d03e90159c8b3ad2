"""A run's folder removed or replaced while it trains (`rm -rf`, or a second run given the same --out with
--overwrite once the first's lock went with the folder): every write re-made the folder by its path, so the
rest of the run went into a new folder, or into the other run's, whose files then mixed the two (its config.yaml
said 2 epochs, its history.csv and weights were the first run's 8). Training stops instead, before its next
write, and writes nothing more there."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L

from ..errors import ImgclfError
from ..records.run_dir import LOCK_FILE


class RunFolderReplaced(ImgclfError):
    """The run's folder or its lock file is no longer the one the run began in."""

    keeps_folder = True  # what is there now is not this run's: nothing of it is taken back (pipeline.run)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class RunFolderKept(L.Callback):
    """Checks, before each hook of a step or an epoch that may write (put first among the callbacks), that the run
    folder and its lock file are still the ones the run locked: two stat calls, nothing beside a step's time."""

    def __init__(self, run_dir: Path):
        self.run_dir, self.lock = Path(run_dir), Path(run_dir) / LOCK_FILE
        self.folder_identity, self.lock_identity = _identity(self.run_dir), _identity(self.lock)

    def _check(self, *_: object) -> None:
        if _identity(self.run_dir) == self.folder_identity and _identity(self.lock) == self.lock_identity:
            return
        raise RunFolderReplaced(f"training stopped: the run folder {self.run_dir} was removed or replaced while this "
                                "run trained (rm -rf, or another run given the same --out with --overwrite?); "
                                "nothing more is written there, and its epochs are not kept")

    on_train_epoch_start = on_train_batch_end = on_validation_epoch_end = on_train_epoch_end = _check
