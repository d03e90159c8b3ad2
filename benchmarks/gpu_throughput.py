"""GPU path: training images/s for model_s and resnet18 at 32x32, fp32 vs bf16 autocast, channels-last.

Runs through `imgclf.pipeline.fit` unchanged (the same command as on a CPU), on a generated 32x32 RGB PNG tree
(25,000 images), and reports the median images/s of the epochs after the first (warm-up) from history.csv.
Needs a CUDA GPU: on a machine without one it says so and exits 0. The smoke mode runs the same code on the
CPU (model_s, fp32, 2 epochs of a few dozen images), so it runs anywhere.

    python -m benchmarks.gpu_throughput --work /tmp/imgclf-gpu --results "$OUT"     # on the device machine
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import Bench, add_arguments, epoch_speeds

CASES = [("model_s", 512, {}), ("resnet18", 512, {"pretrained": False})]
PRECISIONS = ("32", "bf16-mixed")


def make_tree(root: Path, classes: int = 10, per_class: int = 2500, size: int = 32) -> Path:
    """Noisy RGB images around one random base image per class, as a class-per-folder PNG tree."""
    import numpy as np

    from imgclf.data.sources.tree import write_tree

    if (root / ".complete").exists():
        return root
    rng = np.random.default_rng(0)
    names = [f"c{c}" for c in range(classes)]
    for c in range(classes):
        base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8).astype(int) // 2
        noise = rng.integers(0, 80, (per_class, size, size, 3), dtype=np.uint8)
        write_tree(root, None, np.clip(base + noise, 0, 255).astype(np.uint8), np.full(per_class, c), names)
    (root / ".complete").write_text("ok")
    return root


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(description=__doc__,
                                                 formatter_class=argparse.RawDescriptionHelpFormatter))


def main(argv: list[str] | None = None) -> int:
    import torch

    bench = Bench.from_args(build_parser().parse_args(argv))
    gpu = torch.cuda.is_available()
    if not gpu and not bench.smoke:
        print("no CUDA GPU here: nothing to measure")
        return 0
    data = make_tree(bench.work / "gpu-data", per_class=6 if bench.smoke else 2500)
    cases, precisions = (CASES[:1], PRECISIONS[:1]) if bench.smoke else (CASES, PRECISIONS)
    results = []
    for model, batch, extra in cases:
        for precision in precisions:
            name = f"{model}-{precision}"
            values = {"model": model, "img_size": 32, "epochs": 4, "batch_size": batch, "precision": precision,
                      "accelerator": "gpu", "augment": "hflip,crop=4", "num_workers": 8, **extra}
            if bench.smoke:
                values.update(epochs=2, batch_size=32, num_workers=2, accelerator="gpu" if gpu else "cpu")
            trained = bench.train(data, bench.work / "runs" / f"gpu-{name}", values=values, overwrite=True)
            history = trained.run.read_history()
            speeds = epoch_speeds(trained.run)
            results.append({"model": model, "precision": precision, "batch": values["batch_size"],
                            "channels_last": True, "images_per_s_median": statistics.median(speeds),
                            "images_per_s_all": speeds, "val_acc_last": history[-1].val_acc,
                            "wall_s": round(trained.wall_seconds, 1), "epochs": len(history)})
            print(name, f"{statistics.median(speeds):.0f} img/s", speeds)
    env = {"gpu": torch.cuda.get_device_name(0) if gpu else None, "torch": torch.__version__,
           "cuda": torch.version.cuda, "python": sys.version.split()[0]}
    from imgclf.io import write_json

    path = bench.results / "gpu_throughput.json"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json(path, {"benchmark": "gpu_throughput", "environment": env, "when": when,
                      "images": "32x32x3 PNG, 25,000 (20,000 train)", "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
