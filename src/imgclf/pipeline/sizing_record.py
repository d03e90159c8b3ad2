"""The sizing probe's record in a run directory (sizing.json until the card takes it): saved, read back, compared
with a new request for the same run, and amended by a resume that trains at other settings than the probe chose."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..data.augment import parse_augment
from ..records.side_files import SIZING_FILE, SizingRecord
from .sizing import SIZED_SETTINGS


def save_sizing(run_dir: Path, info: Any) -> None:
    """Keep the probe's SizingInfo in the run directory (atomically) until the card takes it."""
    from ..io import write_json

    write_json(Path(run_dir) / SIZING_FILE, SizingRecord.of(info).model_dump(mode="json"))


def as_requested(run_dir: Path, stored: dict[str, Any], asked: dict[str, Any],
                 argument: str = "out") -> tuple[dict[str, Any], dict[str, Any]]:
    """An earlier run's settings (`stored`, its config.yaml) and a new request for the same run (`asked`), made
    comparable when the request sizes the model: a sized run's config.yaml holds the probe's choice, so the values
    the probe replaced go back to what its command asked for. The same command then compares equal, and another
    learning rate, batch or augmentation does not. A run that was not sized compares as it is; one sized before
    sizing.json kept the request leaves the replaced settings out on both sides (what was asked is not known)."""
    info = stored_sizing(run_dir, argument)
    if info is None:
        return stored, asked
    if info.requested is None:
        return tuple({k: v for k, v in d.items() if k not in SIZED_SETTINGS} for d in (stored, asked))
    return {**stored, **info.requested}, asked


def with_resume_changes(info: Any, cfg: TrainConfig, found_lr: float | None = None) -> Any:
    """The probe's record of a resumed run with `resumed_with` naming each sized setting that this or an earlier
    resume trained at other than the probe chose, with the value the resumed config (`cfg`) trains at now: a batch,
    learning rate, augmentation or budget given with --resume would otherwise be read on the card as what the run
    trained with. `found_lr`: the LR finder's rate, the choice where the probe left the learning rate to it."""
    chosen_lr = info.lr if info.lr is not None else found_lr
    now = {"batch_size": cfg.batch_size, "lr": cfg.lr, "augment": cfg.augment, "time_limit": cfg.time_limit}
    differs = {"batch_size": info.train_batch_size is not None and cfg.batch_size != info.train_batch_size,
               "lr": chosen_lr is not None and cfg.lr != chosen_lr,
               "augment": parse_augment(cfg.augment) != parse_augment(info.augment),
               "time_limit": cfg.time_limit_seconds != info.budget_seconds}
    earlier = info.resumed_with or {}
    changed = {name: value for name, value in now.items() if differs[name] or name in earlier}
    return info.model_copy(update={"resumed_with": changed or None})


def stored_sizing(run_dir: Path, argument: str = "resume") -> Any:
    """The SizingInfo an earlier process of this run saved (None for runs sized before it was kept); a damaged
    file is the usual one-line error naming `argument`, the option that pointed at the run."""
    from ..records.base import read_record

    path = Path(run_dir) / SIZING_FILE
    return read_record(path, SizingRecord, argument, run_dir, "a run directory").info() if path.is_file() else None
