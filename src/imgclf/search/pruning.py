"""Optuna's pruning callback for Lightning, its verdict acted on once the judged epoch is on record."""

from __future__ import annotations

from typing import Any

import optuna
from optuna_integration import PyTorchLightningPruningCallback


class PruneAtEpochEnd(PyTorchLightningPruningCallback):
    """Reports each epoch's validation score to the trial as Optuna's callback does, but stops a pruned trial at
    the end of the training epoch instead of in `on_validation_end`: raised there, before the history writer's
    epoch end, the trial's history.csv lacked the very epoch the pruner judged (tune.json said "pruned after
    epoch 3" of a run whose history held two). Lightning runs this after the run's own callbacks (fit appends
    it), so the row is written when it raises."""

    def __init__(self, trial: optuna.trial.Trial, monitor: str) -> None:
        super().__init__(trial, monitor)
        self._pruned: optuna.TrialPruned | None = None

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor not in trainer.callback_metrics:  # (a multi-label validation split without a positive
            return  # has no mAP: the trial's end says so, where Optuna's callback warned of a misspelt metric)
        try:
            super().on_validation_end(trainer, pl_module)
        except optuna.TrialPruned as verdict:
            self._pruned = verdict

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._pruned is None:
            return
        last = trainer.should_stop or (trainer.max_epochs is not None
                                       and trainer.current_epoch + 1 >= trainer.max_epochs)
        if last:  # a trial trained to its end saves nothing by pruning: it was dropped from the choice all the same
            self._pruned = None
            return
        raise self._pruned
