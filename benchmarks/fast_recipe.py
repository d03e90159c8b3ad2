"""Our `fast` recipes on Fashion-MNIST through `imgclf train`, with a wall-time budget per seed.

Fashion-MNIST 28x28 grayscale: 60,000 train (55,000 train + 5,000 validation split off, stratified) and the
10,000 official test images. Selection uses the validation split only; the test split is scored once.

    python -m benchmarks.fast_recipe --time-limit 10m --seeds 0,1
    python -m benchmarks.fast_recipe --time-limit 10m --seeds 0 --tag b128 -- --batch-size 128 --lr 0.1
    python -m benchmarks.fast_recipe --time-limit 10m --seeds 0 --recipe fast,fast-fmnist --together

Arguments after `--` go to `imgclf train` unchanged (a variant of the recipe); `--tag` names its result file,
results/fast_variant_<budget>_<tag>.json, apart from the recipe's own fast_recipe_<budget>_<cpu>_seed<S>.json (cpu:
avx2, avx512 or avx512bf16, the class of the machine). Each seed is an `imgclf train` subprocess (the smoke mode
trains in-process: one seed, one epoch, generated data).

Several recipes (`--recipe fast,fast-fmnist`: the self-sizing recipe against the fixed width-16 one) run one after
the other per seed, or with `--together` at the same time, so that a machine shared with other work loads both
alike (each then gets about half the cores: compare them with each other, not with runs made alone). Recipes
trained together go to one file, fast_pair_<budget>_seed<S>.json, with the load average before and after. The
self-sizing recipe's results (recipe_fast_<budget>_<cpu>_seed<S>.json) add its probe: candidates, speeds, the
choice, and the measured epoch speed over the probe's speed of the chosen width (what EPOCH_EFFICIENCY assumes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from imgclf import hardware

from benchmarks.common import Bench, add_arguments, machine_tag

# DATA.md's stand-ins as files at their own size: (side, PIL mode, images per class and split, classes)
STAND_INS = {"s3": (48, "L", 300, 6), "s5": (32, "RGB", 150, 10)}

ROW_KEYS = ("seed", "run", "test_accuracy", "test_accuracy_tta", "val_accuracy", "epochs", "train_seconds",
            "images_per_s", "precision", "wall_seconds_total")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-limit", default="10m")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--recipe", default="fast-fmnist", help="a recipe, or several separated by commas")
    parser.add_argument("--together", action="store_true",
                        help="with several recipes: train them at the same time (one subprocess each) per seed")
    parser.add_argument("--tag", default="", help="result file suffix for a variant")
    parser.add_argument("--stand-in", choices=sorted(STAND_INS), default=None,
                        help="train on a DATA.md stand-in written as image files of its own size and colour "
                             "instead of the full Fashion-MNIST (what the self-sizing recipe reads its input from)")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="-- then extra `imgclf train` arguments")
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    bench = Bench.from_args(args)
    overrides = args.overrides[1:] if args.overrides[:1] == ["--"] else args.overrides
    if overrides and not args.tag:
        parser.error("a variant (arguments after --) needs --tag: its runs are not the recipe's")
    data = stand_in_tree(bench, args.stand_in) if args.stand_in else bench.fashion_tree()
    seeds = [int(s) for s in args.seeds.split(",")][: 1 if bench.smoke else None]
    recipes = [r.strip() for r in args.recipe.split(",") if r.strip()]
    if args.tag and len(recipes) > 1:
        parser.error("a variant (--tag) is of one recipe")
    values = {"time_limit": args.time_limit, "val_split": 0.1 if args.stand_in else 5000 / 60000}
    if bench.smoke:
        values.update(epochs=1, batch_size=32)
    runs: dict[str, list[dict]] = {r: [] for r in recipes}
    together = args.together and len(recipes) > 1
    for seed in seeds:
        load_before = os.getloadavg()
        if together and not bench.smoke:
            trained = _together(bench, data, recipes, seed, values, overrides, args.time_limit)
        else:
            trained = {recipe: bench.train(data, bench.run_dir(f"{recipe}-{args.time_limit}-seed{seed}"),
                                           recipe=recipe, values={**values, "seed": seed}, cli_args=overrides,
                                           isolate=bool(overrides) or not bench.smoke) for recipe in recipes}
        for recipe, run in trained.items():
            row = run.row()
            runs[recipe].append({**{key: row[key] for key in ROW_KEYS}, **sizing_row(run.run)})
            print(json.dumps({"recipe": recipe, **runs[recipe][-1]}))
            if not args.tag and not together:  # each seed's file when done: a seed cut short loses only itself
                print(f"wrote {_write(bench, args, recipe, runs[recipe][-1:], overrides, together)}")
        if together:
            rows = {recipe: runs[recipe][-1] for recipe in recipes}
            print(f"wrote {write_pair(bench, args.time_limit, seed, rows, args.stand_in, load_before)}")
    if args.tag:
        print(f"wrote {_write(bench, args, recipes[0], runs[recipes[0]], overrides, together)}")


def write_pair(bench, budget: str, seed: int, rows: dict[str, dict], stand_in: str | None,
               load_before: tuple[float, ...]):
    """Recipes trained together (--together): one file, fast_pair_<budget>[_<stand-in>]_seed<S>.json, apart from
    each recipe's own results, which were measured alone."""
    data = (f"stand-in {stand_in}: Fashion-MNIST " + "{2}/class, {3} classes, {0}x{0} {1}".format(*STAND_INS[stand_in])
            if stand_in else "Fashion-MNIST 55k/5k/10k")
    name = f"fast_pair_{budget}{'_' + stand_in if stand_in else ''}_seed{seed}"
    return bench.write_result(name, {
        "time_limit": budget, "seed": seed, "data": data, "recipes": list(rows), "runs": rows,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "command": f"python -m benchmarks.fast_recipe --time-limit {budget} --seeds {seed} --recipe "
                   f"{','.join(rows)} --together" + (f" --stand-in {stand_in}" if stand_in else "")})


def stand_in_tree(bench, name: str):
    """The Fashion-MNIST subset of a stand-in, resized into files of the stand-in's side and colour (the fixed
    recipes get theirs from the decoder's img_size; the self-sizing one reads it from the files)."""
    from PIL import Image

    side, mode, per_class, classes = STAND_INS[name]
    source = bench.fashion_tree(min(per_class, 6) if bench.smoke else per_class, classes)
    out = bench.work / f"standin-{name}-{side}-{mode}-{per_class}-{classes}"
    if (out / ".complete").exists():
        return out
    for path in sorted(source.rglob("*.png")):
        target = out / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as img:
            img.convert(mode).resize((side, side), Image.BILINEAR).save(target)
    (out / ".complete").write_text("ok")
    return out


def _together(bench, data, recipes: list[str], seed: int, values: dict, overrides: list[str], budget: str) -> dict:
    """One `imgclf train` subprocess per recipe, started together (the same load on each)."""
    from imgclf.io import write_yaml
    from imgclf.records import RunDir

    from benchmarks.common import Trained

    procs, start = {}, time.perf_counter()
    for recipe in recipes:
        out = bench.run_dir(f"{recipe}-{budget}-seed{seed}")
        out.parent.mkdir(parents=True, exist_ok=True)
        config = out.parent / f"{out.name}.yaml"
        write_yaml(config, {"cache_dir": str(bench.cache_dir), "progress": False, **values, "seed": seed,
                            "data": str(data), "out": str(out), "recipe": recipe})
        log = open(out.parent / f"{out.name}.log", "wb")
        procs[recipe] = (out, log, subprocess.Popen([sys.executable, "-m", "imgclf.cli", "train", "--config",
                                                     str(config), *overrides], stdout=log, stderr=subprocess.STDOUT))
    done = {}
    for recipe, (out, log, proc) in procs.items():
        if proc.wait() != 0:
            raise RuntimeError(f"imgclf train --recipe {recipe} exited with {proc.returncode}: see {log.name}")
        log.close()
        # waited in turn: a run that ended before the one waited on first reads that one's end
        done[recipe] = Trained(RunDir(out), time.perf_counter() - start, None, 0, out.parent / f"{out.name}.log")
    return done


def sizing_row(run) -> dict:
    """The probe of a self-sizing run (empty for fixed recipes): candidates, choice, and the run's measured
    training speed over the probe's for the chosen candidate."""
    card, config = run.read_card(), run.read_config()
    trained = {"batch_size": config.batch_size, "lr": config.lr}  # after the sizing's batch rule
    if card.sizing is None:
        return {"width": card.model_args.get("width"), **trained}
    chosen = card.sizing.candidates[card.sizing.chosen]
    speed = card.training.images_per_s
    return {"width": chosen.model_args.get("width"), **trained, "augment": card.sizing.augment, "ema": card.sizing.ema,
            "input": f"{card.img_size}x{card.img_size} {card.color}",
            "probe_seconds": card.sizing.probe_seconds, "sizing_reason": card.sizing.reason,
            "candidates": [c.model_dump() for c in card.sizing.candidates],
            "epoch_over_probe_speed": round(speed / chosen.images_per_s, 3) if speed and chosen.images_per_s else None}


def _write(bench, args, recipe: str, runs: list[dict], overrides: list[str], together: bool):
    command = " ".join(["imgclf train DATA --recipe", recipe, "--time-limit", args.time_limit,
                        "--seed SEED --val-split 0.0833", *overrides])
    if args.stand_in:
        command = command.replace(" --val-split 0.0833", f" --val-split 0.1 (--stand-in {args.stand_in})")
    common = {"recipe": recipe, "time_limit": args.time_limit, "data": "Fashion-MNIST 55k/5k/10k",
              "stand_in": args.stand_in, "extra_args": overrides, "command": command,
              "together_with": args.recipe if together else None}
    if args.stand_in:
        common["data"] = f"stand-in {args.stand_in}: Fashion-MNIST " + "{2}/class, {3} classes, {0}x{0} {1}".format(
            *STAND_INS[args.stand_in])
    if args.tag:  # a variant: one file for the seeds of this invocation, named by its tag (and stand-in)
        accs = [r["test_accuracy"] for r in runs]
        where = f"{args.stand_in}_" if args.stand_in else ""
        return bench.write_result(f"fast_variant_{args.time_limit}_{where}{args.tag}",
                                  {**common, "runs": runs, "mean_test_accuracy": sum(accs) / len(accs)})
    # the recipe: one file per seed, so a later run of another seed adds to the table, never doubles one;
    # fast-fmnist keeps its historical name
    prefix = "fast_recipe" if recipe == "fast-fmnist" else f"recipe_{recipe.replace('-', '_')}"
    if args.stand_in:
        prefix += f"_{args.stand_in}"
    # the CPU class in the name: the same budget trains 4-5x more on one class than another, and each keeps its file
    tag = machine_tag(hardware.describe())
    path = None
    for run in runs:
        path = bench.write_result(f"{prefix}_{args.time_limit}_{tag}_seed{run['seed']}", {**common, "runs": [run]})
    return path


if __name__ == "__main__":
    main()
