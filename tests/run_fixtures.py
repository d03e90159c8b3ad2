"""`write_run`: a complete run directory written through the records, without training (a second, not minutes).

A helper module, not a fixture file: evaluation and study tests import it (tests/ is on sys.path, as for
`conftest.make_image_folder`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import make_image_folder


def write_run(root: Path, classes=("cat", "dog", "fox"), per_class: int = 8, seed: int = 0, epochs: int = 8,
              size: int = 16, run_name: str = "run", data_name: str = "data") -> Path:
    """root/<run_name>: every run file a trained and evaluated run has, from seeded fake predictions over real images.

    The history overfits from epoch 6 and its learning rate decays 50x (drawn on a log axis); one training epoch
    is frozen; metrics.json carries TTA scores; one file is listed as skipped by the data scan.
    """
    from imgclf.config import TrainConfig
    from imgclf.evaluation.metrics import compute_metrics
    from imgclf.records import (DatasetRecord, HistoryRow, ImbalanceStats, ModelCard, PredictionRow, RunDir,
                                SkippedFile, SplitFiles, TrainingSummary, TTAScores)

    data = make_image_folder(root / data_name, classes=classes, per_class=per_class, size=size, seed=seed)
    rng = np.random.default_rng(seed)
    splits: dict[str, tuple[list[str], list[int]]] = {"train": ([], []), "val": ([], []), "test": ([], [])}
    for ci, name in enumerate(classes):
        files = sorted(f"{name}/{p.name}" for p in (data / name).iterdir())
        for j, f in enumerate(files):
            split = "train" if j < per_class // 2 else "val" if j < 3 * per_class // 4 else "test"
            splits[split][0].append(f)
            splits[split][1].append(ci)
    counts = {s: {c: labels.count(i) for i, c in enumerate(classes)} for s, (_, labels) in splits.items()}
    run = RunDir(root / run_name)
    run.path.mkdir(parents=True)
    # trained with hflip: the TTA views metrics.json records below (TTA uses only views training made)
    run.write_config(TrainConfig(data=str(data), out=str(run.path), seed=seed, epochs=epochs, img_size=size,
                                 augment="hflip"))
    run.write_dataset(DatasetRecord(
        root=str(data), layout="flat", classes=list(classes), img_size=size, color="rgb", val_source="test fixture",
        sizes={s: len(f) for s, (f, _) in splits.items()}, counts=counts,
        imbalance=ImbalanceStats(rho=1.0, mu=0.0, minority=[], imbalanced=False),
        skipped=[SkippedFile(path=str(data / "broken.png"), reason="not a recognised image format")],
        splits={s: SplitFiles(files=f, labels=labels) for s, (f, labels) in splits.items()}))
    files, labels = splits["test"]
    y = np.asarray(labels)
    logits = rng.normal(size=(len(y), len(classes)))
    logits[np.arange(len(y)), y] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    paths = [str(data / f) for f in files]
    run.write_predictions([PredictionRow(path=p, true=classes[t], pred=classes[int(q.argmax())], prob=float(q.max()),
                                         loss=float(-np.log(q[t])), probs=[float(v) for v in q])
                           for p, t, q in zip(paths, y, probs)], classes)
    metrics = compute_metrics(y, probs, list(classes), split="test")
    tta = compute_metrics(y, (probs + 0.02) / (1 + 0.02 * len(classes)), list(classes), split="test")
    metrics.tta = TTAScores(accuracy=tta.accuracy, loss=tta.loss, macro=tta.macro, worst_class=tta.worst_class,
                            macro_auc=tta.macro_auc, transforms="identity, horizontal flip")
    run.write_metrics(metrics)
    run.write_history([HistoryRow(epoch=e, lr=1e-2 * 0.57 ** (e - 1), loss=1.2 / e, acc=1 - 0.5 / e,
                                  val_loss=0.9 + 0.02 * (e - 5) ** 2, val_acc=0.6 + 0.02 * min(e, 5),
                                  seconds=0.5, images_per_s=100.0, frozen=int(e == 1))
                       for e in range(1, epochs + 1)])
    run.write_card(ModelCard(
        architecture="simple_cnn", model_args={"width": 8}, classes=list(classes), img_size=size, in_chans=3,
        color="rgb", mean=[0.5] * 3, std=[0.25] * 3, num_params=1234,
        training=TrainingSummary(epochs_run=epochs, best_epoch=5, stopped="completed", train_seconds=4.0,
                                 seed=seed, augment="hflip"),
        hardware={"cpu": "test cpu", "cores": 2}))
    return run.path
