"""fastai from scratch on a train/ val/ test/ PNG tree within a wall-time budget (runs in benchmarks/work/venv-fastai).

The fastai way: `lr_find`, then `fit_one_cycle` with the epochs that fit what is left of the budget (one-cycle
needs its length up front; the training speed comes from timing the lr_find iterations, which count against
the budget). xresnet18 from scratch, `aug_transforms` (flip, rotate, zoom, lighting, warp), batch 64.

Usage: python fastai_peer.py DATA_TREE BUDGET_SECONDS SEED -> prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(tree: Path, budget: float, seed: int) -> None:
    import torch
    from fastai.vision.all import (CategoryBlock, DataBlock, GrandparentSplitter, ImageBlock, Learner, Resize,
                                   accuracy, aug_transforms, get_image_files, parent_label, set_seed, xresnet18)

    torch.set_num_threads(2)
    set_seed(seed, reproducible=False)
    start = time.perf_counter()
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      splitter=GrandparentSplitter(train_name="train", valid_name="val"), get_y=parent_label,
                      item_tfms=Resize(32), batch_tfms=aug_transforms(size=32))
    # GrandparentSplitter keeps only train/ and val/: test/ stays out of training and selection
    dls = block.dataloaders(tree, bs=64)  # fastai's default workers
    learn = Learner(dls, xresnet18(n_out=dls.c), metrics=accuracy)
    t_find = time.perf_counter()
    suggestion = learn.lr_find(show_plot=False)
    find_seconds = time.perf_counter() - t_find
    find_images = 100 * 64  # lr_find's default: 100 iterations of one batch
    img_per_s = find_images / find_seconds
    n_train = len(dls.train_ds)
    left = budget - (time.perf_counter() - start)
    # one epoch also validates; 0.9 leaves room for it
    epochs = max(1, int(left * 0.9 * img_per_s / n_train))
    t_fit = time.perf_counter()
    learn.fit_one_cycle(epochs, float(suggestion.valley))
    fit_seconds = time.perf_counter() - t_fit
    train_seconds = time.perf_counter() - start

    test_items = [p for p in get_image_files(tree / "test")]
    test_dl = dls.test_dl(test_items, with_labels=True)
    preds, targets = learn.get_preds(dl=test_dl)
    test_accuracy = float((preds.argmax(1) == targets).float().mean())
    import fastai
    print(json.dumps({"peer": "fastai", "version": fastai.__version__, "model": "xresnet18", "seed": seed,
                      "torch_threads": torch.get_num_threads(),
                      "epochs": epochs, "lr": float(suggestion.valley), "train_seconds": round(train_seconds, 1),
                      "images_per_s": round(epochs * n_train / fit_seconds, 1), "test_accuracy": test_accuracy,
                      "val_accuracy": float(learn.validate()[1])}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))
