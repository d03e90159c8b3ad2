"""Evaluate a multi-label run: label-set predictions.csv and metrics.json (mAP, per-label AP, P/R/F1 at the card's
thresholds, subset accuracy, Hamming loss), from the same files and `Classifier` as single-label evaluation.

The shared fields of `MetricsRecord` keep a multi-label meaning, so `compare` and the card's headline read them as
they are: accuracy is subset accuracy, loss the mean binary cross-entropy, per_class / macro / weighted the
labels' P/R/F1 at their thresholds, auc the per-label ROC AUC, ece the calibration error over every (image,
label) probability, confusion the co-occurrence of true (rows) and predicted (columns) labels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.cache import decode_all, readable_blocks
from ..errors import invalid
from .own_split import check_on_disk
from ..backends import load_classifier
from ..multilabel import decide, label_average_precisions, macro_average_precision, threshold_vector
from ..progress import StepProgress
from ..records import METRICS_SCHEMA_VERSION, MetricsRecord, PredictionRow, RunDir, SkippedFile
from .seen import seen_by_run
from .unknown_classes import refusal_of_unknown_classes


def binary_calibration_error(targets: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """ECE over every (image, label) probability: |share of positives - mean probability| per equal-width bin,
    weighted by the bin's count."""
    y, p = np.asarray(targets, dtype=np.float64).ravel(), np.asarray(probs, dtype=np.float64).ravel()
    if not len(y):
        return 0.0
    which = np.minimum((p * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            ece += members.mean() * abs(y[members].mean() - p[members].mean())
    return float(ece)


def compute_multilabel_metrics(targets: np.ndarray, probs: np.ndarray, classes: Sequence[str],
                               thresholds: np.ndarray, split: str = "") -> MetricsRecord:
    from sklearn.metrics import average_precision_score, hamming_loss, precision_recall_fscore_support, roc_auc_score

    y = np.asarray(targets, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    pred = decide(p, thresholds).astype(np.int64)
    k = len(classes)
    support = y.sum(0)
    precision, recall, f1, _ = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    ap: dict[str, float | None] = {}
    auc: dict[str, float | None] = {}
    for i, (c, label_ap) in enumerate(zip(classes, label_average_precisions(y, p))):
        has_both = 0 < support[i] < len(y)
        ap[c] = label_ap
        auc[c] = float(roc_auc_score(y[:, i], p[:, i])) if has_both else None
    present = [c for c, n in zip(classes, support) if n > 0]

    def averages(kind: str) -> dict[str, float | None]:
        # a set of negatives has no recall: its 0 went into the card, compare's table and GET /model as a score
        recall = None if not y.any() else 0.0
        if not y.any() and not pred.any():  # no label predicted either: no false alarm, what such a set measures
            return {"precision": 1.0, "recall": recall, "f1": 1.0}  # (precision and F1 read 0)
        pr, rc, f, _ = precision_recall_fscore_support(y, pred, average=kind, zero_division=0)
        return {"precision": float(pr), "recall": float(rc) if recall is not None else None, "f1": float(f)}

    def macro_over_present() -> dict[str, float | None]:
        # a label no image of the split carries has no recall: as sklearn's 0 it would pull the mean below every
        # present label's (as for single-label metrics, `evaluation.metrics`). Its false alarms count, though:
        # unlike a single-label class's, they cost no other label's recall, so a label predicted but absent enters
        # the macro precision and F1 at 0 (F1 = 2TP / (2TP + FP + FN), defined wherever FP + FN > 0), as its row
        # shows them; left out, they hid them (macro precision 0.900 where they gave 0.720; macro F1 1.0 for one
        # image of 'bird' predicted 'bird;dog;fish')
        present = support > 0
        judged = present | (pred.sum(0) > 0)
        if present.all() or not present.any():
            return averages("macro")
        return {"precision": float(np.mean(precision[judged])), "recall": float(np.mean(recall[present])),
                "f1": float(np.mean(f1[judged]))}

    per_class = {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                     "support": int(support[i])} for i, c in enumerate(classes)}
    recalls = {c: per_class[c]["recall"] for c in present}
    worst = min(recalls, key=recalls.get) if recalls else None
    valid_auc = [v for v in auc.values() if v is not None]
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    bce = -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    samples_f1 = precision_recall_fscore_support(y, pred, average="samples", zero_division=1)[2] if len(y) else 0.0
    multilabel = {
        "map_macro": macro_average_precision(y, p),
        "map_micro": float(average_precision_score(y, p, average="micro")) if y.any() else None,
        "subset_accuracy": float((pred == y).all(1).mean()) if len(y) else 0.0,
        "hamming_loss": float(hamming_loss(y, pred)) if len(y) else 0.0,
        "micro": averages("micro"),
        "samples_f1": float(samples_f1),
        "per_label": {c: {"ap": ap[c], "threshold": float(thresholds[i]), **per_class[c],
                          "predicted": int(pred[:, i].sum())} for i, c in enumerate(classes)},
        "cardinality_true": float(y.sum(1).mean()) if len(y) else 0.0,
        "cardinality_pred": float(pred.sum(1).mean()) if len(y) else 0.0,
    }
    return MetricsRecord(**{
        "schema_version": METRICS_SCHEMA_VERSION,  # (a dict without one reads as a version-1 file)
        "split": split, "count": int(len(y)), "task": "multilabel",
        "accuracy": multilabel["subset_accuracy"],
        "loss": float(bce.mean()) if len(y) else None,
        "macro": macro_over_present(), "weighted": averages("weighted"),
        "per_class": per_class,
        "worst_class": {"name": worst, "recall": recalls[worst]} if worst else None,
        "auc": auc, "macro_auc": float(np.mean(valid_auc)) if valid_auc else None,
        "ece": binary_calibration_error(y, p),
        "confusion": (y.T @ pred).tolist() if len(y) else np.zeros((k, k), dtype=int).tolist(),
        "classes_present": present,
        "multilabel": multilabel,
    })


def _files(run: RunDir, data: str | os.PathLike | None, split: str, classes: list[str]
           ) -> tuple[list[str], np.ndarray, str]:
    """Image paths and (N, K) targets of the run's own split, or of an index file (its labels checked against
    the model's)."""
    if data is not None:
        from ..data.multilabel import is_label_index, read_label_index

        if is_label_index(data):
            index = read_label_index(data, classes)
            rows, chosen = _rows_of(index.splits, len(index.files), split, data)
            # absolute, as single-label evaluations name theirs: "same:all" named two folders of that name alike
            return [index.files[i] for i in rows], index.targets[rows], f"{os.path.abspath(data)}:{chosen}"
        if not Path(data).is_dir():
            raise invalid("data", data, "a CSV / JSON-lines index of images and labels, or a folder of class "
                          "folders (an image in several, through links, carries each), for a multi-label run")
        return _folder_files(data, classes, split)
    dataset = run.read_dataset()
    if split not in dataset.splits:
        if split == "test" and "val" in dataset.splits:
            split = "val"
        else:
            raise invalid("split", split, dataset.splits)
    files, _ = dataset.split_paths(split)
    check_on_disk(run, dataset, files, split)
    sets = dataset.splits[split].label_sets
    if sets is None:
        raise invalid("run", run.path, "a multi-label run whose dataset.json lists each image's label set",
                      note=f"no label_sets in split {split}")
    targets = np.zeros((len(files), len(classes)), dtype=np.uint8)
    for row, ids in enumerate(sets):
        targets[row, ids] = 1
    return files, targets, split


def _rows_of(splits: list[str] | None, n: int, split: str, data: str | os.PathLike) -> tuple[list[int], str]:
    """The rows of an index's (or a folder's) split column to score, and the split's name: with `split` test, the
    default, its test rows (else val, then train, as single-label evaluation picks a folder's); another split by
    name. Without a split column every row ("all"), and only the default. (Its split column was ignored: every
    row was scored, 125 of 149 of them training's own.)"""
    if splits is None:
        if split != "test":
            raise invalid("split", split, f"test, the default: {data} has no split column or split folders, so all "
                          "of its images are scored")
        return list(range(n)), "all"
    present = [s for s in ("train", "val", "test") if s in splits]
    if split == "test":
        split = next(s for s in ("test", "val", "train") if s in present)
    elif split not in present:
        raise invalid("split", split, present, where=f"{data} (its split column or folders)")
    return [i for i, s in enumerate(splits) if s == split], split


def _folder_files(data: str | os.PathLike, classes: list[str], split: str = "test"
                  ) -> tuple[list[str], np.ndarray, str]:
    """A class-per-folder tree read as training reads one with task=multilabel (`read_label_folder`): its test/
    split where it has splits (val/, then train/, as single-label evaluation picks; another by `split`), its
    labels put in the model's order."""
    from ..data.multilabel import read_label_folder

    index = read_label_folder(data)
    unknown = sorted(set(index.classes) - set(classes))
    if unknown:  # as single-label evaluation refuses them: with the model's class each may misspell
        raise refusal_of_unknown_classes(data, "all", unknown, classes)
    rows, split = _rows_of(index.splits, len(index.files), split, data)
    targets = np.zeros((len(rows), len(classes)), dtype=np.uint8)
    for column, name in enumerate(index.classes):
        targets[:, classes.index(name)] = index.targets[rows, column]
    return [index.files[i] for i in rows], targets, f"{os.path.abspath(data)}:{split}"


def evaluate_multilabel(run_dir: str | os.PathLike, out_dir: Path, data: str | os.PathLike | None = None,
                        split: str = "test", batch_size: int = 256, cache_dir: str | None = None, workers: int = 2,
                        budget_bytes: int = 4 * 10**9, progress: bool = True, precision: str = "auto",
                        backend: str = "torch") -> MetricsRecord:
    """`evaluate_run` for a multi-label run: predictions.csv (true and predicted label sets, `;`-joined, and
    every label's probability) and metrics.json into `out_dir`."""
    run = RunDir(run_dir)
    card = run.read_card()
    clf = load_classifier(run.path, backend, precision=precision)
    files, targets, split_name = _files(run, data, split, card.classes)
    decoded = decode_all(files, card.img_size, card.color, card.interpolation, cache_dir, budget_bytes, workers,
                         progress=progress)
    ok = decoded.ok_indices
    if len(ok) == 0:
        raise invalid("data" if data is not None else "run", data if data is not None else run_dir,
                      "images of which at least one is readable", note=f"{len(files)} file(s), none readable")
    chunks = []
    with StepProgress(f"evaluating on {split_name}", len(ok), enabled=progress) as bar:
        for block in readable_blocks(decoded, card.img_size, card.color, card.interpolation, batch_size):
            chunks.append(clf.infer_pixels(block, batch_size).probabilities)
            bar.update(len(block))
    probs = np.concatenate(chunks)
    y = targets[ok]
    thresholds = threshold_vector(card.classes, card.thresholds)
    metrics = compute_multilabel_metrics(y, probs, card.classes, thresholds, split_name)
    metrics.skipped = [SkippedFile(path=files[i], reason=r) for i, r in sorted(decoded.failures.items())]
    metrics.seen = seen_by_run(run, [files[i] for i in ok], data is not None, split_name)
    metrics.precision, metrics.backend = clf.precision, backend
    out = RunDir(out_dir)
    out.write_predictions(prediction_rows([files[i] for i in ok], y, probs, card.classes, thresholds,
                                          metrics.skipped), card.classes)
    out.write_metrics(metrics)
    return metrics


def prediction_rows(files: list[str], targets: np.ndarray, probs: np.ndarray, classes: Sequence[str],
                    thresholds: np.ndarray, skipped: list[SkippedFile]) -> list[PredictionRow]:
    """One row per image: `true` and `pred` the label sets joined by ';', prob the highest label probability,
    loss the image's mean binary cross-entropy."""
    pred = decide(probs, thresholds)
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    losses = -(targets * np.log(clipped) + (1 - targets) * np.log(1 - clipped)).mean(1)
    names = np.asarray(classes, dtype=object)
    rows = [PredictionRow(path=f, true=";".join(names[t > 0]), pred=";".join(names[d > 0]), prob=float(p.max()),
                          loss=float(loss), probs=[float(v) for v in p])
            for f, t, d, p, loss in zip(files, targets, pred, probs, losses)]
    return rows + [PredictionRow(path=s.path, error=s.reason) for s in skipped]


def label_sets(rows: list[PredictionRow], classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(targets, probabilities) of predictions.csv's evaluated rows, back as (N, K) arrays (for the report)."""
    index = {c: i for i, c in enumerate(classes)}
    kept = [r for r in rows if not r.error]
    targets = np.zeros((len(kept), len(classes)), dtype=np.uint8)
    for n, r in enumerate(kept):
        for name in filter(None, r.true.split(";")):
            targets[n, index[name]] = 1
    probs = np.array([r.probs for r in kept], dtype=np.float64).reshape(len(kept), len(classes))
    return targets, probs
