"""Settings that exist for one task only (single-label or multi-label): checked when the config is made (an explicit
task) and again once the data has said which task it is."""

from __future__ import annotations

from typing import Any

from .errors import invalid


def check_task_settings(cfg: Any, task: str) -> None:
    """Settings that exist for one task only: asl is a multi-label loss; focal and logitnorm losses, class samplers
    and label smoothing are single-label ones (an image with several labels has no one class to draw it by)."""
    if task == "single" and cfg.monitor == "val_map":
        raise invalid("monitor", cfg.monitor, "val_loss or val_acc for single-label data (val_map, the validation "
                      "mAP, is a multi-label score)", also={"task": task})
    if task == "single" and cfg.loss == "asl":
        raise invalid("loss", cfg.loss, "ce, focal or logitnorm for single-label data (asl is a multi-label loss)",
                      also={"task": task})
    if task == "multilabel":
        if cfg.loss in ("focal", "logitnorm"):
            raise invalid("loss", cfg.loss, "ce (per-label binary cross-entropy) or asl for multi-label data",
                          also={"task": task})
        if cfg.sampler != "none":
            raise invalid("sampler", cfg.sampler, "none for multi-label data (--class-weight balanced weighs "
                          "each label's positives instead)", also={"task": task})
        if cfg.label_smoothing:
            raise invalid("label_smoothing", cfg.label_smoothing, "0 for multi-label data", also={"task": task})
        for name in ("unknown_detector", "unknown_acceptance"):  # were accepted, recorded, and never used
            default = type(cfg).model_fields[name].default
            if getattr(cfg, name) != default:
                raise invalid(name, getattr(cfg, name), f"left at its default ({default}) for multi-label data: a "
                              "multi-label run flags no image as unknown (an image may carry no label at all)",
                              also={"task": task})
