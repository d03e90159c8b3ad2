"""The LightningModule: uint8 batch -> augment (train only) -> normalise -> model -> loss + L2 penalties."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric

from ..config import TrainConfig
from ..data.augment import BatchAugment, parse_augment
from ..data.tensors import channel_stats, to_unit_nchw
from ..models.base import keras_l2_penalty
from ..multilabel import macro_average_precision


class NonFiniteLossError(RuntimeError):
    def __init__(self, epoch: int, batch: int, value: float, lr: float):
        self.epoch, self.batch, self.value, self.lr = epoch, batch, value, lr
        super().__init__(f"training stopped: the loss became {value} at epoch {epoch + 1}, batch {batch + 1}. "
                         f"The best weights so far were kept. {self.advice}")

    @property
    def advice(self) -> str:
        return (f"Try a lower learning rate (lr={self.lr:g} now, e.g. --lr {self.lr / 10:g}), gradient-friendly "
                "settings such as batch norm, or check the data for corrupt values.")

    def nothing_learnt(self) -> str:
        """The message when no epoch had completed: there are no best weights to keep."""
        return (f"training stopped: the loss became {self.value} at epoch {self.epoch + 1}, batch {self.batch + 1}, "
                f"before any epoch completed, so there is no model to keep. {self.advice}")


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float, weight: torch.Tensor | None = None,
               label_smoothing: float = 0.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): mean over the batch of -(1 - p_t)^gamma * log p_t (class-weighted). At gamma 0
    it is torch's cross-entropy, class weights and label smoothing included: the smoothed target's share of each
    class carries that class's weight."""
    log_p = F.log_softmax(logits.float(), dim=1)
    ce = F.nll_loss(log_p, target, weight=weight, reduction="none")
    if label_smoothing:
        smooth = -(log_p if weight is None else log_p * weight[None, :]).mean(dim=1)
        ce = (1 - label_smoothing) * ce + label_smoothing * smooth
    p_t = log_p.gather(1, target[:, None]).squeeze(1).exp()
    loss = (1 - p_t).pow(gamma) * ce
    if weight is not None:
        return loss.sum() / weight[target].sum()
    return loss.mean()


def logitnorm_loss(logits: torch.Tensor, target: torch.Tensor, temperature: float,
                   weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> torch.Tensor:
    """LogitNorm (Wei et al. 2022): cross-entropy of the logits divided by `temperature` times their L2 norm. The
    loss can no longer fall by growing the logits, which is what makes plain cross-entropy confident far from the
    training data; the network itself is unchanged, so predictions still use its raw logits. pytorch-ood's
    `LogitNorm` is the reference the tests check against; it takes no class weights or label smoothing, which
    every single-label loss here does."""
    logits = logits.float()
    norms = logits.norm(p=2, dim=1, keepdim=True).clamp_min(1e-7)
    return F.cross_entropy(logits / (norms * temperature), target, weight=weight, label_smoothing=label_smoothing)


def multilabel_loss(logits: torch.Tensor, targets: torch.Tensor, kind: str,
                    pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-label loss, one sigmoid per label: binary cross-entropy averaged over images and labels (pos_weight
    scales each label's positive term), or timm's asymmetric loss (asl, default gammas 4 / 1 and clip 0.05 of
    Ridnik et al. 2021) summed over labels and averaged over images, so that its scale, and the learning rate it
    wants, do not change with the batch size (timm before 1.0.2x only summed: divided here)."""
    logits, targets = logits.float(), targets.float()
    if kind == "asl":
        from timm.loss import AsymmetricLossMultiLabel

        try:
            return AsymmetricLossMultiLabel(reduction="batchmean", pos_weight=pos_weight)(logits, targets)
        except TypeError:  # older timm: no reduction or pos_weight arguments
            return AsymmetricLossMultiLabel()(logits, targets) / max(1, len(targets))
    return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)


def right_answers(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per batch: images whose top class is right; multi-label (y 2-D), the share of each image's label decisions
    at probability 0.5 that are right, summed (so acc = 1 - Hamming loss; the tuned thresholds come after)."""
    if y.dim() == 2:
        return ((logits > 0) == (y > 0.5)).float().mean(1).sum()
    return (logits.argmax(1) == y).sum()


class WeightedMean(Metric):
    """A mean of per-batch values weighted by the batches' image counts, its two sums reduced over processes as
    floats at the epoch's end (by torchmetrics, as Lightning computes a logged Metric). NaN is kept: a diverged
    epoch must read NaN. torchmetrics' MeanMetric keeps NaN only under nan_strategy="disable", which drops the
    weights (torchmetrics#3434), and its other strategies wait for the device at every update."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("weight", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, weight: int) -> None:
        self.total += value.detach().float() * weight
        self.weight += weight

    def compute(self) -> torch.Tensor:
        return self.total / self.weight


def gather_rows(module: L.LightningModule, outputs: list[tuple[torch.Tensor, torch.Tensor]]
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The (N, K) pairs of every process's `outputs`, concatenated, on the CPU: all_gather needs equal shapes,
    so each process's row and column counts go first and its rows are padded to the largest."""
    pairs = [torch.cat(part).float() for part in zip(*outputs)] if outputs else [torch.zeros(0, 0)] * 2
    if module.trainer.world_size == 1:
        return pairs[0].cpu(), pairs[1].cpu()
    sizes = module.all_gather(torch.tensor(pairs[0].shape, device=module.device)).view(-1, 2).cpu()
    rows, cols = int(sizes[:, 0].max()), int(sizes[:, 1].max())
    gathered = []
    for part in pairs:
        padded = torch.zeros(rows, cols, dtype=torch.float32, device=module.device)
        padded[: part.shape[0], : part.shape[1]] = part
        every = module.all_gather(padded.to(module.device)).view(-1, rows, cols).cpu()
        gathered.append(torch.cat([every[r, : int(sizes[r, 0])] for r in range(len(sizes))]))
    return gathered[0], gathered[1]


KERAS_PLATEAU_MIN_DELTA = 1e-4  # ReduceLROnPlateau(min_delta=1e-4), Keras' default


class ImageClassifierModule(L.LightningModule):
    def __init__(self, model: nn.Module, hparams: dict[str, Any], mean: list[float], std: list[float],
                 class_weights: list[float] | None = None, steps_per_epoch: int = 1):
        super().__init__()
        self.model = model
        self.settings = dict(hparams)  # plain values: what Lightning saves in checkpoints (weights_only loads)
        self.cfg = TrainConfig.model_validate(hparams)  # typed view: defaults live in TrainConfig alone
        # logger=False: the trackers get the resolved config from the pipeline, flat and once (MLflow refuses a
        # parameter that changes, as epochs do when a run is resumed with more)
        self.save_hyperparameters(ignore=["model"], logger=False)
        self.stop_on_nonfinite = True  # the LR finder sweeps into divergence on purpose and records it instead
        self.register_buffer("mean", channel_stats(mean), persistent=False)
        self.register_buffer("std", channel_stats(std), persistent=False)
        weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)
        self.augment = BatchAugment(parse_augment(self.cfg.augment))
        self.steps_per_epoch = steps_per_epoch
        self.aug_generator: torch.Generator | None = None
        # (sum of loss x images, correct, images) of the running epoch: saved in checkpoints, so an epoch resumed
        # in the middle reports the same mean loss and accuracy as an uninterrupted one
        # float32: MPS has no float64; exact for image counts up to 2**24 per epoch and process. A plain attribute,
        # not a buffer: DDP copies rank 0's buffers to every rank before each forward, which made both ranks count
        # rank 0's half of the epoch (moved to the batches' device at each step instead)
        self.epoch_sums = torch.zeros(3, dtype=torch.float32)
        # ((epoch, global_step), train_epoch_means then): an epoch that trained no step has the step count of
        # the epoch before, whose means it repeated
        self._means_at: tuple[tuple[int, int], dict[str, float]] | None = None
        self.unread_batches = 0  # batches of this epoch of which no image could be read (streamed data)
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []  # multi-label: (probabilities, targets)
        self.val_means = nn.ModuleDict({name: WeightedMean() for name in ("val_loss", "val_acc", "l2_penalty")})

    # ----- data path ------------------------------------------------------------------------------
    def prepare(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        x = to_unit_nchw(x)
        if train and not self.augment.spec.empty:
            x = self.augment(x, self.aug_generator)
        x = (x - self.mean) / self.std
        fmt = torch.channels_last if self.cfg.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)

    def seed_step(self, batch_idx: int) -> None:
        """Augmentation and dropout randomness are a pure function of (seed, epoch, batch, rank), so a resumed
        run replays exactly the steps an uninterrupted one would have run. Seeding per step rather than per epoch
        matters: Lightning draws from the global generator (data loader set-up) at different moments on resume."""
        mixed = np.random.SeedSequence([self.cfg.seed, self.current_epoch, batch_idx, self.global_rank])
        seed = int(mixed.generate_state(1, np.uint64)[0] >> 2)  # < 2**62: torch takes signed 64-bit seeds
        if self.aug_generator is None or self.aug_generator.device != self.device:
            self.aug_generator = torch.Generator(device=self.device)
        self.aug_generator.manual_seed(seed)
        # dropout draws from the default generator of the device it runs on; torch.manual_seed would seed every
        # backend instead, and each of CUDA's, XPU's and MTIA's lazy calls formats a stack trace when that backend
        # is not initialised: 2-3 ms per step on 2 CPU cores, which a GPU step cannot hide
        torch.default_generator.manual_seed(seed + 1)
        if self.device.type == "cuda":
            torch.cuda.default_generators[self.device.index or 0].manual_seed(seed + 1)
        elif self.device.type == "mps":
            torch.mps.manual_seed(seed + 1)

    def on_train_epoch_start(self) -> None:
        self.epoch_sums.zero_()  # not called when Lightning resumes inside an epoch: the restored sums go on
        self._means_at = None
        self.unread_batches = 0

    def train_epoch_means(self) -> dict[str, float]:
        """Mean training loss and accuracy of the epoch so far, over every process (collective: call on all). The
        epoch's end asks three times (history.csv, the epoch line, the trackers): one reduction per optimiser step
        count serves them all, and every process keeps the same key, so each reduces equally often."""
        if self._means_at is None or self._means_at[0] != (self.current_epoch, self.global_step):
            sums = self.trainer.strategy.reduce(self.epoch_sums.clone().to(self.device), reduce_op="sum")
            n = float(sums[2])
            means = {"loss": float(sums[0]) / n, "acc": float(sums[1]) / n} if n else {}
            self._means_at = ((self.current_epoch, self.global_step), means)
        return dict(self._means_at[1])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # every process saves (rank 0 writes): the sums of all processes, so a resume counts each image once
        sums = self.trainer.strategy.reduce(self.epoch_sums.clone().to(self.device), reduce_op="sum")
        checkpoint["imgclf_epoch_sums"] = sums.tolist()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._means_at = None
        # (before the optimiser is made) a checkpoint of one parameter group, from before the model split its own
        self._one_group_saved = len((checkpoint.get("optimizer_states") or [{}])[0].get("param_groups", [])) == 1
        if "imgclf_epoch_sums" in checkpoint:  # the whole epoch's sums go to one process, zeros to the others
            sums = checkpoint["imgclf_epoch_sums"] if self.global_rank == 0 else [0.0, 0.0, 0.0]
            self.epoch_sums = torch.tensor(sums, dtype=torch.float32, device=self.device)

    # ----- loss -----------------------------------------------------------------------------------
    @property
    def multilabel(self) -> bool:
        return self.cfg.task == "multilabel"

    def loss_fn(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.multilabel:
            return multilabel_loss(logits, y, self.cfg.loss, self.class_weights)
        smoothing = self.cfg.label_smoothing
        if self.cfg.loss == "focal":
            return focal_loss(logits, y, self.cfg.focal_gamma, self.class_weights, smoothing)
        if self.cfg.loss == "logitnorm":
            return logitnorm_loss(logits, y, self.cfg.logitnorm_temperature, self.class_weights, smoothing)
        return F.cross_entropy(logits.float(), y, weight=self.class_weights, label_smoothing=smoothing)

    def val_loss_fn(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """What val_loss reports (and best epoch, early stopping and plateau read): plain cross-entropy, without
        class weights or smoothing, so runs that differ in them compare. Under logitnorm the raw logits' length is
        left free by training, and their cross-entropy would track that length more than the fit: it reports the
        logitnorm loss itself. validation_step adds the Keras-style L2 penalty of the layers that carry one, as
        Keras does (a reference's EarlyStopping and ReduceLROnPlateau watched that sum)."""
        if self.multilabel:
            return multilabel_loss(logits, y, "ce")
        if self.cfg.loss == "logitnorm":
            return logitnorm_loss(logits, y, self.cfg.logitnorm_temperature)
        return F.cross_entropy(logits.float(), y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        x, y = batch
        if len(y) == 0:  # streamed images, none of them readable now (`unread_images`)
            self.unread_batches += 1
            if self.trainer.world_size == 1:
                return None
            # several processes: Lightning refuses None (an internal error), the others wait in the all-reduce
            return torch.stack([p.sum() * 0.0 for p in self.parameters() if p.requires_grad]).sum()
        self.seed_step(batch_idx)
        logits = self.model(self.prepare(x, train=True))
        loss = self.loss_fn(logits, y)
        penalty = keras_l2_penalty(self.model)
        total = loss if penalty is None else loss + penalty
        # On a GPU the check forces a host sync, so it runs every 25th batch there (every batch on a CPU).
        if (self.device.type == "cpu" or batch_idx % 25 == 0) and not torch.isfinite(total):
            if not self.stop_on_nonfinite:
                return None
            lr = self.trainer.optimizers[0].param_groups[-1]["lr"]  # the head's: the lr setting
            raise NonFiniteLossError(self.current_epoch, batch_idx, float(total.detach()), lr)
        n = len(y)
        # the epoch's loss is Keras' too: the L2 penalty of the layers that carry one included, as in val_loss
        # no tensor made from a Python number on the device: that copy would wait for the GPU every step
        if self.epoch_sums.device != logits.device:
            self.epoch_sums = self.epoch_sums.to(logits.device)
        self.epoch_sums[:2] += torch.stack([total.detach().float() * n, right_answers(logits, y).float()])
        self.epoch_sums[2] += n
        if self.trainer.loggers:  # per-step curve for the trackers; history.csv keeps the epoch means
            self.log("step_loss", total, on_step=True, on_epoch=False, batch_size=n)
        return total

    def on_train_epoch_end(self) -> None:
        # The epoch's loss and accuracy for the trackers, from the sums the steps kept: one self.log per step
        # cost Lightning's result bookkeeping (a recursive move of the metric's state) on every batch.
        # The callbacks that print or record them read train_epoch_means themselves (they run before this hook).
        means = self.train_epoch_means()
        if means:  # already over every process: their mean (sync_dist) is the same value, without DDP's warning
            self.log_dict(means, on_step=False, on_epoch=True, sync_dist=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        if len(y) == 0:
            return
        logits = self.model(self.prepare(x, train=False))
        loss = self.val_loss_fn(logits, y)
        penalty = keras_l2_penalty(self.model)
        if penalty is not None:
            loss = loss + penalty.detach().float()
        n = len(y)
        # weighted means kept as float sums (torchmetrics, summed over processes at the epoch's end), not
        # self.log(batch_size=n, sync_dist=True): Lightning's mean over processes averages the batch-size counts as
        # integers, which gloo truncates, so uneven validation shares (90 + 89 images) read k/178 for k/179
        for name, value in (("val_loss", loss), ("val_acc", right_answers(logits, y).float() / n),
                            ("l2_penalty", penalty)):
            if value is not None:
                self.val_means[name].update(value, n)
                self.log(name, self.val_means[name], on_step=False, on_epoch=True, prog_bar=name != "l2_penalty")
        if self.multilabel:
            # kept on the device: a copy to the host per batch would wait for a GPU at every validation step
            self._val_outputs.append((torch.sigmoid(logits.detach().float()), y.detach()))

    def on_validation_epoch_start(self) -> None:
        self._val_outputs = []
        self._val_map: tuple[float | None] | None = None  # this epoch's, once computed

    def on_validation_epoch_end(self) -> None:
        """Multi-label: the epoch's validation mAP (`val_map`, over every process's images), which `imgclf tune`
        ranks and prunes multi-label trials by. A mean of per-batch values would not be one: average precision
        ranks all the split's images at once."""
        if not self.multilabel:
            return
        value = self.epoch_val_map()
        if value is not None:  # every process logs the same value, from the same gathered rows
            self.log("val_map", value, on_step=False, on_epoch=True, prog_bar=True)

    def epoch_val_map(self) -> float | None:
        """This validation epoch's mAP, computed once from every process's rows (a collective: each process calls
        it). Lightning runs the callbacks' on_validation_epoch_end before this module's, so `BestWeights` with
        --monitor val_map read the epoch before's value from the logged metrics and kept the wrong epoch; it asks
        here instead."""
        if getattr(self, "_val_map", None) is None:
            probs, targets = gather_rows(self, self._val_outputs)
            self._val_outputs = []
            self._val_map = (macro_average_precision(targets.numpy(), probs.numpy()) if len(targets) else None,)
        return self._val_map[0]

    @torch.no_grad()
    def scores_on(self, loader: Any) -> tuple[float | None, float | None]:
        """The model's (accuracy, multi-label mAP) as it is now over `loader`'s batches, counted as validation
        counts them (in float32, outside the trainer: after training changed the model, as batch_norm_stats
        does). The mAP is None for single-label runs."""
        right, seen = 0.0, 0
        outputs = []
        training = self.model.training
        self.model.eval()
        for x, y in loader:
            if len(y):
                x, y = x.to(self.device), y.to(self.device)
                logits = self.model(self.prepare(x, train=False)).float()
                right += float(right_answers(logits, y))
                seen += len(y)
                if self.multilabel:
                    outputs.append((torch.sigmoid(logits).cpu().numpy(), y.cpu().numpy()))
        self.model.train(training)
        mean_ap = macro_average_precision(np.concatenate([t for _, t in outputs]),
                                          np.concatenate([p for p, _ in outputs])) if outputs else None
        return (right / seen if seen else None), mean_ap

    # ----- optimiser and schedule -----------------------------------------------------------------
    def param_groups(self) -> list[dict[str, Any]]:
        """One group per learning-rate multiplier (transfer models put the backbone in its own group)."""
        groups_fn = getattr(self.model, "param_groups", None)
        if callable(groups_fn) and not (getattr(self.model, "single_group_before", False)
                                        and getattr(self, "_one_group_saved", False)):
            return groups_fn(self.cfg.lr, self.cfg.backbone_lr_mult)
        return [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr": self.cfg.lr}]

    def configure_optimizers(self) -> Any:
        c = self.cfg
        groups = self.param_groups()
        if c.optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(groups, lr=c.lr, weight_decay=c.weight_decay)
        elif c.optimizer == "adamw":
            opt = torch.optim.AdamW(groups, lr=c.lr, weight_decay=c.weight_decay)
        else:
            opt = torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov,
                                  weight_decay=c.weight_decay)
        total_steps = max(1, c.epochs * self.steps_per_epoch)
        if c.schedule == "plateau":
            mode = "min" if c.monitor == "val_loss" else "max"
            # Keras reduces after `patience` epochs without improvement, torch after patience + 1 of them, and
            # Keras counts an improvement only beyond min_delta 1e-4 in the metric's own units, torch beyond 1e-4
            # of the best value: the settings mean Keras's, which the reference recipes were written in
            sched: Any = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=c.lr_factor,
                                                                    patience=max(c.lr_patience - 1, 0),
                                                                    threshold=KERAS_PLATEAU_MIN_DELTA,
                                                                    threshold_mode="abs", min_lr=c.min_lr)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": c.monitor, "interval": "epoch"}}
        if c.schedule == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=c.lr_step, gamma=c.lr_factor)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        if c.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps, eta_min=c.min_lr)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        if c.schedule == "onecycle":
            max_lrs = [g["lr"] for g in groups]
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lrs, total_steps=total_steps + 1,
                                                        pct_start=0.25)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        return opt
