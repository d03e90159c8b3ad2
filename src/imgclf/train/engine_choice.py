"""The accelerator and strategy a run asks Lightning for, checked before any image is decoded: a misspelt name
or a GPU the machine lacks was Lightning's own error once the data was cached and the run's files written."""

from __future__ import annotations

from ..errors import invalid

GPU_ALIASES = ("gpu",)  # Lightning's word for whichever GPU the machine has (cuda, mps)


def check_engine(accelerator: str, strategy: str) -> None:
    """An `invalid` error naming the setting when Lightning's registries do not know the accelerator or strategy,
    or when the accelerator named is not on this machine."""
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    known = sorted(AcceleratorRegistry.available_accelerators())
    usable = [name for name in known if AcceleratorRegistry[name]["accelerator"].is_available()]
    if accelerator not in ("auto", *GPU_ALIASES, *known):
        raise invalid("accelerator", accelerator, ("auto", *GPU_ALIASES, *known))
    gpus = [name for name in usable if name in ("cuda", "mps")]
    if (accelerator in GPU_ALIASES and not gpus) or (accelerator in known and accelerator not in usable):
        raise invalid("accelerator", accelerator, f"one this machine has: auto or {', '.join(usable)}")
    strategies = sorted(StrategyRegistry.available_strategies())
    if strategy.lower() != "auto" and strategy.lower() not in strategies:  # Lightning reads it lower-cased
        raise invalid("strategy", strategy, ("auto", *strategies))
