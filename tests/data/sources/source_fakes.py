"""Tiny stand-ins for the real data set files, in their real formats, plus a loopback HTTP server."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

CIFAR_META = b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n"
CIFAR_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def cifar_batch(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """n records (label byte + R, G, B planes) and the (n, 32, 32, 3) images and labels they encode."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    planes = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    records = np.concatenate([labels[:, None], planes.reshape(n, -1)], axis=1)
    return records.tobytes(), planes.transpose(0, 2, 3, 1), labels


def cifar_files(per_batch: int = 3) -> tuple[dict[str, bytes], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """{member name: bytes} of the binary version, and the expected {split: (images, labels)}."""
    files, train = {"batches.meta.txt": CIFAR_META}, []
    for i, name in enumerate(CIFAR_TRAIN):
        files[name], images, labels = cifar_batch(per_batch, seed=i)
        train.append((images, labels))
    files["test_batch.bin"], test_images, test_labels = cifar_batch(per_batch, seed=99)
    expected = {"train": (np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train])),
                "test": (test_images, test_labels)}
    return files, expected


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def fer_pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 48), dtype=np.uint8)


def fer_csv() -> tuple[str, dict[str, list[tuple[int, np.ndarray]]]]:
    """A fer2013.csv with 6 good rows over the three usages and 3 broken ones, and the expected good rows."""
    good = [(0, "Training"), (3, "Training"), (3, "Training"), (6, "PublicTest"), (1, "PrivateTest"), (5, "PrivateTest")]
    lines, expected = ["emotion,pixels,Usage"], {"train": [], "val": [], "test": []}
    split = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
    for seed, (emotion, usage) in enumerate(good):
        pixels = fer_pixels(seed)
        lines.append(f"{emotion},{' '.join(map(str, pixels.ravel()))},{usage}")
        expected[split[usage]].append((emotion, pixels))
    lines.insert(3, f"2,{' '.join(['7'] * 2303)},Training")  # one pixel short
    lines.insert(5, f"9,{' '.join(['7'] * 2304)},Training")  # no such emotion
    lines.append(f"4,{' '.join(['x'] * 2304)},PublicTest")  # not numbers
    return "\n".join(lines) + "\n", expected


def fashion_files(folder: Path, n_train: int = 20, n_test: int = 10) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The four gzipped IDX files of Fashion-MNIST in `folder`; returns the expected {split: (images, labels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    expected = {}
    for prefix, split, n in (("train", "train", n_train), ("t10k", "test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
        header = bytes([0, 0, 8, 1]) + n.to_bytes(4, "big")
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + labels.tobytes()))
        expected[split] = (images, labels)
    return expected


def write_zip(path: Path, name: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(name, data)
    return path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """(folder, base URL): a real HTTP server on 127.0.0.1 serving `folder` from a thread."""
    for var in ("no_proxy", "NO_PROXY"):  # a proxy set for the machine must not catch loopback requests
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()
