"""BatchNorm statistics recomputed after training ("precise BN", `imgclf.train.batch_norm_stats`), paired.

Each run's last checkpoint (checkpoints/last.ckpt: the weights after its last completed epoch, with training's
running averages) is scored on the run's test split three times: as it is, and with the statistics of every
BatchNorm layer recomputed by `recompute_batch_norm` from the run's training images, as many as `imgclf train`
reads (`images_for`), un-augmented and then augmented as training augmented them. Only the statistics differ
between the arms. All in float32.

    python -m benchmarks.precise_bn --short --seeds 0,1,2     # simple_cnn, 8 epochs on 300 digits, per seed
    python -m benchmarks.precise_bn --runs RUN [RUN ...]      # runs trained earlier (the fast recipes, say)

The smoke mode trains one tiny run for one epoch and scores it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import Bench, add_arguments


def short_run(bench: Bench, seed: int) -> Path:
    """The case a new user met: simple_cnn (the default model), 8 epochs on 30 digits per class."""
    from imgclf.data.sources import export_digits

    data = bench.work / "digits"
    if not data.exists():
        export_digits(data)
    settings = {"per_class_max": 30, "epochs": 1 if bench.smoke else 8, "seed": seed}
    return bench.train(data, bench.run_dir(f"precise-bn-digits-seed{seed}"), values=settings).run.path


def _pixels(clf, run, split: str):
    import numpy as np

    dataset = run.read_dataset()
    files = [str(Path(dataset.root) / f) for f in dataset.splits[split].files]
    return np.stack([clf.decode(f) for f in files]), np.asarray(dataset.splits[split].labels)


def paired(path: Path) -> dict[str, object]:
    """Test accuracy of the last checkpoint's weights with training's statistics and with recomputed ones."""
    import numpy as np
    import torch

    from imgclf.data.augment import BatchAugment, parse_augment
    from imgclf.data.tensors import to_unit_nchw
    from imgclf.inference import Classifier
    from imgclf.records import RunDir
    from imgclf.train.batch_norm_stats import images_for, norm_counts, recompute_batch_norm

    run = RunDir(path)
    card = run.read_card()
    clf = Classifier.load(path, precision="32", fold_batch_norm=False)
    ckpt = torch.load(run.file("checkpoints/last.ckpt"), map_location="cpu", weights_only=True)
    clf.model.load_state_dict({k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()
                               if k.startswith("model.")})
    test_x, test_y = _pixels(clf, run, "test")

    def accuracy() -> float:
        logits, _ = clf.embed_pixels(test_x)
        return float(np.mean(logits.argmax(1) == test_y))

    running = accuracy()
    train_x, _ = _pixels(clf, run, "train")
    limit = images_for(len(train_x), int(ckpt.get("global_step", 0)) * card.training.batch_size)
    order = np.random.default_rng(0).permutation(len(train_x))[:limit]
    batch = card.training.batch_size
    augment = BatchAugment(parse_augment(card.training.augment))
    generator = torch.Generator().manual_seed(0)

    def inputs(augmented: bool):
        for i in range(0, len(order), batch):
            x = to_unit_nchw(train_x[order[i:i + batch]])
            if augmented and not augment.spec.empty:
                x = augment(x, generator)
            yield clf._normalised(x)

    scores = {}
    for arm, augmented in (("recomputed", False), ("recomputed_augmented", True)):
        counts = {layer: -1 for layer in norm_counts(clf.model)}  # trained from scratch: every layer trained
        read = recompute_batch_norm(clf.model, counts, inputs(augmented), limit)
        scores[f"test_accuracy_{arm}"] = accuracy()
    return {"run": str(path), "model": card.architecture, "model_args": card.model_args,
            "augment": card.training.augment, "epochs_run": card.training.epochs_run,
            "train_images": len(train_x), "images_read": read, "test_images": len(test_y),
            "test_accuracy_running": running, **scores}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="train the short small-data runs, one per seed")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--runs", nargs="*", default=[], help="finished run directories to score")
    parser.add_argument("--name", default="precise_bn", help="result file name (results/NAME.json)")
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    from imgclf import hardware

    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    seeds = [int(s) for s in args.seeds.split(",")][: 1 if bench.smoke else None]
    runs = [Path(p) for p in args.runs]
    if args.short or bench.smoke:
        runs += [short_run(bench, seed) for seed in seeds]
    rows = [paired(run) for run in runs]
    for r in rows:
        print(f"{Path(str(r['run'])).name}: {r['epochs_run']} epochs, {r['images_read']} of {r['train_images']} "
              f"training images read: test {r['test_accuracy_running']:.4f} (running averages), "
              f"{r['test_accuracy_recomputed']:.4f} (recomputed), {r['test_accuracy_recomputed_augmented']:.4f} "
              "(recomputed on augmented images)")
    print(f"wrote {bench.write_result(args.name, {'machine': hardware.describe(), 'runs': rows})}")


if __name__ == "__main__":
    main()
