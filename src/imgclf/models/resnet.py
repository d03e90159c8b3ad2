"""`fast_resnet`: a small residual CNN designed for CPU throughput on small images (our `fast` recipes)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import invalid
from .base import FeaturesHeadNet
from .registry import at_least, register_model


STEMS = ("pool", "stride")
INITS = ("default", "dirac")


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class _Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(channels, channels), _conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@register_model(
    "fast_resnet",
    description="Small residual CNN (ResNet-9 style; 0.41 M params at width 16, 1.6 M at 32) built for CPU "
                "throughput on small images.",
    default_img_size=28,
    min_img_size=8,
    tags=("fast",),
)
def fast_resnet(num_classes: int, in_chans: int = 3, img_size: int = 28, width: int = 32, stem: str = "pool",
                init: str = "default") -> nn.Module:
    """`stem="stride"` downsamples with the second convolution (stride 2) instead of conv + max-pool at full
    resolution. On 28x28 inputs (width 16, batch 256, 2 AVX2 cores) that stage was a third of a training step in
    the profiler and the bare model step ran 1.3x faster without it, but whole `imgclf train` epochs only 1.03x
    (765 vs 744 img/s) at the same accuracy within noise, so `fast-fmnist` keeps the pooling stem."""
    if stem not in STEMS:
        raise invalid("model_args.stem", stem, STEMS, where="fast_resnet")
    if init not in INITS:
        raise invalid("model_args.init", init, INITS, where="fast_resnet")
    at_least("fast_resnet", 1, width=width)
    w = width
    downsample = [_conv_bn(w, 2 * w, stride=2)] if stem == "stride" else [_conv_bn(w, 2 * w), nn.MaxPool2d(2)]
    features = nn.Sequential(
        _conv_bn(in_chans, w),
        *downsample, _Residual(2 * w),
        _conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
        _conv_bn(4 * w, 8 * w), nn.MaxPool2d(2), _Residual(8 * w),
    )
    head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8 * w, num_classes))
    if init == "dirac":
        _dirac_init(features)
    return FeaturesHeadNet(features, head)


def _dirac_init(features: nn.Module) -> None:
    """Each 3x3 convolution starts by passing its input channels through unchanged (the first min(in, out)
    filters are identity kernels, the rest keep their random init): airbench's "dirac" init, which there cut
    the epochs to 94 % on CIFAR-10 from 21 to 18 (KellerJordan/cifar10-zoo, airbench ablations)."""
    for module in features.modules():
        if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
            with torch.no_grad():
                nn.init.dirac_(module.weight[: min(module.in_channels, module.out_channels)])
