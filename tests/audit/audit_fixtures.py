"""A small image folder with planted problems, and the audit of it (written once per session).

scikit-learn's digits, enlarged to 32 x 32 PNGs, in train/ val/ test/; then, each remembered by path:
byte copies and perturbed copies (JPEG at quality 60 and 90, resized by 0.9 and 1.1, brightness 0.9 and 1.1,
shifted by 1 and 2 px) of training images put into val/ and test/; one picture under a second class; label
flips; a noise picture, a black one and a file that is not an image.

A helper module, not a conftest.py (a second `conftest` would shadow tests/conftest.py).
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

PER_CLASS = {"train": 36, "val": 6, "test": 8}
SIDE = 32


@dataclass
class Planted:
    root: Path
    copies: dict[str, tuple[str, str]] = field(default_factory=dict)  # kind -> (original, copy), relative paths
    conflict: tuple[str, str] = ("", "")  # the same picture under two classes
    flips: list[str] = field(default_factory=list)
    noise: str = ""
    black: str = ""
    broken: str = ""


def _perturbed(img: Image.Image, kind: str) -> tuple[Image.Image, str]:
    """(image, file suffix) of one perturbation as the issue's benchmark names them."""
    name, _, value = kind.partition("-")
    if name == "jpeg":
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=int(value))
        buffer.seek(0)
        return Image.open(buffer), ".jpg"
    if name == "resize":
        side = round(SIDE * float(value))
        return img.resize((side, side), Image.Resampling.BICUBIC), ".png"
    if name == "brightness":
        return ImageEnhance.Brightness(img).enhance(float(value)), ".png"
    if name == "shift":
        dx, dy = {"1": (1, 0), "2": (2, -1)}[value]
        return img.transform(img.size, Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy), fillcolor=0), ".png"
    raise ValueError(kind)


NEAR_KINDS = ("jpeg-60", "jpeg-90", "resize-0.9", "resize-1.1", "brightness-0.9", "brightness-1.1", "shift-1",
              "shift-2")


def make_planted_folder(root: Path) -> Planted:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (digits.images / 16 * 255).astype(np.uint8)
    planted = Planted(root)
    used: dict[int, int] = {}
    saved: dict[str, list[tuple[int, str]]] = {"train": [], "val": [], "test": []}
    for index, label in enumerate(digits.target):
        for split, count in PER_CLASS.items():
            key = label * 10 + list(PER_CLASS).index(split)
            if used.get(key, 0) < count:
                used[key] = used.get(key, 0) + 1
                folder = root / split / str(label)
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels[index]).resize((SIDE, SIDE), Image.Resampling.BICUBIC).save(
                    folder / f"d{index:04d}.png")
                saved[split].append((int(label), f"{split}/{label}/d{index:04d}.png"))
                break

    train = saved["train"]
    # copies of distinct training images into val/ and test/ (leakage), one class each
    sources = iter(train[::7])
    label, original = next(sources)
    target = f"test/{label}/copy_{Path(original).name}"
    shutil.copyfile(root / original, root / target)
    planted.copies["exact"] = (original, target)
    for kind in NEAR_KINDS:
        label, original = next(sources)
        img, suffix = _perturbed(Image.open(root / original), kind)
        split = "val" if kind == "shift-1" else "test"
        target = f"{split}/{label}/near_{kind}_{Path(original).stem}{suffix}"
        img.save(root / target)
        planted.copies[kind] = (original, target)
    # the same picture, saved again, under another class of train/
    label, original = next(sources)
    other = (label + 1) % 10
    target = f"train/{other}/conflict_{Path(original).name}"
    Image.open(root / original).save(root / target)
    planted.conflict = (original, target)
    # label flips: moved to a far class, away from everything planted above
    for label, path in train[3::45][:6]:
        flipped = f"train/{(label + 5) % 10}/flip_{Path(path).name}"
        (root / path).rename(root / flipped)
        planted.flips.append(flipped)
    rng = np.random.default_rng(0)
    planted.noise = "train/5/noise.png"
    Image.fromarray(rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8)).save(root / planted.noise)
    planted.black = "train/2/black.png"
    Image.fromarray(np.zeros((SIDE, SIDE), np.uint8)).save(root / planted.black)
    planted.broken = "train/3/broken.png"
    (root / planted.broken).write_bytes(b"not an image at all")
    return planted


def make_blob_folder(root: Path, classes=("cat", "dog", "fox"), per_split=None, side: int = 24) -> Path:
    """Distinct images (three random soft blobs each, a class-specific blob size) in root/<split>/<class>/:
    unlike tests/conftest.make_image_folder, whose images of one class are the same picture plus mild noise
    (the audit rightly calls them near-duplicates), no two of these are alike."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:side, 0:side]
    for split, count in (per_split or {"train": 10, "test": 4}).items():
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for k in range(count):
                img = np.zeros((side, side))
                for _ in range(3):
                    cy, cx = rng.uniform(0, side, 2)
                    img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (1.5 + 1.5 * c) ** 2))
                img = (255 * img / img.max()).astype(np.uint8)
                Image.fromarray(img).save(root / split / name / f"{name}_{k:03d}.png")
    return root


@pytest.fixture(scope="session")
def planted(tmp_path_factory) -> Planted:
    return make_planted_folder(tmp_path_factory.mktemp("audit-data") / "digits")


@pytest.fixture(scope="session")
def audited(planted, tmp_path_factory):
    """The audit of the planted folder (pixel features), written once: (Planted, AuditResult)."""
    from imgclf.audit import audit

    return planted, audit(planted.root, out=tmp_path_factory.mktemp("audit-out") / "digits")


def sharp_rectangles(rng: np.random.Generator, side: int, count: int, corner: tuple[int, int],
                     extent: tuple[int, int]) -> np.ndarray:
    """Hard-edged grey rectangles on black, as Fashion-MNIST's objects: `count` of them, each corner drawn from
    `corner` (low, high) and each side from `extent`, their grey from 60 to 254."""
    img = np.zeros((side, side), np.uint8)
    for _ in range(count):
        y, x = rng.integers(*corner, 2)
        h, w = rng.integers(*extent, 2)
        img[y:y + h, x:x + w] = rng.integers(60, 255)
    return img

