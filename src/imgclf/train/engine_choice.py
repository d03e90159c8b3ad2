"""The accelerator and strategy a run asks Lightning for, checked before any image is decoded: a misspelt name
or a GPU the machine lacks was Lightning's own error once the data was cached and the run's files written."""

from __future__ import annotations

from ..errors import invalid

GPU_ALIASES = ("gpu",)  # Lightning's word for whichever GPU the machine has (cuda, mps)


def check_engine(accelerator: str, strategy: str, precision: str = "auto") -> None:
    """An `invalid` error naming the setting when Lightning's registries do not know the accelerator or strategy,
    when the accelerator named is not on this machine, or when fp16 mixed precision would train on a CPU."""
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
    if precision == "16-mixed" and (accelerator == "cpu" or (accelerator == "auto" and not gpus)):
        # Lightning trains bf16-mixed instead, with a warning of its own, and the card said 16-mixed
        raise invalid("precision", precision, "auto, 32 or bf16-mixed when training on a CPU",
                      note="fp16 mixed precision trains on a GPU only")
