"""Render predictions as a table, CSV or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .errors import invalid
from .io import csv_text, terminal_safe

FORMATS = ("table", "csv", "json")


def format_predictions(predictions: Sequence[Any], fmt: str) -> str:
    if fmt not in FORMATS:
        raise invalid("format", fmt, FORMATS)
    if fmt == "json":
        return json.dumps([
            {"path": p.path, "label": p.label, "probability": p.probability,
             "top": [{"label": lbl, "probability": prob} for lbl, prob in p.top], "error": p.error}
            for p in predictions
        ], indent=2) + "\n"
    k = max((len(p.top) for p in predictions), default=1)
    header = ["path", "label", "probability"] + [f"top{i + 1}_{part}" for i in range(k) for part in ("label", "prob")] + ["error"]
    rows = []
    for p in predictions:
        tops: list[Any] = []
        for i in range(k):
            tops += [p.top[i][0], f"{p.top[i][1]:.4f}"] if i < len(p.top) else ["", ""]
        rows.append([p.path, p.label or "", "" if p.probability is None else f"{p.probability:.4f}"] + tops + [p.error or ""])
    if fmt == "csv":
        return csv_text(header, rows)
    lines = []  # for a terminal: names may hold escape sequences, which must not act on it
    for p in predictions:
        if p.error:
            lines.append(f"{terminal_safe(p.path)}\tERROR: {terminal_safe(p.error)}")
        else:
            lines.append(f"{terminal_safe(p.path)}\t" + "  ".join(f"{terminal_safe(lbl)} {prob:.3f}" for lbl, prob in p.top))
    return "\n".join(lines) + "\n"
