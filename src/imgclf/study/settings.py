"""The training settings of a study's cells: the same layering as `imgclf train` (recipe → YAML file → flags),
less what the study's own configurations decide."""

from __future__ import annotations

import os
from typing import Any

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
    model = values.pop("model", None) or "caltech_cnn"
    return model, values, ignored
