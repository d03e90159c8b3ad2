"""Every reference recipe run end to end on its stand-in data (DATA.md) within a CPU budget, for docs/results.md.

The reference systems trained for hours on GPUs (or for hours on a CPU, S3); a 2-core machine runs each recipe
as shipped, with these changes only, each recorded in the JSON and the table:
  - a training budget per recipe (`time_limit`), so a recipe stops early where its epochs do not fit;
  - Fashion-MNIST subsets in the reference's shape (classes, image size, colour), per DATA.md: the 28x28 grey
    PNGs of `export_fashion_mnist`, resized and coloured by imgclf's decoder (img_size, color);
  - 64x64 instead of 224/227 for S1, S4 and S5's VGG16 step: at full size one epoch of 300 images takes minutes;
  - no ImageNet weights for VGG16 / MobileNetV2 install offline, so the transfer recipes keep their head,
    freezing and schedule on DATA.md's stand-in backbone: EfficientNet-Lite0 with its ImageNet weights.
s5-model-s and fast-fmnist on the full 55k/5k/10k data come from peers_600s.json and fast_recipe_10m_*.json.

    python -m benchmarks.recipes_repro --budget 120 --seeds 0
    python -m benchmarks.recipes_repro --adopt s3-fer-cnn=work/runs/repro-s3-fer-cnn-...   # a finished run

The smoke mode trains the first recipe of --only for one epoch at 32x32 on generated data.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.common import PLAN, Bench, add_arguments, load_result, run_row, stand_in_overrides


def row_from_run(name: str, run: Path, budget: float, wall: float | None) -> dict[str, object]:
    """One table row from a finished run directory (also adopts a run whose driver died after it finished)."""
    from imgclf.recipes import load_recipe

    row = run_row(run)
    return {"recipe": name, "seed": row["seed"], "model": row["model"], "stand_in": PLAN[name][2],
            "overrides": stand_in_overrides(name), "budget_seconds": budget, "epochs": row["epochs"],
            "epochs_planned": load_recipe(name).get("epochs"), "stopped": row["stopped"],
            **{k: row[k] for k in ("train_seconds", "images_per_s", "test_accuracy", "macro_f1", "val_accuracy")},
            "wall_seconds": wall, "run": row["run"]}


def save_rows(bench: Bench, rows: list[dict[str, object]], budget: float) -> Path:
    """Merged per (recipe, seed) into the existing JSON, so re-running some recipes keeps the others' rows."""
    old = load_result("recipes_repro", bench.results) or {}
    merged = {(r["recipe"], r["seed"]): r for r in old.get("runs", [])}
    merged.update({(r["recipe"], r["seed"]): r for r in rows})
    return bench.write_result("recipes_repro", {"budget_seconds": budget, "runs": list(merged.values())})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=150.0, help="training seconds per recipe")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--only", default=",".join(PLAN))
    parser.add_argument("--adopt", nargs="*", default=[], metavar="RECIPE=RUN_DIR",
                        help="add rows from finished run directories instead of training")
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    bench = Bench.from_args(args)
    names = args.only.split(",")
    unknown = [n for n in names + [a.split("=", 1)[0] for a in args.adopt] if n not in PLAN]
    if unknown:
        parser.error(f"--only and --adopt take recipes of the plan: {', '.join(PLAN)}. Received: {unknown}")
    if args.adopt:
        rows = [row_from_run(name, Path(run), args.budget, None) for name, run in (a.split("=", 1) for a in args.adopt)]
        print(f"wrote {save_rows(bench, rows, args.budget)}")
        return
    for seed in [int(s) for s in args.seeds.split(",")][: 1 if bench.smoke else None]:
        for name in names[: 1 if bench.smoke else None]:
            start = time.perf_counter()
            trained = bench.train_recipe(name, seed, {"time_limit": f"{int(args.budget)}s"})
            row = row_from_run(name, trained.run.path, args.budget, round(time.perf_counter() - start, 1))
            print({k: row[k] for k in ("recipe", "epochs", "train_seconds", "images_per_s", "test_accuracy")},
                  flush=True)
            # written after every recipe: a long run that dies keeps what it finished
            print(f"wrote {save_rows(bench, [row], args.budget)}", flush=True)


if __name__ == "__main__":
    main()
