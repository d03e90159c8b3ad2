"""The audit's parts on their own: the pair verifier against a plain reference, the inverted-file candidate
search against brute force, the confident-learning rule on a hand-made matrix, and the freshness fingerprint."""

from __future__ import annotations

import os

import numpy as np
import pytest
from audit_fixtures import planted, sharp_rectangles  # noqa: F401 (fixture)

from imgclf.audit.images import load_images
from imgclf.audit.label_errors import confident_learning
from imgclf.duplicates import search as duplicates
from imgclf.duplicates.hashing import gaussian_blur, perceptual_signatures
from imgclf.duplicates.search import candidate_pairs, find_duplicates
from imgclf.duplicates.thumbnails import grey_thumbnails
from imgclf.duplicates.verify import pair_similarity, sharpness


@pytest.fixture(scope="module")
def thumbs(planted):
    images = load_images(planted.root)
    return images, grey_thumbnails(images.pixels)


def _reference(thumbs, offsets, i, j):
    """The verifier's score written plainly: overlap NCC over base + (-2..2)^2 (and 0 + (-2..2)^2) as the images
    are, then at the best of those shifts with the sharper image blurred."""
    import torch

    side = thumbs.shape[1]
    reach = max(2, side // 8)
    a, b = thumbs[i].astype(np.float32), thumbs[j].astype(np.float32)
    blur = lambda x: np.clip(np.rint(gaussian_blur(torch.from_numpy(x[None]), 0.7 * side / 28)[0].numpy()), 0, 255)  # noqa: E731
    a2, b2 = (blur(a), b) if sharpness(thumbs[[i]])[0] > sharpness(thumbs[[j]])[0] else (a, blur(b))
    base = np.clip(np.rint(offsets[j] - offsets[i]), -reach, reach).astype(int)

    def ncc(x, y, dy, dx):
        u = x[max(0, -dy):side - max(0, dy), max(0, -dx):side - max(0, dx)]
        v = y[max(0, dy):side - max(0, -dy), max(0, dx):side - max(0, -dx)]
        if u.size < 0.6 * side * side:
            return -1.0
        u, v = u - u.mean(), v - v.mean()
        return float((u * v).sum() / np.sqrt((u * u).sum() * (v * v).sum()))

    origins = [tuple(base)] + ([(0, 0)] if base.any() else [])  # and around no shift, for textured pictures
    shifts = [(oy + ry, ox + rx) for oy, ox in origins for ry in range(-2, 3) for rx in range(-2, 3)]
    raw = [ncc(a, b, dy, dx) for dy, dx in shifts]
    best = int(np.argmax(raw))
    return max(raw[best], ncc(a2, b2, *shifts[best]))


def test_pair_similarity_equals_the_plain_overlap_correlation(thumbs):
    _, th = thumbs
    signatures = perceptual_signatures(th)
    pairs, _ = candidate_pairs(signatures.vectors)
    sample = pairs[np.random.default_rng(0).choice(len(pairs), 60, replace=False)]
    fast = pair_similarity(th, signatures.offsets, sample)
    slow = [_reference(th, signatures.offsets, i, j) for i, j in sample]
    np.testing.assert_allclose(fast, slow, atol=1e-4)


def _sharp(seed: int, tall: bool = False, side: int = 28) -> np.ndarray:
    """Hard-edged grey shapes on black, as Fashion-MNIST's objects; tall: bars from the top edge to the bottom
    edge (trousers), which a vertical shift crops, so the centres of mass no longer tell the shift exactly."""
    rng = np.random.default_rng(seed)
    bars = np.zeros((side, side), np.uint8)
    if tall:
        for _ in range(4):
            x, w = rng.integers(3, 22), rng.integers(2, 5)
            bars[:, x:x + w] = rng.integers(80, 255)
    shapes = sharp_rectangles(rng, side, 10, (4, 20), (2, 8))
    return np.where(shapes > 0, shapes, bars)


def _perturbed(img: np.ndarray, kind: str) -> np.ndarray:
    import io

    from PIL import Image

    from imgclf.data.decode import image_to_array

    pil = Image.fromarray(img)
    if kind == "jpeg-60":
        buffer = io.BytesIO()
        pil.save(buffer, "JPEG", quality=60)
        buffer.seek(0)
        pil = Image.open(buffer)
    elif kind == "resize-0.9":
        pil = pil.resize((25, 25), Image.Resampling.BICUBIC)
    else:  # shift by 2 px down (and 1 px left for the shapes)
        pil = pil.transform(pil.size, Image.Transform.AFFINE, (1, 0, 0 if kind == "crop-shift" else 1, 0, 1, -2),
                            fillcolor=0)
    return image_to_array(pil, img.shape[0], "grayscale", "bilinear")[..., 0]  # decoded as the audit decodes


@pytest.mark.parametrize("kind", ["jpeg-60", "resize-0.9", "shift", "crop-shift"])
def test_the_verifier_sees_through_each_perturbation_of_sharp_small_images(kind):
    """Smooth enlarged digits survive any perturbation; sharp 28 x 28 shapes need the blurred comparison
    (resize) and the search around the shift the centres of mass suggest (a cropping shift)."""
    originals = [_sharp(seed, tall=kind == "crop-shift") for seed in range(24)]
    others = [_sharp(1000 + seed, tall=kind == "crop-shift") for seed in range(24)]
    thumbs = np.stack([*originals, *[_perturbed(o, kind) for o in originals], *others])
    signatures = perceptual_signatures(thumbs)
    n = len(originals)
    copies = pair_similarity(thumbs, signatures.offsets, np.array([(k, n + k) for k in range(n)]))
    unrelated = pair_similarity(thumbs, signatures.offsets, np.array([(k, 2 * n + k) for k in range(n)]))
    assert copies.min() >= duplicates.NEAR_THRESHOLD, np.sort(copies)[:3]
    assert unrelated.max() < duplicates.NEAR_THRESHOLD


def test_a_copy_shifted_2_px_on_a_textured_picture_is_one_picture():
    """The centres of mass of a picture without a dark background barely move when it shifts (0.1-0.3 px for 2 px):
    searched only 1 px around them, 33 of 40 such copies of 32-px photos were missed, and their leaks with them."""
    from PIL import Image

    from imgclf.duplicates.verify import pair_detail

    rng = np.random.default_rng(0)
    originals, copies = [], []
    for _ in range(12):
        texture = rng.integers(0, 256, (8, 8)).astype(np.uint8)
        picture = np.asarray(Image.fromarray(texture).resize((32, 32), Image.Resampling.BICUBIC))
        shifted = np.roll(picture, 2, axis=1)
        shifted[:, :2] = picture[:, :2]  # the uncovered edge repeated, as an editor's canvas shift leaves it
        originals.append(picture)
        copies.append(shifted)
    thumbs = grey_thumbnails(np.stack(originals + copies)[..., None])
    signatures = perceptual_signatures(thumbs)
    n = len(originals)
    detail = pair_detail(thumbs, signatures.offsets, np.array([(k, n + k) for k in range(n)]))
    assert detail.accepted().all(), (detail.plain, detail.detail)


def test_inverted_file_search_finds_the_planted_copies_brute_force_finds(thumbs, planted, monkeypatch):
    images, th = thumbs
    signatures = perceptual_signatures(th)
    brute = find_duplicates(th, signatures)
    monkeypatch.setattr(duplicates, "_BRUTE_FORCE", 64)  # 500 images: about 16 cells of 32
    monkeypatch.setattr(duplicates, "_CELL", 32)
    made = []
    real_cells = duplicates._cells
    monkeypatch.setattr(duplicates, "_cells", lambda *a: made.append(real_cells(*a)) or made[-1])
    cells = find_duplicates(th, signatures)
    index = {images.relative(i): i for i in range(len(images))}
    for kind, (original, copy) in planted.copies.items():
        if kind == "exact":
            continue  # no digests passed: an exact copy is a near-duplicate of correlation 1 here
        a, b = index[original], index[copy]
        assert brute.group_of[a] >= 0 and brute.group_of[a] == brute.group_of[b], kind
        assert cells.group_of[a] >= 0 and cells.group_of[a] == cells.group_of[b], kind
    # the search went through the cells, each a small part of the data set
    assert made and len(made[0]) >= 8 and max(len(m) for m in made[0]) < len(th) / 3


def test_confident_learning_flags_only_confident_off_diagonal_images():
    probabilities = np.array([
        [0.9, 0.1, 0.0],  # labelled 0, confident 0
        [0.7, 0.3, 0.0],  # labelled 0, confident 0 (0.7 >= t0 = 0.6)
        [0.2, 0.8, 0.0],  # labelled 0, class 1 above t1: an issue, suggested 1
        [0.1, 0.9, 0.0],  # labelled 1
        [0.0, 0.6, 0.4],  # labelled 1, 0.6 < t1 = 0.75, 0.4 < t2 = 0.7: no class confident
        [0.0, 0.3, 0.7],  # labelled 2
    ])
    labels = np.array([0, 0, 0, 1, 1, 2])
    thresholds, suggested, flagged = confident_learning(probabilities, labels)
    np.testing.assert_allclose(thresholds, [0.6, 0.75, 0.7])
    assert suggested.tolist() == [0, 0, 1, 1, -1, 2]
    assert flagged.tolist() == [False, False, True, False, False, False]


@pytest.mark.parametrize("part", ["distance", "residual"])
def test_an_image_far_out_on_either_part_of_the_outlier_score_is_listed(part):
    from imgclf.audit.outliers import OUTLIER_Z, feature_outliers

    rng = np.random.default_rng(0)
    distance, residual = rng.lognormal(0, 0.3, 500), rng.lognormal(0, 0.3, 500)
    (distance if part == "distance" else residual)[17] *= 50
    found = feature_outliers(distance, residual)
    assert found.ranking[0] == 17 and found.score[17] >= OUTLIER_Z
    assert found.flagged.sum() <= 3  # a log-normal spread of 0.3 is no outlier


def test_the_fingerprint_changes_when_a_file_changes(planted):
    from imgclf.audit.freshness import data_fingerprint
    from imgclf.data.folder import scan_folder

    before = data_fingerprint(scan_folder(planted.root))
    assert before == data_fingerprint(scan_folder(planted.root))
    target = planted.root / planted.noise
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        assert data_fingerprint(scan_folder(planted.root)) != before
    finally:
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("options, message", [
    ({"folds": 1}, "folds=1"), ({"folds": "5"}, "folds='5'"), ({"seed": -1}, "seed=-1"),
    ({"near_threshold": 0}, "near_threshold=0"), ({"near_threshold": 1.5}, "near_threshold=1.5"),
    ({"img_size": 4}, "img_size=4"), ({"img_size": 5000}, "img_size=5000"), ({"seed": 2**32}, "seed=4294967296"),
    ({"workers": "x"}, "workers='x'"), ({"workers": -1}, "workers=-1"), ({"workers": 2.5}, "workers=2.5"),
])
def test_bad_options_are_refused_before_any_work(planted, tmp_path, options, message):
    from imgclf.audit import audit
    from imgclf.errors import ImgclfError

    with pytest.raises(ImgclfError, match=message.replace("[", r"\[")):
        audit(planted.root, out=tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def _garment(seed: int, sleeve: int = 11, half: int = 7, side: int = 28) -> np.ndarray:
    """A plain T-shirt as Fashion-MNIST draws one: a soft-edged silhouette with its own faint folds (smooth
    noise of the given seed). Two seeds: the same shape, different garments."""
    import torch

    yy, xx = np.mgrid[:side, :side].astype(np.float32)
    body = (np.abs(xx - 13.5) <= half) & (yy >= 5) & (yy <= 25)
    sleeves = (np.abs(xx - 13.5) <= 12) & (yy >= 5) & (yy <= sleeve)
    shape = (body | sleeves) & (((xx - 13.5) ** 2 + (yy - 4) ** 2) >= 9)
    noise = np.random.default_rng(seed).normal(0, 1, (1, side, side)).astype(np.float32)
    folds = gaussian_blur(torch.from_numpy(noise), 0.8)[0].numpy()
    soft = gaussian_blur(torch.from_numpy(shape[None].astype(np.float32)), 1.0)[0].numpy()
    return np.clip(np.rint(soft * 150 + shape * 10 * folds / folds.std()), 0, 255).astype(np.uint8)


def _shrunk_and_enlarged(img: np.ndarray, factor: float) -> np.ndarray:
    from PIL import Image

    side = img.shape[0]
    small = Image.fromarray(img).resize((round(side * factor),) * 2, Image.Resampling.BILINEAR)
    return np.asarray(small.resize((side, side), Image.Resampling.BILINEAR))


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))


def test_a_garment_of_the_same_shape_is_not_a_duplicate_but_its_resized_copy_is():
    """The hard negative of the Fashion-MNIST benchmark: two plain garments of one silhouette whose blurred
    pixels correlate above the threshold (the silhouette dominates), told apart by their folds; a shrunk-and-
    enlarged and a re-compressed copy keep the folds and are grouped with their original."""
    original, other = _garment(1), _garment(2)
    thumbs = np.stack([original, other, _shrunk_and_enlarged(original, 0.9), _jpeg(original, 60),
                       *[_garment(10 + k, sleeve=8 + 2 * k, half=5 + k) for k in range(3)]])
    signatures = perceptual_signatures(thumbs)
    # correlation alone (the verifier's first score) would call the other garment a copy
    assert pair_similarity(thumbs, signatures.offsets, np.array([(0, 1)]))[0] >= duplicates.NEAR_THRESHOLD
    found = find_duplicates(thumbs, signatures)
    group = found.group_of[0]
    assert group >= 0 and found.group_of[2] == group and found.group_of[3] == group, found.group_of
    assert found.group_of[1] != group, found.group_of


def test_one_shape_in_other_colours_is_not_a_duplicate_but_its_brightened_copy_is():
    """Correlation cannot see tone: a disc in two colour schemes on flat backgrounds correlates at 1.0. Its copy
    brightened by 10 % (and its JPEG copy at quality 90) is the same picture; the other colours are not."""
    from PIL import Image, ImageDraw

    def disc(background, ink):
        image = Image.new("RGB", (32, 32), background)
        ImageDraw.Draw(image).ellipse([6, 6, 26, 26], fill=ink)
        return np.asarray(image)

    original = disc((200, 190, 180), (40, 60, 90))
    brightened = np.clip(original.astype(np.float32) * 1.1, 0, 255).astype(np.uint8)
    dimmed = np.rint(original.astype(np.float32) * 0.55).astype(np.uint8)  # as Fashion-MNIST's darker twins
    pixels = np.stack([original, brightened, disc((120, 140, 160), (100, 120, 130)),  # pale: spread 4x smaller
                       disc((150, 150, 150), (16, 16, 16)),  # darker: same spread, mean 41 grey levels lower
                       np.stack([_jpeg(grey_thumbnails(original[None])[0], 90)] * 3, axis=-1), dimmed])
    thumbs = grey_thumbnails(pixels)
    signatures = perceptual_signatures(thumbs)
    assert pair_similarity(thumbs, signatures.offsets, np.array([(0, 2), (0, 3)])).min() >= 0.99
    found = find_duplicates(thumbs, signatures)
    group = found.group_of[0]
    assert group >= 0 and (found.group_of[[1, 4, 5]] == group).all(), found.group_of
    assert found.group_of[2] != group and found.group_of[3] != group, found.group_of
    assert found.group_of[2] < 0 or found.group_of[2] != found.group_of[3], found.group_of


def test_a_softened_copy_keeps_its_mean_and_most_of_its_spread():
    """A resized or compressed copy loses contrast at its mean (10 % resize copies of Fashion-MNIST kept 0.69-1.0
    of the spread) where a brightened one scales both: each passes the tone check by its own rule."""
    from imgclf.duplicates.verify import tone_agrees

    picture = np.random.default_rng(0).integers(40, 220, (1, 28, 28)).astype(np.float32)
    mean = picture.mean()
    copies = [mean + (picture - mean) * kept for kept in (0.9, 0.72, 0.5)]  # the last: another picture's tone
    thumbs = np.rint(np.concatenate([picture, *copies])).astype(np.uint8)
    assert tone_agrees(thumbs, np.array([(0, 1), (0, 2), (0, 3)])).tolist() == [True, True, False]


def test_the_quick_models_temperature_makes_its_confidence_match_its_accuracy():
    """Fitted by log-likelihood, the few images labelled as another class than they look (huge losses: what the
    audit looks for) set the temperature: on the digits, T 64-136 and a median top probability of 0.14 at 96 %
    accuracy, which left the per-class thresholds among the noise."""
    from imgclf.audit.gaussians import fit_temperature, softmax

    rng = np.random.default_rng(0)
    n, k = 1000, 10
    labels = rng.integers(0, k, n)
    logits = rng.normal(0, 20, (n, k))
    looks = labels.copy()
    looks[:40] = (labels[:40] + 1) % k  # 4 % of the labels are wrong: the image looks like the next class
    # margins spread over orders of magnitude, as a Gaussian per class in 64 dimensions gives them
    logits[np.arange(n), looks] += np.exp(rng.normal(5, 1.5, n))
    t = fit_temperature(logits, labels)
    probabilities = softmax(logits, t)
    accuracy = float(np.mean(logits.argmax(1) == labels))
    assert probabilities.max(1).mean() == pytest.approx(accuracy, abs=2e-3)  # the likelihood's: 0.65 against 0.83
    assert np.median(probabilities.max(1)) > 0.99
    # right on every image: no temperature brings the confidence up to an accuracy of 1; the likelihood decides,
    # and a sharper one is likelier there: sharper than the raw logits
    right = np.eye(k)[labels] * 12.0 + rng.normal(0, 1, (n, k))
    assert np.all(right.argmax(1) == labels) and fit_temperature(right, labels) < 0.5


def test_a_large_groups_strip_shows_the_members_that_make_it_a_leak_or_a_conflict():
    """13 train copies and one each in val/rings and test showed 12 train thumbnails: the two that earned the
    group its leakage and conflicting-labels badges were not in its strip."""
    from imgclf.audit.report import shown_members
    from imgclf.records import AuditImage

    members = [AuditImage(path=f"train/checks/{i:02d}.png", split="train", label="checks") for i in range(13)]
    members += [AuditImage(path="val/rings/a.png", split="val", label="rings"),
                AuditImage(path="test/checks/b.png", split="test", label="checks")]
    shown = shown_members(members, limit=12)
    assert len(shown) == 12 and {m.path for m in shown} >= {"val/rings/a.png", "test/checks/b.png"}
    assert [m.path for m in shown] == sorted((m.path for m in shown), key=[m.path for m in members].index)
    assert shown_members(members[:5], limit=12) == members[:5]
