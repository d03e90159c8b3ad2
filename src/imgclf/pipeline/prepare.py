"""What a run trains on and what it trains: the prepared data set and the seeded model, from a resolved config.

Training (`pipeline.run`) and the LR finder (`pipeline.lr_find`) both start here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from ..config import TrainConfig
from ..data.dataset import prepare_data
from ..data.prepared import PreparedData
from ..data.select import Selection
from ..errors import invalid
from ..models import create_model
from ..models.base import set_l2
from .multilabel import resolve_task

if TYPE_CHECKING:
    import torch

    from ..models.registry import ModelInfo


def input_size(cfg: TrainConfig, info: ModelInfo) -> int:
    """The side images are resized to: the config's, else for the fast family the images' own (small images as
    they are, `data.native_size.native_img_size`), else the model's default; refused below the model's
    minimum."""
    if cfg.img_size:
        size = cfg.img_size
    elif "fast" in info.tags:
        from ..data.native_size import native_img_size

        size = native_img_size(cfg.data, info.min_img_size)
    else:
        size = info.default_img_size
    if size < info.min_img_size:
        raise invalid("img_size", size, f"at least {info.min_img_size}", where=f"model {cfg.model}")
    return size


def run_images(cfg: TrainConfig, info: ModelInfo, img_size: int,
               recorded: Mapping[str, str] | None = None, only: Collection[str] | None = None) -> PreparedData:
    """The run's images, split, cached and selected as `cfg` says: what training reads, and what refitting a
    finished run's temperature and unknown detector reads again (`pipeline.recalibrate`). recorded: the split
    of a run that exists (`DatasetRecord.split_of_files`), kept where it names every image drawn.
    only: the absolute paths to read and no other (a refit of a finished run: its split's files and those it
    skipped; images added to the folder since are none of its, and one of them redrew the whole automatic split)."""
    selection = Selection(cfg.classes, cfg.drop_classes, cfg.per_class_max, cfg.seed)
    scan = _files_among(cfg, only) if only is not None else None
    return prepare_data(cfg.data, img_size, cfg.color, cfg.val_split, cfg.test_split, cfg.seed, info.interpolation,
                        cfg.cache_dir, cfg.cache_budget_bytes, cfg.num_workers, scan=scan,
                        model_in_chans=info.default_in_chans,
                        selection=selection, fold=(cfg.fold, cfg.folds) if cfg.fold and cfg.folds else None,
                        group_duplicates=cfg.group_duplicates, progress=cfg.progress, task=cfg.task,
                        recorded=recorded)


def _files_among(cfg: TrainConfig, only: Collection[str]):
    """The scan of the run's data folder without the files `only` does not name, which it says it left out."""
    import dataclasses
    import os

    from ..data.merge import scan_folders
    from ..notices import warn

    scan = scan_folders(cfg.data, allow_empty=True)
    files = {split: [(path, c) for path, c in items if os.path.abspath(path) in only]
             for split, items in scan.files.items()}
    held = {c for items in files.values() for _, c in items}
    # the classes its selection names stay for it to name (--drop-classes c: c holds none of the run's files);
    # a class folder added since holds none of them and goes
    named = set(cfg.classes or []) | set(cfg.drop_classes or [])
    classes = [c for c in scan.classes if c in held or c in named]
    # the classes its selection takes (a class folder added since among them): their files it does not name
    selected = set(cfg.classes) if cfg.classes else set(scan.classes) - set(cfg.drop_classes or [])
    left = sum(1 for items in scan.files.values() for path, c in items
               if c in selected and os.path.abspath(path) not in only)
    if left:
        why = "added since it trained, or left out by its --per-class-max" if cfg.per_class_max else \
            "added since it trained"
        warn(f"{left:,} image{'s' if left != 1 else ''} of the data folder {'are' if left != 1 else 'is'} not among "
             f"the run's (dataset.json; {why}): left out, as the run never saw them")
    return dataclasses.replace(scan, files=files, classes=classes)


def data_and_model(cfg: TrainConfig, info: ModelInfo, img_size: int, transfer_args: dict[str, Any],
                   recorded: Mapping[str, str] | None = None) -> tuple[PreparedData, torch.nn.Module, TrainConfig]:
    """The run's images (split, cached, selected as `cfg` says; `recorded` as `run_images`) and its freshly seeded
    model, with `cfg` resolved against the data (image size, colour, task)."""
    import lightning as L

    L.seed_everything(cfg.seed, verbose=False)
    data = run_images(cfg, info, img_size, recorded)
    resolved = cfg.model_copy(update={"img_size": img_size, "color": data.color, "task": resolve_task(cfg, data)})
    return data, seeded_model(cfg, data, img_size, transfer_args), resolved


def seeded_model(cfg: TrainConfig, data: PreparedData, img_size: int, transfer_args: dict[str, Any]) -> torch.nn.Module:
    """`cfg`'s model for `data`, its weights drawn from `cfg.seed`, with the config's L2 marks: the model a run
    trains, whether its settings were given or chosen by the sizing probe."""
    import torch

    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, len(data.classes), data.channels, img_size, **{**cfg.model_args, **transfer_args})
    if cfg.l2 is not None:
        set_l2(model, cfg.l2.get("conv"), cfg.l2.get("dense"))
    return model
