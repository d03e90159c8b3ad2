"""Fine-tuning with and without `freeze_bn` (backbone BatchNorm kept in inference mode after unfreezing).

The S2 transfer recipe on its stand-in (DATA.md's EfficientNet-Lite0 ImageNet weights for MobileNetV2), a fixed
8 epochs (5 head-only, 3 unfrozen, no early stopping) so both arms train the same steps; per seed, both arms one
after the other. Reports validation loss per epoch (the first unfrozen epoch is where batch statistics of a
small data set replace the pretrained ones) and test accuracy. The smoke mode trains 2 epochs (1 head-only).

    python -m benchmarks.freeze_bn --seeds 0,1
    python -m benchmarks.freeze_bn --adopt work/runs/freezebn-*     # rows from runs made earlier
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import Bench, add_arguments

RECIPE = "s2-mobilenetv2-finetune"


def run_arm(bench: Bench, seed: int, freeze_bn: bool) -> Path:
    epochs, freeze = (2, 1) if bench.smoke else (8, 5)
    return bench.train_recipe(RECIPE, seed, {"epochs": epochs, "freeze_epochs": freeze, "early_stopping": "none",
                                             "freeze_bn": freeze_bn}, prefix=f"freezebn-{int(freeze_bn)}").run.path


def row_from_run(run: Path) -> dict[str, object]:
    from imgclf.records import RunDir

    run_dir = RunDir(run)
    config, history = run_dir.read_config(), run_dir.read_history()
    return {"seed": config.seed, "freeze_bn": config.freeze_bn, "freeze_epochs": config.freeze_epochs, "run": str(run),
            "val_loss": [round(h.value("val_loss"), 4) for h in history],
            "val_acc": [round(h.value("val_acc"), 4) for h in history],
            "test_accuracy": run_dir.read_metrics().accuracy}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--adopt", nargs="*", default=None, help="finished run directories to read instead")
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    from imgclf.stats import mean_std

    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    seeds = [int(s) for s in args.seeds.split(",")][: 1 if bench.smoke else None]
    runs = [Path(p) for p in args.adopt] if args.adopt is not None else [
        run_arm(bench, seed, freeze_bn) for seed in seeds for freeze_bn in (False, True)]
    rows = sorted((row_from_run(run) for run in runs), key=lambda r: (r["seed"], r["freeze_bn"]))
    summary = {}
    for arm in (False, True):
        mine = [r for r in rows if r["freeze_bn"] is arm]
        first = [r["val_loss"][r["freeze_epochs"]] for r in mine]  # the first unfrozen epoch
        summary[f"freeze_bn={arm}"] = {"first_unfrozen_val_loss": first,
                                       "test_accuracy_mean": mean_std(r["test_accuracy"] for r in mine).mean}
    for arm, s in summary.items():
        losses = ", ".join(f"{v:.3f}" for v in s["first_unfrozen_val_loss"])
        print(f"{arm:16s} first unfrozen val loss {losses}   mean test accuracy {s['test_accuracy_mean']:.3f}")
    print(f"wrote {bench.write_result('freeze_bn', {'recipe': RECIPE, 'runs': rows, 'summary': summary})}")


if __name__ == "__main__":
    main()
