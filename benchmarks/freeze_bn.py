"""Fine-tuning with and without `freeze_bn` (backbone BatchNorm kept in inference mode after unfreezing).

The S2 transfer recipe on its stand-in (DATA.md's EfficientNet-Lite0 ImageNet weights for MobileNetV2), a fixed
8 epochs (5 head-only, 3 unfrozen, no early stopping) so both arms train the same steps; per seed, both arms one
after the other. Reports validation loss per epoch (the first unfrozen epoch is where batch statistics of a
small data set replace the pretrained ones) and test accuracy.

    python benchmarks/freeze_bn.py --seeds 0,1
    python benchmarks/freeze_bn.py --adopt work/runs/freezebn-*     # rows from runs made earlier
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402
from recipes_repro import train_recipe  # noqa: E402

RECIPE = "s2-mobilenetv2-finetune"


def run_arm(seed: int, freeze_bn: bool) -> Path:
    return train_recipe(RECIPE, seed, {"epochs": 8, "freeze_epochs": 5, "early_stopping": None,
                                       "freeze_bn": freeze_bn}, prefix=f"freezebn-{int(freeze_bn)}")


def row_from_run(run: Path) -> dict[str, object]:
    import yaml

    from imgclf.io import read_csv, read_json

    config = yaml.safe_load((run / "config.yaml").read_text())
    history = read_csv(run / "history.csv")
    return {"seed": config["seed"], "freeze_bn": bool(config.get("freeze_bn", False)),
            "freeze_epochs": config["freeze_epochs"], "run": str(run),
            "val_loss": [round(float(h["val_loss"]), 4) for h in history],
            "val_acc": [round(float(h["val_acc"]), 4) for h in history],
            "test_accuracy": read_json(run / "metrics.json")["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--adopt", nargs="*", default=None, help="finished run directories to read instead")
    args = parser.parse_args()
    runs = [Path(p) for p in args.adopt] if args.adopt is not None else [
        run_arm(int(seed), freeze_bn) for seed in args.seeds.split(",") for freeze_bn in (False, True)]
    rows = sorted((row_from_run(run) for run in runs), key=lambda r: (r["seed"], r["freeze_bn"]))
    summary = {}
    for arm in (False, True):
        mine = [r for r in rows if r["freeze_bn"] is arm]
        first = [r["val_loss"][r["freeze_epochs"]] for r in mine]  # the first unfrozen epoch
        summary[f"freeze_bn={arm}"] = {"first_unfrozen_val_loss": first,
                                       "test_accuracy_mean": statistics.mean(r["test_accuracy"] for r in mine)}
    for arm, s in summary.items():
        losses = ", ".join(f"{v:.3f}" for v in s["first_unfrozen_val_loss"])
        print(f"{arm:16s} first unfrozen val loss {losses}   mean test accuracy {s['test_accuracy_mean']:.3f}")
    print(f"wrote {write_result('freeze_bn', {'recipe': RECIPE, 'runs': rows, 'summary': summary})}")


if __name__ == "__main__":
    main()
