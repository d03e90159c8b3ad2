"""Wall-time budgets: stop cleanly at `--time-limit`, and with `--schedule budget` fit the learning rate to it.

The budget schedule is a function of the elapsed fraction of the budget rather than of the step count:
linear warm-up over the first `warmup` fraction, then linear decay to zero at the deadline. Whatever the
machine's speed, the run ends with a fully decayed learning rate exactly when the time is up.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L


def budget_lr_factor(fraction: float, warmup: float = 0.05) -> float:
    """Multiplier of the base learning rate after `fraction` of the budget has elapsed."""
    if fraction < warmup:
        return max(fraction / warmup, 0.02)
    return max(0.0, (1.0 - fraction) / (1.0 - warmup))


class TimeBudget(L.Callback):
    def __init__(self, seconds: float, fit_schedule: bool, warmup: float = 0.05):
        self.seconds = float(seconds)
        self.fit_schedule = fit_schedule
        self.warmup = warmup
        self.spent = 0.0  # seconds used before this process (restored on --resume)
        self._t0 = 0.0
        self._base_lrs: list[float] = []
        self.reached = False

    def elapsed(self) -> float:
        return self.spent + (time.perf_counter() - self._t0)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()
        self._base_lrs = [g.get("initial_lr", g["lr"]) for g in trainer.optimizers[0].param_groups]
        for g, lr in zip(trainer.optimizers[0].param_groups, self._base_lrs):
            g["initial_lr"] = lr

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        fraction = self.elapsed() / self.seconds
        if fraction >= 1.0:
            self.reached = True
            trainer.should_stop = True
            return
        if self.fit_schedule:
            factor = budget_lr_factor(fraction, self.warmup)
            for g, base in zip(trainer.optimizers[0].param_groups, self._base_lrs):
                g["lr"] = base * factor

    def state_dict(self) -> dict[str, Any]:
        return {"spent": self.elapsed() if self._t0 else self.spent}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.spent = float(state.get("spent", 0.0))
