"""Wall-time budgets: stop cleanly at `--time-limit`, and with `--schedule budget` fit the learning rate to it.

The budget schedule is a function of the elapsed fraction of the budget rather than of the step count:
linear warm-up over the first `warmup` fraction, then linear decay to zero at the deadline. Whatever the
machine's speed, the run ends with a fully decayed learning rate exactly when the time is up.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import lightning as L


def budget_lr_factor(fraction: float, warmup: float = 0.05) -> float:
    """Multiplier of the base learning rate after `fraction` of the budget has elapsed."""
    if fraction < warmup:
        return max(fraction / warmup, 0.02)
    return max(0.0, (1.0 - fraction) / (1.0 - warmup))


class TimeBudget(L.Callback):
    """Stops at the end of the first training step that finishes past the deadline, so a run overshoots its
    budget by at most one step (plus the validation Lightning runs when a fit stops, which is evaluation).
    A deadline that passes during an epoch's closing validation stops the run before the next epoch."""

    def __init__(self, seconds: float, fit_schedule: bool, warmup: float = 0.05,
                 clock: Callable[[], float] = time.perf_counter):
        self.seconds = float(seconds)
        self.clock = clock
        self.fit_schedule = fit_schedule
        self.warmup = warmup
        self.spent = 0.0  # seconds used before this process (restored on --resume)
        self._t0 = 0.0
        self._step_t0 = 0.0
        self._base_lrs: list[float] = []
        self.reached = False
        self.stopped_at: float | None = None
        self.longest_step = 0.0

    def elapsed(self) -> float:
        return self.spent + (self.clock() - self._t0)

    def summary(self) -> dict[str, float | None]:
        """For the model card: how the run met its budget."""
        return {"seconds": self.seconds, "stopped_at_seconds": None if self.stopped_at is None else
                round(self.stopped_at, 3), "longest_step_seconds": round(self.longest_step, 3)}

    def _stop_if_spent(self, trainer: L.Trainer) -> bool:
        elapsed = self.elapsed()
        if elapsed < self.seconds:
            return False
        if not self.reached:
            self.reached, self.stopped_at = True, elapsed
        trainer.should_stop = True
        return True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = self.clock()
        self._base_lrs = [g.get("initial_lr", g["lr"]) for g in trainer.optimizers[0].param_groups]
        for g, lr in zip(trainer.optimizers[0].param_groups, self._base_lrs):
            g["initial_lr"] = lr
        self._stop_if_spent(trainer)  # a run resumed with its budget already spent trains no further

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._step_t0 = self.clock()
        if self.fit_schedule:
            factor = budget_lr_factor(min(self.elapsed() / self.seconds, 1.0), self.warmup)
            for g, base in zip(trainer.optimizers[0].param_groups, self._base_lrs):
                g["lr"] = base * factor

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.longest_step = max(self.longest_step, self.clock() - self._step_t0)
        self._stop_if_spent(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_if_spent(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"spent": self.elapsed() if self._t0 else self.spent}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.spent = float(state.get("spent", 0.0))
