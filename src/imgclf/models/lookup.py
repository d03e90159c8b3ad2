"""Models by name: the registered builders (imported here, which registers them) and any timm architecture.

`create_model` checks the arguments against the builder's signature before it builds anything.
"""

from __future__ import annotations

import fnmatch
import typing
from typing import TYPE_CHECKING, Any

from ..errors import invalid
from .registry import REGISTRY, ModelInfo

if TYPE_CHECKING:  # importing torch takes over a second: `imgclf models` lists names without it
    from torch import nn


def _ensure_loaded() -> None:
    from . import reference, resnet  # noqa: F401  (registration side effect)


def list_models(pattern: str = "*", pretrained: bool | None = None) -> list[str]:
    if not isinstance(pattern, str):
        raise invalid("pattern", pattern, "a glob of model names (str), e.g. '*' or 'resnet*'")
    _ensure_loaded()
    names = [n for n in sorted(REGISTRY) if fnmatch.fnmatch(n, pattern)]
    if pretrained is not None:
        names = [n for n in names if REGISTRY[n].pretrained == pretrained]
    return names


def get_model_info(name: str) -> ModelInfo:
    _ensure_loaded()
    if name not in REGISTRY:
        try:
            from .transfer import timm_model_info

            info = timm_model_info(name)
        except ImportError:
            info = None
        if info is None:
            raise _unknown_model(name)
        return info
    return REGISTRY[name]


def _unknown_model(name: str) -> Exception:
    """Any timm architecture is a model too: say so, and look for what was meant among both sets of names."""
    registered = sorted(REGISTRY)
    try:
        from .transfer import timm_names_near

        timm_names, note = timm_names_near(name)
    except ImportError:  # timm missing: the registered models are all there is
        return invalid("model", name, registered)
    return invalid("model", name, f"one of the registered models {{{', '.join(registered)}}} or a timm architecture "
                                  f"(`imgclf models --pretrained` lists those with weights)",
                   suggest=registered + timm_names, note=note)


def create_model(name: str, num_classes: int, in_chans: int | None = None, img_size: int | None = None,
                 **args: Any) -> nn.Module:
    info = get_model_info(name)
    in_chans = info.default_in_chans if in_chans is None else in_chans
    img_size = info.default_img_size if img_size is None else img_size
    if img_size < info.min_img_size:
        raise invalid("img_size", img_size, f"at least {info.min_img_size} for model {name}")
    unknown = set(args) - set(info.arg_names)
    if unknown and not info.pretrained:
        first, *rest = sorted(unknown)
        raise invalid("model_args key", first, info.arg_names or f"left out: {name} takes no model_args", where=name,
                      note=f"also unknown: {', '.join(rest)}" if rest else None)
    if num_classes < 2:
        raise invalid("num_classes", num_classes, ">= 2")
    _check_arg_types(info, args)
    return info.builder(num_classes=num_classes, in_chans=in_chans, img_size=img_size, **args)


_KINDS = {int: (int,), float: (int, float), bool: (bool,), str: (str,)}
_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _check_arg_types(info: ModelInfo, args: dict[str, Any]) -> None:
    """model_args against the builder's annotations (`width: int`): 'abc' or 2.5 for an int is the user's error,
    not torch's TypeError deep inside a layer. Ranges are the builder's to check (`at_least`, `rate`)."""
    try:
        hints = typing.get_type_hints(info.builder)
    except (NameError, TypeError):  # annotations that do not resolve at run time: nothing to check against
        return
    for key, value in args.items():
        kind = hints.get(key)
        if kind in _KINDS and (not isinstance(value, _KINDS[kind]) or (kind is not bool and isinstance(value, bool))):
            raise invalid(f"model_args.{key}", value, _KIND_NAMES[kind], where=info.name)
