"""Render predictions as a table, CSV or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .errors import invalid
from .file_names import printable_path
from .io import csv_text, terminal_safe

FORMATS = ("table", "csv", "json")


def as_json(p: Any, multilabel: bool | None = None) -> dict[str, Any]:
    """One prediction as `imgclf predict --format json` and the HTTP API give it. `label` is "unknown" when the
    image scored below the model's threshold (`unknown` true); `best_label` and `probability` are the closest
    known class either way; `score` is the in-distribution score (higher: more like the training images).
    multilabel: the model's task, so that an unreadable image of a multi-label run has `labels` too (null), as
    every other entry (None: the prediction's own)."""
    labels = getattr(p, "labels", None)
    if multilabel is None:
        multilabel = bool(getattr(p, "multilabel", False)) or labels is not None
    # a name that is not UTF-8 with its bytes as \xNN escapes, as the CSV writes it (a lone surrogate in JSON reads
    # as U+FFFD in most parsers, and the table showed a third spelling)
    return {"path": printable_path(p.path), "label": p.label, "probability": p.probability, "best_label": p.best_label,
            "score": p.score, "unknown": p.unknown if p.error is None else None,
            "top": [{"label": lbl, "probability": prob} for lbl, prob in p.top], "error": p.error,
            **({"labels": None if labels is None else [{"label": lbl, "probability": prob} for lbl, prob in labels]}
               if multilabel else {})}


def format_predictions(predictions: Sequence[Any], fmt: str, multilabel: bool | None = None,
                       top_k: int | None = None) -> str:
    """multilabel: the model's task, which decides the CSV's columns (None: read from the rows, which cannot
    tell when no image of a multi-label run could be read). top_k: the ranking's length (the CLI's --top-k, at most
    the model's classes), which fixes the CSV's top columns whatever the rows hold: a batch of unreadable files
    had none, and a script appending each day's file broke on it (None: the longest ranking among the rows).
    Probabilities to 6 significant digits, as the evaluation's predictions.csv: at 4 decimals 0.99995 read 1.0000
    and every runner-up 0.0000."""
    if fmt not in FORMATS:
        raise invalid("format", fmt, FORMATS)
    if multilabel is None:
        multilabel = any(getattr(p, "multilabel", False) or getattr(p, "labels", None) is not None
                         for p in predictions)
    if fmt == "json":
        return json.dumps([as_json(p, multilabel) for p in predictions], indent=2) + "\n"
    k = top_k if top_k is not None else max((len(p.top) for p in predictions), default=1)
    # multi-label: the carried labels' own probabilities beside their names (';'-joined, in the same order), since
    # `probability` is best_label's, which a low threshold may carry after another or not at all
    # best_label beside probability: for an unknown image or a multi-label set, probability is best_label's
    header = (["path", "label", *(["label_probabilities"] if multilabel else []), "best_label", "probability",
               "score", "unknown"] + [f"top{i + 1}_{part}" for i in range(k) for part in ("label", "prob")] + ["error"])
    rows = []
    for p in predictions:
        tops: list[Any] = []
        for i in range(k):
            tops += [p.top[i][0], f"{p.top[i][1]:.6g}"] if i < len(p.top) else ["", ""]
        carried = [";".join(f"{prob:.6g}" for _, prob in (p.labels or []))] if multilabel else []
        rows.append([printable_path(p.path), p.label or "", *carried, p.best_label or "",
                     "" if p.probability is None else f"{p.probability:.6g}",
                     "" if p.score is None else f"{p.score:.6g}", "" if p.error else str(int(p.unknown))]
                    + tops + [p.error or ""])
    if fmt == "csv":
        return csv_text(header, rows)
    lines = []  # for a terminal: names may hold escape sequences, which must not act on it
    for p in predictions:
        shown = terminal_safe(printable_path(p.path))
        if p.error:
            lines.append(f"{shown}\tERROR: {terminal_safe(p.error)}")
            continue
        ranked = "  ".join(f"{terminal_safe(lbl)} {prob:.3f}" for lbl, prob in p.top)
        score = "" if p.score is None else f"  (score {p.score:.4g})"
        if getattr(p, "labels", None) is not None:  # multi-label: the set carried, then the ranking
            carried = ", ".join(f"{terminal_safe(lbl)} {prob:.3f}" for lbl, prob in p.labels) or "no label"
            lines.append(f"{shown}\tlabels: {carried}  (top: {ranked})")
        elif p.unknown:  # the known classes stay listed: the closest one is still worth seeing
            lines.append(f"{shown}\tUNKNOWN, like none of the classes {score.strip()}; closest: {ranked}")
        else:
            lines.append(f"{shown}\t{ranked}{score}")
    return "\n".join(lines) + "\n"
