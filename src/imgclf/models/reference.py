"""The reference CNNs of REFERENCES.md, layer for layer, plus `simple_cnn` for quick starts.

Keras layers are ported with Keras' defaults where they change results: BatchNormalization epsilon 1e-3,
glorot-uniform kernels and zero biases. BatchNormalization momentum is PyTorch's 0.1, not Keras' 0.99: at 0.99
the running statistics need ~460 steps to forget their (0, 1) start, more than a small data set's whole run
(`s3-fer-cnn-small` on its 1,620-image stand-in, 25 steps an epoch, then at Adam 1e-4 with early stopping: 38.2 %
test accuracy at 0.99, 81.7 % at 0.1; benchmarks/recipes_repro.py).
"""

from __future__ import annotations

from torch import nn

from .base import FeaturesHeadNet, conv_out_features, with_l2
from .registry import at_least, rate, register_model


def _keras_bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3)


def _glorot(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def _conv(cin: int, cout: int, l2: float = 0.0) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, padding=1)
    return with_l2(conv, l2) if l2 else conv


@register_model(
    "simple_cnn",
    description="Small conv-BN-ReLU CNN with global pooling; a quick, sturdy default for small images.",
    default_img_size=32,
    min_img_size=4,
)
def simple_cnn(num_classes: int, in_chans: int = 3, img_size: int = 32, width: int = 32, dropout: float = 0.2) -> nn.Module:
    at_least("simple_cnn", 1, width=width)
    rate("simple_cnn", dropout=dropout)

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    w = width
    features = nn.Sequential(
        *block(in_chans, w), *block(w, w), nn.MaxPool2d(2),
        *block(w, 2 * w), *block(2 * w, 2 * w), nn.MaxPool2d(2),
        *block(2 * w, 4 * w),
    )
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * w, num_classes))
    return FeaturesHeadNet(features, head)


@register_model(
    "model_s",
    description="S5 'Model S': 3 blocks of [Conv3x3-ReLU-BN]x2 (32/64/128) + MaxPool, Dense 256, dropout .5.",
    default_img_size=32,
    min_img_size=8,
    reference="S5: 815,018 trainable parameters at 32x32x3, 10 classes; test accuracy 85.85 %",
)
def model_s(num_classes: int, in_chans: int = 3, img_size: int = 32, conv_l2: float = 1e-5, dense_l2: float = 1e-4) -> nn.Module:
    at_least("model_s", 0, conv_l2=conv_l2, dense_l2=dense_l2)
    layers: list[nn.Module] = []
    cin = in_chans
    for cout in (32, 64, 128):
        for _ in range(2):
            layers += [_conv(cin, cout, conv_l2), nn.ReLU(inplace=True), _keras_bn(cout)]
            cin = cout
        layers.append(nn.MaxPool2d(2))
    features = nn.Sequential(*layers)
    flat = conv_out_features(features, in_chans, img_size)
    head = nn.Sequential(
        nn.Flatten(), nn.Dropout(0.5), with_l2(nn.Linear(flat, 256), dense_l2), nn.ReLU(inplace=True),
        nn.Dropout(0.5), with_l2(nn.Linear(256, num_classes), dense_l2),
    )
    return _glorot(FeaturesHeadNet(features, head))


@register_model(
    "fer_cnn",
    description="S3 final CNN for 48x48 grayscale: Conv32-64, Conv128-256 (L2 .01), Conv512-1024 (L2 .01), Dense 1024.",
    default_img_size=48,
    default_in_chans=1,
    min_img_size=8,
    reference="S3: 55.34 % test accuracy on FER-2013 (6 classes); S3 states no parameter count",
)
def fer_cnn(num_classes: int, in_chans: int = 1, img_size: int = 48, last_filters: int = 1024, l2: float = 0.01) -> nn.Module:
    """L2 sits where S3's code puts `kernel_regularizer=l2(0.01)`: on the four convolutions from Conv128 on, not
    on Conv32 / Conv64 (S3's text says every convolution; its code, which produced its results, does not)."""
    at_least("fer_cnn", 1, last_filters=last_filters)
    at_least("fer_cnn", 0, l2=l2)

    def stage(cin: int, c1: int, c2: int, reg: float) -> list[nn.Module]:
        return [
            _conv(cin, c1, reg), nn.ReLU(inplace=True), _conv(c1, c2, reg), nn.ReLU(inplace=True),
            _keras_bn(c2), nn.MaxPool2d(2), nn.Dropout(0.25),
        ]

    features = nn.Sequential(
        *stage(in_chans, 32, 64, 0.0), *stage(64, 128, 256, l2), *stage(256, 512, last_filters, l2)
    )
    flat = conv_out_features(features, in_chans, img_size)
    head = nn.Sequential(
        nn.Flatten(), nn.Linear(flat, 1024), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(1024, num_classes)
    )
    return _glorot(FeaturesHeadNet(features, head))


@register_model(
    "fer_cnn_small",
    description="S3 first, simpler CNN: Conv32-BN-Pool, Conv128-BN-Pool, Dense 256, Dropout.",
    default_img_size=48,
    default_in_chans=1,
    min_img_size=4,
    reference="S3: 47.22 % test accuracy on FER-2013 (6 classes)",
)
def fer_cnn_small(num_classes: int, in_chans: int = 1, img_size: int = 48, dropout: float = 0.5) -> nn.Module:
    """S3's summary of this model lists a Dropout between Dense 256 and the output but not its rate (a Keras
    summary never shows one); 0.5 is the rate S3's final model uses at the same place."""
    rate("fer_cnn_small", dropout=dropout)
    features = nn.Sequential(
        _conv(in_chans, 32), nn.ReLU(inplace=True), _keras_bn(32), nn.MaxPool2d(2),
        _conv(32, 128), nn.ReLU(inplace=True), _keras_bn(128), nn.MaxPool2d(2),
    )
    flat = conv_out_features(features, in_chans, img_size)
    head = nn.Sequential(nn.Flatten(), nn.Linear(flat, 256), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(256, num_classes))
    return _glorot(FeaturesHeadNet(features, head))


@register_model(
    "caltech_cnn",
    description="S4 imbalance-study CNN (227x227x3): Conv7/2-32, Conv5-64, Conv3-128 x2, FC 512; N(0, .01) init.",
    default_img_size=227,
    min_img_size=37,  # smallest side whose feature map survives the four 3/2 poolings
    reference="S4: test accuracy 69-85 % across imbalance ratios 1:1 to 15:1 (configuration 1, unregularised)",
    normalize="zerocenter",  # MATLAB's imageInputLayer default; N(0, .01) weights need the pixel scale
)
def caltech_cnn(num_classes: int, in_chans: int = 3, img_size: int = 227, dropout: float = 0.0,
                batch_norm: bool = False) -> nn.Module:
    """Configurations of S4: none (defaults), reg (dropout=0.5, plus weight decay and augmentation in the
    training config), reg+bn (dropout=0.5, batch_norm=True).

    S4's layer table contradicts itself on Conv3: its padding column says 2, its size column 27x27. This follows
    the sizes (Conv3 pad 1), because they agree with each other all the way from the 227x227 input (111, 55, 27,
    27, 13, 13, 6) and with FC 512's 4,608 inputs (6x6x128), while pad 2 would make Conv3's map 29x29 and the
    third pooling's 14x14, neither of which the table lists. The last pooling's size is not given; 3/2, like the
    other three, gives the table's 6x6. The poolings round up (ceil_mode): at 227 every pooled map is odd-sized,
    so this changes nothing there, and it lets smaller stand-in images through (64x64: 29, 14, 7, 3, 1).
    """
    rate("caltech_cnn", dropout=dropout)

    def conv(cin: int, cout: int, k: int, stride: int, pad: int) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride=stride, padding=pad)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        return layers + [nn.ReLU(inplace=True)]

    def pool() -> nn.MaxPool2d:
        return nn.MaxPool2d(3, 2, ceil_mode=True)

    features = nn.Sequential(
        *conv(in_chans, 32, 7, 2, 0), pool(),
        *conv(32, 64, 5, 1, 2), pool(),
        *conv(64, 128, 3, 1, 1), pool(),
        *conv(128, 128, 3, 1, 1), pool(),
    )
    flat = conv_out_features(features, in_chans, img_size)
    head = nn.Sequential(
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(flat, 512), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(512, num_classes),
    )
    model = _MatlabDecay(features, head)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
    return model


class _MatlabDecay(FeaturesHeadNet):
    """S4's network as MATLAB trains it: trainingOptions' L2Regularization (our weight_decay) acts on the weights
    and on batch norm's scale and offset, not on a convolution's or fully connected layer's bias, whose
    BiasL2Factor is 0 by default. One optimiser had decayed every parameter alike, and a run trained so resumes
    so (`single_group_before`: its checkpoint holds one group, which the training module then keeps)."""

    single_group_before = True

    def param_groups(self, lr: float, backbone_lr_mult: float = 1.0) -> list[dict]:
        free = {id(m.bias) for m in self.modules()
                if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None}
        trained = [p for p in self.parameters() if p.requires_grad]
        return [{"params": [p for p in trained if id(p) not in free], "lr": lr},
                {"params": [p for p in trained if id(p) in free], "lr": lr, "weight_decay": 0.0}]


@register_model(
    "animals_cnn",
    description="S2 custom CNN for 128x128 RGB: Conv32-64-128 (+MaxPool each), Dense 256, dropout .5.",
    default_img_size=128,
    min_img_size=8,
    reference="S2: val accuracy 72.32 %, precision 78.12 %, recall 67.62 % on Animals-10",
)
def animals_cnn(num_classes: int, in_chans: int = 3, img_size: int = 128, dropout: float = 0.5) -> nn.Module:
    """S2 states 'stacked Conv + MaxPool, dense layers, softmax' without sizes; this is the usual Keras
    tutorial stack such notebooks use (3x3 'same' convs with ReLU, 2x2 pooling)."""
    rate("animals_cnn", dropout=dropout)
    layers: list[nn.Module] = []
    cin = in_chans
    for cout in (32, 64, 128):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        cin = cout
    features = nn.Sequential(*layers)
    flat = conv_out_features(features, in_chans, img_size)
    head = nn.Sequential(nn.Flatten(), nn.Linear(flat, 256), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(256, num_classes))
    return _glorot(FeaturesHeadNet(features, head))
