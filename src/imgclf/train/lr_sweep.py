"""The learning-rate range test: Lightning's `Tuner.lr_find` runs the sweep (exponentially growing rate, weights
restored afterwards); the curve and the suggestion are read here, from the sweep's per-step losses.

The curve is a centred mean of 9 steps (WINDOW). Lightning's (and fastai's) curve is a running mean with beta 0.98,
whose 50-step memory on a 100-step sweep of seven decades lags the steps by one to two decades of rate: the
fall it shows happens where the steps had already stopped falling (lr_find.png draws both). Lightning's running
mean is also debiased by one step too many (Lightning-AI/pytorch-lightning#14167: its first point reads half
the first loss).

The suggestion is where the fall ends: the smallest rate whose loss has come within 5 % of the sweep's whole
fall of its lowest point. Lightning's suggestion, the steepest fall, sits in the middle of the fall, where a
rate still learns slower than the rates after it; the lowest point itself sits at the edge of divergence.
On Fashion-MNIST subsets (docs/results.md, LR finder) the rate that trained best over 10 epochs was 1e-3 for
both model_s and fast_resnet; the steepest fall of the running mean was up to 3 times below it for model_s and
3 to 11 times below it for fast_resnet, the lowest point from 0.8 to 13 times it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import statistics
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import hardware
from ..config import TrainConfig
from ..data.prepared import PreparedData
from .callbacks import AtomicCheckpointIO

HALF_WINDOW = 4  # the curve at a step is the mean of the finite losses from 4 steps before to 4 after
SKIP_BEGIN = 10  # the lowest loss and the suggestion are read after these first points (the untrained model's)
FALL_LEFT = 0.05  # the suggestion: the first rate within this share of the whole fall of the lowest loss
MIN_FALL = 3.0  # a fall smaller than this many times the first steps' step-to-step noise is no fall
RULE = "end_of_fall"  # recorded in lr_find.json; runs from before 2026-12-02 were suggested the steepest fall
WINDOW = 2 * HALF_WINDOW + 1  # steps in the curve's mean; recorded with FALL_LEFT beside RULE


@dataclass
class LRCurve:
    """The range test: the smoothed training loss at each learning rate tried, and the raw losses under it."""

    lrs: list[float]
    losses: list[float]  # centred mean of `raw` (HALF_WINDOW); NaN where the window held no finite loss
    raw: list[float]  # each step's training loss as the optimiser saw it
    suggestion: float | None  # where the loss's fall ends (`end_of_fall`); None: too few points, or no fall
    lowest: float | None  # the learning rate at the lowest loss after the first 10 points; None: none finite
    min_lr: float
    max_lr: float
    steps: int  # steps asked for; len(lrs) is fewer when the loss diverged first


def record_step_losses(module: Any) -> list[float]:
    """The list that each of `module`'s training steps will append its loss to (NaN where a step returns none:
    a non-finite loss is skipped by the module during a sweep). Read at the step itself, because the finder
    replaces the trainer's callbacks with its own for the sweep."""
    losses: list[float] = []
    step = module.training_step

    def recorded(*args: Any, **kwargs: Any) -> Any:
        loss = step(*args, **kwargs)
        value = loss if isinstance(loss, torch.Tensor) or loss is None else loss.get("loss")
        losses.append(float("nan") if value is None else float(value.detach()))
        return loss

    module.training_step = recorded
    return losses


def hold_first_epoch_phase(module: Any, model: torch.nn.Module, cfg: TrainConfig) -> None:
    """Each of `module`'s training steps runs a transfer model as training's first epoch does: the backbone
    frozen for `freeze_epochs`, else what `unfreeze` trains, BatchNorm modes as `freeze_bn` says, and the
    backbone's rate `backbone_lr_mult` times the swept rate. Lightning's finder sets every parameter group to
    the same rate and runs no callbacks of ours (the phase is a callback in training), so the sweep measured a
    network that training never runs: the whole backbone training, at the head's rate. Set at every step,
    because Lightning puts the model back in train mode at each epoch start and its scheduler sets every group's
    rate after each step."""
    from .finetune import apply_phase

    backbone = getattr(model, "backbone", None)
    if backbone is None or cfg.features_only:
        return
    phased = bool(cfg.freeze_epochs) or cfg.unfreeze != "all" or cfg.freeze_bn
    step = module.training_step

    def first_epoch_step(*args: Any, **kwargs: Any) -> Any:
        if phased:
            apply_phase(backbone, cfg.freeze_epochs > 0, cfg.unfreeze, cfg.freeze_bn)
        groups = module.trainer.optimizers[0].param_groups
        swept = groups[-1]["lr"]  # the head's group, last (`TransferModel.param_groups`)
        for group in groups:
            if group.get("name") == "backbone":
                group["lr"] = swept * cfg.backbone_lr_mult
        return step(*args, **kwargs)

    module.training_step = first_epoch_step


def smoothed(raw: list[float], half: int = HALF_WINDOW) -> list[float]:
    """Mean of the finite losses within `half` steps either side (fewer at the ends); NaN where fewer than
    half + 1 are finite, so that one step among skipped ones (a non-finite loss leaves the weights as they
    were) is not read as a mean. Centred, so a feature of the curve sits at the rate where the steps show it."""
    out = []
    for i in range(len(raw)):
        window = [x for x in raw[max(0, i - half): i + half + 1] if math.isfinite(x)]
        out.append(sum(window) / len(window) if len(window) > half else float("nan"))
    return out


def find_lr(cfg: TrainConfig, data: PreparedData, model: torch.nn.Module, work_dir: Path,
            min_lr: float = 1e-7, max_lr: float = 1.0, steps: int = 100) -> LRCurve:
    """Lightning's `Tuner.lr_find` on `cfg`'s optimiser, loss and data: `steps` training steps with the learning
    rate growing exponentially from min_lr to max_lr. The model's weights are restored afterwards (Lightning
    reloads the checkpoint it saved in `work_dir` before the sweep)."""
    import lightning as L
    from lightning.pytorch.tuner import Tuner

    from .fit import training_loaders, training_module
    from .progress import stderr_is_terminal

    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    # its restore notice is noise; a sweep without a suggestion is ours to report (pipeline/lr_find.py)
    logging.getLogger("lightning.pytorch.tuner.lr_finder").setLevel(logging.CRITICAL)
    logging.getLogger("lightning.pytorch.trainer.connectors.checkpoint_connector").setLevel(logging.WARNING)
    # no schedule: Lightning's finder replaces the scheduler, but OneCycleLR's constructor has already set the
    # optimiser's momentum (Adam's beta1) to 0.95, which moved the suggestion 25x (digits, simple_cnn)
    module, model, _, _, sample_w, epoch_items, _ = training_module(
        cfg.model_copy(update={"lr": max(min_lr, 1e-12), "schedule": "none"}), data, model, 1)
    module.stop_on_nonfinite = False  # a diverging loss is what the sweep looks for, not an error
    raw = record_step_losses(module)
    hold_first_epoch_phase(module, model, cfg)
    trainer = L.Trainer(
        max_epochs=-1, accelerator=cfg.accelerator, devices=1, precision=hardware.resolve_precision(
            cfg.precision, cfg.accelerator), logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, use_distributed_sampler=False,
        plugins=[AtomicCheckpointIO()], default_root_dir=str(work_dir),
    )
    train_loader, _ = training_loaders(cfg, data, 0, 1, sample_w, epoch_items, trainer.strategy.root_device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")
        warnings.filterwarnings("ignore", ".*max_epochs.*")
        warnings.filterwarnings("ignore", ".*no `val_dataloader`.*")  # the sweep trains only
        warnings.filterwarnings("ignore", ".*weights_only.*")  # reloads the checkpoint it has just written
        # Lightning's finder draws its own tqdm bar on stderr whatever the trainer's progress setting says
        quiet = not (cfg.progress and stderr_is_terminal())
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull if quiet else sys.stderr), \
                _interrupted_sweep():
            finder = Tuner(trainer).lr_find(module, train_dataloaders=train_loader, min_lr=min_lr, max_lr=max_lr,
                                            num_training=steps, update_attr=False)
    model.to(memory_format=torch.contiguous_format)
    lrs = [float(x) for x in finder.results["lr"]]
    raw = raw[:len(lrs)]
    losses = smoothed(raw)
    lowest = _lowest_index(losses)
    fall_end = end_of_fall(raw, losses)
    return LRCurve(lrs, losses, raw, None if fall_end is None else lrs[fall_end],
                   None if lowest is None else lrs[lowest], min_lr, max_lr, steps)


@contextlib.contextmanager
def _interrupted_sweep() -> Iterator[None]:
    """Ctrl-C (or a signal Lightning turns into an exit) during the sweep as an `Interrupted` that says so, with
    the caller's Ctrl-C handler back: Lightning answered it with a bare SystemExit(1), no word, and Ctrl-C left
    ignored for the rest of the process (a notebook's next Ctrl-C did nothing)."""
    import signal
    import threading

    from ..errors import Interrupted
    from .fit import stop_signal
    from .interrupts import sigterm_interrupts

    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    try:
        with sigterm_interrupts():  # SIGTERM ended the process with no word, its restore checkpoint left behind
            yield
    except (KeyboardInterrupt, SystemExit) as exc:
        if isinstance(exc, Interrupted):
            raise
        words, code = stop_signal(exc)
        raise Interrupted(f"the learning-rate sweep was interrupted ({words}); nothing was written",
                          state="interrupted during the learning-rate sweep", exit_code=code) from None
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGINT, previous)


def _lowest_index(losses: list[float]) -> int | None:
    """Where the smoothed loss is lowest, after the first SKIP_BEGIN points (the untrained model's, and means of
    fewer steps)."""
    finite = [i for i, x in enumerate(losses) if math.isfinite(x) and i >= SKIP_BEGIN]
    return min(finite, key=lambda i: losses[i]) if finite else None


def end_of_fall(raw: list[float], losses: list[float]) -> int | None:
    """The index of the first point, after the first SKIP_BEGIN, where the curve `losses` has come within
    FALL_LEFT of the whole fall from the start (the median of the first SKIP_BEGIN steps' own losses) to its
    lowest point. None when there is no lowest point after them, or the loss did not fall: by less than
    MIN_FALL times the first steps' noise (the median change from one step to the next), where the lowest
    point of a flat or rising loss is a dip of its noise."""
    lowest = _lowest_index(losses)
    start = [x for x in raw[:SKIP_BEGIN] if math.isfinite(x)]
    if lowest is None or len(start) < 3:
        return None
    start_level, low = statistics.median(start), losses[lowest]
    noise = statistics.median(abs(b - a) for a, b in zip(start, start[1:]))
    if not start_level - low > MIN_FALL * noise:
        return None
    level = low + FALL_LEFT * (start_level - low)
    return next(i for i in range(SKIP_BEGIN, lowest + 1) if losses[i] <= level)
