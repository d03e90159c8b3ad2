"""`inspect_folder`: counts, sizes and colour modes as the files store them, broken files, imbalance."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imgclf.inspect import inspect_folder


def test_inspect_reports_stored_sizes_modes_and_imbalance(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        (tmp_path / "cat").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 10, 3), dtype=np.uint8)).save(tmp_path / "cat" / f"{i}.png")
    (tmp_path / "dog").mkdir()
    Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(tmp_path / "dog" / "gray.png")
    Image.fromarray(rng.integers(0, 255, (640, 480, 3), dtype=np.uint8)).save(tmp_path / "dog" / "big.jpg")
    (tmp_path / "dog" / "broken.png").write_bytes(b"not an image")

    summary = inspect_folder(tmp_path)
    assert summary["classes"] == ["cat", "dog"]
    assert summary["counts"]["all"] == {"cat": 3, "dog": 2}
    assert summary["sizes"] == {"10x8": 3, "12x12": 1, "480x640": 1}
    assert summary["modes"] == {"RGB": 4, "L": 1}
    assert [s["path"].endswith("broken.png") for s in summary["skipped"]] == [True]
    assert summary["imbalance"]["rho"] == pytest.approx(1.5)
