"""`imgclf tune` with a total time budget against `imgclf train --recipe` with the same budget (issue 22 item 3).

Data: a 10,000-image Fashion-MNIST subset (1,000 per class from the official train set; the validation split is
imgclf's own 10 % of it) and 1,000 per class of the official test set. Both arms start from the same recipe
(default fast-fmnist) and seed, in this process, one after the other:

- recipe: one `train` run with `time_limit = budget` (the recipe's budget schedule fits it);
- tune: `tune --trials N --time-limit budget` on the recipe's default search space: each trial trains at most
  budget / N, the search stops starting trials when less than half a share is left, selection on validation only,
  and the best trial alone is scored on the test split.

The recipe's budget counts training time only, the search's whole trials (data, training, card): the search pays
its per-trial overhead out of its budget. Both test accuracies, the best trial's settings and every trial are in
the JSON. Smoke mode: generated images, 2 trials, one epoch.

    python -m benchmarks.tune_vs_recipe --budget 30m --trials 6
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import SMOKE_TRAINING, Bench, add_arguments, run_row


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="30m", help="wall-time budget of each arm, such as 30m")
    parser.add_argument("--trials", type=int, default=6, help="trials of the search (each gets budget / trials)")
    parser.add_argument("--recipe", default="fast-fmnist")
    parser.add_argument("--per-class", type=int, default=1000, help="Fashion-MNIST training images per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="result file suffix: results/tune_vs_recipe<tag>.json")
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    import imgclf

    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    budget = "20s" if bench.smoke else args.budget
    trials = 2 if bench.smoke else args.trials
    data = bench.fashion_tree(args.per_class)
    values = {"seed": args.seed, "cache_dir": str(bench.cache_dir), "progress": False,
              **(SMOKE_TRAINING if bench.smoke else {})}

    start = time.perf_counter()
    trained = bench.train(data, bench.run_dir(f"tunecmp-recipe-{args.recipe}-{budget}"), recipe=args.recipe,
                          values={**values, "time_limit": budget})
    recipe_row = {**run_row(trained.run), "wall_seconds_total": round(time.perf_counter() - start, 1)}
    print(f"recipe {args.recipe}: test accuracy {recipe_row['test_accuracy']:.4f} "
          f"(val {recipe_row['val_accuracy']}), {recipe_row['epochs']} epochs, {recipe_row['wall_seconds_total']} s")

    start = time.perf_counter()
    result = imgclf.tune(data=str(data), recipe=args.recipe, trials=trials, time_limit=budget,
                         out=str(bench.run_dir(f"tunecmp-tune-{args.recipe}-{budget}")), log=print, **values)
    wall = round(time.perf_counter() - start, 1)
    record = result.record
    tune_row = {**run_row(result.best_run), "wall_seconds_total": wall, "search": str(result.path),
                "best_params": record.best.params, "seconds_used": record.seconds_used, "stopped": record.stopped,
                "trials": [t.model_dump(mode="json") for t in record.trials], "importances": record.importances}
    print(f"tune ({len(record.trials)} trials, {record.stopped}): test accuracy {tune_row['test_accuracy']:.4f} "
          f"(val {record.best.value:.4f}), {wall} s")
    gap = round(100 * (tune_row["test_accuracy"] - recipe_row["test_accuracy"]), 2)
    print(f"tune - recipe: {gap:+.2f} points of test accuracy")
    payload = {"budget": budget, "trials_asked": trials, "recipe": args.recipe, "per_class": args.per_class,
               "seed": args.seed, "recipe_run": recipe_row, "tune": tune_row, "tune_minus_recipe_points": gap}
    print(f"wrote {bench.write_result(f'tune_vs_recipe{args.tag}', payload)}")


if __name__ == "__main__":
    main()
