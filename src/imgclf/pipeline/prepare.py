"""What a run trains on and what it trains: the prepared data set and the seeded model, from a resolved config.

Training (`pipeline.run`) and the LR finder (`pipeline.lr_find`) both start here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import TrainConfig
from ..data.dataset import prepare_data
from ..data.prepared import PreparedData
from ..data.select import Selection
from ..models import create_model
from ..models.base import set_l2
from .multilabel import resolve_task

if TYPE_CHECKING:
    import torch

    from ..models.registry import ModelInfo


def data_and_model(cfg: TrainConfig, info: ModelInfo, img_size: int,
                   transfer_args: dict[str, Any]) -> tuple[PreparedData, torch.nn.Module, TrainConfig]:
    """The run's images (split, cached, selected as `cfg` says) and its freshly seeded model, with `cfg` resolved
    against the data (image size, colour, task)."""
    import lightning as L
    import torch

    L.seed_everything(cfg.seed, verbose=False)
    selection = Selection(cfg.classes, cfg.drop_classes, cfg.per_class_max, cfg.seed)
    data = prepare_data(cfg.data, img_size, cfg.color, cfg.val_split, cfg.test_split, cfg.seed, info.interpolation,
                        cfg.cache_dir, cfg.cache_budget_bytes, cfg.num_workers, model_in_chans=info.default_in_chans,
                        selection=selection, fold=(cfg.fold, cfg.folds) if cfg.fold and cfg.folds else None,
                        group_duplicates=cfg.group_duplicates, progress=cfg.progress, task=cfg.task)
    resolved = cfg.model_copy(update={"img_size": img_size, "color": data.color, "task": resolve_task(cfg, data)})
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, len(data.classes), data.channels, img_size, **{**cfg.model_args, **transfer_args})
    if cfg.l2 is not None:
        set_l2(model, cfg.l2.get("conv"), cfg.l2.get("dense"))
    return data, model, resolved
