"""`fit(config)`: data -> model -> Lightning Trainer -> a complete run directory."""

from __future__ import annotations

import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import hardware
from ..config import TrainConfig, make_config
from ..data.dataset import PreparedData, prepare_data
from ..errors import ImgclfError
from ..io import read_yaml, write_json, write_yaml
from ..models import create_model, get_model_info
from ..models.base import set_l2
from .callbacks import AtomicCheckpointIO, BestWeights, HistoryWriter, save_weights
from .loaders import BatchIndexSampler, CachedImages, StreamedImages, make_loader
from .module import ImageClassifierModule, NonFiniteLossError

RUN_FILES = ("config.yaml", "dataset.json", "model.safetensors", "model.json", "history.csv", "predictions.csv",
             "metrics.json", "report.html")


class TrainingInterrupted(ImgclfError):
    pass


@dataclass
class Run:
    path: Path
    config: TrainConfig
    metrics: dict[str, Any]
    best_epoch: int | None
    epochs_run: int
    train_seconds: float
    stopped_reason: str

    def __repr__(self) -> str:
        acc = self.metrics.get("accuracy")
        return f"Run({str(self.path)!r}, accuracy={acc:.4f})" if acc is not None else f"Run({str(self.path)!r})"


def _next_run_dir(model: str) -> Path:
    base = Path("runs")
    n = 1
    while (base / f"{model}-{n}").exists():
        n += 1
    return base / f"{model}-{n}"


def prepare_run_dir(cfg: TrainConfig, overwrite: bool, resume: bool) -> Path:
    run_dir = Path(cfg.out) if cfg.out else _next_run_dir(cfg.model)
    if (run_dir / "config.yaml").exists() and not resume:
        if not overwrite:
            raise ImgclfError(
                f"out must be a new run directory. Received: out={str(run_dir)!r}, which holds another run "
                "(pass --overwrite to replace it, or --resume to continue it)"
            )
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        shutil.rmtree(run_dir / "plots", ignore_errors=True)
    elif run_dir.exists() and any(run_dir.iterdir()) and not resume and not overwrite:
        raise ImgclfError(
            f"out must be an empty or new folder. Received: out={str(run_dir)!r}, which is not empty "
            "(pass --overwrite to use it anyway)"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def channel_stats(data: PreparedData, limit: int = 10_000) -> tuple[list[float], list[float]]:
    """Per-channel mean/std of (a seeded sample of) the training images, in [0, 1] units."""
    rows = data.splits["train"].indices
    if len(rows) > limit:
        rows = np.sort(np.random.default_rng(0).choice(rows, limit, replace=False))
    if data.decoded.pixels is None:
        return [0.5] * data.channels, [0.25] * data.channels
    pixels = np.asarray(data.decoded.pixels[rows], dtype=np.float64) / 255.0
    mean = pixels.mean(axis=(0, 1, 2))
    std = np.maximum(pixels.std(axis=(0, 1, 2)), 1e-3)
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]


def normalisation(cfg: TrainConfig, data: PreparedData, model: torch.nn.Module) -> tuple[list[float], list[float]]:
    pretrained_cfg = getattr(model, "preprocessing", None)
    if cfg.normalize == "backbone" or (cfg.normalize == "auto" and pretrained_cfg):
        if not pretrained_cfg:
            raise ImgclfError(f"normalize=backbone needs a pretrained backbone. Received: model={cfg.model!r}")
        mean, std = pretrained_cfg["mean"], pretrained_cfg["std"]
        if data.channels == 1 and len(mean) == 3:
            mean, std = [float(np.mean(mean))], [float(np.mean(std))]
        return list(mean), list(std)
    method = get_model_info(cfg.model).normalize if cfg.normalize == "auto" else cfg.normalize
    if method == "rescale":
        return [0.0] * data.channels, [1.0] * data.channels
    mean, std = channel_stats(data)
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


def _loaders(cfg: TrainConfig, data: PreparedData, rank: int, world: int, train_weights: np.ndarray | None,
             epoch_items: int | None, root_device: torch.device = torch.device("cpu")):
    def dataset(split: str):
        s = data.splits[split]
        if data.decoded.pixels is not None:
            return CachedImages(data.decoded.pixels, s.indices, s.labels, resident_device)
        return StreamedImages(data.paths(split), s.labels, data.img_size, data.color, data.interpolation)

    resident_device = _resident_device(data, root_device)
    workers = 0 if data.decoded.pixels is not None else cfg.num_workers
    train_sampler = BatchIndexSampler(len(data.splits["train"]), cfg.batch_size, True, cfg.seed, rank, world,
                                      weights=train_weights, epoch_items=epoch_items)
    val_sampler = BatchIndexSampler(len(data.splits["val"]), max(cfg.batch_size, 256), False, cfg.seed, rank, world)
    return make_loader(dataset("train"), train_sampler, workers), make_loader(dataset("val"), val_sampler, workers)


def _devices(cfg: TrainConfig) -> int | str:
    return cfg.devices if cfg.devices == "auto" else int(cfg.devices)


def fit(config: TrainConfig | dict[str, Any] | None = None, *, overwrite: bool = False, resume: str | None = None,
        report: bool = True, **overrides: Any) -> Run:
    """Train a model as described by `config` and write a complete run directory.

    `resume="runs/x"` continues an interrupted run from its last checkpoint with its stored config.
    `report=False` skips report.html (grids of many small runs, e.g. `imgclf study`, summarise them instead).
    """
    import logging

    import lightning as L

    # Lightning's start-up banner (GPU/TPU availability, tips) is noise for our users.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)

    cfg, ckpt_path = _resolve_config(config, resume, overrides)
    info = get_model_info(cfg.model)
    from .finetune import transfer_model_args

    transfer_args = transfer_model_args(cfg, info)  # checks transfer settings early; {} for registered models
    img_size = cfg.img_size or info.default_img_size
    if img_size < info.min_img_size:
        raise ImgclfError(f"img_size must be at least {info.min_img_size} for model {cfg.model}. Received: img_size={img_size}")
    is_launch_zero = hardware.launch_rank() == 0
    # Worker processes of a data-parallel launch re-run this command: only rank 0 checks and writes run files.
    if is_launch_zero:
        run_dir = prepare_run_dir(cfg, overwrite, resume is not None)
        os.environ["IMGCLF_RUN_DIR"] = str(run_dir)  # inherited by the worker processes Lightning launches
    else:
        run_dir = Path(cfg.out or os.environ.get("IMGCLF_RUN_DIR", ""))
    if not cfg.out:
        cfg.out = str(run_dir)

    L.seed_everything(cfg.seed, verbose=False)
    data = prepare_data(cfg.data, img_size, cfg.color, cfg.val_split, cfg.test_split, cfg.seed,
                        info.interpolation,
                        cfg.cache_dir, cfg.cache_budget_bytes, cfg.num_workers)
    resolved = cfg.model_dump()
    resolved.update(img_size=img_size, color=data.color)

    torch.manual_seed(cfg.seed)
    model_args = dict(cfg.model_args)
    model_args.update(transfer_args)
    model = create_model(cfg.model, len(data.classes), data.channels, img_size, **model_args)
    if cfg.l2 is not None:
        set_l2(model, cfg.l2.get("conv"), cfg.l2.get("dense"))
    # Written only once the model is built: a bad model argument must not leave a run behind that refuses the
    # corrected command's --out.
    if is_launch_zero:
        write_yaml(run_dir / "config.yaml", resolved)
        write_json(run_dir / "dataset.json", data.describe())
    mean, std = normalisation(cfg, data, model)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)

    precision = hardware.resolve_precision(cfg.precision, cfg.accelerator)
    world = _devices(cfg) if isinstance(_devices(cfg), int) else 1
    world = int(world) * cfg.num_nodes
    from ..data.imbalance import class_weights as make_class_weights, sampler_weights

    train_labels = data.splits["train"].labels
    weights = make_class_weights(cfg.class_weight, train_labels, data.classes)
    sample_w, epoch_items = sampler_weights(cfg.sampler, train_labels, len(data.classes))
    steps = math.ceil((epoch_items or len(train_labels)) / cfg.batch_size / world)
    hparams = {k: v for k, v in resolved.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
    module = ImageClassifierModule(model, hparams, mean, std, weights, steps)

    callbacks, best, history = _callbacks(cfg, run_dir, model, steps)

    trainer = L.Trainer(
        max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=_devices(cfg), strategy=cfg.strategy,
        num_nodes=cfg.num_nodes, precision=precision, logger=False, callbacks=callbacks,
        enable_progress_bar=cfg.progress, enable_model_summary=False, num_sanity_val_steps=0,
        use_distributed_sampler=False, plugins=[AtomicCheckpointIO()],
        deterministic=False, default_root_dir=str(run_dir),
    )
    train_loader, val_loader = _loaders(cfg, data, trainer.global_rank, trainer.world_size, sample_w, epoch_items,
                                        trainer.strategy.root_device)
    if cfg.features_only:  # backbone features computed once, the head trained on them (train/features.py)
        from .features import use_stored_features

        module, train_loader, val_loader = use_stored_features(cfg, data, module, train_loader, val_loader)

    started = time.perf_counter()
    stopped_reason = _run_trainer(trainer, module, train_loader, val_loader, ckpt_path, run_dir)
    train_seconds = time.perf_counter() - started
    budget = next((c for c in callbacks if type(c).__name__ == "TimeBudget"), None)
    if budget is not None and budget.reached and stopped_reason == "completed":
        stopped_reason = f"time limit ({cfg.time_limit})"
    elif trainer.should_stop and stopped_reason == "completed" and trainer.current_epoch < cfg.epochs:
        stopped_reason = "early stopping"
    if not trainer.is_global_zero:
        return Run(run_dir, cfg, {}, best.best_epoch, trainer.current_epoch, train_seconds, stopped_reason)

    if cfg.restore_best or stopped_reason.startswith("training stopped"):
        best.restore_into(model)
    model = model.to(memory_format=torch.contiguous_format)
    save_weights(model, run_dir / "model.safetensors")
    card = _model_card(cfg, data, model, mean, std, img_size, best.best_epoch, trainer.current_epoch, train_seconds,
                       precision, history.rows, stopped_reason)
    if budget is not None:
        card["training"]["time_budget"] = budget.summary()
    write_json(run_dir / "model.json", card)

    from ..evaluation.run_eval import evaluate_run

    metrics = evaluate_run(run_dir, cache_dir=cfg.cache_dir, workers=cfg.num_workers, tta=True,
                           budget_bytes=cfg.cache_budget_bytes)  # evaluation streams when training did  # report: with + without
    card["metrics"] = _headline(metrics, history.rows, best.best_epoch)
    write_json(run_dir / "model.json", card)
    if report:
        _after_training(run_dir)
    return Run(run_dir, cfg, metrics, best.best_epoch, len(history.rows), train_seconds, stopped_reason)


def _resolve_config(config: TrainConfig | dict[str, Any] | None, resume: str | None,
                    overrides: dict[str, Any]) -> tuple[TrainConfig, str | None]:
    """The validated config and, when resuming, the checkpoint to continue from."""
    if not resume:
        values = config.model_dump() if isinstance(config, TrainConfig) else dict(config or {})
        values.update(overrides)
        return make_config(**values), None
    run_dir = Path(resume)
    if not (run_dir / "config.yaml").exists():
        raise ImgclfError(f"resume must be a run directory with config.yaml. Received: resume={resume!r}")
    stored = read_yaml(run_dir / "config.yaml")
    stored.update(overrides)
    stored["out"] = str(run_dir)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    return make_config(**stored), (str(ckpt) if ckpt.exists() else None)


def _callbacks(cfg: TrainConfig, run_dir: Path, model: torch.nn.Module,
               steps: int) -> tuple[list[Any], BestWeights, HistoryWriter]:
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar

    mode = "min" if cfg.monitor == "val_loss" else "max"
    best = BestWeights(run_dir / "checkpoints" / "best.safetensors", cfg.monitor, mode, cfg.restore_best)
    history = HistoryWriter(run_dir / "history.csv", frozen_until=cfg.epochs if cfg.features_only else cfg.freeze_epochs)
    callbacks: list[Any] = [
        best, history,
        ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0, save_on_train_epoch_end=True,
                        enable_version_counter=False),
    ]
    if cfg.early_stopping is not None:
        callbacks.append(EarlyStopping(monitor=cfg.monitor, mode=mode, patience=cfg.early_stopping,
                                       min_delta=cfg.min_delta, check_finite=True))
    callbacks.extend(_extra_callbacks(cfg, model))
    if cfg.progress:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, steps // 10)))
    return callbacks, best, history


def _run_trainer(trainer: Any, module: Any, train_loader: Any, val_loader: Any, ckpt_path: str | None,
                 run_dir: Path) -> str:
    """trainer.fit with Lightning's irrelevant warnings silenced; returns why training stopped early, if it did."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")
        warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists and is not empty.*")
        try:
            trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path)
        except NonFiniteLossError as exc:
            return str(exc)
        except (KeyboardInterrupt, SystemExit) as exc:
            raise TrainingInterrupted(
                f"training interrupted ({type(exc).__name__}); the last completed epoch is saved. "
                f"Continue with: imgclf train --resume {run_dir}"
            ) from None
    return "completed"


def _extra_callbacks(cfg: TrainConfig, model: torch.nn.Module) -> list[Any]:
    """Hooks for features that live in their own modules (fine-tuning schedules, time budgets)."""
    extra: list[Any] = []
    if cfg.time_limit_seconds:
        from .budget import TimeBudget

        extra.append(TimeBudget(cfg.time_limit_seconds, fit_schedule=cfg.schedule == "budget"))
    make = getattr(model, "make_callbacks", None)
    if callable(make):
        extra.extend(make(cfg))
    return extra


def _after_training(run_dir: Path) -> None:
    """Write the HTML report when the reporting module is available."""
    try:
        from ..evaluation.report import write_report
    except ImportError:
        return
    write_report(run_dir)


def _headline(metrics: dict[str, Any], rows: list[dict[str, Any]], best_epoch: int | None) -> dict[str, Any]:
    val = None
    if best_epoch is not None:
        match = [r for r in rows if int(r["epoch"]) == best_epoch + 1]
        val = float(match[0]["val_acc"]) if match and match[0].get("val_acc") not in ("", None) else None
    return {
        "split": metrics.get("split"),
        "accuracy": metrics.get("accuracy"),
        "loss": metrics.get("loss"),
        "macro_f1": metrics.get("macro", {}).get("f1-score"),
        "macro_recall": metrics.get("macro", {}).get("recall"),
        "worst_class": metrics.get("worst_class"),
        "macro_auc": metrics.get("macro_auc"),
        "val_accuracy": val,
    }


def _model_card(cfg: TrainConfig, data: PreparedData, model: torch.nn.Module, mean: list[float], std: list[float],
                img_size: int, best_epoch: int | None, epochs: int, seconds: float, precision: str,
                rows: list[dict[str, Any]], stopped_reason: str) -> dict[str, Any]:
    speeds = [float(r["images_per_s"]) for r in rows if r.get("images_per_s")]
    model_args = dict(cfg.model_args)
    extra = getattr(model, "card_args", None)
    if callable(extra):
        model_args.update(extra())
    return {
        "format_version": 1,
        "architecture": cfg.model,
        "model_args": model_args,
        "classes": data.classes,
        "img_size": img_size,
        "in_chans": data.channels,
        "color": data.color,
        "mean": mean,
        "std": std,
        "interpolation": data.interpolation,
        "num_params": int(sum(p.numel() for p in model.parameters())),
        "metrics": {},
        "training": {
            "recipe": cfg.recipe, "epochs_run": len(rows), "best_epoch": None if best_epoch is None else best_epoch + 1,
            "stopped": stopped_reason, "train_seconds": round(seconds, 2),
            "images_per_s": round(float(np.median(speeds)), 1) if speeds else None,
            "precision": precision, "optimizer": cfg.optimizer, "lr": cfg.lr, "batch_size": cfg.batch_size,
            "schedule": cfg.schedule, "augment": cfg.augment, "seed": cfg.seed, "loss": cfg.loss,
            "class_weight": cfg.class_weight, "sampler": cfg.sampler, "label_smoothing": cfg.label_smoothing,
            "train_images": len(data.splits["train"]),
        },
        "versions": hardware.versions(),
        "hardware": hardware.describe(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
