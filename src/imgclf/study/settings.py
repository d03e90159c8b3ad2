"""The training settings of a study's cells: the same layering as `imgclf train` (recipe → YAML file → flags),
less what the study's own configurations decide."""

from __future__ import annotations

import os
from typing import Any

from ..errors import invalid
from ..pipeline.resolve import layer_settings, recipe_and_file


def study_settings(config_file: str | os.PathLike | None, flags: dict[str, Any],
                   protocol: str = "standard") -> tuple[str, dict[str, Any], list[str]]:
    """(model, settings for every cell, names dropped). A recipe or config file (S4's recipes, say) may set what
    the study's configurations, or its protocol, decide: those values are dropped and named. The same settings
    given as flags are kept, so that `run_imbalance_study` refuses them with its own error."""
    from .configurations import STUDY_MODEL_ARGS, check_protocol, controlled

    decided = controlled(check_protocol(protocol))
    flags = {k: v for k, v in flags.items() if v is not None}
    layered = recipe_and_file(flags.get("recipe"), config_file)
    ignored = sorted(k for k in layered if k in decided and k != "model")
    if isinstance(layered.get("model_args"), dict):
        ignored += [f"model_args.{k}" for k in sorted(layered["model_args"]) if k in STUDY_MODEL_ARGS]
        layered["model_args"] = {k: v for k, v in layered["model_args"].items() if k not in STUDY_MODEL_ARGS}
    values = layer_settings({k: v for k, v in layered.items() if k not in decided or k == "model"}, flags)
    if values.get("sizing") == "probe":  # before study.json and the subsets are written
        raise invalid("sizing", "probe", "fixed for a study: each cell's probe would choose its own width and add "
                      "random erasing and EMA to configurations meant to differ only in what the study sets",
                      hint="Pass --sizing fixed (and the width with --model-args width=N)")
    model = values.pop("model", None) or "caltech_cnn"
    return model, values, ignored


def file_sources(config_file: str | os.PathLike | None, settings: dict[str, Any],
                 flags: dict[str, Any]) -> dict[str, str]:
    """Setting -> the --config file's name, for the settings the file gave and no flag replaced: a bad value in
    the file is then blamed on the file (`epochs in study.yaml must be ...`), as `imgclf train` does."""
    if config_file is None:
        return {}
    from ..pipeline.resolve import read_config_file
    from ..io import terminal_safe

    written = read_config_file(config_file)
    return {name: terminal_safe(os.fspath(config_file)) for name in settings
            if name in written and flags.get(name) is None}


def unread_per_configuration(data: str | os.PathLike, model: str, overrides: dict[str, Any],
                             settings: dict[str, tuple[dict[str, Any], dict[str, Any]]],
                             split: dict[str, Any]) -> dict[str, set[str]]:
    """Configuration -> the names of `overrides` its cells leave unread (`unused_settings`): `--focal-gamma 1`
    is read by the focal cells alone. Those cells train without the value (their config.yaml holds what they
    used), and the study warns once of what no configuration reads, not once a cell."""
    from ..config import make_config
    from ..unused_settings import unused_by_name

    unread = {}
    for config, (train, model_args) in settings.items():
        cfg = make_config(**{**overrides, **train, **split, "data": str(data), "model": model,
                             "model_args": {**(overrides.get("model_args") or {}), **model_args}})
        unread[config] = {name for name in unused_by_name(cfg) if name in overrides}
    return unread
