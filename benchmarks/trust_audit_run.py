"""`imgclf audit --run`: label errors found with a trained model's features against the images' own pixels.

The audit ranks likely label errors by confident learning over out-of-fold probabilities of class Gaussians fitted
on features: the images' pixels by default, a run's penultimate layer with `--run`. This measures whether a run
is worth passing, on the whole Fashion-MNIST training set (60,000 images; `--images all`: with the 10,000 test
images, 70,000) with 2 % of its labels flipped at random to another class, written as a folder of PNGs:

1. a `fast-fmnist` run is trained on that noisy folder for a fixed number of epochs (one-cycle schedule instead
   of the recipe's wall-clock budget, so that the figures do not depend on the machine's speed), on its own
   val/test split of the folder: it learns from the flipped labels of its training part, as a user's model would;
2. `imgclf.audit` runs twice on the folder, end to end (decode, hashes, duplicates, features, label errors):
   pixels, then `run=` that run; each ranking (flagged first, lowest self-confidence first, as the page orders
   them) is scored against the flips: AUROC, precision at recall 0.5, the flagged set's precision and recall, and
   the audit's seconds per stage;
3. beside them, the run's own loss on the given label (one model, in-sample for the images it trained on):
   the ranking a user gets without an audit.

    python -m benchmarks.trust_audit_run --epochs 6      # writes results/trust_audit_run.json
    python -m benchmarks.trust_audit_run --epochs 6 --images all --tag _all_xeon
    python -m benchmarks.trust_audit_run --data digits --epochs 15 --tag _digits   # scikit-learn's 1,797 digits

With `--data digits` the data set is scikit-learn's 8x8 digits (the demo's data; 2 % flips is 36 images) and
the run is the demo's (`simple_cnn` at 16x16, `imgclf.demo.DEMO_SETTINGS`), trained on the noisy folder.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import SMOKE_TRAINING, Bench, add_arguments
from benchmarks.trust_audit import FLIP_FRACTION, auroc, load, precision_at_recall


def build_parser() -> argparse.ArgumentParser:
    parser = add_arguments(argparse.ArgumentParser(description=__doc__,
                                                   formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("--epochs", type=int, default=6, help="epochs of the run (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="which labels are flipped, and the run's seed")
    parser.add_argument("--reuse-run", type=Path, default=None, metavar="RUN",
                        help="a run this benchmark trained before on the same noisy folder: audit it again "
                             "instead of training (its config must name that folder)")
    parser.add_argument("--data", choices=("fashion-mnist", "digits"), default="fashion-mnist",
                        help="Fashion-MNIST, or scikit-learn's digits with the demo's run")
    parser.add_argument("--images", choices=("train", "all"), default="train",
                        help="Fashion-MNIST's training set (60,000), or all 70,000 images")
    parser.add_argument("--tag", default="", help="result file suffix: results/trust_audit_run<tag>.json")
    return parser


def flip_labels(labels: np.ndarray, fraction: float, seed: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A copy of `labels` with round(fraction * N) of them moved to another class at random, and the flip mask."""
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(labels), round(fraction * len(labels)), replace=False)
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, classes, len(flipped))) % classes
    mask = np.zeros(len(labels), bool)
    mask[flipped] = True
    return noisy, mask


def write_folder(out, images: np.ndarray, labels: np.ndarray, classes) -> None:
    """out/<class>/<index>.png, the index being the image's row, so an audit's paths map back to the flips."""
    from PIL import Image

    if (out / ".complete").exists():
        return
    for name in classes:
        (out / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(out / classes[label] / f"{i:05d}.png")
    (out / ".complete").write_text("ok")


def ranking_scores(result, rows: np.ndarray, flipped: np.ndarray) -> dict[str, object]:
    """The audit's order (flagged first, then by self-confidence, lowest first) scored against the flips."""
    issues = result.label_issues
    score = issues.flagged.astype(np.float64) * 2 + (1 - issues.self_confidence)
    positive = flipped[rows]
    flagged = issues.flagged
    return {"auroc": round(auroc(score, positive), 4),
            "precision_at_recall_0.5": round(precision_at_recall(score, positive), 4),
            "flagged": int(flagged.sum()),
            "flagged_precision": round(float(positive[flagged].mean()), 4) if flagged.any() else None,
            "flagged_recall": round(float(flagged[positive].mean()), 4),
            "out_of_fold_accuracy_vs_given_labels": round(issues.accuracy, 4),
            "features": result.features.description,
            "seconds": result.record.seconds}


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    from imgclf.audit import audit
    from imgclf.data.sources import FASHION_CLASSES
    from imgclf.inference import load as load_classifier
    from imgclf.records import RunDir

    digits = args.data == "digits"
    if digits:
        from sklearn.datasets import load_digits

        from imgclf.demo import DEMO_SETTINGS

        loaded = load_digits()
        images = np.clip(loaded.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
        labels, classes, name = loaded.target.astype(np.int64), [str(d) for d in range(10)], "digits"
        recipe, settings = None, DEMO_SETTINGS
    else:
        images, labels, splits = load(bench.smoke)
        if args.images == "train":
            images, labels = images[splits == "train"], labels[splits == "train"]
        classes, name = FASHION_CLASSES, f"fmnist-{args.images}"
        recipe, settings = "fast-fmnist", {"time_limit": "none"}
    noisy, flipped = flip_labels(labels, FLIP_FRACTION, args.seed, len(classes))
    folder = bench.work / f"{name}-flipped-{FLIP_FRACTION:g}-seed{args.seed}{'-smoke' if bench.smoke else ''}"
    write_folder(folder, images, noisy, classes)

    if args.reuse_run is None:
        values = {**settings, "seed": args.seed, "schedule": "onecycle", "epochs": args.epochs,
                  **(SMOKE_TRAINING if bench.smoke else {})}
        trained = bench.train(folder, bench.run_dir(f"audit-run-{args.data}-seed{args.seed}"), recipe=recipe,
                              values=values)
        run, train_wall = trained.run, round(trained.wall_seconds, 1)
    else:
        run, train_wall = RunDir(args.reuse_run), None
        if Path(run.read_config().data).resolve() != folder.resolve():
            raise SystemExit(f"--reuse-run {args.reuse_run} was trained on {run.read_config().data}, not {folder}")
    card = run.read_card()

    rows_of = {}
    results = {}
    for source, run_arg in (("pixels", None), ("run", run.path)):
        clock = time.perf_counter()
        result = audit(folder, run=run_arg, out=bench.work / "audits" / f"{folder.name}-{source}",
                       cache_dir=bench.cache_dir, page=False)
        wall = time.perf_counter() - clock
        rows = np.array([int(p.rsplit("/", 1)[-1].split(".")[0]) for p in result.images.paths])
        rows_of[source] = rows
        results[source] = {**ranking_scores(result, rows, flipped), "wall_seconds": round(wall, 1)}
        print(source, results[source])

    rows = rows_of["run"]
    classifier = load_classifier(run.path)
    probabilities = classifier.predict_pixels(np.stack([classifier.decode(p) for p in result.images.paths]))
    column = np.array([card.classes.index(c) for c in classes])  # the run's classes are sorted
    loss = -np.log(np.maximum(probabilities[np.arange(len(rows)), column[noisy[rows]]], 1e-12))
    results["run_loss_single_model"] = {"auroc": round(auroc(loss, flipped[rows]), 4),
                                        "precision_at_recall_0.5": round(precision_at_recall(loss, flipped[rows]),
                                                                         4)}
    print("run loss", results["run_loss_single_model"])

    path = bench.write_result(f"trust_audit_run{args.tag}", {
        "data": "generated blobs (smoke)" if bench.smoke and not digits else (
            "scikit-learn's digits, 1,797 8x8 PNGs" if digits else
            "Fashion-MNIST training set, 60,000 PNGs" if args.images == "train"
            else "Fashion-MNIST training and test sets, 70,000 PNGs"),
        "images": len(labels), "flipped": int(flipped.sum()), "flip_seed": args.seed,
        "run": {"path": str(run.path), "recipe": recipe or "the demo's settings (simple_cnn)", "schedule": "onecycle",
                "epochs": card.training.epochs_run, "test_accuracy_vs_given_labels": run.read_metrics().accuracy,
                "train_seconds": card.training.train_seconds,
                "train_wall_seconds": train_wall, "reused": args.reuse_run is not None},
        "rankings": results,
        "command": f"python -m benchmarks.trust_audit_run --epochs {args.epochs} --seed {args.seed}"
                   + (f" --data {args.data}" if digits else "")
                   + (f" --images {args.images}" if args.images != "train" else "")
                   + (f" --tag {args.tag}" if args.tag else "")
                   + (f" --reuse-run {args.reuse_run}" if args.reuse_run else "")})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
