"""How a run's settings differ from its recipe as shipped: a run given `--recipe s2-mobilenetv2-finetune --model
tf_efficientnet_lite0 --epochs 2` was reported as the recipe's reproduction beside the reference's figures, with
nothing to say that its model, epochs and fine-tuning plan were not the recipe's."""

from __future__ import annotations

from typing import Any

from ..config import TrainConfig, make_config


# Settings that do not change what is trained, or that the pipeline resolves from the data (auto colour, image
# size, task): compared only where the recipe's `config:` sets them.
NOT_TRAINING = frozenset({"schema_version", "data", "out", "cache_dir", "cache_budget", "num_workers", "progress",
                          "logger", "mlflow_uri", "recipe", "lr_auto", "task", "img_size", "color", "seed",
                          "accelerator", "devices", "strategy", "num_nodes", "checkpoint_every", "channels_last",
                          "folds", "fold", "calibrate", "unknown_detector", "unknown_acceptance"})


def changes_from_recipe(cfg: TrainConfig, skip: tuple[str, ...] = ()) -> dict[str, dict[str, Any]] | None:
    """{setting: {"recipe": value, "run": value}} for each setting the run trained otherwise than the recipe as
    shipped (by the user's flags or file, or by the pipeline: a multi-label run drops label smoothing): those its
    `config:` sets, and those it leaves at TrainConfig's defaults (--label-smoothing 0.2, --no-pretrained,
    --time-limit on a recipe that sets none were left out, and the run called the recipe as shipped), but for
    NOT_TRAINING. Both read through TrainConfig so that only values differ, not spellings; `skip`: settings chosen
    for the run on purpose (the sizing probe's). None without a recipe, or for one this release does not ship."""
    if not cfg.recipe:
        return None
    from ..errors import ImgclfError
    from ..recipes import load_recipe

    try:
        shipped = load_recipe(cfg.recipe)
        asked = make_config(**{**shipped, "data": cfg.data}).model_dump(mode="json")
    except (ImgclfError, ValueError):
        return None
    run = cfg.model_dump(mode="json")
    keys = [key for key in TrainConfig.model_fields if key in shipped or key not in NOT_TRAINING]
    return {key: {"recipe": asked.get(key), "run": run.get(key)} for key in keys
            if key not in ("recipe", *skip) and asked.get(key) != run.get(key)}
