"""Fine-tuning schedule for timm backbones: head only for `freeze_epochs`, then all or the last K blocks.

Freezing toggles `requires_grad`; the optimiser holds every parameter from the start (a parameter without a
gradient is not updated, not even by weight decay), so nothing is rebuilt when the backbone unfreezes.
BatchNorm layers whose parameters are frozen run in eval mode, so their running statistics stay those of the
pretrained weights. With `freeze_bn` every backbone BatchNorm stays in eval mode after unfreezing too (its scale
and shift still train): Keras' fine-tuning advice (call the base with training=False), which avoids the jump
in validation loss when batch statistics of a small data set replace the pretrained ones.
"Blocks" are timm's coarse parameter groups (`group_matcher(coarse=True)`): stem, then stages (resnet
layer1..4, efficientnet blocks.0..6, each VGG conv).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lightning as L
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from ..errors import invalid
from ..file_names import shell_word

_UNFREEZE = re.compile(r"all|last:([1-9][0-9]*)")


def parse_unfreeze(value: str) -> int | None:
    """'all' -> None, 'last:K' -> K."""
    match = _UNFREEZE.fullmatch(str(value).strip())
    if not match:
        raise invalid("unfreeze", value, "all or last:K with K >= 1 (e.g. last:2)")
    return int(match.group(1)) if match.group(1) else None


def backbone_blocks(backbone: nn.Module) -> list[list[str]]:
    """Parameter names of the backbone grouped into blocks, input side first (timm's coarse grouping)."""
    from timm.models import group_parameters

    matcher = getattr(backbone, "group_matcher", None)
    if not callable(matcher):
        return [[name for name, _ in backbone.named_parameters()]]
    groups = group_parameters(backbone, matcher(coarse=True))
    return [groups[k] for k in sorted(groups)]


def trainable_names(backbone: nn.Module, frozen: bool, unfreeze: str) -> set[str]:
    """Backbone parameter names that train in this phase."""
    if frozen:
        return set()
    last = parse_unfreeze(unfreeze)
    blocks = backbone_blocks(backbone)
    if last is None:
        return {name for block in blocks for name in block}
    if last > len(blocks):
        raise invalid("unfreeze", unfreeze, f"last:K with K <= {len(blocks)}, the number of blocks of this backbone")
    return {name for block in blocks[-last:] for name in block}


def apply_phase(backbone: nn.Module, frozen: bool, unfreeze: str = "all", freeze_bn: bool = False,
                training: bool = True) -> set[str]:
    """Set requires_grad on the backbone it is handed (the head is not touched: it always trains) and put the
    BatchNorm of frozen layers (of every layer with `freeze_bn`) in eval mode while `training`."""
    train = trainable_names(backbone, frozen, unfreeze)
    for name, p in backbone.named_parameters():
        p.requires_grad_(name in train)
    for module in backbone.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            is_frozen = bool(params) and not any(p.requires_grad for p in params)
            module.train(training and not is_frozen and not freeze_bn)
    return train


class FreezeSchedule(L.Callback):
    """Epochs < freeze_epochs: the backbone it is handed is frozen; later: its unfrozen part trains (like
    Lightning's BaseFinetuning, it acts on the module it is given, whatever the model around it). The phase is a
    pure function of the epoch, so a resumed run needs no stored state."""

    def __init__(self, backbone: nn.Module, freeze_epochs: int, unfreeze: str = "all", strategy: str = "auto",
                 freeze_bn: bool = False):
        # last:K checked against this backbone's blocks now, before any epoch: at the unfreeze epoch it cost the
        # whole frozen phase and left an interrupted run behind
        trainable_names(backbone, frozen=False, unfreeze=unfreeze)
        if str(strategy).startswith("ddp") and "find_unused_parameters_true" not in str(strategy):
            # DDP registers the trainable parameters once; frozen ones never get a gradient and stall it.
            raise invalid("strategy", strategy, "ddp_find_unused_parameters_true when part of the backbone is "
                          "frozen (freeze_epochs / unfreeze)")
        self.backbone = backbone
        self.freeze_epochs = freeze_epochs
        self.unfreeze = unfreeze
        self.freeze_bn = freeze_bn

    def frozen(self, epoch: int) -> bool:
        return epoch < self.freeze_epochs

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        apply_phase(self.backbone, self.frozen(epoch), self.unfreeze, self.freeze_bn, pl_module.training)
        if epoch == self.freeze_epochs and epoch:
            restart_plateaus(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # a resume inside an epoch skips that epoch's start hook: set its phase here too
        self.on_train_epoch_start(trainer, pl_module)


def restart_plateaus(trainer: L.Trainer) -> None:
    """ReduceLROnPlateau starts afresh at the first unfrozen epoch, as early stopping does (PatienceAsConfigured)
    and as the second `model.fit` of Keras' two-phase fine-tuning gets its own callback: otherwise the head's best
    validation loss stays the one to beat, the first unfrozen epochs (whose loss jumps above it) count as epochs
    without improvement, and the rate is cut just as the backbone starts to learn. The rate itself is kept (cuts
    made while the head trained stand). Run before the epoch's scheduler step, so its score is the first best; a
    resume inside that epoch resets it again, before the same step."""
    for config in trainer.lr_scheduler_configs:
        if isinstance(config.scheduler, ReduceLROnPlateau):
            config.scheduler.best = config.scheduler.mode_worse
            config.scheduler.num_bad_epochs = 0
            config.scheduler.cooldown_counter = 0


# Transfer settings are "given" when they differ from TrainConfig's defaults (the one place defaults live).
_TRANSFER_SETTINGS = ("head", "weights", "freeze_epochs", "unfreeze", "backbone_lr_mult", "freeze_bn", "features_only")


def refuse_transfer_settings(cfg: Any, info: Any) -> None:
    """A transfer setting given (differing from TrainConfig's default) for a model without a timm backbone is
    refused, naming the first."""
    from ..config import TrainConfig
    from ..models.transfer import TransferModelInfo

    if isinstance(info, TransferModelInfo):
        return
    defaults = TrainConfig.model_fields
    given = {k: getattr(cfg, k) for k in _TRANSFER_SETTINGS if getattr(cfg, k) != defaults[k].default}
    if given:
        name, value = next(iter(given.items()))
        raise invalid("model", cfg.model, f"a timm backbone when {name} is set (e.g. resnet18, "
                      "mobilenetv2_100, tf_efficientnet_lite0)", also={name: value},
                      note=f"{name} needs a timm backbone; {cfg.model} is a registered model with its own head")


def transfer_model_args(cfg: Any, info: Any, resumed: Path | None = None) -> dict[str, Any]:
    """Builder arguments from the transfer settings of the config; errors early (before any data is decoded)
    when they are given for a model without a timm backbone or when pretrained weights cannot be had.
    resumed: the run folder a resume continues: its checkpoint holds every tensor, so the pretrained weights are
    not looked for (a resume refused "weights must be supplied" once the file or cache was gone, and refused
    --weights and --no-pretrained as changes), and the card keeps the source the run recorded."""
    from ..models.transfer import TransferModelInfo
    from ..models.weights import described_weights, moved_weights_file, resolve_weights

    if not isinstance(info, TransferModelInfo):
        refuse_transfer_settings(cfg, info)
        return {}
    args: dict[str, Any] = {"pretrained": cfg.pretrained, "features_only": cfg.features_only}
    # a features-only run computes its stored features from the backbone before the checkpoint is restored: it
    # needs the pretrained weights again (restored later, its head resumed on a random backbone's features)
    if resumed is not None and not cfg.features_only:
        stored = _stored_weights_source(resumed)
        described = described_weights(info.name, cfg.pretrained, cfg.weights)
        args.update(restore=True,
                    weights_source=stored or f"{described}, as the run began (its checkpoint restored on resume)")
    elif resumed is not None and moved_weights_file(cfg.weights):
        raise invalid("weights", cfg.weights, "the backbone file this features-only run was trained with",
                      where=f"--resume {resumed}", note="no such file: the run's stored features are computed from "
                      "it again", hint=f"Put it back, or, if it moved, give its new place: imgclf train --resume "
                      f"{shell_word(resumed)} --weights NEW_PATH (Python: weights=NEW_PATH)")
    else:
        resolve_weights(info.name, cfg.pretrained, cfg.weights)  # fail fast: offline without weights
    if cfg.head is not None:
        args["head"] = cfg.head
    if cfg.weights:
        args["weights"] = cfg.weights
    return args


def _stored_weights_source(run_dir: Path) -> str | None:
    """The weights' description (with the file's digest) the run's card recorded when it last finished."""
    from ..records import RunDir

    run = RunDir(run_dir)
    if not run.has("model.json"):
        return None
    from ..errors import ImgclfError

    try:
        return run.read_card().model_args.get("weights_source")
    except (ImgclfError, OSError, ValueError):  # unreadable: the resume's own checks name it; the words fall back
        return None


def transfer_warnings(cfg: Any) -> list[str]:
    """Transfer settings that run but are almost always a mistake: a frozen backbone that was never trained."""
    if cfg.pretrained or cfg.weights:
        return []
    if cfg.features_only:
        return ["features_only (--features-only) without pretrained weights (--no-pretrained): the head trains on "
                "the features of a random, frozen backbone (a random-features baseline at best); use pretrained "
                "weights, or local ones (weights, --weights FILE)"]
    warnings = []
    if cfg.freeze_epochs:
        warnings.append(f"freeze_epochs (--freeze-epochs) {cfg.freeze_epochs} without pretrained weights "
                        "(--no-pretrained): for those epochs only the head trains, on a random frozen backbone; set "
                        "it to 0 to train a network from scratch")
    if cfg.freeze_bn:
        # a recipe written for pretrained weights (s2-mobilenetv2-finetune) keeps it on: 15 % test accuracy on 4
        # classes from scratch, against 47.5 % with --no-freeze-bn (one seed, same data)
        warnings.append("freeze_bn (--freeze-bn) without pretrained weights (--no-pretrained): it keeps the "
                        "backbone's BatchNorm statistics, which for a random backbone are its initial 0 and 1, so no "
                        "layer is normalised; add --no-freeze-bn to train a network from scratch")
    return warnings


def fine_tuning_plan(cfg: Any, model: nn.Module, epochs_run: int | None = None) -> str | None:
    """What of a transfer model trains when, in words, for the console, the model card and the report: 'head only
    for epochs 1-2 (164,484 of 3,535,492 parameters), then head and the whole backbone from epoch 3 (3,535,492),
    at 0.1 x lr'; None for a model without a timm backbone, or one trained whole, at one rate, from the start,
    and for an `unfreeze` beyond the backbone's blocks, which training's own check refuses (where the run's files
    are taken back). `epochs_run` (the card's): a run that ended before the unfreeze (a time limit) says so, since
    the plan alone reads as if the backbone had trained."""
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        return None
    total = sum(p.numel() for p in model.parameters())
    head = total - sum(p.numel() for p in backbone.parameters())
    if cfg.features_only:
        return f"head only, on the frozen backbone's features ({head:,} of {total:,} parameters)"
    sizes = {name: p.numel() for name, p in backbone.named_parameters()}
    last = parse_unfreeze(cfg.unfreeze)
    blocks = len(backbone_blocks(backbone))
    if last is not None and last > blocks:
        return None
    part = "the whole backbone" if last is None else f"the last {last} of {blocks} backbone blocks"
    trained = head + sum(sizes[name] for name in trainable_names(backbone, False, cfg.unfreeze))
    rate = f", at {cfg.backbone_lr_mult:g} x lr" if cfg.backbone_lr_mult != 1 else ""
    batch_norm = "; backbone BatchNorm statistics kept (freeze_bn)" if cfg.freeze_bn else ""
    frozen = cfg.freeze_epochs
    if frozen >= cfg.epochs:
        return f"head only, every epoch ({head:,} of {total:,} parameters)"
    if frozen:
        epochs = "epoch 1" if frozen == 1 else f"epochs 1-{frozen}"
        ended = f"; the run ended at epoch {epochs_run}, before the backbone unfroze" \
            if epochs_run is not None and epochs_run <= frozen else ""
        return (f"head only for {epochs} ({head:,} of {total:,} parameters), then head and {part} from epoch "
                f"{frozen + 1} ({trained:,}){rate}{batch_norm}{ended}")
    if last is None and not rate and not batch_norm:
        return None
    return f"head and {part} ({trained:,} of {total:,} parameters){rate}{batch_norm}"
