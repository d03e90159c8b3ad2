"""Metrics computed once from stored predictions (scikit-learn for everything it already does)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from ..records import METRICS_SCHEMA_VERSION, MetricsRecord


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> tuple[float, list[dict]]:
    """ECE with equal-width confidence bins; also returns the per-bin table for the reliability diagram."""
    confidence = probs.max(1)
    correct = (probs.argmax(1) == y_true).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    ece, table = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > lo) & (confidence <= hi)
        n = int(in_bin.sum())
        if n:
            acc, conf = float(correct[in_bin].mean()), float(confidence[in_bin].mean())
            ece += n / len(y_true) * abs(acc - conf)
        else:
            acc = conf = None
        table.append({"lo": float(lo), "hi": float(hi), "count": n, "accuracy": acc, "confidence": conf})
    return float(ece), table


def compute_metrics(y_true: np.ndarray, probs: np.ndarray, classes: list[str], split: str = "") -> MetricsRecord:
    """accuracy, loss, per-class P/R/F1/support, macro and weighted averages, confusion, OvR AUC, ECE."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(classes)
    labels = list(range(k))
    y_pred = probs.argmax(1)
    report = classification_report(y_true, y_pred, labels=labels, target_names=classes, output_dict=True,
                                   zero_division=0)
    per_class = {c: {m: float(report[c][m]) for m in ("precision", "recall", "f1-score", "support")} for c in classes}
    for c in per_class:
        per_class[c]["f1"] = per_class[c].pop("f1-score")
        per_class[c]["support"] = int(per_class[c]["support"])
    auc: dict[str, float | None] = {}
    for i, c in enumerate(classes):
        positives = y_true == i
        auc[c] = float(roc_auc_score(positives, probs[:, i])) if 0 < positives.sum() < len(y_true) else None
    present = [i for i in labels if (y_true == i).any()]
    valid_auc = [v for v in auc.values() if v is not None]
    recalls = {c: per_class[c]["recall"] for c in classes if per_class[c]["support"] > 0}
    worst = min(recalls, key=recalls.get) if recalls else None
    ece, _ = expected_calibration_error(probs, y_true)
    clipped = np.clip(probs, 1e-12, 1.0)
    clipped = clipped / clipped.sum(1, keepdims=True)
    def averages(name: str) -> dict[str, float]:
        return {"precision": float(report[name]["precision"]), "recall": float(report[name]["recall"]),
                "f1": float(report[name]["f1-score"])}

    def macro_over_present() -> dict[str, float]:
        # A class with no image in the split has no recall: counted as 0 (sklearn's macro over labels=range(k)),
        # it pulls the mean below the worst present class's recall, so recall averages the classes present.
        # Precision and F1 also take in a class the split lacks but the model predicted (both 0 there, where
        # 2TP / (2TP + FP + FN) is defined), as multi-label macro precision does: the per-class table shows that
        # F1 of 0, and with F1 over the present classes alone, macro F1 read 0.83 beside a macro precision of 0.67
        # and a recall of 0.75.
        if not present or len(present) == k:
            return averages("macro avg")
        _, r, _, _ = precision_recall_fscore_support(y_true, y_pred, labels=present, average="macro",
                                                     zero_division=0)
        predicted = sorted(set(present) | set(np.unique(y_pred).tolist()))
        p, _, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=predicted, average="macro",
                                                     zero_division=0)
        return {"precision": float(p), "recall": float(r), "f1": float(f)}

    return MetricsRecord(**{
        "schema_version": METRICS_SCHEMA_VERSION,  # (a dict without one reads as a version-1 file)
        "split": split,
        "count": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "loss": float(log_loss(y_true, clipped, labels=labels)) if len(y_true) else None,
        "macro": macro_over_present(),
        "weighted": averages("weighted avg"),
        "per_class": per_class,
        "worst_class": {"name": worst, "recall": recalls[worst]} if worst else None,
        "auc": auc,
        "macro_auc": float(np.mean(valid_auc)) if valid_auc else None,
        "ece": ece,
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "classes_present": [classes[i] for i in present],
    })
