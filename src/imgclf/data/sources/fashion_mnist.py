"""Fashion-MNIST from its IDX files: a local folder (Debian's dataset-fashion-mnist), else Zalando's download."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from ...errors import ImgclfError, add_hint, bad_path, invalid
from .download import default_download_dir, download
from .tree import write_tree

FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
FASHION_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# Published in the "Get the Data" table of github.com/zalandoresearch/fashion-mnist (README).
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped), the format of MNIST and Fashion-MNIST."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile) as exc:
        raise bad_path("source", path, "a readable IDX file",
                       f"cannot be read: {exc}; it may be truncated or corrupt") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise bad_path("source", path, "an IDX file of unsigned bytes (starting with magic 0x0000 08)",
                       "another format")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=min(len(data), 4 + 4 * ndim))
    if body.size != int(np.prod(dims)):
        raise bad_path("source", path, "a whole IDX file",
                       f"truncated: expected {int(np.prod(dims))} values, found {body.size}")
    return body.reshape(dims)


IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _missing_idx(folder: Path) -> list[str]:
    """The IDX files (each plain or .gz) `folder` lacks: with the train files alone, reading the test ones
    crashed (FileNotFoundError)."""
    return [name for name in IDX_FILES if not (folder / f"{name}.gz").is_file() and not (folder / name).is_file()]


def _has_idx(folder: Path) -> bool:
    return not _missing_idx(folder)


def _not_an_idx_folder(source: Path) -> str:
    """What is wrong with a --source that is not a folder of the four IDX files."""
    if not source.exists():
        return "no such folder"
    if not source.is_dir():
        return "a file: pass the folder holding the four IDX files"
    missing = _missing_idx(source)
    if len(missing) == len(IDX_FILES):
        return "no IDX files in it"
    return "it lacks " + ", ".join(f"{name}[.gz]" for name in missing)


def find_fashion_mnist(source: str | os.PathLike | None = None, url: str | None = None,
                       cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding the IDX files: `source`, else a system copy, else a verified download into the cache."""
    if source:
        if _has_idx(Path(source)):
            return Path(source)
        raise bad_path("source", source, "a folder with the four IDX files (train-images-idx3-ubyte[.gz], ...)",
                       _not_an_idx_folder(Path(source)), where="fashion-mnist")
    if not url:  # an explicit --url means: download from there
        for folder in map(Path, FASHION_DIRS):
            if _has_idx(folder):
                return folder
    folder = Path(cache_dir or default_download_dir()) / "fashion-mnist"
    base = (url or FASHION_URL).rstrip("/") + "/"
    try:
        for name, md5 in FASHION_MD5.items():
            download(base + name, folder, md5,
                     source="the folder holding the four IDX files (train-images-idx3-ubyte.gz and the others)")
    except ImgclfError as exc:
        raise add_hint(exc, f"On Debian, `apt-get install dataset-fashion-mnist` installs a local copy "
                            f"in {FASHION_DIRS[0]}") from None
    return folder


def load_fashion_mnist(source: str | os.PathLike | None = None, url: str | None = None,
                       cache_dir: str | os.PathLike | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    root = find_fashion_mnist(source, url, cache_dir)

    def part(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        def pick(name: str) -> Path:
            gz = root / f"{name}.gz"
            return gz if gz.exists() else root / name

        images, labels = read_idx(pick(f"{prefix}-images-idx3-ubyte")), read_idx(pick(f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels) or labels.max(initial=0) >= 10:
            raise bad_path("source", root, "a folder whose IDX files fit together: N images, N labels in 0..9",
                           f"{prefix} images {images.shape}, labels {labels.shape} with largest label "
                           f"{labels.max(initial=0)}", where="fashion-mnist")
        return images, labels

    return {"train": part("train"), "test": part("t10k")}


def export_fashion_mnist(out: str | os.PathLike, source: str | os.PathLike | None = None,
                         per_class: int | None = None, seed: int = 0, url: str | None = None,
                         cache_dir: str | os.PathLike | None = None) -> Path:
    """Fashion-MNIST as out/train/<class>/*.png and out/test/<class>/*.png (optionally per_class per split)."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    loaded = load_fashion_mnist(source, url, cache_dir)
    smallest = {split: int(np.bincount(labels, minlength=10).min()) for split, (_, labels) in loaded.items()}
    if per_class and per_class > min(smallest.values()):  # the test split would hold fewer than asked, unsaid
        raise invalid("per_class", per_class, f"at most {min(smallest.values()):,}, the images of a class in the "
                      f"smallest split ({', '.join(f'{s} {n:,}' for s, n in smallest.items())} a class)",
                      where="fashion-mnist", hint="Leave --per-class out for all 70,000 images")
    for split, (images, labels) in loaded.items():
        if per_class:
            keep = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(10)])
            keep.sort()
            images, labels = images[keep], labels[keep]
        write_tree(out, split, images, labels, FASHION_CLASSES, present=set(range(len(FASHION_CLASSES))))
    return out
