"""Data-parallel processes stop together on a SIGTERM sent to any of them. Lightning's own handler broadcasts from
inside the signal handler, while the other process may sit in another collective (a gradient reduction): a
SIGTERM sent to rank 0 alone (`timeout`, `kill PID`, a scheduler signalling the main process) hung both processes
for good. Here the handler only notes the request; every process reads the others' at the end of each training
step, in a step all of them take, and all stop there together, as Lightning's SIGTERM stop does for one process."""

from __future__ import annotations

import signal
from typing import Any

import lightning as L
import torch


class StopTogether(L.Callback):
    def __init__(self) -> None:
        self.asked = False

    def _ask(self, signum: int, frame: Any) -> None:
        self.asked = True  # nothing collective inside a signal handler

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size > 1:
            # over Lightning's handler (registered as training began; it restores the one before it at the end)
            signal.signal(signal.SIGTERM, self._ask)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.world_size <= 1:
            return
        asked = torch.tensor([1.0 if self.asked else 0.0], device=trainer.strategy.root_device)
        if float(trainer.strategy.reduce(asked, reduce_op="sum")) > 0:
            # every process at once: Lightning raises its SIGTERMException at the end of this step, on each
            trainer._signal_connector.received_sigterm = True
