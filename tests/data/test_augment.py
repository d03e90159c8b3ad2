import pytest
import torch

from imgclf.data.augment import AugmentSpec, BatchAugment, affine_grid, parse_augment
from imgclf.errors import ImgclfError


def test_parse_keras_style_spec():
    spec = parse_augment("hflip, rotate=30,shift=0.1,shear=0.1,zoom=0.1,brightness=0.2,contrast=0.1,noise=0.02")
    assert spec.hflip and spec.rotate == 30 and spec.width_shift == spec.height_shift == 0.1
    assert spec.zoom == 0.1 and spec.shear == 0.1 and spec.noise == 0.02
    assert parse_augment(spec.to_string()) == spec
    assert parse_augment("").empty and parse_augment("none").empty


@pytest.mark.parametrize("spec, message", [
    ("hflipp", r"augment item must be one of \{brightness, .*\}. Did you mean: hflip, vflip\? "
               r"Received: augment item='hflipp'"),
    ("rotate=400", r"rotate must be between 0 and 180.*Received: augment rotate=400"),
    ("zoom=abc", r"augment zoom must be a number, e.g. zoom=0.1. Received: augment zoom='abc'"),
    ("fill=wrap", r"fill must be one of"),
    ("hflip=1", r"augment hflip must be given without a value.*Received: augment hflip='1'"),
])
def test_bad_specs_name_what_is_allowed(spec, message):
    with pytest.raises(ImgclfError, match=message):
        parse_augment(spec)


def test_hflip_only_flips_some_images_exactly():
    x = torch.rand(64, 3, 8, 8)
    out = BatchAugment(AugmentSpec(hflip=True))(x, torch.Generator().manual_seed(0))
    flipped = torch.isclose(out, x.flip(3)).flatten(1).all(1)
    same = torch.isclose(out, x).flatten(1).all(1)
    assert (flipped | same).all()
    assert 10 < flipped.sum() < 54


def test_geometric_identity_when_ranges_are_zero_and_flip_via_affine():
    x = torch.rand(4, 1, 10, 10)
    aug = BatchAugment(AugmentSpec(hflip=True, rotate=1e-6))
    out = aug(x, torch.Generator().manual_seed(1))
    for i in range(4):
        assert torch.allclose(out[i], x[i], atol=1e-4) or torch.allclose(out[i], x[i].flip(2), atol=1e-4)


def test_per_sample_parameters_and_seeded_reproducibility():
    x = torch.rand(1, 3, 16, 16).repeat(8, 1, 1, 1)
    aug = BatchAugment(parse_augment("rotate=30,shift=0.1,zoom=0.1,brightness=0.1"))
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], a[1]), "each image gets its own random parameters"
    assert a.min() >= 0 and a.max() <= 1


def test_rotation_by_90_degrees_matches_rot90():
    x = torch.rand(1, 1, 9, 9)
    aug = BatchAugment(AugmentSpec(rotate=90, fill="constant"))
    theta = aug.sample_matrices(1, 9, 9, None, x.device)
    theta[:] = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]])
    grid = torch.nn.functional.affine_grid(theta, [1, 1, 9, 9], align_corners=False)
    out = torch.nn.functional.grid_sample(x, grid, align_corners=False)
    assert torch.allclose(out[0, 0], torch.rot90(x[0, 0], 1, (0, 1)), atol=1e-5) or \
        torch.allclose(out[0, 0], torch.rot90(x[0, 0], -1, (0, 1)), atol=1e-5)


@pytest.mark.parametrize("h, w", [(48, 48), (9, 17), (32, 20)])
def test_our_affine_grid_is_torchs(h, w):
    aug = BatchAugment(parse_augment("rotate=40,shift=0.2,shear=20,zoom=0.3,hflip,vflip"))
    theta = aug.sample_matrices(16, h, w, torch.Generator().manual_seed(3), torch.device("cpu"))
    expected = torch.nn.functional.affine_grid(theta, [16, 1, h, w], align_corners=False)
    assert torch.allclose(affine_grid(theta, h, w), expected, atol=1e-6)


def test_erase_and_crop_run():
    x = torch.ones(16, 3, 12, 12)
    out = BatchAugment(parse_augment("erase=1.0"))(x, torch.Generator().manual_seed(0))
    assert (out == 0).any() and (out == 1).any()
    out = BatchAugment(parse_augment("crop=2,fill=constant"))(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
