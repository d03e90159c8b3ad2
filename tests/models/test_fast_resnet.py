"""fast_resnet's options: stems (the stride stem skips the full-resolution stage) and the dirac init."""

import pytest
import torch

from imgclf.errors import ImgclfError
from imgclf.models import create_model


def _feature_maps(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
             for m in model.features.children()]
    model(x)
    for h in hooks:
        h.remove()
    return shapes


@pytest.mark.parametrize("stem", ["pool", "stride"])
def test_stems_classify_28px_grayscale(stem):
    model = create_model("fast_resnet", 10, 1, 28, width=8, stem=stem).eval()
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    shapes = _feature_maps(model, x)
    full_res = [s for s in shapes if s[-1] == 28]
    # pool: the first two convolutions run at 28x28; stride: only the first one does
    assert len(full_res) == (2 if stem == "pool" else 1)
    assert shapes[-1][-1] == 3


def test_unknown_stem_names_the_choices():
    with pytest.raises(ImgclfError, match=r"model_args.stem for fast_resnet must be one of \{pool, stride\}. "
                                          r"Received: model_args.stem='patch'"):
        create_model("fast_resnet", 10, 1, 28, stem="patch")


def test_dirac_init_starts_each_conv_as_identity_on_its_input_channels():
    torch.manual_seed(0)
    model = create_model("fast_resnet", 10, 1, 28, width=8, init="dirac")
    convs = [m for m in model.features.modules() if isinstance(m, torch.nn.Conv2d)]
    x = torch.rand(2, 64, 6, 6)
    for conv in convs:
        n = min(conv.in_channels, conv.out_channels)
        out = torch.nn.functional.conv2d(x[:, : conv.in_channels], conv.weight, padding=1)
        assert torch.allclose(out[:, :n], x[:, :n]), conv
        if conv.out_channels > n:  # the other filters keep their random init
            assert conv.weight[n:].abs().sum() > 0
    plain = create_model("fast_resnet", 10, 1, 28, width=8)
    assert not torch.allclose(plain.features[0][0].weight[0, 0], torch.tensor([[0.0, 0, 0], [0, 1, 0], [0, 0, 0]]))
    with pytest.raises(ImgclfError, match=r"model_args.init for fast_resnet must be one of \{default, dirac\}. "
                                          r"Received: model_args.init='zeros'"):
        create_model("fast_resnet", 10, 1, 28, init="zeros")
