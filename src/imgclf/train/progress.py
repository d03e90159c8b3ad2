"""What training prints: one short line per epoch, readable in a terminal and in a log file alike.

A tqdm bar redraws itself with carriage returns, which a redirected log turns into one unreadable line of
kilobytes per epoch; it is shown only when stderr is a terminal, and the epoch lines are printed either way.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

from .budget import TimeBudget


def _num(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


# after the first epochs, a line at most this often: a minute's run on 127 images printed 193 epoch lines
LINE_SECONDS = 2.0
FIRST_LINES = 3


class EpochLines(L.Callback):
    """`epoch  3/30  loss 0.4123  acc 0.8571  val_loss 0.3912  val_acc 0.8702  lr 1e-03  12.3s` after every
    epoch, 1-based like history.csv; with a time limit, what is left of it (`  4m05s left`), and with the schedule
    fitted to the time no total (`epoch 3  loss ...`): the epochs setting is then a cap, not a plan. Epochs shorter
    than LINE_SECONDS share a line after the first FIRST_LINES (history.csv keeps every one), and the last epoch
    always has one."""

    def __init__(self, epochs: int, stream: TextIO | None = None, clock: Any = time.perf_counter):
        self.epochs = epochs
        self.stream = stream
        self.clock = clock
        self._last_line: float | None = None
        self._unshown = 0
        self._pending: str | None = None  # the line of an epoch not shown, printed if it was the last
        self._start = 0.0
        self._lr = 0.0
        self._first_step = False

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stderr, flush=True)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self._lr = trainer.optimizers[0].param_groups[-1]["lr"]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # a resume inside an epoch skips that epoch's start hook: its line read lr 0 and the machine's uptime.
        # The epoch's rate is the one history.csv records, restored from the checkpoint (a per-step schedule has
        # moved on since the epoch's first step)
        self.on_train_epoch_start(trainer, pl_module)
        self._lr = next((c.epoch_lr for c in trainer.callbacks if getattr(c, "epoch_lr", None)), self._lr)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._first_step = batch_idx == 0

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        if self._first_step:  # the rate the epoch's first step uses, as history.csv records it
            self._lr, self._first_step = trainer.optimizers[0].param_groups[-1]["lr"], False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # every rank takes part in the reduction of the epoch's sums (the module logs them after this hook)
        means = pl_module.train_epoch_means() if hasattr(pl_module, "train_epoch_means") else {}
        if not trainer.is_global_zero:
            return
        now = self.clock()
        last = trainer.should_stop or trainer.current_epoch + 1 >= self.epochs
        if (trainer.current_epoch >= FIRST_LINES and not last and self._last_line is not None
                and now - self._last_line < LINE_SECONDS):
            # early stopping decides after this hook (Lightning calls the monitoring callbacks last): kept, the
            # line is printed when training ends, should this epoch have been its last
            self._pending = self._line(trainer, {**trainer.callback_metrics, **means}, self._unshown)
            self._unshown += 1
            return
        self._last_line, self._pending = now, None
        unshown, self._unshown = self._unshown, 0
        self._print(self._line(trainer, {**trainer.callback_metrics, **means}, unshown))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is not None and trainer.is_global_zero:  # the last epoch always has its line
            self._print(self._pending)
        self._pending = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # an interrupt skips on_train_end: the message counts the epoch history.csv holds, so its line is shown
        self.on_train_end(trainer, pl_module)

    def _line(self, trainer: L.Trainer, m: dict[str, Any], unshown: int) -> str:
        width = len(str(self.epochs))
        # read at the epoch's start, not now: an epoch-wise schedule (step, plateau) has already set the next rate
        lr = self._lr
        budget = next((c for c in trainer.callbacks if isinstance(c, TimeBudget)), None)
        # with the schedule fitted to the time, the epochs setting is only a cap (a recipe's 1000): not shown
        of = "" if budget is not None and budget.fit_schedule else f"/{self.epochs}"
        left = "" if budget is None else f"  {_clock(max(0.0, budget.seconds - budget.elapsed()))} left"
        return (f"epoch {trainer.current_epoch + 1:>{width if of else 0}}{of}  loss {_num(m.get('loss'))}  "
                f"acc {_num(m.get('acc'))}  val_loss {_num(m.get('val_loss'))}  val_acc {_num(m.get('val_acc'))}  "
                + (f"val_map {_num(m.get('val_map'))}  " if "val_map" in m else "")
                + f"lr {lr:.1e}  {time.perf_counter() - self._start:.1f}s{left}"
                + (f"  ({unshown} epoch{'s' if unshown != 1 else ''} before not shown)" if unshown else ""))


class EpochBar(TQDMProgressBar):
    """Lightning's bar (a terminal only), with the epoch's running training accuracy beside what validation logs:
    read from the sums the module keeps, one device read per refresh (a tenth of an epoch), where a per-step
    self.log of it cost Lightning's result bookkeeping on every batch."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        sums = getattr(pl_module, "epoch_sums", None)
        if sums is not None and trainer.training:
            _, correct, seen = sums.tolist()
            if seen:
                items["acc"] = f"{correct / seen:.3f}"
        return items


def _clock(seconds: float) -> str:
    """4m05s, 1h02m, 38s: the time left of a budget, to the second."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def stderr_is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())
