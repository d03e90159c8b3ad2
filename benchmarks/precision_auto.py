"""Does bf16 autocast cost accuracy at equal epochs? The measurement behind `precision: auto` as the default.

Issue 23 item 5: `auto` trains under bf16 autocast where the CPU has native bf16 (and mixed precision on a
GPU), fp32 elsewhere. Before making it the default, this trains the same runs twice, `--precision 32` and
`--precision bf16-mixed` forced, at equal epochs and seeds, and compares test accuracy:

- `s5-model-s` (model_s, Adam, plateau schedule, early stopping off so that both arms train every epoch) on
  its stand-in, Fashion-MNIST at 32x32 RGB;
- the `fast-fmnist` recipe's network and optimiser (fast_resnet width 16, SGD + Nesterov, label smoothing,
  pad-and-crop + flip) at 28x28 grey, with a one-cycle schedule over the epochs instead of the wall-clock
  budget, whose epoch count would depend on the arm's speed;
- the `fast` recipe the same way, at the batch its sizing rule trains a small data set at (32, the learning rate
  scaled alike), fixed rather than probed so that both arms train the same model: at 200 images per class
  `fast-fmnist`'s batch of 256 gives too few steps for either precision to learn.

On a CPU without native bf16 the bf16 arm is emulated and slow: the images/s in the JSON say how fast each arm
ran on this machine, the accuracy columns are what the default rests on.

    python -m benchmarks.precision_auto --per-class 500 --epochs 6 --seeds 0,1 [--recipes fast --tag _fast]
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks.common import SMOKE_TRAINING, Bench, add_arguments, epoch_speeds

PRECISIONS = ("32", "bf16-mixed")
# recipe -> what this benchmark changes in it besides epochs, seed and precision
ARMS: dict[str, dict[str, object]] = {
    "s5-model-s": {"early_stopping": "none", "restore_best": False},
    "fast-fmnist": {"schedule": "onecycle", "time_limit": "none"},
    "fast": {"sizing": "fixed", "batch_size": 32, "lr": 0.025, "schedule": "onecycle", "time_limit": "none"},
}


def arm(bench: Bench, data, recipe: str, precision: str, seed: int, epochs: int) -> dict[str, object]:
    from imgclf.records import RunDir

    values = {**ARMS[recipe], "precision": precision, "seed": seed, "epochs": epochs}
    if recipe == "s5-model-s":
        values.update(img_size=32, color="rgb")
    if bench.smoke:
        values.update({k: v for k, v in SMOKE_TRAINING.items() if k != "epochs"})
    trained = bench.train(data, bench.run_dir(f"precision-{recipe}-{precision}-seed{seed}"), recipe=recipe,
                          values=values)
    run = RunDir(trained.run.path)
    speeds = epoch_speeds(trained.run)
    return {"recipe": recipe, "precision": precision, "seed": seed, "epochs": epochs,
            "test_accuracy": run.read_metrics().accuracy, "val_accuracy": run.read_card().metrics.val_accuracy,
            "train_images_per_second": round(statistics.median(speeds), 1) if speeds else None,
            "run": str(run.path)}


def summarise(rows: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """Per recipe: mean test accuracy of each precision over the seeds, and bf16 minus fp32 per seed (points)."""
    out = {}
    for recipe in sorted({r["recipe"] for r in rows}):
        mine = [r for r in rows if r["recipe"] == recipe]
        by = {(r["precision"], r["seed"]): r for r in mine}
        seeds = sorted({r["seed"] for r in mine})
        diffs = [round(100 * (by["bf16-mixed", s]["test_accuracy"] - by["32", s]["test_accuracy"]), 2)
                 for s in seeds]
        out[recipe] = {
            **{f"mean_test_accuracy_{p}": round(statistics.mean(by[p, s]["test_accuracy"] for s in seeds), 4)
               for p in PRECISIONS},
            "bf16_minus_fp32_points_per_seed": diffs,
            "mean_bf16_minus_fp32_points": round(statistics.mean(diffs), 2),
            **{f"images_per_second_{p}": statistics.median(by[p, s]["train_images_per_second"] or 0 for s in seeds)
               for p in PRECISIONS}}
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=500, help="Fashion-MNIST images per class and split")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--recipes", default="s5-model-s,fast-fmnist")
    parser.add_argument("--tag", default="", help="result file suffix: results/precision_auto<tag>.json")
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    recipes = args.recipes.split(",")
    for recipe in recipes:
        if recipe not in ARMS:
            raise SystemExit(f"--recipes: {recipe!r} is not one of {', '.join(ARMS)}")
    epochs = 1 if bench.smoke else args.epochs
    seeds = [int(s) for s in args.seeds.split(",")][: 1 if bench.smoke else None]
    data = bench.fashion_tree(args.per_class)
    # precisions interleaved within each seed, so that a change in the machine's load hits both arms alike
    rows = [arm(bench, data, recipe, precision, seed, epochs)
            for recipe in recipes for seed in seeds for precision in PRECISIONS]
    summary = summarise(rows)
    for recipe, s in summary.items():
        print(f"{recipe:12s} test fp32 {s['mean_test_accuracy_32']:.4f}  bf16 {s['mean_test_accuracy_bf16-mixed']:.4f}"
              f"  bf16-fp32 per seed {s['bf16_minus_fp32_points_per_seed']} pt   img/s fp32 "
              f"{s['images_per_second_32']}  bf16 {s['images_per_second_bf16-mixed']}")
    payload = {"per_class": args.per_class, "epochs": epochs, "seeds": seeds, "recipes": recipes, "tag": args.tag,
               "runs": rows, "summary": summary}
    print(f"wrote {bench.write_result(f'precision_auto{args.tag}', payload)}")


if __name__ == "__main__":
    main()
