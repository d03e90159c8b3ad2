"""Prediction at `precision: auto` (bf16 autocast where the CPU has native bf16) against fp32: speed and answers.

Issue 23 item 5 asks for `auto` as the default for inference too, once it is shown to cost no accuracy. For each
run, its test split is decoded once, then `Classifier.infer_pixels` (network, temperature, unknown detector: what
predict, serve, evaluate and the API run) is timed at fp32 and at auto, interleaved, `--repeats` times each after
one warm-up pass, at batch 256; the answers of the two are compared image by image: accuracy, top-1 agreement,
the largest change of a probability, unknown flags that differ, ECE. A third arm, fp32 with the batch norms kept
(`fold_batch_norm=False`), times what folding them into the convolutions buys and checks it changes no answer.

Runs: `--runs RUN ...` (any trained runs with a test split, such as the 10-minute `fast` runs of
benchmarks/fast_recipe.py), or by default two trained here on a Fashion-MNIST subset: `fast-fmnist` (fast_resnet,
28x28 grey) and `s5-model-s` (model_s, 32x32 RGB), `--epochs` each (short: enough for answers to compare, not
trained to their end).

    python -m benchmarks.infer_precision --per-class 1000 --epochs 4 --repeats 3
    python -m benchmarks.infer_precision --runs benchmarks/work/runs/fast-10m-seed0-* --tag _fast10m
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.common import SMOKE_TRAINING, Bench, add_arguments

# arm -> (precision, batch norms folded): fp32 as the network trained (how prediction ran before both changes),
# fp32 folded, and the default (auto, folded)
ARMS = {"32-unfolded": ("32", False), "32": ("32", True), "auto": ("auto", True)}
TRAINED = {"fast-fmnist": {"schedule": "onecycle", "time_limit": "none"},
           "s5-model-s": {"early_stopping": "none", "restore_best": False, "img_size": 32, "color": "rgb"}}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", type=Path, default=None, help="trained runs to measure (default: "
                        "train fast-fmnist and s5-model-s here)")
    parser.add_argument("--per-class", type=int, default=1000, help="Fashion-MNIST images per class and split for "
                        "the runs trained here")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the runs trained here")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tag", default="", help="result file suffix: results/infer_precision<tag>.json")
    return add_arguments(parser)


def test_split(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The run's test split as uint8 pixels at its size and colour mode, and the labels."""
    from imgclf.data.decode import open_image
    from imgclf.records import RunDir

    run = RunDir(run_dir)
    card = run.read_card()
    files, labels = run.read_dataset().split_paths("test")
    pixels = np.stack([open_image(f, card.img_size, card.color, card.interpolation) for f in files])
    return pixels, np.asarray(labels)


def ece(probs: np.ndarray, labels: np.ndarray) -> float:
    from imgclf.evaluation.metrics import expected_calibration_error

    return float(expected_calibration_error(probs, labels)[0])


def measure(run_dir: Path, repeats: int) -> dict[str, object]:
    from imgclf.inference import Classifier

    pixels, labels = test_split(run_dir)
    classifiers = {arm: Classifier.load(run_dir, precision=precision, fold_batch_norm=fold)
                   for arm, (precision, fold) in ARMS.items()}
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    answers = {arm: clf.infer_pixels(pixels) for arm, clf in classifiers.items()}  # warm-up, and the answers
    for _ in range(repeats):
        for arm, clf in classifiers.items():  # interleaved: a change in the machine's load hits both arms
            start = time.perf_counter()
            clf.infer_pixels(pixels)
            seconds[arm].append(time.perf_counter() - start)
    fp32, auto, unfolded = answers["32"], answers["auto"], answers["32-unfolded"]
    per_second = {arm: round(len(pixels) / statistics.median(s), 1) for arm, s in seconds.items()}
    accuracy = {arm: float((a.probabilities.argmax(1) == labels).mean()) for arm, a in answers.items()}
    card = classifiers["32"].card
    return {
        "run": str(run_dir), "architecture": card.architecture, "img_size": card.img_size, "color": card.color,
        "images": len(pixels), "auto_resolved_to": classifiers["auto"].precision,
        "images_per_second": per_second,
        "auto_over_fp32_speed": round(per_second["auto"] / per_second["32"], 3),
        "folded_over_unfolded_fp32_speed": round(per_second["32"] / per_second["32-unfolded"], 3),
        "auto_over_unfolded_fp32_speed": round(per_second["auto"] / per_second["32-unfolded"], 3),
        "folding_max_probability_change": float(np.abs(fp32.probabilities - unfolded.probabilities).max()),
        "folding_top1_agreement": round(float((fp32.probabilities.argmax(1)
                                               == unfolded.probabilities.argmax(1)).mean()), 5),
        "seconds": {arm: [round(s, 3) for s in v] for arm, v in seconds.items()},
        "accuracy": {arm: round(v, 4) for arm, v in accuracy.items()},
        "accuracy_auto_minus_fp32_points": round(100 * (accuracy["auto"] - accuracy["32"]), 2),
        "top1_agreement": round(float((auto.probabilities.argmax(1) == fp32.probabilities.argmax(1)).mean()), 5),
        "max_probability_change": round(float(np.abs(auto.probabilities - fp32.probabilities).max()), 4),
        "unknown_flags_differing": int((auto.unknown != fp32.unknown).sum()),
        "flagged_unknown": {arm: round(float(a.unknown.mean()), 4) for arm, a in answers.items()},
        "score_correlation": round(float(np.corrcoef(auto.scores, fp32.scores)[0, 1]), 6),
        "ece": {arm: round(ece(a.probabilities, labels), 4) for arm, a in answers.items()},
    }


def train_runs(bench: Bench, per_class: int, epochs: int) -> list[Path]:
    data = bench.fashion_tree(per_class)
    runs = []
    for recipe, values in TRAINED.items():
        values = {**values, "epochs": 1 if bench.smoke else epochs, "seed": 0}
        if bench.smoke:
            values.update({k: v for k, v in SMOKE_TRAINING.items() if k != "epochs"})
        trained = bench.train(data, bench.run_dir(f"infer-precision-{recipe}"), recipe=recipe, values=values)
        runs.append(trained.run.path)
    return runs


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    runs = args.runs or train_runs(bench, args.per_class, args.epochs)
    rows = [measure(run, 1 if bench.smoke else args.repeats) for run in runs]
    for r in rows:
        print(f"{r['architecture']:12s} {r['images']:6d} images  img/s fp32 {r['images_per_second']['32']:>9,.0f}  "
              f"auto ({r['auto_resolved_to']}) {r['images_per_second']['auto']:>9,.0f}  x{r['auto_over_fp32_speed']}"
              f"  accuracy {r['accuracy']['32']:.4f} -> {r['accuracy']['auto']:.4f}  agreement {r['top1_agreement']}"
              f"  unknown flags differing {r['unknown_flags_differing']}; folding "
              f"x{r['folded_over_unfolded_fp32_speed']} (fp32), max change {r['folding_max_probability_change']:.1e}")
    payload = {"repeats": args.repeats, "batch_size": 256, "per_class": None if args.runs else args.per_class,
               "epochs": None if args.runs else args.epochs, "tag": args.tag, "rows": rows}
    print(f"wrote {bench.write_result(f'infer_precision{args.tag}', payload)}")


if __name__ == "__main__":
    main()
