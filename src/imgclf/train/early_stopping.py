"""Early stopping as configured: the patience a resume asks for, and a fine-tuning's head-only phase held apart."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping

from ..config import TrainConfig


class PatienceAsConfigured(EarlyStopping):
    """Lightning's EarlyStopping, except that a resumed run keeps the patience its config gives: Lightning's
    restores the checkpoint's, so `--resume RUN --early-stopping 10` still stopped after the old patience. The
    epochs waited and the best score are restored as Lightning does.

    `waits_from_epoch` (0-based; a fine-tuning's first unfrozen epoch): before it patience never runs out, and
    from it early stopping starts afresh, its best score and epochs waited those of the unfrozen epochs alone, as
    the second `model.fit` of Keras' two-phase fine-tuning gets its own EarlyStopping. Otherwise a head that levels
    off stops the run before the backbone ever trains, or the first unfrozen epochs, whose validation loss jumps
    above the head's best, end it. (The weights kept are still the best of the whole run: BestWeights.)"""

    def __init__(self, *args: Any, waits_from_epoch: int = 0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.waits_from_epoch = waits_from_epoch
        self._unset_best = self.best_score.clone()
        self._stopped_early = False  # it ended the run before its last epoch
        self._had_stopped = False

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "stopped_early": self._stopped_early}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        patience = self.patience
        super().load_state_dict(state_dict)
        self.patience = patience
        # it had ended the run with this patience, and a signal while the run was being finished left it to a
        # resume, which trained on (a cross-validation's fold run again trained 4 more epochs). Not where the
        # patience ran out at the run's last epoch: a resume with more epochs trains on, as it asked
        self._stopped_early = bool(state_dict.get("stopped_early", False))
        self._had_stopped = self._stopped_early and self.wait_count >= patience

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # past the first epoch that waits: before it, the head-only epochs' waits never run out
        if self._had_stopped and trainer.current_epoch > self.waits_from_epoch:
            trainer.should_stop = True

    def _run_early_stopping_check(self, trainer: L.Trainer) -> None:
        epoch = trainer.current_epoch
        if epoch == self.waits_from_epoch and epoch:  # checked once per epoch: a resume inside it resets it too
            self.wait_count, self.best_score = 0, self._unset_best.clone()
        if epoch >= self.waits_from_epoch:
            super()._run_early_stopping_check(trainer)
            self._stopped_early = (trainer.should_stop and self.wait_count >= self.patience
                                   and epoch + 1 < (trainer.max_epochs or 0))
            return
        patience, self.patience = self.patience, float("inf")  # a non-finite metric still stops it
        try:
            super()._run_early_stopping_check(trainer)
        finally:
            self.patience = patience


def first_unfrozen_epoch(cfg: TrainConfig) -> int:
    """The epoch (0-based) from which a fine-tuning's backbone trains: 0 for a network trained whole from the
    start, and for a head trained on a backbone that never unfreezes (features_only, freeze_epochs >= epochs)."""
    if cfg.features_only or cfg.freeze_epochs >= cfg.epochs:
        return 0
    return cfg.freeze_epochs
