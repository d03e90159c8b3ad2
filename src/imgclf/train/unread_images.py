"""Streamed images that could not be read while training read them (their drive unmounted, the files replaced
since the scan). `StreamedImages` drops such an image from its batch, never crashing the epoch, and names it; a
batch of which none could be read trains nothing. An epoch that trained nothing stops the run, with how to finish
it, where it wrote the epoch before's numbers again into history.csv and went on as if it had trained; a few such
batches are warned of."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from ..errors import ImgclfError
from ..file_names import shell_word


class EpochOfNoImage(RuntimeError):
    """Raised inside the trainer; `train.fit` answers it with `TrainingImagesGone` once it knows what is saved."""

    def __init__(self, epoch: int, batches: int):
        self.epoch, self.batches = epoch, batches
        super().__init__(f"not one training image of epoch {epoch + 1} could be read ({batches} batches)")


class TrainingImagesGone(ImgclfError):
    """The run stopped because an epoch could read none of its training images."""


def images_gone_message(exc: EpochOfNoImage, run_dir: Any, saved_epochs: int) -> str:
    then = (f"imgclf train --resume {shell_word(run_dir)} continues from epoch {saved_epochs + 1} ({saved_epochs} epoch"
            f"{'' if saved_epochs == 1 else 's'} saved)" if saved_epochs else "run the command again")
    return (f"training stopped: {exc}: the files, read from disk as training goes (the data exceeds "
            f"--cache-budget), were removed or changed since the command began (a drive unmounted?). Put them back, "
            f"then {then}")


class UnreadBatches(L.Callback):
    """Reads the module's count of batches that trained nothing (`unread_batches`, per process) once the
    epoch's training batches are done: before its validation (which would score the epoch before's weights
    again), or at its end where there is none. Either is before the epoch is saved or written to history.csv
    (this callback comes before those that do), so a resume trains the epoch again."""

    def __init__(self) -> None:
        self._checked_epoch = -1

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer, pl_module)

    def _check(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self._checked_epoch == trainer.current_epoch:
            return
        self._checked_epoch = trainer.current_epoch
        # over every process, so that all of them stop together (one stopping alone would leave the others
        # waiting at their next collective)
        counts = torch.tensor([float(pl_module.unread_batches), float(pl_module.epoch_sums[2])],
                              device=pl_module.device)
        unread, trained = (float(v) for v in trainer.strategy.reduce(counts, reduce_op="sum"))
        if unread and not trained:
            raise EpochOfNoImage(trainer.current_epoch, int(unread))
        if unread and trainer.is_global_zero:
            from ..notices import warn

            one = unread == 1
            warn(f"epoch {trainer.current_epoch + 1}: {int(unread)} batch{'' if one else 'es'} trained nothing, not "
                 f"one of {'its' if one else 'their'} images readable (removed or changed since the command began); "
                 "the epoch trained on its other batches")
