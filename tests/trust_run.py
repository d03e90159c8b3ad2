"""`trust_run`: one small trained run whose validation split has errors (so a temperature can be fitted) and
enough validation images for an acceptance rate to mean something; shared by the calibration and unknown tests.

A helper module, not a fixture file (as tests/run_fixtures.py): both test modules call it with the session's
base folder, and the second call finds the run the first one trained.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from conftest import make_image_folder

ACCEPTANCE = 0.9  # not the default, so a test sees the setting reach the card


def _mislabel(data: Path, share: float, seed: int) -> None:
    """Move `share` of each class's images into the next class's folder: labels the pixels contradict, so the
    network cannot be right on every validation image and has something to be over-confident about."""
    rng = np.random.default_rng(seed)
    classes = sorted(p.name for p in data.iterdir() if p.is_dir())
    moves = []
    for i, name in enumerate(classes):
        files = sorted((data / name).iterdir())
        for f in rng.choice(files, int(round(share * len(files))), replace=False):
            moves.append((f, data / classes[(i + 1) % len(classes)] / f"moved_{f.name}"))
    for src, dst in moves:
        shutil.move(src, dst)


def trust_run(base: Path) -> Path:
    run_dir = base / "trust-run" / "run"
    if (run_dir / "metrics.json").exists():
        return run_dir
    import imgclf

    data = make_image_folder(base / "trust-run" / "data", classes=("cat", "dog", "fox"), per_class=60, size=16, seed=3)
    _mislabel(data, 0.15, seed=3)
    imgclf.fit({"data": str(data), "model": "simple_cnn", "img_size": 16, "epochs": 8, "batch_size": 16, "lr": 1e-2,
                "out": str(run_dir), "progress": False, "seed": 0, "model_args": {"width": 8, "dropout": 0.0},
                "val_split": 0.35, "test_split": 0.2, "unknown_acceptance": ACCEPTANCE,
                # its images are alike by design (bars on noise): near-duplicate groups would decide the split
                "group_duplicates": False}, report=False)
    return run_dir


def noise_images(n: int, size: int = 16, seed: int = 7) -> np.ndarray:
    """Uniform noise: far from every class (they are bright bars on dark noise)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
