"""`--lr auto` (Lightning's LR finder) against a 5-value manual grid of learning rates at equal epochs.

Issue 22 item 2: on Fashion-MNIST subsets with model_s and fast_resnet, --lr auto should land within 0.5 points
of the best grid value's accuracy. Every arm is an ordinary run (same data, seed, epochs, optimiser); the grid
is 3e-4, 1e-3, 3e-3, 1e-2, 3e-2. Selection of the grid's best is by validation accuracy at the kept epoch, the
comparison by test accuracy; both are in the JSON. The smoke mode: generated images, one model, two grid
values, one epoch.

    python -m benchmarks.lr_auto --per-class 1000 --epochs 10 --seeds 0 [--reuse]
    python -m benchmarks.lr_auto --per-class 1000 --epochs 10 --seeds 1 --models model_s --tag _seed1_model_s

`--reuse` finishes a benchmark that was cut short: grid arms already completed under work/runs with the same
settings are read back (marked `reused` in the JSON), the auto arms are always trained.

`--grid-from` measures a new suggestion rule against a grid trained in an earlier session: only the auto arms
train, the grid arms are the rows of the named result files with the same model, seed, images and epochs
(marked `reused` with the file's name). `--check-lr` trains one grid value again beside them (first model,
first seed), so the JSON shows whether this machine and code reproduce the grid read back (`rechecked`, not
used in the summary). `--sweep-seeds` runs the finder alone at more seeds, recording its suggestion.

    python -m benchmarks.lr_auto --seeds 0,1 --tag _end_of_fall_earlier_grid --check-lr 0.001 \
        --grid-from benchmarks/results/lr_auto.json,benchmarks/results/lr_auto_seed1.json,...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import SMOKE_TRAINING, Bench, add_arguments, load_result

MODELS = ("model_s", "fast_resnet")
GRID = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def arm(bench: Bench, data, model: str, lr: float | str, seed: int, epochs: int,
        reuse: bool = False) -> dict[str, object]:
    """One run at `lr` (a number, or "auto"). With `reuse`, a grid arm that already completed under work/runs
    with every setting the same is read back instead of trained again; `auto` always trains, since its learning
    rate comes from the finder code being measured."""
    values = arm_values(bench, model, lr, seed, epochs)
    name = f"lrauto-{model}-{lr}-seed{seed}"
    earlier = _completed(bench, name, data, values) if reuse and lr != "auto" else None
    if earlier is not None:
        return {**_row(earlier, values), "wall_seconds_total": None, "reused": True}
    trained = bench.train(data, bench.run_dir(name), values=values)
    return {**_row(trained.run.path, values), "wall_seconds_total": round(trained.wall_seconds, 1), "reused": False}


def arm_values(bench: Bench, model: str, lr: float | str, seed: int, epochs: int) -> dict[str, object]:
    from imgclf.models import get_model_info

    # smoke: the finder's 100 steps are most of the time, so the images are the model's smallest (model_s: 8 px,
    # a sixteenth of SMOKE_TRAINING's 32 px work per step)
    smoke = {**{k: v for k, v in SMOKE_TRAINING.items() if k != "epochs"},
             "img_size": max(8, get_model_info(model).min_img_size)}
    return {"model": model, "lr": lr, "seed": seed, "epochs": epochs, "early_stopping": None,
            **(smoke if bench.smoke else {})}


def _completed(bench: Bench, name: str, data, values: dict[str, object]):
    """The newest completed run named `name`-<time> under work/runs that trained the same experiment: every
    setting equal (imgclf's own test for reusing a finished fold) once `values` are resolved on `data`."""
    from imgclf.pipeline.experiment import experiment_settings
    from imgclf.pipeline.resolve import resolve_config
    from imgclf.records import RunDir
    from imgclf.runs import read_run

    runs = bench.work / "runs"
    wanted = experiment_settings(resolve_config(None, **values, data=str(data)))
    for path in sorted(runs.glob(f"{name}-*"), reverse=True):
        run = RunDir(path)
        # completed with a test score: a run without a test split is listed completed with a val score only
        if read_run(path, runs).status != "completed" or not run.has("metrics.json"):
            continue
        if experiment_settings(run.read_config()) == wanted:
            return path
    return None


def _row(path, values: dict[str, object]) -> dict[str, object]:
    from imgclf.records import RunDir
    from imgclf.runs import read_run

    run = RunDir(path)
    card, config = run.read_card(), run.read_config()
    return {"model": values["model"], "seed": values["seed"], "lr_setting": values["lr"], "lr_used": config.lr,
            "epochs": values["epochs"], "val_accuracy": card.metrics.val_accuracy,
            "test_accuracy": run.read_metrics().accuracy,
            "lr_find": None if card.lr_find is None else card.lr_find.model_dump(), "run": str(run.path),
            "created": read_run(path).created}


def sweep(bench: Bench, data, model: str, seed: int, epochs: int) -> dict[str, object]:
    """The finder alone, with an auto arm's settings at `seed`: its suggestion and lowest-loss rate."""
    import imgclf
    from imgclf.errors import ImgclfError

    from imgclf.pipeline.lr_find import SETTINGS_OF_A_TRAINING

    # the arm's settings less what the sweep does not use (lr-find refuses them: epochs, early stopping, ...)
    values = {k: v for k, v in arm_values(bench, model, "auto", seed, epochs).items()
              if k != "lr" and k not in SETTINGS_OF_A_TRAINING}
    try:
        found = imgclf.lr_find(data=str(data), out=str(bench.run_dir(f"lrfind-{model}-seed{seed}")), **values)
    except ImgclfError as error:  # no suggestion at this seed: a finding, not a reason to lose the trained arms
        return {"model": model, "seed": seed, "suggestion": None, "lowest_loss_lr": None, "error": str(error)}
    return {"model": model, "seed": seed, "suggestion": found.suggestion, "lowest_loss_lr": found.lowest_loss_lr}


def grid_rows(files: list[Path], models: list[str], seeds: list[int], grid: tuple[float, ...], per_class: int,
              epochs: int, smoke: bool) -> list[dict[str, object]]:
    """The grid arms of earlier result files for these models and seeds, at the same images and epochs; the
    later file's row where two hold the same arm. Refused when one of the grid's arms is in none of them."""
    found: dict[tuple, dict[str, object]] = {}
    for path in files:
        result = load_result(path.stem, path.parent)
        if result is None:
            raise SystemExit(f"--grid-from: {path} is no file")
        theirs = (result["per_class"], result["epochs"], result.get("smoke", False))
        if theirs != (per_class, epochs, smoke):
            raise SystemExit(f"--grid-from: {path} holds per_class {theirs[0]}, epochs {theirs[1]}, smoke "
                             f"{theirs[2]}; this run is per_class {per_class}, epochs {epochs}, smoke {smoke}")
        for row in result["runs"]:
            if row["lr_setting"] != "auto":
                found[(row["model"], row["seed"], row["lr_setting"])] = {**row, "reused": Path(path).name}
    wanted = [(m, s, lr) for m in models for s in seeds for lr in grid]
    missing = [key for key in wanted if key not in found]
    if missing:
        raise SystemExit(f"--grid-from: no arm for {missing} in {', '.join(map(str, files))}")
    return [found[key] for key in wanted]


def summarise(rows: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """Per model and seed: the grid's best (by validation accuracy) against auto, in test-accuracy points."""
    out = {}
    for key in sorted({(r["model"], r["seed"]) for r in rows}):
        mine = [r for r in rows if (r["model"], r["seed"]) == key]
        auto = next(r for r in mine if r["lr_setting"] == "auto")
        grid = [r for r in mine if r["lr_setting"] != "auto"]
        best = max(grid, key=lambda r: (r["val_accuracy"] or 0.0))
        gap = round(100 * (best["test_accuracy"] - auto["test_accuracy"]), 2)
        out[f"{key[0]} seed {key[1]}"] = {"auto_lr": auto["lr_used"], "auto_test_accuracy": auto["test_accuracy"],
                                          "best_grid_lr": best["lr_setting"],
                                          "best_grid_test_accuracy": best["test_accuracy"],
                                          "points_behind_best": gap, "within_0_5_points": gap <= 0.5}
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=1000, help="Fashion-MNIST images per class and split")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--reuse", action="store_true",
                        help="read grid arms back from completed runs of the same settings under work/runs (a "
                             "benchmark cut short, or a new suggestion rule measured against the same grid)")
    parser.add_argument("--grid-from", default="", help="comma-separated result files whose grid arms are read "
                        "instead of trained (a new suggestion rule against an earlier session's grid)")
    parser.add_argument("--check-lr", type=float, default=None, help="with --grid-from: train this grid value "
                        "again (first model, first seed), to show whether the grid read back reproduces here")
    parser.add_argument("--sweep-seeds", default="", help="also sweep (no training) at these seeds and record "
                        "each model's suggestion and lowest-loss rate: how the suggestion moves with the seed")
    parser.add_argument("--tag", default="", help="result file suffix: results/lr_auto<tag>.json (later seeds: "
                        "_seed<S> or _seed<S>_<model>, which docs/results.md shows beside the first)")
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    models = args.models.split(",")[: 1 if bench.smoke else None]
    grid = GRID[1:5:2] if bench.smoke else GRID
    epochs = 1 if bench.smoke else args.epochs
    seeds = [int(s) for s in args.seeds.split(",") if s][: 1 if bench.smoke else None]
    if args.check_lr is not None and (not args.grid_from or args.check_lr not in grid):
        raise SystemExit(f"--check-lr {args.check_lr:g}: a value of the grid ({', '.join(f'{g:g}' for g in grid)}) "
                         "with --grid-from, whose arm it trains again")
    data = bench.fashion_tree(args.per_class)
    if args.grid_from:
        files = [Path(f) for f in args.grid_from.split(",")]
        earlier = grid_rows(files, models, seeds, grid, args.per_class, epochs, bench.smoke)  # before training
        rows = [*(arm(bench, data, model, "auto", seed, epochs) for model in models for seed in seeds), *earlier]
        rechecked = [arm(bench, data, models[0], args.check_lr, seeds[0], epochs)] if args.check_lr else []
    else:
        rows = [arm(bench, data, model, lr, seed, epochs, args.reuse)
                for model in models for seed in seeds for lr in ("auto", *grid)]
        rechecked = []
    summary = summarise(rows)
    for name, s in summary.items():
        print(f"{name:22s} auto lr {s['auto_lr']:.3g} test {s['auto_test_accuracy']:.4f}   best grid lr "
              f"{s['best_grid_lr']:g} test {s['best_grid_test_accuracy']:.4f}   behind by {s['points_behind_best']} pt")
    sweeps = [sweep(bench, data, model, int(seed), epochs) for model in models
              for seed in args.sweep_seeds.split(",") if seed]
    payload = {"per_class": args.per_class, "epochs": epochs, "smoke": bench.smoke, "grid": list(grid), "runs": rows,
               "summary": summary,
               **({"rechecked": rechecked} if rechecked else {}), **({"sweeps": sweeps} if sweeps else {})}
    print(f"wrote {bench.write_result(f'lr_auto{args.tag}', payload)}")


if __name__ == "__main__":
    main()
