"""Settings that only one value of another setting reads: given otherwise, they change nothing, and a user who set
`--nesterov` beside Adam, `--focal-gamma` without the focal loss or `--lr-step` without the step schedule trained
the same model as without them and was not told. Training names them once, in one warning (`unused_settings`);
they are not refused, since a recipe's values meet a user's other choices (`--recipe fast --optimizer adam`)."""

from __future__ import annotations

from typing import Any

# setting -> (the setting that decides whether it is read, the values of that setting which read it)
READ_ONLY_WITH: dict[str, tuple[str, tuple[Any, ...]]] = {
    "momentum": ("optimizer", ("sgd",)),
    "nesterov": ("optimizer", ("sgd",)),
    "focal_gamma": ("loss", ("focal",)),
    "logitnorm_temperature": ("loss", ("logitnorm",)),
    "lr_factor": ("schedule", ("plateau", "step")),
    "lr_patience": ("schedule", ("plateau",)),
    "lr_step": ("schedule", ("step",)),
    "min_lr": ("schedule", ("plateau", "cosine")),
}


def unused_by_name(cfg: Any) -> dict[str, str]:
    """Setting name -> phrase, for each setting `cfg` gives a value other than its default that its other settings
    leave unread, e.g. "nesterov": "nesterov=True (read with optimizer sgd; this run: adam)"."""
    fields = type(cfg).model_fields
    found = {}
    for name, (decider, readers) in READ_ONLY_WITH.items():
        value = getattr(cfg, name)
        if value != fields[name].default and getattr(cfg, decider) not in readers:
            found[name] = (f"{name}={value} (read with {decider} {' or '.join(readers)}; this run: "
                           f"{getattr(cfg, decider)})")
    if cfg.optimizer == "sgd" and cfg.schedule == "onecycle" and cfg.momentum != fields["momentum"].default:
        found["momentum"] = f"momentum={cfg.momentum} (schedule onecycle cycles it between 0.85 and 0.95 itself)"
    if cfg.folds and cfg.val_split != fields["val_split"].default:  # each fold validates on its own fold
        found["val_split"] = (f"val_split={cfg.val_split} (a cross-validation validates each fold on 1/{cfg.folds} "
                              "of the non-test images)")
    if cfg.min_delta != fields["min_delta"].default and cfg.early_stopping is None:
        found["min_delta"] = f"min_delta={cfg.min_delta} (read by early stopping; this run: early_stopping none)"
    found.update(_unused_while_the_backbone_never_trains(cfg, fields))
    return found


# read only once a pretrained backbone trains: what of it trains, at which rate, with which BatchNorm mode
FINE_TUNING = ("unfreeze", "backbone_lr_mult", "freeze_bn")


def _unused_while_the_backbone_never_trains(cfg: Any, fields: dict[str, Any]) -> dict[str, str]:
    if cfg.features_only:
        why = "this run: features_only, the backbone never trains"
    elif cfg.freeze_epochs and cfg.freeze_epochs >= cfg.epochs:
        why = (f"read once the backbone trains, after freeze_epochs {cfg.freeze_epochs}; this run: {cfg.epochs} "
               f"epoch{'s' if cfg.epochs != 1 else ''}")
    else:
        return {}
    return {name: f"{name}={getattr(cfg, name)} ({why})" for name in FINE_TUNING
            if getattr(cfg, name) != fields[name].default}


def unused_settings(cfg: Any) -> list[str]:
    """One phrase per setting of `cfg` that its other settings leave unread (`unused_by_name`); empty when there
    is none."""
    return list(unused_by_name(cfg).values())


def unused_settings_warning(cfg: Any) -> list[str]:
    """The warning training prints for `unused_settings`, or none."""
    found = unused_settings(cfg)
    return [f"settings this run does not use, so they change nothing: {'; '.join(found)}"] if found else []
