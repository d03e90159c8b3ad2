"""Our `fast-fmnist` recipe on Fashion-MNIST through `imgclf train`, with a wall-time budget per seed.

Fashion-MNIST 28x28 grayscale: 60,000 train (55,000 train + 5,000 validation split off, stratified) and the
10,000 official test images. Selection uses the validation split only; the test split is scored once.

    python -m benchmarks.fast_recipe --time-limit 10m --seeds 0,1
    python -m benchmarks.fast_recipe --time-limit 10m --seeds 0 --tag b128 -- --batch-size 128 --lr 0.1

Arguments after `--` go to `imgclf train` unchanged (a variant of the recipe); `--tag` names its result file,
results/fast_variant_<budget>_<tag>.json, apart from the recipe's own fast_recipe_<budget>*.json. Each seed is
an `imgclf train` subprocess (the smoke mode trains in-process: one seed, one epoch, generated data).
"""

from __future__ import annotations

import argparse
import json

from benchmarks.common import Bench, add_arguments

ROW_KEYS = ("seed", "run", "test_accuracy", "test_accuracy_tta", "val_accuracy", "epochs", "train_seconds",
            "images_per_s", "precision", "wall_seconds_total")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-limit", default="10m")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--recipe", default="fast-fmnist")
    parser.add_argument("--tag", default="", help="result file suffix for a variant")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="-- then extra `imgclf train` arguments")
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    bench = Bench.from_args(args)
    overrides = args.overrides[1:] if args.overrides[:1] == ["--"] else args.overrides
    if overrides and not args.tag:
        parser.error("a variant (arguments after --) needs --tag: its runs are not the recipe's")
    data = bench.fashion_tree()
    seeds = [int(s) for s in args.seeds.split(",")][: 1 if bench.smoke else None]
    values = {"time_limit": args.time_limit, "val_split": 5000 / 60000}
    if bench.smoke:
        values.update(epochs=1, batch_size=32)
    runs = []
    for seed in seeds:
        trained = bench.train(data, bench.run_dir(f"{args.recipe}-{args.time_limit}-seed{seed}"), recipe=args.recipe,
                              values={**values, "seed": seed}, cli_args=overrides,
                              isolate=bool(overrides) or not bench.smoke)
        row = trained.row()
        runs.append({key: row[key] for key in ROW_KEYS})
        print(json.dumps(runs[-1]))
    command = " ".join(["imgclf train DATA --recipe", args.recipe, "--time-limit", args.time_limit,
                        "--seed SEED --val-split 0.0833", *overrides])
    common = {"recipe": args.recipe, "time_limit": args.time_limit, "data": "Fashion-MNIST 55k/5k/10k",
              "extra_args": overrides, "command": command}
    if args.tag:  # a variant: one file for the seeds of this invocation, named by its tag
        accs = [r["test_accuracy"] for r in runs]
        path = bench.write_result(f"fast_variant_{args.time_limit}_{args.tag}",
                                  {**common, "runs": runs, "mean_test_accuracy": sum(accs) / len(accs)})
    else:  # the recipe: one file per seed, so a later run of another seed adds to the table, never doubles one
        for run in runs:
            path = bench.write_result(f"fast_recipe_{args.time_limit}_seed{run['seed']}", {**common, "runs": [run]})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
