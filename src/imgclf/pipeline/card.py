"""The model card of a finished training: built from the config, the data set and what training reported."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import torch

from .. import hardware
from ..config import TrainConfig
from ..data.prepared import PreparedData
from ..evaluation.interpret import kept_val_accuracy, kept_val_map
from ..models.base import keras_l2_penalty
from ..records import (HeadlineMetrics, HistoryRow, MetricsRecord, ModelCard, RunDir, TrainingSummary,
                       epochs_trained)
from ..train.finetune import fine_tuning_plan
from ..train.fit import TrainResult


def make_card(cfg: TrainConfig, data: PreparedData, result: TrainResult) -> ModelCard:
    speeds = [r.images_per_s for r in result.history if r.images_per_s is not None]
    model_args = dict(cfg.model_args)
    extra = getattr(result.model, "card_args", None)
    if callable(extra):
        model_args.update(extra())
    training = TrainingSummary(
        recipe=cfg.recipe, epochs_run=len(result.history), epochs_trained=epochs_trained(result.history),
        best_epoch=result.best_epoch, batch_norm_images=result.batch_norm_images,
        val_accuracy_after_batch_norm=result.val_accuracy_after_batch_norm,
        val_map_after_batch_norm=result.val_map_after_batch_norm,
        stopped=result.stopped_reason, train_seconds=round(result.seconds, 2),
        images_per_s=round(float(np.median(speeds)), 1) if speeds else None,
        precision=result.precision, optimizer=cfg.optimizer, lr=cfg.lr, batch_size=cfg.batch_size,
        processes=result.processes,
        schedule=cfg.schedule, augment=cfg.augment, seed=cfg.seed, loss=cfg.loss, class_weight=cfg.class_weight,
        focal_gamma=cfg.focal_gamma if cfg.loss == "focal" else None,
        logitnorm_temperature=cfg.logitnorm_temperature if cfg.loss == "logitnorm" else None,
        sampler=cfg.sampler, label_smoothing=cfg.label_smoothing, l2_penalty=_l2_penalty(result.model),
        train_images=len(data.splits["train"]),
        time_budget=result.time_budget, fine_tuning=fine_tuning_plan(cfg, result.model, len(result.history)),
    )
    return ModelCard(
        architecture=cfg.model, model_args=model_args, classes=data.classes, img_size=data.img_size,
        in_chans=data.channels, color=data.color, mean=result.mean, std=result.std, interpolation=data.interpolation,
        num_params=int(sum(p.numel() for p in result.model.parameters())), training=training,
        versions=hardware.versions(), hardware=hardware.describe(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _l2_penalty(model: torch.nn.Module) -> float | None:
    with torch.no_grad():
        penalty = keras_l2_penalty(model)
    return None if penalty is None else round(float(penalty), 6)


def validation_headline(history: list[HistoryRow], training: TrainingSummary | None,
                        task: str = "single") -> HeadlineMetrics:
    """The card's numbers for a run trained without a test evaluation (a search trial): validation only. The
    loss is history.csv's at the kept epoch, and none where the BatchNorm statistics were recomputed after it:
    that loss was measured with training's, so it would describe other weights than the accuracy beside it.
    Multi-label: no `accuracy`, which is subset accuracy there, where history's val_acc is label-wise."""
    val = kept_val_accuracy(history, training)
    best_epoch = training.best_epoch if training is not None else None
    recomputed = training is not None and training.val_accuracy_after_batch_norm is not None
    loss = None if recomputed else next((r.val_loss for r in history if r.epoch == best_epoch), None)
    return HeadlineMetrics(split="val", accuracy=None if task == "multilabel" else val, loss=loss,
                           val_accuracy=val, val_map=kept_val_map(history, training))


def headline(metrics: MetricsRecord, history: list[HistoryRow], training: TrainingSummary | None) -> HeadlineMetrics:
    """The card's quotable numbers: test scores, and the kept weights' validation accuracy."""
    val = kept_val_accuracy(history, training)
    return HeadlineMetrics(split=metrics.split, accuracy=metrics.accuracy, loss=metrics.loss,
                           macro_f1=metrics.macro.f1, macro_recall=metrics.macro.recall,
                           worst_class=metrics.worst_class, macro_auc=metrics.macro_auc, val_accuracy=val,
                           val_map=kept_val_map(history, training))


def with_evaluation(run: RunDir, card: ModelCard, metrics: MetricsRecord) -> ModelCard:
    """`card` with the headline scores of the run's own evaluation that just replaced metrics.json (GET /model and
    `imgclf runs` show them); a card from before `training` was recorded keeps the val accuracy it had."""
    scores = headline(metrics, run.read_history(), card.training)
    if scores.val_accuracy is None and card.metrics is not None:
        scores.val_accuracy = card.metrics.val_accuracy
    card.metrics = scores
    return card
