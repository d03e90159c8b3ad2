"""Shared benchmark plumbing: environment record, interleaved repeats, JSON results, benchmark data sets."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
WORK = ROOT / "work"


def environment() -> dict[str, object]:
    from imgclf import hardware

    info = hardware.describe()
    info["versions"] = hardware.versions()
    info["python"] = sys.version.split()[0]
    info["load_average"] = os.getloadavg()
    return info


def interleaved(cases: dict[str, Callable[[], float]], repeats: int = 3) -> dict[str, dict[str, float]]:
    """Run every case once per round, `repeats` rounds, so machine noise hits all sides alike.

    Each callable returns a throughput (items/s). Reports median, min, max and all values.
    """
    values: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            values[name].append(float(fn()))
    return {name: {"median": statistics.median(v), "min": min(v), "max": max(v), "values": v}
            for name, v in values.items()}


def throughput(fn: Callable[[], int], min_seconds: float = 2.0, warmup: int = 1) -> float:
    """Items per second of fn() (which returns the items it processed), timed over >= min_seconds."""
    for _ in range(warmup):
        fn()
    items, start = 0, time.perf_counter()
    while True:
        items += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return items / elapsed


def print_table(results: dict[str, dict[str, float]], ratios: dict[str, object]) -> None:
    """Medians with their range, then the ratios, as the benchmarks print them."""
    width = max(len(name) for name in results)
    for name, r in results.items():
        print(f"{name:{width}s} {r['median']:>9.0f}  ({r['min']:.0f}-{r['max']:.0f})")
    for name, value in ratios.items():
        print(f"{name:70s} {value}")


def write_result(name: str, payload: dict[str, object]) -> Path:
    from imgclf.io import write_json

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    write_json(path, {"benchmark": name, "environment": environment(),
                      "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **payload})
    return path


def fashion_png_tree(size: int, color: str, per_class: int | None = None, classes: int = 10) -> Path:
    """Fashion-MNIST as a PNG tree resized to `size` (grey replicated for rgb), cached under benchmarks/work."""
    import numpy as np
    from PIL import Image

    from imgclf.data.sources import FASHION_CLASSES, load_fashion_mnist

    out = WORK / f"fmnist-{size}-{color}-{per_class or 'all'}-{classes}"
    done = out / ".complete"
    if done.exists():
        return out
    rng = np.random.default_rng(0)
    for split, (images, labels) in load_fashion_mnist().items():
        keep = labels < classes
        images, labels = images[keep], labels[keep]
        if per_class:
            idx = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(classes)])
            images, labels = images[np.sort(idx)], labels[np.sort(idx)]
        for c in range(classes):
            (out / split / FASHION_CLASSES[c]).mkdir(parents=True, exist_ok=True)
        for i, (img, y) in enumerate(zip(images, labels)):
            pil = Image.fromarray(img)
            if size != 28:
                pil = pil.resize((size, size), Image.Resampling.BILINEAR)
            if color == "rgb":
                pil = pil.convert("RGB")
            pil.save(out / split / FASHION_CLASSES[int(y)] / f"{i:05d}.png", compress_level=1)
    done.write_text("ok")
    return out
