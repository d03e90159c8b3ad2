"""One registry of model builders keyed by name (timm's `@register_model`, torchvision's duplicate check).

This module holds the registry and what builders use (`register_model`, `at_least`, `rate`); finding and building
a model by name is `models.lookup`, which imports the builders. A builder is
`(num_classes, in_chans, img_size, **args) -> nn.Module`. Every built module exposes `forward_features`,
`forward_head` and `reset_classifier(num_classes)`.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import invalid

if TYPE_CHECKING:  # importing torch takes over a second: `imgclf models` lists names without it
    from torch import nn


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable[..., nn.Module]
    description: str
    default_img_size: int
    default_in_chans: int
    min_img_size: int
    reference: str = ""
    pretrained: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)
    interpolation: str = "bilinear"  # what the data pipeline resizes with (timm backbones: their own)
    normalize: str = "dataset"  # what normalize=auto means for this model when it has no pretrained config

    @property
    def arg_names(self) -> list[str]:
        params = inspect.signature(self.builder).parameters
        return [p for p in params if p not in ("num_classes", "in_chans", "img_size")]


# name -> ModelInfo, filled by @register_model as the builders' modules are imported (models.lookup imports them)
REGISTRY: dict[str, ModelInfo] = {}


# what normalize=auto may resolve to for a registered model (pretrained backbones use their own config)
AUTO_NORMALIZE = ("dataset", "zerocenter", "rescale")


def register_model(
    name: str,
    *,
    description: str,
    default_img_size: int,
    default_in_chans: int = 3,
    min_img_size: int = 8,
    reference: str = "",
    pretrained: bool = False,
    tags: tuple[str, ...] = (),
    normalize: str = "dataset",
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in REGISTRY:
            raise invalid("name", name, "a model name not yet registered", note="already registered")
        if normalize not in AUTO_NORMALIZE:
            # a typo here would silently fall back to dataset statistics when normalize=auto
            raise invalid("normalize", normalize, AUTO_NORMALIZE)
        REGISTRY[name] = ModelInfo(
            name, builder, description, default_img_size, default_in_chans, min_img_size, reference, pretrained, tags,
            normalize=normalize,
        )
        return builder

    return decorate


@dataclass(frozen=True)
class ModelListing:
    """What `imgclf models` shows for a registered model, known without building (or importing) anything."""

    name: str
    description: str
    default_img_size: int
    default_in_chans: int
    sized_by_images: bool = False  # the fast family: trained at the images' own side (`data.native_size`)


# The registered models as `imgclf models` lists them. A static copy, because the builders import torch (over a
# second) just to print seven lines; tests/models/test_registry.py checks it against the live registry, so an
# added model or a changed description fails there until this table says the same.
LISTING: tuple[ModelListing, ...] = (
    ModelListing("animals_cnn", "S2 custom CNN for 128x128 RGB: Conv32-64-128 (+MaxPool each), Dense 256, dropout .5.",
                 128, 3),
    ModelListing("caltech_cnn", "S4 imbalance-study CNN (227x227x3): Conv7/2-32, Conv5-64, Conv3-128 x2, FC 512; "
                                "N(0, .01) init.", 227, 3),
    ModelListing("fast_resnet", "Small residual CNN (ResNet-9 style; 0.41 M params at width 16, 1.6 M at 32) built for "
                                "CPU throughput on small images.", 28, 3, sized_by_images=True),
    ModelListing("fer_cnn", "S3 final CNN for 48x48 grayscale: Conv32-64, Conv128-256 (L2 .01), Conv512-1024 (L2 .01), "
                            "Dense 1024.", 48, 1),
    ModelListing("fer_cnn_small", "S3 first, simpler CNN: Conv32-BN-Pool, Conv128-BN-Pool, Dense 256, Dropout.", 48, 1),
    ModelListing("model_s", "S5 'Model S': 3 blocks of [Conv3x3-ReLU-BN]x2 (32/64/128) + MaxPool, Dense 256, "
                            "dropout .5.", 32, 3),
    ModelListing("simple_cnn", "Small conv-BN-ReLU CNN with global pooling; a quick, sturdy default for small images.",
                 32, 3),
)


def list_registered(pattern: str = "*") -> list[ModelListing]:
    """The registered models matching a glob, from LISTING: no builder is imported."""
    return [m for m in sorted(LISTING, key=lambda m: m.name) if fnmatch.fnmatch(m.name, pattern)]


def at_least(model: str, low: float, **values: float) -> None:
    """Builder arguments that must be >= low (widths, filter counts: >= 1; penalties: >= 0)."""
    for key, value in values.items():
        if value < low:
            raise invalid(f"model_args.{key}", value, f">= {low}", where=model)


def rate(model: str, **values: float) -> None:
    """Builder arguments that are dropout rates: 0 <= p < 1 (1 would drop every activation)."""
    for key, value in values.items():
        if not 0 <= value < 1:
            raise invalid(f"model_args.{key}", value, ">= 0 and < 1 (a dropout rate)", where=model)
