"""The learning-rate range test: Lightning's `Tuner.lr_find` runs the sweep (exponentially growing rate, weights
restored afterwards); the curve and the suggestion are read here.

The curve is our own smoothing of the sweep's per-step losses, with Lightning's beta. Lightning's recorded
curve debiases its running mean by one step too many (`1 - beta ** (global_step + 1)`, taken after the
optimiser step has already counted the batch), so its first point reads half the first loss, and the curve
climbs over the first tens of steps at rates too small to change anything (Lightning-AI/pytorch-lightning
#14167 shows the climb). Debiased by the number of losses seen, the first point is the first loss.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import hardware
from ..config import TrainConfig
from ..data.prepared import PreparedData
from .callbacks import AtomicCheckpointIO

SMOOTHING = 0.98  # Lightning's beta: the weight of the running mean
SKIP_BEGIN = 10  # Lightning's suggestion skips these first points; the lowest loss is read after them too


@dataclass
class LRCurve:
    """The range test: the smoothed training loss at each learning rate tried, and the raw losses under it."""

    lrs: list[float]
    losses: list[float]  # debiased running mean of `raw` (beta SMOOTHING); NaN where a step had no finite loss
    raw: list[float]  # each step's training loss as the optimiser saw it
    suggestion: float | None  # the steepest descent of the loss (Lightning's suggestion); None: too few points
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


def smoothed(raw: list[float], beta: float = SMOOTHING) -> list[float]:
    """Exponential running mean of the finite losses, debiased by how many it holds (Adam's correction), so
    that a constant loss reads constant from the first step; NaN where the step's own loss was not finite."""
    out, mean, seen = [], 0.0, 0
    for x in raw:
        if not math.isfinite(x):
            out.append(float("nan"))
            continue
        seen += 1
        mean = beta * mean + (1 - beta) * x
        out.append(mean / (1 - beta ** seen))
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
    # its "not enough points" error is ours to report (pipeline/lr_find.py), its restore notice is noise
    logging.getLogger("lightning.pytorch.tuner.lr_finder").setLevel(logging.CRITICAL)
    logging.getLogger("lightning.pytorch.trainer.connectors.checkpoint_connector").setLevel(logging.WARNING)
    module, model, _, _, sample_w, epoch_items, _ = training_module(
        cfg.model_copy(update={"lr": max(min_lr, 1e-12)}), data, model, 1)
    module.stop_on_nonfinite = False  # a diverging loss is what the sweep looks for, not an error
    raw = record_step_losses(module)
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
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull if quiet else sys.stderr):
            finder = Tuner(trainer).lr_find(module, train_dataloaders=train_loader, min_lr=min_lr, max_lr=max_lr,
                                            num_training=steps, update_attr=False)
    model.to(memory_format=torch.contiguous_format)
    lrs = [float(x) for x in finder.results["lr"]]
    raw = raw[:len(lrs)]
    losses = smoothed(raw)
    finder.results["loss"] = losses  # the suggestion reads this curve
    suggestion = _steepest(finder) if len(lrs) > SKIP_BEGIN + 2 else None  # it skips the first 10 and the last
    lowest = _lowest_index(losses)
    return LRCurve(lrs, losses, raw, suggestion, None if lowest is None else lrs[lowest], min_lr, max_lr, steps)


def _lowest_index(losses: list[float]) -> int | None:
    """Where the smoothed loss is lowest, after the first 10 points, which Lightning's suggestion also skips:
    a mean of a handful of noisy steps."""
    finite = [i for i, x in enumerate(losses) if math.isfinite(x) and i >= SKIP_BEGIN]
    return min(finite, key=lambda i: losses[i]) if finite else None


def _steepest(finder: Any) -> float | None:
    """Lightning's suggestion (steepest descent of the loss, its skips and finite-loss filter), taken over log10(lr)
    rather than lr, and before the lowest loss only.

    Over lr itself the exponentially spaced points make any wiggle at the smallest rates the steepest (on a
    100-step sweep of 1e-7..1 it chose 4.8e-6 where the loss fell fastest near 1e-2): the gradient is divided by
    the spacing, a million times smaller there; fastai's `steep` suggestion is per log step too. Past the lowest
    loss the sweep is diverging, and a noisy drop there (0.85 on the same sweep) is no learning rate to train at."""
    lrs, losses = list(finder.results["lr"]), list(finder.results["loss"])
    lowest = _lowest_index(losses)
    if lowest is None:
        return None
    skip_end = len(lrs) - 1 - lowest if lowest >= SKIP_BEGIN + 2 else 1  # a loss that never fell: the whole sweep
    finder.results["lr"] = [math.log10(x) for x in lrs]
    try:
        log_lr = finder.suggestion(skip_begin=SKIP_BEGIN, skip_end=max(1, skip_end))
    finally:
        finder.results["lr"] = lrs
    return None if log_lr is None else float(10 ** log_lr)
