"""Small callbacks, one concern each, each with a state_dict so `--resume` continues exactly."""

from __future__ import annotations

import io
import os
import re
import pickle
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from safetensors.torch import load_file, save_file

from ..io import atomic_write_bytes, default_file_mode, new_temp_file, remove_stale_temp_files, temp_files_of
from ..records import HistoryRow, RunDir


def monitor_improved(current: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Pure decision shared by best-weights tracking: has `current` beaten `best` by more than min_delta?"""
    if best is None:
        return True
    return current < best - min_delta if mode == "min" else current > best + min_delta


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written to a temp file and renamed: kill -9 never leaves half a file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())


def save_weights(model: torch.nn.Module, path: str | Path) -> None:
    """safetensors, atomically. Tensors are made contiguous and unshared, as safetensors requires."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(temp_files_of(path))
    fd, tmp = new_temp_file(path)
    os.close(fd)
    try:
        save_file(state, tmp)
        os.chmod(tmp, default_file_mode())  # mkstemp made it 0600; weights are as readable as the other run files
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        code = re.search(r"os error (\d+)", str(exc)) if not isinstance(exc, OSError) else None
        if code:  # safetensors' own error quotes the OS's and names no file: named here (a full disk's folder)
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from exc
        raise


def checkpoint_problem(path: str | Path) -> str | None:
    """Why `path` is not a checkpoint `--resume` can continue from, or None. Read as `trainer.fit` will read it
    (weights_only: a crafted pickle is refused, never run), memory-mapped when it is a torch zip archive."""
    is_zip = zipfile.is_zipfile(path)
    with open(path, "rb") as f:
        if not is_zip and f.read(4) == b"PK\x03\x04":  # torch.save's format, cut short (torch says only EINVAL)
            return "is a truncated or corrupt torch archive"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about the pickle protocol of a file it then refuses
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        return f"was refused by torch's weights-only loader, and nothing in it was run: {_first_reason(exc)}"
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        return f"cannot be read: {_first_reason(exc)}"
    if not isinstance(ckpt, dict) or not {"state_dict", "loops"} <= set(ckpt):
        return "is not a Lightning checkpoint (no state_dict and loops)"
    return None


# read back by train/checkpoint_state.py (imgclf runs and the resume checks, without importing Lightning)


def weights_problem(path: str | Path) -> str | None:
    """Why `path` is not a safetensors file of tensors, or None (its header only is read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError, ValueError) as exc:
        return f"cannot be read: {_first_reason(exc)}"
    return None


def _first_reason(exc: BaseException) -> str:
    """The line of a loader's error that says what was wrong (torch's weights_only refusal is a page long)."""
    text = str(exc).split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()] or [type(exc).__name__]
    return lines[0][:200]


class LastCheckpoint(L.Callback):
    """checkpoints/last.ckpt after every completed epoch: model, optimiser, schedulers, loop progress and every
    callback's state_dict, written atomically (AtomicCheckpointIO). Lightning's ModelCheckpoint(save_last=True,
    save_top_k=0) writes it only when training ends (2.6.6), which made every resume start from scratch.

    It is saved when the next epoch starts (and when training ends): by then the finished epoch's validation,
    early-stopping check and epoch-level scheduler step are all done. Lightning has already counted the new
    epoch as "ready" at that hook, and nothing else has moved; the saved progress is set back by that one count,
    so the file describes exactly "k epochs completed" and a resume starts epoch k + 1 as an ordinary epoch.
    """

    def __init__(self, path: str | Path, every_n_steps: int | None = None):
        self.path = Path(path)
        self.every_n_steps = every_n_steps
        self.saved_steps = 0  # training steps of the epoch after `saved_epochs` that the file also holds
        self.saved_epochs = 0  # completed epochs the file on disk holds (0: no checkpoint written yet)
        self.seconds_before = 0.0  # training time of earlier processes of this run (restored on resume)
        self.processes = 1  # how many processes train the run (a resume inside an epoch must train in as many)
        self._started = time.perf_counter()
        self._ended_at: float | None = None
        self._at_epoch_start = False

    def train_seconds(self) -> float:
        """Training time of the whole run so far, across resumed processes (frozen when training ends, so the
        model card and the final checkpoint agree)."""
        if self._ended_at is not None:
            return self._ended_at
        return self.seconds_before + time.perf_counter() - self._started

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started, self._ended_at = time.perf_counter(), None
        self.processes = trainer.world_size

    def state_dict(self) -> dict[str, Any]:
        return {"saved_epochs": self.saved_epochs, "saved_steps": self.saved_steps,
                "train_seconds": self.train_seconds(), "processes": self.processes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.saved_epochs = int(state.get("saved_epochs", 0))
        self.saved_steps = int(state.get("saved_steps", 0))
        self.seconds_before = float(state.get("train_seconds", 0.0))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _set_batches_done(trainer, 0)  # not the last epoch's mid-epoch count: a boundary file holds none
        if trainer.current_epoch > self.saved_epochs:
            self._at_epoch_start = True
            before = self.saved_epochs, self.saved_steps
            self.saved_epochs, self.saved_steps = trainer.current_epoch, 0  # saved in the file's own state
            try:
                # every rank calls it; the strategy writes on rank 0 only. weights_only=False: the full state
                trainer.save_checkpoint(self.path, weights_only=False)
            except BaseException:
                self.saved_epochs, self.saved_steps = before
                raise
            finally:
                self._at_epoch_start = False

    def save_within_epoch(self, trainer: L.Trainer, batch_idx: int) -> None:
        """With every_n_steps, also inside long epochs: the loop's progress and the loaders' `batches_done`
        (what a resume skips) are saved with the rest. The last batch of an epoch is left to the epoch's save.
        Called by `WithinEpochCheckpoint`, after every other callback's hook for the batch."""
        step = trainer.global_step
        if not self.every_n_steps or step == 0 or step % self.every_n_steps or trainer.is_last_batch:
            return
        _set_batches_done(trainer, batch_idx + 1)
        before = self.saved_epochs, self.saved_steps
        self.saved_epochs, self.saved_steps = trainer.current_epoch, batch_idx + 1  # what the file will hold
        try:
            trainer.save_checkpoint(self.path, weights_only=False)
        except BaseException:
            self.saved_epochs, self.saved_steps = before
            raise

    def _save_boundary(self, trainer: L.Trainer, completed: int) -> None:
        """A checkpoint at an epoch boundary; the counts are set first, since the file holds this callback's state."""
        before = self.saved_epochs, self.saved_steps
        self.saved_epochs, self.saved_steps = completed, 0
        _set_batches_done(trainer, 0)
        try:
            trainer.save_checkpoint(self.path, weights_only=False)
        except BaseException:
            self.saved_epochs, self.saved_steps = before
            raise

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._ended_at = self.train_seconds()
        self._save_boundary(trainer, trainer.current_epoch)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # SIGTERM is raised by Lightning right after an epoch completes, before the next one starts: that epoch
        # is saved here. Anywhere else (mid-epoch, during validation) the state is not an epoch boundary.
        progress = trainer.fit_loop.epoch_progress.current
        if progress.ready == progress.completed > self.saved_epochs:
            self._save_boundary(trainer, progress.completed)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if not self._at_epoch_start:
            return
        progress = checkpoint["loops"]["fit_loop"]["epoch_progress"]
        for counts in (progress["total"], progress["current"]):
            if counts["ready"] != counts["completed"] + 1:
                raise RuntimeError(f"unexpected epoch progress at epoch start: {progress}")  # Lightning changed
            counts["ready"] = counts["completed"]


def _set_batches_done(trainer: L.Trainer, count: int) -> None:
    """What the loaders' state in the next checkpoint says was trained of the current epoch."""
    loaders = trainer.train_dataloader
    for loader in loaders if isinstance(loaders, (list, tuple)) else [loaders]:
        if hasattr(loader, "batches_done"):
            loader.batches_done = count


class WithinEpochCheckpoint(L.Callback):
    """LastCheckpoint's saves inside an epoch, made at a batch's end after every other callback's hook for that
    batch (it goes last in the list): an EMA takes the step's weights into its average there, and a file written
    before that resumed without them, so the run ended elsewhere than an uninterrupted one."""

    def __init__(self, last: LastCheckpoint):
        self.last = last

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.last.save_within_epoch(trainer, batch_idx)


class RememberedCtrlC(L.Callback):
    """Stops training at the next batch's end after a Ctrl-C that Python dropped: one raised inside a garbage
    collector's weakref callback or a __del__ is printed ("Exception ignored in ... KeyboardInterrupt") and training
    went on to its last epoch. `came`: whether a Ctrl-C came (`interrupts.remembered_ctrl_c`, set while fitting)."""

    def __init__(self) -> None:
        self.came = lambda: False

    def _stop_if_one_came(self) -> None:
        if self.came():
            raise KeyboardInterrupt  # Lightning's own handling of Ctrl-C from here on, as for one not dropped

    def on_train_batch_end(self, *args: Any) -> None:
        self._stop_if_one_came()

    def on_validation_batch_end(self, *args: Any) -> None:
        self._stop_if_one_came()


class BestWeights(L.Callback):
    """Keeps the best epoch's weights (by monitor) on disk and, if asked, restores them at the end
    (Keras' ModelCheckpoint(save_best_only) + EarlyStopping(restore_best_weights))."""

    def __init__(self, path: str | Path, monitor: str = "val_loss", mode: str = "min", restore: bool = True):
        self.path = Path(path)
        self.monitor, self.mode, self.restore = monitor, mode, restore
        self.best: float | None = None
        self.best_epoch: int | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # at the epoch's end, not at validation's: an EMA (Lightning's WeightAveraging, a later callback) validates
        # with the averaged weights and swaps the raw ones back in its own epoch-end hook, so at on_validation_end
        # the raw weights were saved under the averaged weights' score (--ema then changed nothing kept)
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if self.monitor == "val_map" and hasattr(pl_module, "epoch_val_map"):  # logged after this hook: asked
            fresh = pl_module.epoch_val_map()
            value = None if fresh is None else torch.tensor(fresh)
        if value is None or not torch.isfinite(value):
            return
        if monitor_improved(float(value), self.best, self.mode):
            self.best, self.best_epoch = float(value), trainer.current_epoch
            if trainer.is_global_zero:
                save_weights(pl_module.model, self.path)

    def restore_into(self, model: torch.nn.Module) -> bool:
        if self.path.exists():
            model.load_state_dict(load_file(str(self.path)))
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")


class HistoryWriter(L.Callback):
    """Appends one row per epoch to the run's history.csv (rewritten atomically each epoch)."""

    def __init__(self, run_dir: str | Path, frozen_until: int = 0):
        self.run = RunDir(run_dir)
        self.rows: list[HistoryRow] = []
        self.frozen_until = frozen_until
        self._start = time.perf_counter()
        self._lr = 0.0
        self._seen = 0
        self._batches: int | None = 0  # of the current epoch, counted on (a resume inside an epoch restores it)
        self._train_seconds = 0.0  # a checkpoint written before the first epoch (budget spent, ^C) reads it
        self._validated = False  # whether this epoch's validation started (and read the training seconds)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # On resume, start from the rows on disk; an epoch that is replayed replaces its row when it ends
        # (the loop state is not restored yet at this hook, so rows cannot be filtered by epoch here).
        if not self.rows:
            self.rows = self.run.read_history()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self._lr = trainer.optimizers[0].param_groups[-1]["lr"]
        self._seen = 0
        self._batches = 0
        self._train_seconds = 0.0
        self._validated = False

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        # counted at the start, so a checkpoint written at this batch's end counts it
        self._seen += len(batch[1])
        if self._batches is not None:
            self._batches += 1

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._train_seconds = time.perf_counter() - self._start

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        if self._batches == 1:
            # the rate the epoch's first step uses: the budget schedule sets it per batch, so at epoch start the
            # first epoch still showed the unscheduled base rate (0.2 where the step ran at 0.004); at the batch's
            # end a per-step schedule (cosine, onecycle) has already moved on to the second step's
            self._lr = trainer.optimizers[0].param_groups[-1]["lr"]

    def state_dict(self) -> dict[str, Any]:
        # what a resume inside an epoch needs to finish that epoch's row as an uninterrupted run would
        return {"lr": self._lr, "seen": self._seen, "elapsed": time.perf_counter() - self._start,
                "train_seconds": self._train_seconds, "batches": self._batches}

    @property
    def epoch_lr(self) -> float:
        """The rate of the epoch under way, as its row will record it (0 before its first step)."""
        return self._lr

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._lr, self._seen = float(state.get("lr", 0.0)), int(state.get("seen", 0))
        self._start = time.perf_counter() - float(state.get("elapsed", 0.0))
        self._train_seconds = float(state.get("train_seconds", 0.0))
        # a checkpoint written before the count was kept: the epoch's share is unknown (its row reads whole)
        self._batches = None if state.get("batches") is None else int(state["batches"])

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._train_seconds = self._trained_seconds(pl_module)  # images/s counts training, not validation
        self._validated = True

    def _trained_seconds(self, pl_module: L.LightningModule) -> float:
        """Seconds since the epoch started, once the device has run what the host queued (the host runs ahead of
        a GPU: without waiting, a 32x32 epoch read faster than it ran)."""
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        elif pl_module.device.type == "mps":
            torch.mps.synchronize()
        return time.perf_counter() - self._start

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._validated:  # no validation this epoch: the training ended here
            self._train_seconds = self._trained_seconds(pl_module)
        # every rank takes part in the reduction of the epoch's sums; only rank 0 writes
        means = pl_module.train_epoch_means() if hasattr(pl_module, "train_epoch_means") else {}
        if not trainer.is_global_zero:
            return
        seconds = time.perf_counter() - self._start
        m = trainer.callback_metrics

        def get(name: str) -> float | None:
            v = means.get(name, m.get(name))
            return None if v is None else float(v)

        row = HistoryRow(
            epoch=trainer.current_epoch + 1, lr=self._lr, loss=get("loss"), acc=get("acc"), val_loss=get("val_loss"),
            val_acc=get("val_acc"), seconds=round(seconds, 3),
            images_per_s=round(self._seen * trainer.world_size / max(self._train_seconds or seconds, 1e-9), 1),
            frozen=int(trainer.current_epoch < self.frozen_until), fraction=self._fraction(trainer),
            l2_penalty=get("l2_penalty"), val_map=get("val_map"),
        )
        self.rows = [r for r in self.rows if r.epoch < row.epoch] + [row]
        self.run.write_history(self.rows)

    def _fraction(self, trainer: L.Trainer) -> float | None:
        """The share of the epoch's batches trained: below 1 where a stop ended the epoch early."""
        planned = trainer.num_training_batches
        if not planned or planned == float("inf") or self._batches is None:
            return None
        return round(min(1.0, self._batches / planned), 4)
