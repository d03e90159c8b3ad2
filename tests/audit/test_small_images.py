"""Images smaller than their decode are compared at their own side: enlarging smooths away what tells two of them
apart (scikit-learn's 8 x 8 digits, decoded at 16 px, held 48 near-duplicate groups of different writers' digits;
at their own 8 px, 16). The audit and the training split see the same groups."""

from __future__ import annotations

import numpy as np

from imgclf.audit import audit
from imgclf.audit.features import _principal_components
from imgclf.data.cache import comparison_pixels, decode_all


def test_small_files_are_compared_at_their_own_side_and_larger_ones_as_decoded(digits_dir, tmp_path):
    paths = sorted(str(p) for p in digits_dir.glob("*/*.png"))[:40]
    enlarged = decode_all(paths, 16, "grayscale", cache_dir=tmp_path, progress=False)
    assert comparison_pixels(enlarged, "grayscale", cache_dir=tmp_path).shape == (40, 8, 8, 1)
    shrunk = decode_all(paths, 8, "grayscale", cache_dir=tmp_path, progress=False)
    assert comparison_pixels(shrunk, "grayscale", cache_dir=tmp_path) is shrunk.pixels


def test_files_decoded_smaller_than_the_search_reads_are_compared_at_its_side(tmp_path):
    """Fashion-MNIST decoded at 16 px (the README's size) chained 4,010 different trousers into one group, whose
    ends correlated at 0.33; the search now reads the files at their own side up to its 32 px thumbnails."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for side in (28, 100):
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(tmp_path / f"{side}-{i}.png")
    for side, decode, compared in ((28, 16, 28), (28, 64, 28), (100, 16, 32), (100, 64, None), (28, 28, None)):
        paths = sorted(str(p) for p in tmp_path.glob(f"{side}-*.png"))
        decoded = decode_all(paths, decode, "grayscale", cache_dir=tmp_path / "c", progress=False)
        pixels = comparison_pixels(decoded, "grayscale", cache_dir=tmp_path / "c")
        if compared is None:  # read as decoded: at the search's side already, or shrunk to its thumbnails
            assert pixels is decoded.pixels, (side, decode)
        else:
            assert pixels.shape == (6, compared, compared, 1), (side, decode, pixels.shape)


def test_the_duplicates_found_do_not_depend_on_the_decode_size(digits_dir, tmp_path):
    """Read at 16 or 32 px, the digits' groups are those of their own 8 px; before, enlarging tripled them."""
    found = {}
    for size in (8, 16, 32):
        record = audit(digits_dir, out=tmp_path / str(size), img_size=size, cache_dir=tmp_path / "c", page=False).record
        found[size] = sorted(sorted(m.path for m in g.members) for g in record.duplicate_groups)
    assert found[16] == found[8] == found[32]
    assert 0 < len(found[8]) <= 24


def test_components_that_span_everything_leave_no_residual_to_rank_by():
    """8 x 8 grey pixels and 64 components: what is left is rounding, which flagged 525 of 1,797 digits as
    outliers before."""
    x = np.random.default_rng(0).random((300, 64)).astype(np.float32)
    values, residual = _principal_components(x, 64, seed=0)
    assert values.shape == (300, 64) and not residual.any()
    _, partial = _principal_components(x, 16, seed=0)
    assert (partial > 0).all()


def test_the_training_split_groups_small_images_as_the_audit_does(digits_dir, tmp_path):
    from imgclf.data.dataset import prepare_data

    data = prepare_data(str(digits_dir), 16, "grayscale", cache_dir=str(tmp_path), progress=False)
    record = audit(digits_dir, out=tmp_path / "a", img_size=16, cache_dir=tmp_path, page=False).record
    assert data.grouping.groups == len(record.duplicate_groups)
