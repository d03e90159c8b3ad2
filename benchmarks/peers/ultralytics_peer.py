"""Ultralytics YOLO classify from scratch on a train/ val/ test/ PNG tree within a wall-time budget.

Runs in benchmarks/work/venv-ultralytics. The smallest classification model YAML (yolo11n-cls, no pretrained
weights), imgsz 32, Ultralytics' default recipe; its own `time=` argument (hours) fits the schedule to the
budget, with SGD in place of the "auto" optimizer (see below). Offline: settings are written to a private config dir with sync off, and plots are off (plotting
fetches a font).

Usage: python ultralytics_peer.py DATA_TREE BUDGET_SECONDS SEED WORK_DIR -> prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main(tree: Path, budget: float, seed: int, work: Path) -> None:
    os.environ.setdefault("YOLO_CONFIG_DIR", str(work / "config"))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import torch
    import ultralytics
    from ultralytics import YOLO, settings

    torch.set_num_threads(2)
    settings.update({"sync": False})
    model = YOLO("yolo11n-cls.yaml", task="classify")
    start = time.perf_counter()
    # optimizer SGD: "auto" picks MuSGD for runs over 10,000 iterations, measured here at about 6 s per batch of
    # 64 (10 img/s) against 0.17 s with SGD; the default would be a strawman, not the peer at its best.
    model.train(data=str(tree), imgsz=32, time=budget / 3600, epochs=1000, device="cpu", workers=2, batch=64,
                optimizer="SGD",
                seed=seed, pretrained=False, amp=False, plots=False, project=str(work / "runs"), name=f"seed{seed}",
                exist_ok=True, verbose=False)
    train_seconds = time.perf_counter() - start
    trainer = model.trainer
    epochs = int(trainer.epoch) + 1
    n_train = len(trainer.train_loader.dataset)
    best = YOLO(str(trainer.best))
    test = best.val(data=str(tree), split="test", imgsz=32, device="cpu", batch=64, plots=False,
                    project=str(work / "runs"), name=f"seed{seed}-test", exist_ok=True, verbose=False)
    print(json.dumps({"peer": "ultralytics", "version": ultralytics.__version__, "model": "yolo11n-cls.yaml",
                      "seed": seed, "epochs": epochs, "torch_threads": torch.get_num_threads(),
                      "train_seconds": round(train_seconds, 1),
                      "images_per_s": round(epochs * n_train / train_seconds, 1),
                      "test_accuracy": float(test.top1), "val_accuracy": float(trainer.metrics.get(
                          "metrics/accuracy_top1", float("nan")))}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
