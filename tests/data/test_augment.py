import dataclasses

import numpy as np
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
    ("rotate=400", r"rotate must be between 0 and 180 degrees.*Received: augment rotate=400"),
    ("zoom=abc", r"augment zoom must be a number from 0 to 0.95, e.g. zoom=0.1. Received: augment zoom='abc'"),
    ("rotate=abc", r"augment rotate must be a number from 0 to 180 degrees, e.g. rotate=10. Received: "),
    ("crop=x", r"augment crop must be a number from 0 to 256 pixels, e.g. crop=4. Received: "),
    ("fill=wrap", r"fill must be one of"),
    ("hflip=1", r"augment hflip must be given without a value.*Received: augment hflip='1'"),
    ("rotate=-5", r"augment rotate must be between 0 and 180 degrees. Received: augment rotate=-5$"),  # as typed
])
def test_bad_specs_name_what_is_allowed(spec, message):
    with pytest.raises(ImgclfError, match=message):
        parse_augment(spec)


@pytest.mark.parametrize("spec, message", [
    # the last one won without a word: rotate=30,rotate=10 trained rotate=10 and recorded both
    ("rotate=30,rotate=10", r"augment must be a list naming each item once .*Received: augment='rotate=30,rotate=10' "
                            r"\(rotate is given twice\)"),
    ("hflip,crop=2,hflip", r"\(hflip is given twice\)"),
    ("shift=0.1,height_shift=0.2", r"\(shift and height_shift overlap\)"),
    ("height_shift=0.1,shift=0.2", r"\(height_shift and shift overlap\)"),
])
def test_an_item_given_twice_is_refused_where_the_user_gives_it(image_folder, spec, message):
    import imgclf

    with pytest.raises(ImgclfError, match=message):
        imgclf.fit(data=str(image_folder), augment=spec)
    assert parse_augment(spec)  # a stored run's config.yaml that holds one still reads (the last one wins)


def test_a_fill_is_read_as_the_names_are_and_refused_where_nothing_moves(image_folder, tmp_path):
    import imgclf

    assert parse_augment("rotate=10, fill= Constant").fill == "constant"
    # a fill with nothing that moves the image fills nothing: refused where a user gives it ...
    with pytest.raises(ImgclfError, match=r"^augment must be a list that gives a rotate, shift, shear, zoom or crop "
                                          r"wherever it gives fill="):
        imgclf.fit(data=str(image_folder), augment="hflip,fill=constant")
    # ... while a stored config.yaml holding one still reads, and a spec without a move is written without it
    # (the fast recipe dropping its crop wrote "hflip,fill=constant")
    stored = parse_augment("hflip,fill=constant")
    assert stored.hflip and stored.to_string() == "hflip"
    # a crop that is not a whole number of pixels was cut to one (crop=0.9 shifted nothing, and TTA reached further
    # than training): refused where given, while a stored run's still reads, with TTA at the pixels it trained
    with pytest.raises(ImgclfError, match=r"^augment crop must be a whole number of pixels from 0 to 256, e\.g\. "
                                          r"crop=4 .*Received: augment crop=2\.5$"):
        imgclf.fit(data=str(image_folder), augment="hflip,crop=2.5")
    from imgclf.tta import TTAViews

    assert TTAViews.for_training("shift=0.05,crop=0.9", 32).shift == 1  # 0.05 x 32 and no whole pixel of crop
    # a run's own config.yaml given again (--config RUN/config.yaml) trains as that run did
    import yaml

    from imgclf.pipeline import resolve_config

    run = tmp_path / "config.yaml"
    run.write_text(yaml.safe_dump({"schema_version": 1, "data": str(image_folder), "augment": "hflip,fill=constant"}))
    assert resolve_config(config_file=run).augment == "hflip,fill=constant"


@pytest.mark.parametrize("h, w", [(32, 32), (20, 36)])
def test_the_shift_turns_with_the_rotation_as_keras_composes_them(h, w, monkeypatch):
    """Keras' apply_affine_transform composes rotation @ shift @ shear @ zoom: its shift is turned by the angle.
    The shift was added unturned: 0.18 apart from Keras at 30 degrees and 8 px."""
    import math

    import imgclf.data.augment as augment

    draws = [math.radians(30), 2 * 0.25, 2 * 0.1]  # angle, then width and height shift (normalised units)
    monkeypatch.setattr(augment, "_uniform", lambda n, half, gen, device: torch.full((n,), draws.pop(0)))
    theta = BatchAugment(parse_augment("rotate=30,shift=0.25")).sample_matrices(1, h, w, None, torch.device("cpu"))
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    px, py = 0.25 * w, 0.1 * h  # the shift in pixels, turned by the angle, back to normalised units
    expected = torch.tensor([(c * px - s * py) * 2 / w, (s * px + c * py) * 2 / h])
    assert torch.allclose(theta[0, :, 2], expected, atol=1e-6)


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


def _source_pixels(theta: torch.Tensor, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Input pixel coordinates (row, col) each output pixel samples, from our output->input matrices."""
    grid = affine_grid(theta, h, w).double().numpy()  # (N, h, w, 2), normalised x, y
    return (grid[..., 1] + 1) * h / 2 - 0.5, (grid[..., 0] + 1) * w / 2 - 0.5


def _keras_fill(x: torch.Tensor, theta: torch.Tensor, mode: str) -> np.ndarray:
    """The same transform done the way Keras fills: scipy's map_coordinates (bilinear) with mode "reflect"
    (d c b a | a b c d, Keras' fill_mode="reflect", the RandomRotation / RandomZoom default) or "nearest"."""
    from scipy.ndimage import map_coordinates

    n, c, h, w = x.shape
    rows, cols = _source_pixels(theta, h, w)
    return np.stack([np.stack([map_coordinates(x[i, ch].double().numpy(), [rows[i], cols[i]], order=1, mode=mode)
                               for ch in range(c)]) for i in range(n)])


def test_s5_recipe_rotates_and_zooms_like_keras_layers_reflected_fill_at_the_corners():
    from imgclf.recipes import load_recipe

    spec = parse_augment(load_recipe("s5-model-s")["augment"])
    geometric = dataclasses.replace(spec, brightness=0.0, contrast=0.0)  # the layers' photometric part aside
    x = torch.rand(16, 3, 32, 32, dtype=torch.float64)
    out = BatchAugment(geometric)(x, torch.Generator().manual_seed(4))
    theta = BatchAugment(geometric).sample_matrices(16, 32, 32, torch.Generator().manual_seed(4), x.device)
    reflected, edge = _keras_fill(x, theta, "reflect"), _keras_fill(x, theta, "nearest")
    assert np.allclose(out.numpy(), reflected, atol=1e-6), "every pixel as Keras' reflect fill gives it"
    rows, cols = _source_pixels(theta, 32, 32)
    # beyond the half pixel past the edge, where the two fills still agree (both give the edge pixel)
    outside = (rows < -1.5) | (rows > 32.5) | (cols < -1.5) | (cols > 32.5)
    corners = [(0, 0), (0, -1), (-1, 0), (-1, -1)]
    filled = [(i, r, c) for i in range(16) for r, c in corners if outside[i, r, c]]
    assert len(filled) >= 12, "rotations up to 18 degrees take many corners from well outside the image"
    for i, r, c in filled:  # the mirrored content, not the edge pixel repeated
        assert np.allclose(out[i, :, r, c].numpy(), reflected[i, :, r, c], atol=1e-6)
        assert not np.allclose(out[i, :, r, c].numpy(), edge[i, :, r, c], atol=1e-3)


def _axis_scales(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|zoom| per axis: the lengths of the matrix's columns (rotation keeps lengths; no shear in these specs)."""
    return theta[:, :, 0].norm(dim=1), theta[:, :, 1].norm(dim=1)


def test_s5_zoom_keeps_the_aspect_ratio_as_keras_random_zoom_does():
    from imgclf.recipes import load_recipe

    spec = parse_augment(load_recipe("s5-model-s")["augment"])
    theta = BatchAugment(spec).sample_matrices(256, 32, 32, torch.Generator().manual_seed(0), torch.device("cpu"))
    sx, sy = _axis_scales(theta)
    assert torch.allclose(sx, sy, atol=1e-6), "RandomZoom(0.05) with width_factor=None: one factor for both axes"
    assert sx.min() < 0.97 and sx.max() > 1.03, "and it still zooms, in [0.95, 1.05]"
    assert sx.min() >= 0.95 - 1e-6 and sx.max() <= 1.05 + 1e-6


def test_image_data_generator_recipes_keep_independent_zoom_and_nearest_fill():
    from imgclf.recipes import load_recipe

    for name in ("s1-vgg16-flatten256", "s3-fer-cnn"):  # ImageDataGenerator: zx, zy drawn apart; fill nearest
        spec = parse_augment(load_recipe(name)["augment"])
        assert spec.fill == "nearest" and not spec.keep_aspect
    spec = parse_augment("zoom=0.2")
    sx, sy = _axis_scales(BatchAugment(spec).sample_matrices(64, 16, 16, torch.Generator().manual_seed(0),
                                                              torch.device("cpu")))
    assert (sx - sy).abs().max() > 0.05


def test_keep_aspect_without_zoom_is_refused():
    with pytest.raises(ImgclfError, match=r"augment must be a list that gives zoom=F wherever it gives keep_aspect.*"
                                          r"Received: augment='hflip,keep_aspect'"):
        parse_augment("hflip,keep_aspect")
