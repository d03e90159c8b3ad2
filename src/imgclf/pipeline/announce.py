"""The lines `imgclf train` prints before the first epoch: what is about to be trained, on what, where."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import hardware
from ..config import TrainConfig
from ..data.prepared import PreparedData


def announce(cfg: TrainConfig, data: PreparedData, model, run_dir: Path, checkpoint: str | None,
              size_origin: str = "", changes: Sequence[Any] = ()) -> None:
    """Before the first epoch: what is about to be trained, on what, where (stderr, a few short lines).
    size_origin: where the input size came from, when the user did not give it (`size_origin`). changes: the
    settings a resume changed (`SettingChange`), which only resumes.json and the card said."""
    import torch

    from ..io import terminal_safe
    from ..train.finetune import fine_tuning_plan

    sizes = " / ".join(f"{name} {len(split):,}" for name, split in data.splits.items())
    skipped = f", {len(data.skipped)} skipped" if data.skipped else ""
    device = "cuda" if cfg.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu"
    params = sum(p.numel() for p in model.parameters())
    folders = cfg.data if isinstance(cfg.data, str) else " + ".join(cfg.data)
    lines = [
        f"data   {terminal_safe(folders)}: {len(data.classes)} "
        f"{'labels' if data.task == 'multilabel' else 'classes'}, {sizes}{skipped}",
        f"model  {cfg.model}, {params:,} parameters, {data.img_size}x{data.img_size} {data.color}"
        f"{f' ({size_origin})' if size_origin else ''}, "
        f"batch {cfg.batch_size}, {'up to ' if cfg.time_limit else ''}{cfg.epochs} "
        f"epoch{'s' if cfg.epochs != 1 else ''}"
        + (f" of {cfg.steps_per_epoch} step{'s' if cfg.steps_per_epoch != 1 else ''}" if cfg.steps_per_epoch else "")
        + (f", {cfg.val_steps} validation step{'s' if cfg.val_steps != 1 else ''}" if cfg.val_steps else "")
        + (f", time limit {cfg.time_limit}" if cfg.time_limit else ""),  # kept with its unit (90 as 90s)
        *([f"tuning {plan}"] if (plan := fine_tuning_plan(cfg, model)) else []),
        f"device {device} ({threads_said(cfg, device)}), precision "
        f"{hardware.resolve_precision(cfg.precision, cfg.accelerator)}, run {terminal_safe(run_dir)}"
        + (", resuming from checkpoints/last.ckpt" if checkpoint else ""),
        *([f"resume changes {terminal_safe(', '.join(_change(c) for c in changes))}"] if changes else []),
        *([f"recipe {terminal_safe(line)}"] if (line := _recipe_line(cfg)) else []),
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _recipe_line(cfg: TrainConfig) -> str:
    """The recipe the run follows and what it changed of it (the summary named no recipe: a run of 1 of S5's 40
    epochs read as the recipe, beside its reference's figures in the report)."""
    if not cfg.recipe:
        return ""
    from ..recipes import load_recipe
    from .recipe_changes import changes_from_recipe
    from .sizing import SIZED_SETTINGS

    try:
        probed = load_recipe(cfg.recipe).get("sizing") == "probe"
    except Exception:  # a recipe this release does not ship (an old run's): named as it is
        probed = False
    changed = changes_from_recipe(cfg, SIZED_SETTINGS if probed else ())
    if changed is None:
        return cfg.recipe
    if not changed:
        return f"{cfg.recipe}, as shipped"
    shown = [f"{key} {value['recipe']} -> {value['run']}" for key, value in list(changed.items())[:6]]
    return f"{cfg.recipe}, changed: {', '.join(shown)}{' ...' if len(changed) > 6 else ''}"


def _change(change: Any) -> str:
    """A `SettingChange` as the line says it; a setting not given is "unset", as the refusals say (not None)."""
    shown = lambda v: "unset" if v is None else str(v)  # noqa: E731
    return f"{change.setting} {shown(change.before)} -> {shown(change.after)}"


def threads_said(cfg: TrainConfig, device: str) -> str:
    """The CPU threads each training process runs: Lightning gives each of N processes its share of the cores
    this process may use (its affinity: a cpuset, a scheduler's allocation) inside fit, after this line is printed
    ("2 threads" where each of 2 processes ran 1)."""
    import torch

    local = int(cfg.devices) if cfg.devices.isdigit() else 1
    threads = torch.get_num_threads()
    if local > 1 and "OMP_NUM_THREADS" not in os.environ:  # on GPUs too: the launcher divides the CPU's threads
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, cores // local)
    said = f"{threads} thread{'s' if threads != 1 else ''}"
    processes = local * cfg.num_nodes
    return f"{processes} processes x {said}" if processes > 1 else said
