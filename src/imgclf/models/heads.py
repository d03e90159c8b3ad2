"""Classifier heads written as a short spec, e.g. "flatten,dense:256,bn,dropout:0.5".

Grammar (comma-separated, the final Linear(num_classes) is always added):

    [pool,] layer, layer, ...
    pool  : avg | max | avgmax | catavgmax | token | flatten   (how the backbone's feature map becomes a vector)
    layer : dense:N[:relu|gelu|silu|tanh|linear] | bn | dropout:P

`flatten` keeps every position of the feature map (Keras `Flatten()` after a conv base); the others are timm's
global pooling types (`token` is a ViT's class token). Without a pool item the backbone's own default pooling
is used (global average pooling for CNNs), so the default head "" is global average pool + linear.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ImgclfError, invalid

POOLS = ("avg", "max", "avgmax", "catavgmax", "token", "flatten")
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "linear": None}
_ALLOWED = (f"pool first ({', '.join(POOLS)}), then layers dense:N[:{'|'.join(ACTIVATIONS)}], bn, dropout:P "
            "(0 <= P < 1)")


@dataclass(frozen=True)
class HeadSpec:
    pool: str | None  # None: the backbone's default global pooling
    layers: tuple[tuple[str, tuple], ...]  # ("dense", (256, "relu")), ("bn", ()), ("dropout", (0.5,))

    @property
    def canonical(self) -> str:
        items = [self.pool] if self.pool else []
        for kind, args in self.layers:
            if kind == "dense":
                items.append(f"dense:{args[0]}" + ("" if args[1] == "relu" else f":{args[1]}"))
            elif kind == "dropout":
                items.append(f"dropout:{args[0]:g}")
            else:
                items.append(kind)
        return ",".join(items)


def _bad(spec: str, item: str, why: str) -> ImgclfError:
    return invalid("head", spec, f"a comma-separated spec: {_ALLOWED}", note=f"{item!r}: {why}")


def parse_head(spec: str | None) -> HeadSpec:
    """'flatten,dense:256,bn,dropout:0.5' -> HeadSpec; every mistake names the item and lists what is allowed."""
    if spec is None or not spec.strip():
        return HeadSpec(None, ())
    items = [s.strip().lower() for s in spec.split(",")]
    pool = None
    layers: list[tuple[str, tuple]] = []
    for pos, item in enumerate(items):
        name, _, rest = item.partition(":")
        if not item:
            raise _bad(spec, item, "empty item")
        if name in POOLS:
            if rest:
                raise _bad(spec, item, "pooling takes no argument")
            if pos != 0:
                raise _bad(spec, item, "pooling must be the first item")
            pool = name
        elif name == "dense":
            parts = rest.split(":") if rest else []
            if not parts or not parts[0].isdigit() or not 1 <= int(parts[0]) <= 65_536:
                raise _bad(spec, item, "dense needs a width from 1 to 65536, e.g. dense:256")
            act = parts[1] if len(parts) > 1 else "relu"
            if len(parts) > 2 or act not in ACTIVATIONS:
                raise _bad(spec, item, f"activation must be one of {', '.join(ACTIVATIONS)}")
            layers.append(("dense", (int(parts[0]), act)))
        elif name == "bn":
            if rest:
                raise _bad(spec, item, "bn takes no argument")
            layers.append(("bn", ()))
        elif name == "dropout":
            try:
                p = float(rest)
            except ValueError:
                raise _bad(spec, item, "dropout needs a rate, e.g. dropout:0.5") from None
            if not 0.0 <= p < 1.0:
                raise _bad(spec, item, "the dropout rate must be >= 0 and < 1")
            layers.append(("dropout", (p,)))
        else:
            raise _bad(spec, item, "unknown item")
    return HeadSpec(pool, tuple(layers))


class SafeBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d that accepts a training batch of one (the last, odd-sized batch of an epoch).

    PyTorch raises on a single-sample training batch; here it is normalised with the running statistics
    (and does not update them) instead of crashing the epoch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                            False, 0.0, self.eps)
        return super().forward(x)


def build_head(spec: HeadSpec, in_features: int, num_classes: int) -> nn.Sequential:
    """The trainable layers after pooling, ending in Linear(num_classes) (so head[-1] is the classifier)."""
    modules: list[nn.Module] = []
    width = in_features
    for kind, args in spec.layers:
        if kind == "dense":
            modules.append(nn.Linear(width, args[0]))
            width = args[0]
            act = ACTIVATIONS[args[1]]
            if act is not None:
                modules.append(act())
        elif kind == "bn":
            modules.append(SafeBatchNorm1d(width))
        elif kind == "dropout":
            modules.append(nn.Dropout(args[0]))
    modules.append(nn.Linear(width, num_classes))
    return nn.Sequential(*modules)
