"""GPU path: training images/s for model_s and resnet18 at 32x32, fp32 vs bf16 autocast, channels-last.

Runs through `imgclf.fit` unchanged (the same command as on a CPU), on a generated 32x32 RGB PNG tree, and
reports the median images/s of the epochs after the first (warm-up) from history.csv. Needs a CUDA GPU;
on a machine without one it says so and exits 0.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def make_tree(root: Path, classes: int = 10, per_class: int = 2500, size: int = 32) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        d = root / f"c{c}"
        d.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        for i in range(per_class):
            noise = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
            Image.fromarray(np.clip(base.astype(int) // 2 + noise, 0, 255).astype(np.uint8)).save(
                d / f"{i}.png", compress_level=1)
    return root


def main() -> int:
    import torch

    out_dir = Path(os.environ.get("OUT", "benchmarks/results"))
    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to measure")
        return 0
    import imgclf
    from imgclf.io import read_csv, write_json

    work = Path("/tmp/imgclf-gpu")
    data = make_tree(work / "data") if not (work / "data").exists() else work / "data"
    os.environ["IMGCLF_CACHE"] = str(work / "cache")
    results = []
    for model, batch, extra in [("model_s", 512, {}), ("resnet18", 512, {"pretrained": False})]:
        for precision in ("32", "bf16-mixed"):
            name = f"{model}-{precision}"
            start = time.perf_counter()
            run = imgclf.fit({"data": str(data), "model": model, "img_size": 32, "epochs": 4, "batch_size": batch,
                              "precision": precision, "accelerator": "gpu", "augment": "hflip,crop=4",
                              "out": str(work / "runs" / name), "progress": False, "num_workers": 8, **extra},
                             overwrite=True, report=False)
            rows = read_csv(run.path / "history.csv")
            speeds = [float(r["images_per_s"]) for r in rows[1:]]
            results.append({"model": model, "precision": precision, "batch": batch, "channels_last": True,
                            "images_per_s_median": statistics.median(speeds), "images_per_s_all": speeds,
                            "val_acc_last": float(rows[-1]["val_acc"]), "wall_s": round(time.perf_counter() - start, 1),
                            "train_images": run.metrics and len(rows) and int(run.config.epochs)})
            print(name, f"{statistics.median(speeds):.0f} img/s", speeds)
    env = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
           "python": sys.version.split()[0]}
    write_json(out_dir / "gpu_throughput.json", {"benchmark": "gpu_throughput", "environment": env,
                                                 "images": "32x32x3 PNG, 25,000 (20,000 train)", "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
