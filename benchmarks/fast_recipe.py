"""Our `fast-fmnist` recipe on Fashion-MNIST through `imgclf train`, with a wall-time budget per seed.

Fashion-MNIST 28x28 grayscale: 60,000 train (55,000 train + 5,000 validation split off, stratified) and the
10,000 official test images. Selection uses the validation split only; the test split is scored once.

    python benchmarks/fast_recipe.py --time-limit 10m --seeds 0,1
    python benchmarks/fast_recipe.py --time-limit 10m --seeds 0 --tag b128 -- --batch-size 128 --lr 0.1

Arguments after `--` go to `imgclf train` unchanged (a variant of the recipe); `--tag` names its result file,
results/fast_variant_<budget>_<tag>.json, apart from the recipe's own fast_recipe_<budget>*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import WORK, write_result  # noqa: E402


def fashion_tree() -> Path:
    from imgclf.data.sources import export_fashion_mnist

    out = WORK / "fashion-mnist-full"
    if not (out / ".complete").exists():
        export_fashion_mnist(out)
        (out / ".complete").write_text("ok")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-limit", default="10m")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--recipe", default="fast-fmnist")
    parser.add_argument("--tag", default="", help="result file suffix for a variant")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="-- then extra `imgclf train` arguments")
    args = parser.parse_args()
    overrides = args.overrides[1:] if args.overrides[:1] == ["--"] else args.overrides
    if overrides and not args.tag:
        raise SystemExit("a variant (arguments after --) needs --tag: its runs are not the recipe's")
    data = fashion_tree()
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        out = WORK / "runs" / f"{args.recipe}-{args.time_limit}-seed{seed}-{int(time.time())}"
        cmd = [sys.executable, "-m", "imgclf.cli", "train", str(data), "--recipe", args.recipe, "--time-limit",
               args.time_limit, "--seed", str(seed), "--val-split", str(5000 / 60000), "--out", str(out),
               "--no-progress", *overrides]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              env={**os.environ, "IMGCLF_CACHE": str(WORK / "cache")})
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        card = json.loads((out / "model.json").read_text())
        metrics = json.loads((out / "metrics.json").read_text())
        runs.append({"seed": seed, "run": str(out), "test_accuracy": metrics["accuracy"],
                     "test_accuracy_tta": metrics.get("tta", {}).get("accuracy"),
                     "val_accuracy": card["metrics"].get("val_accuracy"), "epochs": card["training"]["epochs_run"],
                     "train_seconds": card["training"]["train_seconds"], "images_per_s": card["training"]["images_per_s"],
                     "precision": card["training"]["precision"], "wall_seconds_total": round(wall, 1)})
        print(json.dumps(runs[-1]))
    command = " ".join(["imgclf train DATA --recipe", args.recipe, "--time-limit", args.time_limit,
                        "--seed SEED --val-split 0.0833", *overrides])
    common = {"recipe": args.recipe, "time_limit": args.time_limit, "data": "Fashion-MNIST 55k/5k/10k",
              "extra_args": overrides, "command": command}
    if args.tag:  # a variant: one file for the seeds of this invocation, named by its tag
        accs = [r["test_accuracy"] for r in runs]
        path = write_result(f"fast_variant_{args.time_limit}_{args.tag}",
                            {**common, "runs": runs, "mean_test_accuracy": sum(accs) / len(accs)})
    else:  # the recipe: one file per seed, so a later run of another seed adds to the table, never doubles one
        for run in runs:
            path = write_result(f"fast_recipe_{args.time_limit}_seed{run['seed']}", {**common, "runs": [run]})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
