"""Built-in data sets written as class-per-folder PNG trees: digits (offline), Fashion-MNIST (local IDX)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ImgclfError, invalid

FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
FASHION_DIRS = ("/usr/share/datasets/fashion-mnist",)


def _write_tree(out: Path, split: str | None, images: np.ndarray, labels: np.ndarray, classes: list[str]) -> int:
    base = out / split if split else out
    for name in classes:
        (base / name).mkdir(parents=True, exist_ok=True)
    for i, (img, y) in enumerate(zip(images, labels)):
        path = base / classes[int(y)] / f"{i:05d}.png"
        if not path.exists():
            tmp = path.with_name(f".{path.name}.tmp")
            Image.fromarray(img).save(tmp, format="PNG")
            os.replace(tmp, path)
    return len(images)


def export_digits(out: str | os.PathLike) -> Path:
    """scikit-learn's bundled 1,797 8x8 handwritten digits as PNGs (0..16 scaled to 0..255)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(digits.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    out = Path(out)
    _write_tree(out, None, images, digits.target, [str(d) for d in range(10)])
    return out


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped), the format of MNIST and Fashion-MNIST."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise ImgclfError(f"IDX file must start with magic 0x0000 08 (unsigned byte). Received: {path}")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ImgclfError(f"IDX file {path} is truncated: expected {int(np.prod(dims))} values, found {body.size}")
    return body.reshape(dims)


def find_fashion_mnist(source: str | os.PathLike | None = None) -> Path:
    candidates = [Path(source)] if source else [Path(p) for p in FASHION_DIRS]
    for c in candidates:
        if (c / "train-images-idx3-ubyte.gz").exists() or (c / "train-images-idx3-ubyte").exists():
            return c
    raise ImgclfError(
        "fashion-mnist source must be a folder with the IDX files (train-images-idx3-ubyte[.gz], ...). "
        f"Received: {', '.join(map(str, candidates))} without them. On Debian: apt-get install dataset-fashion-mnist"
    )


def load_fashion_mnist(source: str | os.PathLike | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    root = find_fashion_mnist(source)

    def part(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        def pick(name: str) -> Path:
            gz = root / f"{name}.gz"
            return gz if gz.exists() else root / name

        return read_idx(pick(f"{prefix}-images-idx3-ubyte")), read_idx(pick(f"{prefix}-labels-idx1-ubyte"))

    return {"train": part("train"), "test": part("t10k")}


def export_fashion_mnist(out: str | os.PathLike, source: str | os.PathLike | None = None,
                         per_class: int | None = None, seed: int = 0) -> Path:
    """Fashion-MNIST as out/train/<class>/*.png and out/test/<class>/*.png (optionally per_class per split)."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    for split, (images, labels) in load_fashion_mnist(source).items():
        if per_class:
            keep = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(10)])
            keep.sort()
            images, labels = images[keep], labels[keep]
        _write_tree(out, split, images, labels, FASHION_CLASSES)
    return out


BUILTIN = {"digits": export_digits, "fashion-mnist": export_fashion_mnist}


def fetch(name: str, out: str | os.PathLike, **kwargs: object) -> Path:
    if name not in BUILTIN:
        raise invalid("name", name, BUILTIN)
    return BUILTIN[name](out, **kwargs)  # type: ignore[operator]
