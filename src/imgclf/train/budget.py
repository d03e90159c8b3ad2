"""Wall-time budgets: stop cleanly at `--time-limit`, and with `--schedule budget` fit the learning rate to it.

The budget schedule is a function of the elapsed fraction of the budget rather than of the step count:
linear warm-up over the first `warmup` fraction, then linear decay to zero at the deadline. Whatever the
machine's speed, the run ends with a fully decayed learning rate exactly when the time is up. A run given an
epoch limit too (`--epochs`) follows whichever of the two fractions is further on, so the learning rate also
reaches zero when the epochs run out first, instead of stopping mid warm-up.
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


def schedule_warnings(cfg: Any) -> list[str]:
    """A schedule planned over --epochs under a --time-limit: the clock may stop the run long before the plan ends
    (cosine, 100 epochs, stopped at 11 with the rate barely decayed)."""
    if not cfg.time_limit_seconds or cfg.schedule not in ("cosine", "onecycle"):
        return []
    return [f"schedule {cfg.schedule} plans the learning rate over --epochs ({cfg.epochs}), whatever the time "
            f"limit ({cfg.time_limit}): if the time runs out first, the run stops before the rate has decayed; "
            "--schedule budget fits it to whichever ends first"]


class TimeBudget(L.Callback):
    """Checks the deadline at the end of every training step and of every epoch, and stops at the first check
    past it. A run overshoots its budget by at most the longest time between two checks: one step with the
    loading of its batch, or an epoch's closing validation (Lightning also validates the final weights when a
    fit stops, which is evaluation). A run whose last step of its last epoch crosses the deadline completed."""

    def __init__(self, seconds: float, fit_schedule: bool, warmup: float = 0.05, min_warmup_steps: int = 50,
                 clock: Callable[[], float] = time.perf_counter):
        self.seconds = float(seconds)
        # A warm-up of 5 % of the time is a handful of steps on a slow machine or a small data set, and SGD at
        # fast-fmnist's 0.2 diverged there (loss 27 in epoch 1 on 1,350 images in 2 minutes): the warm-up also
        # lasts at least this many optimiser steps.
        self.min_warmup_steps = min_warmup_steps
        self.steps = 0
        self.clock = clock
        self.fit_schedule = fit_schedule
        self.warmup = warmup
        self.spent = 0.0  # seconds used before this process (restored on --resume)
        self.before_training = 0.0  # of those, spent before training by the run itself (the sizing probe)
        self._t0: float | None = None
        self._last_check = 0.0
        self._base_lrs: list[float] = []
        self.reached = False
        self.stopped_at: float | None = None
        self.longest_interval = 0.0
        self._shared: float | None = None  # data parallel: rank 0's elapsed at the last check, as every rank uses

    def elapsed(self) -> float:
        return self.spent + (0.0 if self._t0 is None else self.clock() - self._t0)

    def _elapsed_for_all(self, trainer: L.Trainer) -> float:
        """The seconds spent, as rank 0's clock reads them, on every rank: each rank's own clock set its own
        learning rate (the replicas drifted apart: rates 13 % apart) and its own stop (one rank stopped and the
        other waited for it). A collective: called by every rank at the same checks."""
        if trainer.world_size <= 1:
            return self.elapsed()
        self._shared = float(trainer.strategy.broadcast(self.elapsed(), src=0))
        return self._shared

    def summary(self) -> dict[str, float | None]:
        """For the model card: how the run met its budget."""
        out = {"seconds": self.seconds,
               "stopped_at_seconds": None if self.stopped_at is None else round(self.stopped_at, 3),
               "longest_check_interval_seconds": round(self.longest_interval, 3)}
        if self.before_training:
            out["before_training_seconds"] = round(self.before_training, 3)
        return out

    def _check(self, trainer: L.Trainer, run_complete: bool = False) -> None:
        elapsed = self._elapsed_for_all(trainer)
        self.longest_interval = max(self.longest_interval, elapsed - self._last_check)
        self._last_check = elapsed
        if elapsed < self.seconds or run_complete:
            return
        if not self.reached:
            self.reached, self.stopped_at = True, elapsed
        trainer.should_stop = True

    @staticmethod
    def _in_last_epoch(trainer: L.Trainer) -> bool:
        max_epochs = trainer.max_epochs  # None or -1: no epoch limit
        return max_epochs is not None and max_epochs > 0 and trainer.current_epoch + 1 >= max_epochs

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = self.clock()
        self._last_check = self.spent
        self._base_lrs = [g.get("initial_lr", g["lr"]) for g in trainer.optimizers[0].param_groups]
        for g, lr in zip(trainer.optimizers[0].param_groups, self._base_lrs):
            g["initial_lr"] = lr
        if self.spent >= self.seconds:  # a run resumed with its budget already spent trains no further
            self._check(trainer)

    def progress(self, trainer: L.Trainer, batch_idx: int) -> float:
        """How far the run is, 0 to 1: of its time, or of its epochs where those run out sooner."""
        # data parallel: rank 0's reading at the last step's end, shared by that step's check
        shared = self._shared if trainer.world_size > 1 and self._shared is not None else None
        fraction = (self.elapsed() if shared is None else shared) / self.seconds
        max_epochs, batches = trainer.max_epochs, getattr(trainer, "num_training_batches", float("inf"))
        if max_epochs is not None and max_epochs > 0 and 0 < batches < float("inf"):
            fraction = max(fraction, (trainer.current_epoch + batch_idx / batches) / max_epochs)
        return min(fraction, 1.0)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self.fit_schedule:
            factor = budget_lr_factor(self.progress(trainer, batch_idx), self.warmup)
            if self.steps < self.min_warmup_steps:
                factor = min(factor, max((self.steps + 1) / self.min_warmup_steps, 0.02))
            for g, base in zip(trainer.optimizers[0].param_groups, self._base_lrs):
                g["lr"] = base * factor

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.steps += 1
        self._check(trainer, run_complete=trainer.is_last_batch and self._in_last_epoch(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer, run_complete=self._in_last_epoch(trainer))

    def state_dict(self) -> dict[str, Any]:
        return {"spent": self.elapsed(), "longest_interval": self.longest_interval, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.spent = float(state.get("spent", 0.0))
        self.longest_interval = float(state.get("longest_interval", 0.0))
        self.steps = int(state.get("steps", self.min_warmup_steps))  # older checkpoints: warmed up
