"""The epoch a resume restored mid-way ends as an uninterrupted one does: its plateau schedulers step.

Lightning 2.6.6 (`_FitLoop.on_advance_end`) leaves ReduceLROnPlateau unstepped at the end of an epoch it restored
from inside (`fit_loop.restarting` holds for that whole epoch: the metrics a plateau reads were not in the
checkpoint, it reasons, though by then this epoch's validation has produced them). Every later reduction of a run
resumed from a --checkpoint-every save then came one epoch late.
"""

from __future__ import annotations

import lightning as L
from torch.optim.lr_scheduler import ReduceLROnPlateau


class StepPlateauAfterRestoredEpoch(L.Callback):
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loop = trainer.fit_loop
        if not loop.restarting or not loop.epoch_loop._num_ready_batches_reached():
            return  # an ordinary epoch: Lightning steps them itself
        for config in trainer.lr_scheduler_configs:
            if config.interval != "epoch" or not isinstance(config.scheduler, ReduceLROnPlateau):
                continue
            value = trainer.callback_metrics.get(config.monitor)
            if value is None:  # no validation this epoch: nothing for the plateau to read, as Lightning has it
                continue
            pl_module.lr_scheduler_step(config.scheduler, value)
