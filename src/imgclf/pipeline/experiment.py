"""Which settings make two runs the same experiment: what a re-run of `--folds` compares with its finished folds,
and what a fold's resume may not change alone."""

from __future__ import annotations

from typing import Any

from ..config import RUNTIME_ONLY, TrainConfig

_NOT_COMPARED = RUNTIME_ONLY | {"out", "fold", "img_size", "color", "task", "schema_version", "lr_auto"}


def experiment_settings(cfg: TrainConfig) -> dict[str, Any]:
    """The settings that decide what a run trains: the config less paths, progress and what is resolved from the
    data. Two runs with equal settings are the same experiment (a finished fold is reused on that test)."""
    return {k: v for k, v in cfg.model_dump(mode="json").items() if k not in _NOT_COMPARED}
