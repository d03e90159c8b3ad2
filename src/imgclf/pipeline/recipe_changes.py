"""How a run's settings differ from its recipe as shipped: a run given `--recipe s2-mobilenetv2-finetune --model
tf_efficientnet_lite0 --epochs 2` was reported as the recipe's reproduction beside the reference's figures, with
nothing to say that its model, epochs and fine-tuning plan were not the recipe's."""

from __future__ import annotations

from typing import Any

from ..config import TrainConfig, make_config


def changes_from_recipe(cfg: TrainConfig, skip: tuple[str, ...] = ()) -> dict[str, dict[str, Any]] | None:
    """{setting: {"recipe": value, "run": value}} for each setting the recipe's `config:` sets that the run
    trained otherwise (by the user's flags or file, or by the pipeline: a multi-label run drops label smoothing),
    both read through TrainConfig so that only values differ, not spellings; `skip`: settings chosen for the run
    on purpose (the sizing probe's). None without a recipe, or for one this release does not ship."""
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
    return {key: {"recipe": asked.get(key), "run": run.get(key)} for key in shipped
            if key not in ("recipe", *skip) and asked.get(key) != run.get(key)}
