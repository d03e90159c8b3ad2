"""Training only: a prepared data set and a built model -> Lightning Trainer -> best weights and history.

The run's sequence (config, run directory, data, model card, evaluation, report) belongs to `imgclf.pipeline`;
this module never reads or writes those files, only the checkpoints and history.csv that training itself keeps.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import hardware
from ..config import TrainConfig
from ..data.prepared import PreparedData
from ..errors import ImgclfError, invalid
from ..models import get_model_info
from ..records import HistoryRow
from .batch_norm_stats import images_for, norm_counts, recompute_batch_norm
from .interrupts import TrainingInterrupted, finishing, interrupt_message, interrupt_state, peer_gone, remembered_ctrl_c
from .callbacks import (AtomicCheckpointIO, BestWeights, HistoryWriter, LastCheckpoint, RememberedCtrlC,
                        WithinEpochCheckpoint)
from .loaders import BatchIndexSampler, CachedImages, StreamedImages, make_loader
from .module import ImageClassifierModule, NonFiniteLossError
from .run_folder_guard import RunFolderKept
from .unread_images import EpochOfNoImage, TrainingImagesGone, images_gone_message


class TrainingDiverged(ImgclfError):
    """The loss became non-finite before the first epoch completed, or the weights kept hold non-finite values:
    there are no weights worth keeping."""


def non_finite_tensors(model: torch.nn.Module) -> list[str]:
    """Names of the parameters and buffers holding NaN or infinity. A loss that grows to 1e17 stays finite, while
    the BatchNorm running variances it feeds overflow: such weights answered every image alike, and fitting the
    unknown detector on their features failed as an internal error."""
    with torch.no_grad():
        return [name for name, t in (*model.named_parameters(), *model.named_buffers())
                if t.is_floating_point() and not bool(torch.isfinite(t).all())]


@dataclass
class TrainResult:
    """What training hands back to the pipeline: the model holding the weights to keep, and how it got there."""

    model: torch.nn.Module
    mean: list[float]
    std: list[float]
    best_epoch: int | None  # 1-based: the epoch whose weights `model` holds (restored best, else the last)
    history: list[HistoryRow]
    seconds: float
    stopped_reason: str
    precision: str
    time_budget: dict[str, float | None] | None
    is_global_zero: bool
    global_step: int = 0  # optimiser steps taken: where the trackers put the final test scores
    batch_norm_images: int = 0  # training images the BatchNorm statistics were recomputed on (batch_norm_stats)
    val_accuracy_after_batch_norm: float | None = None  # the returned model's, where those statistics changed
    val_map_after_batch_norm: float | None = None  # the same model's validation mAP (multi-label runs)
    processes: int = 1  # data-parallel processes: each trained batch_size images a step


def normalisation(cfg: TrainConfig, data: PreparedData, model: torch.nn.Module) -> tuple[list[float], list[float]]:
    pretrained_cfg = getattr(model, "preprocessing", None)
    if cfg.normalize == "backbone" or (cfg.normalize == "auto" and pretrained_cfg):
        if not pretrained_cfg:
            raise invalid("model", cfg.model, "a pretrained backbone with normalize=backbone",
                          also={"normalize": cfg.normalize})
        mean, std = pretrained_cfg["mean"], pretrained_cfg["std"]
        if data.channels == 1 and len(mean) == 3:
            mean, std = [float(np.mean(mean))], [float(np.mean(std))]
        return list(mean), list(std)
    method = get_model_info(cfg.model).normalize if cfg.normalize == "auto" else cfg.normalize
    if pretrained_cfg and getattr(model, "info", {}).get("pretrained"):
        # a custom CNN's recipe (s5-model-s: normalize rescale) with --model swapped to a pretrained backbone: the
        # recipe's normalisation won, and ImageNet weights read [0, 1] pixels (their confidence fell 0.90 -> 0.69)
        from ..notices import warn

        warn(f"normalize={cfg.normalize} for the pretrained backbone {cfg.model}, which was trained on inputs "
             f"normalised by mean {list(pretrained_cfg['mean'])} and std {list(pretrained_cfg['std'])}: its features "
             "read other inputs than they learnt from; normalize=backbone (or auto) uses them")
    if method == "rescale":
        return [0.0] * data.channels, [1.0] * data.channels
    mean, std = data.pixel_mean_std()
    if method == "zerocenter":
        # inputs keep the 0-255 pixel scale, which weights drawn from N(0, 0.01) without normalisation layers need
        # to get a signal through (S4's network at 1/std scale stays at chance: loss ln 10 for 16 epochs)
        return mean, [1 / 255] * data.channels
    return mean, std


def _resident_device(data: PreparedData, device: torch.device) -> torch.device | None:
    """The GPU, when the whole uint8 cache fits in a quarter of its free memory; else None (stream from host)."""
    if device.type != "cuda" or data.decoded.pixels is None:
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return device if data.decoded.pixels.nbytes < 0.25 * free else None


def training_loaders(cfg: TrainConfig, data: PreparedData, rank: int, world: int, train_weights: np.ndarray | None,
                     epoch_items: int | None, root_device: torch.device = torch.device("cpu")):
    def dataset(split: str):
        s = data.splits[split]
        labels = s.labels if s.targets is None else s.targets
        if data.decoded.pixels is not None:
            return CachedImages(data.decoded.pixels, s.indices, labels, resident_device)
        return StreamedImages(data.paths(split), labels, data.img_size, data.color, data.interpolation)

    resident_device = _resident_device(data, root_device)
    workers = 0 if data.decoded.pixels is not None else cfg.num_workers
    train_sampler = BatchIndexSampler(len(data.splits["train"]), cfg.batch_size, True, cfg.seed, rank, world,
                                      weights=train_weights, epoch_items=epoch_items, steps=cfg.steps_per_epoch)
    num_val = len(data.splits["val"])
    if cfg.val_steps:
        # Keras' validation_steps: val_steps batches of batch_size, the same seeded sample of the split every
        # epoch, so that the epochs' val_loss compare (and never an image twice when the split is smaller)
        rng = np.random.default_rng([cfg.seed, num_val])
        subset = np.sort(rng.permutation(num_val)[: cfg.val_steps * cfg.batch_size])
        # batched as the whole split is: with the wrap training's sampler does, 3 batches on 2 ranks sent rank 1
        # back to batch 0, scored twice
        batch, wrap = validation_batches(len(subset), cfg.batch_size, world)
        val_sampler = BatchIndexSampler(num_val, batch, False, cfg.seed, rank, world, subset=subset, wrap=wrap)
    else:
        batch, wrap = validation_batches(num_val, cfg.batch_size, world)
        val_sampler = BatchIndexSampler(num_val, batch, False, cfg.seed, rank, world, wrap=wrap)
    return make_loader(dataset("train"), train_sampler, workers), make_loader(dataset("val"), val_sampler, workers)


def validation_batches(images: int, batch_size: int, world: int) -> tuple[int, bool]:
    """(batch size, wrap) of the validation sampler: each rank at least one batch (a rank without any stops, and
    the others wait for it), so as many batches as ranks at least, each image scored once; with fewer images than
    ranks, the wrap that scores some of them twice."""
    return max(1, min(max(batch_size, 256), images // world)), images < world


def _devices(cfg: TrainConfig) -> int | str:
    return cfg.devices if cfg.devices == "auto" else int(cfg.devices)


def train_model(cfg: TrainConfig, data: PreparedData, model: torch.nn.Module, run_dir: Path,
                ckpt_path: str | None = None, loggers: list[Any] | None = None,
                extra_callbacks: list[Any] | None = None,
                budget_spent: float = 0.0, trained_before: float = 0.0) -> TrainResult:
    """Fit `model` on `data` as `cfg` says; checkpoints and history.csv go to `run_dir`. With `restore_best` the
    returned model holds the best epoch's weights (by `cfg.monitor`). `loggers`: Lightning loggers (trackers) that
    receive per-step loss and learning rate and per-epoch metrics. `extra_callbacks`: Lightning callbacks of the
    caller's own (a search's pruning callback), after imgclf's, so they see each epoch's metrics as logged.
    budget_spent: seconds the run spent before training (the sizing probe); trained_before: seconds a resumed run
    trained before this process. A time limit counts both; a checkpoint that holds its budget's own count (the run
    had a limit before) replaces them."""
    import logging

    import lightning as L
    from lightning.pytorch.callbacks import ProgressBar

    # Lightning's start-up banner (GPU/TPU availability, tips) is noise for our users.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    # and its "Initializing distributed: GLOBAL_RANK: n" line, one per process, in any order among ours
    logging.getLogger("lightning.fabric.utilities.distributed").setLevel(logging.WARNING)
    precision = hardware.resolve_precision(cfg.precision, cfg.accelerator)
    world = (_devices(cfg) if isinstance(_devices(cfg), int) else 1) * cfg.num_nodes
    module, model, mean, std, sample_w, epoch_items, steps = training_module(cfg, data, model, world)
    callbacks, best, history = _callbacks(cfg, run_dir, model, steps)
    for callback in callbacks:
        if type(callback).__name__ == "TimeBudget":  # time spent before training (the sizing probe) counts too
            callback.before_training = budget_spent
            # a limit first given on --resume counts the epochs trained before it, as a limit kept across resumes
            # does (it had trained a whole new epoch on one run and nothing on another, for the same flag)
            callback.spent = budget_spent + trained_before
    callbacks.extend(extra_callbacks or [])
    if loggers:
        from lightning.pytorch.callbacks import LearningRateMonitor

        callbacks.append(LearningRateMonitor(logging_interval="step"))
    # last of all: after every hook that moves state at a batch's end (an EMA's average, a pruner's count)
    callbacks.sort(key=lambda c: isinstance(c, WithinEpochCheckpoint))

    trainer = L.Trainer(
        max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=_devices(cfg), strategy=cfg.strategy,
        num_nodes=cfg.num_nodes, precision=precision, logger=loggers or False,
        callbacks=[RunFolderKept(run_dir), *callbacks],  # first: before any hook of a step or an epoch that writes
        enable_checkpointing=False, log_every_n_steps=max(1, min(50, steps // 10)),
        enable_progress_bar=any(isinstance(c, ProgressBar) for c in callbacks),
        enable_model_summary=False, num_sanity_val_steps=0,
        use_distributed_sampler=False, plugins=[AtomicCheckpointIO()],
        deterministic=False, default_root_dir=str(run_dir),
    )
    train_loader, val_loader = training_loaders(cfg, data, trainer.global_rank, trainer.world_size, sample_w,
                                                epoch_items, trainer.strategy.root_device)
    if cfg.features_only:  # backbone features computed once, the head trained on them (train/features.py)
        from .features import use_stored_features

        module, train_loader, val_loader = use_stored_features(cfg, data, module, train_loader, val_loader)

    counts = norm_counts(model)  # before training: which BatchNorm layers then train (not the frozen ones)
    if cfg.batch_size < 2 and counts and not cfg.features_only and trainer.is_global_zero:
        from ..notices import warn

        # each image was normalised by its own statistics, which no evaluation can reproduce: simple_cnn on the
        # digits trained to 33 % on its batches and scored 10 % (chance) on validation, before and after the
        # statistics were recomputed over 1,024 images
        warn(f"batch_size {cfg.batch_size} with a network that has BatchNorm layers: in training each image is "
             "normalised by its own statistics, which evaluation cannot reproduce, and such runs score near chance; "
             "train at --batch-size 16 or more")
    epochs_before = _epochs_on_disk(run_dir) if ckpt_path else None  # (history reads them when training starts)
    stopped_reason = _run_trainer(trainer, module, train_loader, val_loader, ckpt_path, run_dir, callbacks[0])
    seconds = callbacks[0].train_seconds()  # includes the processes before a resume
    if stopped_reason == "completed" and epochs_before is not None and len(history.rows) == epochs_before:
        # a resume that trained no epoch (--epochs at those trained) rewrote an early-stopped run's card as completed
        stopped_reason = _stopped_before(run_dir) or stopped_reason
    budget = next((c for c in callbacks if type(c).__name__ == "TimeBudget"), None)
    if budget is not None and budget.reached and stopped_reason == "completed":
        stopped_reason = f"time limit ({cfg.time_limit})"
    elif trainer.should_stop and stopped_reason == "completed" and trainer.current_epoch < cfg.epochs:
        stopped_reason = "early stopping"
    # Lightning's signal handling ended with trainer.fit: from here a signal says how to finish the run
    with finishing(run_dir, len(history.rows), stopped_reason):
        # the kept weights, their BatchNorm statistics recomputed and their validation accuracy measured
        restored = (trainer.is_global_zero and (cfg.restore_best or stopped_reason.startswith("training stopped"))
                    and best.best_epoch is not None and best.restore_into(model))
        # the epoch whose weights the model holds, which the card and report call the kept epoch: without
        # restore_best, the last one (a time-limited run's cut epoch included), not the best by the monitor
        kept_epoch = best.best_epoch + 1 if restored else (history.rows[-1].epoch if history.rows else None)
        norm_images, val_after, val_map_after = 0, None, None
        if trainer.is_global_zero and not (cfg.features_only and trainer.world_size > 1):
            # features_only: its loaders hold the stored features, which the head reads as in training (skipped, a
            # head's BatchNorm kept the statistics of its first steps: test 0.33 where the same run on images read 1.0)
            model.takes_embeddings = cfg.features_only
            if trainer.world_size > 1:
                # rank 0 alone, over every image as one process reads them (after data-parallel training the model
                # had kept rank 0's running statistics: tested 0.67 where the same command on one process read 1.0)
                train_loader, val_loader = training_loaders(cfg, data, 0, 1, sample_w, epoch_items,
                                                            trainer.strategy.root_device)
            # on the training device: Lightning's teardown has moved the module back to the CPU
            held_on = next(model.parameters()).device
            module.to(trainer.strategy.root_device)
            limit = images_for(len(data.splits["train"]),
                               trainer.global_step * cfg.batch_size * trainer.world_size)
            if hasattr(train_loader.sampler, "start_epoch"):
                # the same batches whatever this process did before: a resume that trained no epoch then writes
                # the statistics the run ended with (it read a resumed loader's other epoch)
                train_loader.sampler.start_epoch(len(history.rows))
            inputs = (module.prepare(x.to(module.device), train=False) for x, _ in train_loader)
            norm_images = recompute_batch_norm(model, counts, inputs, limit)
            # history.csv's val_acc was measured with training's running statistics: the kept weights' own, after them
            if norm_images and len(data.splits["val"]):
                val_after, val_map_after = module.scores_on(val_loader)
            module.to(held_on)
            model.takes_embeddings = False
    model = model.to(memory_format=torch.contiguous_format)
    return TrainResult(model, mean, std, kept_epoch, history.rows,
                       seconds, stopped_reason, precision, None if budget is None else budget.summary(),
                       trainer.is_global_zero, trainer.global_step, norm_images, val_after, val_map_after,
                       trainer.world_size)


def training_module(cfg: TrainConfig, data: PreparedData, model: torch.nn.Module, world: int):
    """The LightningModule around `model`, and what the samplers need: (module, model, mean, std, sampler
    weights, items per epoch, steps per epoch)."""
    from ..data.imbalance import class_weights as make_class_weights, sampler_weights

    mean, std = normalisation(cfg, data, model)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_labels = data.splits["train"].labels
    if data.splits["train"].targets is not None:  # multi-label: per-label pos_weight of the binary losses
        from ..data.multilabel import positive_weights

        weights = positive_weights(cfg.class_weight, data.splits["train"].targets, data.classes)
    else:
        weights = make_class_weights(cfg.class_weight, train_labels, data.classes)
    sample_w, epoch_items = sampler_weights(cfg.sampler, train_labels, len(data.classes))
    steps = cfg.steps_per_epoch or math.ceil((epoch_items or len(train_labels)) / cfg.batch_size / world)
    module = ImageClassifierModule(model, cfg.model_dump(mode="json"), mean, std, weights, steps)
    return module, model, mean, std, sample_w, epoch_items, steps


def _callbacks(cfg: TrainConfig, run_dir: Path, model: torch.nn.Module,
               steps: int) -> tuple[list[Any], BestWeights, HistoryWriter]:
    from .early_stopping import PatienceAsConfigured, first_unfrozen_epoch

    mode = "min" if cfg.monitor == "val_loss" else "max"
    best = BestWeights(run_dir / "checkpoints" / "best.safetensors", cfg.monitor, mode, cfg.restore_best)
    history = HistoryWriter(run_dir, frozen_until=cfg.epochs if cfg.features_only else cfg.freeze_epochs)
    # LastCheckpoint first: its epoch-start save must see the state before any other epoch-start hook moves it
    callbacks: list[Any] = [LastCheckpoint(run_dir / "checkpoints" / "last.ckpt", cfg.checkpoint_every), best, history]
    if cfg.early_stopping is not None:
        callbacks.append(PatienceAsConfigured(monitor=cfg.monitor, mode=mode, patience=cfg.early_stopping,
                                              min_delta=cfg.min_delta, check_finite=True,
                                              waits_from_epoch=first_unfrozen_epoch(cfg)))
    callbacks.extend(_extra_callbacks(cfg, model))
    if cfg.schedule == "plateau":
        from .resumed_epoch import StepPlateauAfterRestoredEpoch

        callbacks.append(StepPlateauAfterRestoredEpoch())
    from .stop_together import StopTogether
    from .unread_images import UnreadBatches

    callbacks.insert(1, UnreadBatches())  # before the history row and the checkpoints of an epoch it stops

    callbacks.append(StopTogether())  # does nothing in one process
    callbacks.append(RememberedCtrlC())
    if cfg.progress:
        from .progress import EpochBar, EpochLines, stderr_is_terminal

        callbacks.append(EpochLines(cfg.epochs))
        if stderr_is_terminal():  # a bar within the epoch; a redirected log gets the epoch lines only
            callbacks.append(EpochBar(refresh_rate=max(1, steps // 10), leave=False))
    if cfg.checkpoint_every:  # put last of all by `train_model`
        callbacks.append(WithinEpochCheckpoint(callbacks[0]))
    return callbacks, best, history


def _epochs_on_disk(run_dir: Path) -> int:
    from ..records import RunDir

    return len(RunDir(run_dir).read_history())


def _stopped_before(run_dir: Path) -> str | None:
    """Why the run's earlier process stopped, as its card says (None: no card yet)."""
    from ..records import RunDir

    run = RunDir(run_dir)
    return run.read_card().training.stopped if run.has("model.json") else None


def _run_trainer(trainer: Any, module: Any, train_loader: Any, val_loader: Any, ckpt_path: str | None,
                 run_dir: Path, last: LastCheckpoint) -> str:
    """trainer.fit with Lightning's irrelevant warnings silenced; returns why training stopped early, if it did."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")
        warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists and is not empty.*")
        warnings.filterwarnings("ignore", ".*Experiment logs directory.*exists and is not empty.*")  # resume appends
        warnings.filterwarnings("ignore", ".*`training_step` returned `None`.*")  # an unread batch: UnreadBatches
        warnings.filterwarnings("ignore", ".*callbacks used to create the checkpoint need.*")  # a limit dropped on resume
        try:
            with remembered_ctrl_c() as came:
                for callback in trainer.callbacks:
                    if isinstance(callback, RememberedCtrlC):
                        callback.came = came
                # weights_only=True: a checkpoint is read without running code, whoever wrote it
                trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path, weights_only=True)
        except EpochOfNoImage as exc:
            raise TrainingImagesGone(images_gone_message(exc, run_dir, last.saved_epochs)) from None
        except NonFiniteLossError as exc:
            if exc.epoch == 0 and last.saved_epochs == 0:  # a fresh run's first epoch: nothing learnt to keep
                raise TrainingDiverged(exc.nothing_learnt()) from None
            return str(exc)
        except (KeyboardInterrupt, SystemExit, RuntimeError) as exc:
            if isinstance(exc, RuntimeError) and not (trainer.world_size > 1 and peer_gone(exc)):
                raise
            words, code = ("another process of the run stopped", 1) if isinstance(exc, RuntimeError) \
                else stop_signal(exc)
            kept = interrupt_state(words, trainer.current_epoch, last.saved_epochs, last.saved_steps)
            raise TrainingInterrupted(interrupt_message(kept, last.saved_epochs, run_dir, last.saved_steps),
                                      state=kept, exit_code=code) from None
    return "completed"


def stop_signal(exc: BaseException) -> tuple[str, int]:
    """What stopped the run, in words, and the shell's exit status for it. Lightning answers Ctrl-C by exiting
    (a SystemExit raised while handling the KeyboardInterrupt) and SIGTERM with its own SIGTERMException."""
    from .interrupts import Terminated

    if type(exc).__name__ == "SIGTERMException" or isinstance(exc, Terminated) \
            or isinstance(exc.__context__, Terminated):
        return "SIGTERM", 143
    if isinstance(exc, KeyboardInterrupt) or isinstance(exc.__context__, KeyboardInterrupt):
        return "Ctrl-C", 130
    code = getattr(exc, "code", None)  # another exit (a callback's sys.exit): its own status
    return type(exc).__name__, code if isinstance(code, int) and code else 1


def _extra_callbacks(cfg: TrainConfig, model: torch.nn.Module) -> list[Any]:
    """Hooks for features that live in their own modules (fine-tuning schedules, time budgets)."""
    extra: list[Any] = []
    if cfg.time_limit_seconds:
        from .budget import TimeBudget

        extra.append(TimeBudget(cfg.time_limit_seconds, fit_schedule=cfg.schedule == "budget"))
    if cfg.ema is not None:
        from .ema import WarmedEMA

        extra.append(WarmedEMA(cfg.ema))
    if not cfg.features_only and (cfg.freeze_epochs or cfg.unfreeze != "all" or cfg.freeze_bn):
        from .finetune import FreezeSchedule

        backbone = getattr(model, "backbone", None)
        if backbone is None:
            raise invalid("model", cfg.model, "a timm backbone when freeze_epochs, unfreeze or freeze_bn is set")
        extra.append(FreezeSchedule(backbone, cfg.freeze_epochs, cfg.unfreeze, cfg.strategy, cfg.freeze_bn))
    return extra
