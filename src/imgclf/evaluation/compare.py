"""`imgclf compare RUN RUN ...`: a side-by-side table and overlaid validation curves for several runs.

Runs whose resolved config.yaml is the same except for the seed (and settings that cannot change the result,
such as the output folder) are one group, reported as mean ± std over its seeds — the way airbench reports
"94.01 mean accuracy (n=200 trials)" rather than one lucky run.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import bad_path, invalid
from ..io import atomic_write_text
from ..records import HistoryRow, RunDir
from ..stats import MeanStd, mean_std
from .interpret import best_val_accuracy, mean_recall

# Config keys that say where or how verbosely a run was made (or in which file layout), not what was trained.
NOT_THE_EXPERIMENT = frozenset({"seed", "out", "progress", "num_workers", "cache_dir", "cache_budget",
                                "schema_version"})

# (key, column title, kind, higher is better); kind decides the formatting.
COLUMNS: tuple[tuple[str, str, str, bool | None], ...] = (
    ("val_accuracy", "val acc", "pct", True),
    ("test_accuracy", "test acc", "pct", True),
    ("macro_f1", "macro F1", "pct", True),
    ("minority_recall", "minority recall", "pct", True),
    ("worst_recall", "worst-class recall", "pct", True),
    ("num_params", "params", "int", None),
    ("epochs", "epochs", "num", None),
    ("train_seconds", "train time", "seconds", False),
    ("images_per_s", "images/s", "num", True),
)


@dataclass
class RunSummary:
    path: Path
    name: str
    config: dict[str, Any]  # config.yaml as plain values: grouping compares them as JSON
    seed: int
    split: str
    values: dict[str, float | None]
    history: list[HistoryRow]
    hardware: str


@dataclass
class Group:
    label: str
    runs: list[RunSummary]
    stats: dict[str, MeanStd] = field(default_factory=dict)  # column key -> mean ± std over the group's runs

    @property
    def n(self) -> int:
        return len(self.runs)


@dataclass
class Comparison:
    groups: list[Group]
    differing: list[str]  # config keys whose values differ between groups
    splits: list[str]


def _value(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def summarize_run(run_dir: str | os.PathLike) -> RunSummary:
    """The numbers `compare` shows for one run, read from its records. metrics.json and dataset.json may be
    missing (a run still training or not yet evaluated): their columns are then empty."""
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    missing = [name for name in ("model.json", "config.yaml") if not run.has(name)]
    if missing:
        raise bad_path("runs", run_dir, "run directories with config.yaml and model.json",
                       f"no {missing[0]}" if run_dir.exists() else "no such folder")
    card, config = run.read_card(), run.read_config()
    metrics = run.read_metrics() if run.has("metrics.json") else None
    dataset = run.read_dataset() if run.has("dataset.json") else None
    history = run.read_history()
    training = card.training
    minority = dataset.imbalance.minority if dataset is not None and dataset.imbalance.imbalanced else []
    hw = card.hardware
    hardware = hw.get("gpu") or (f"{hw.get('cpu')} ({hw.get('cores')} cores)" if hw.get("cpu") else "unknown")
    values = {
        "val_accuracy": best_val_accuracy(history, training.best_epoch),
        "test_accuracy": _value(metrics.accuracy) if metrics else None,
        "macro_f1": _value(metrics.macro.f1) if metrics else None,
        "minority_recall": mean_recall(metrics.per_class, minority) if metrics and minority else None,
        "worst_recall": _value(metrics.worst_class.recall) if metrics and metrics.worst_class else None,
        "num_params": _value(card.num_params),
        "epochs": _value(training.epochs_run or len(history) or None),
        "train_seconds": _value(training.train_seconds),
        "images_per_s": _value(training.images_per_s),
    }
    return RunSummary(run_dir, run_dir.resolve().name, config.model_dump(mode="json"), config.seed,
                      metrics.split if metrics else "?", values, history, hardware)


def _experiment(config: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in config.items() if k not in NOT_THE_EXPERIMENT}, sort_keys=True, default=str)


def compare_runs(run_dirs: list[str | os.PathLike]) -> Comparison:
    """Summarise each run, group runs that differ only in seed, label each group by what sets it apart."""
    if len(run_dirs) < 2:
        raise invalid("runs", [str(r) for r in run_dirs], "at least two run directories")
    resolved = [str(Path(r).resolve()) for r in run_dirs]
    twice = sorted({str(r) for r, p in zip(run_dirs, resolved) if resolved.count(p) > 1})
    if twice:
        raise invalid("runs", [str(r) for r in run_dirs], "distinct run directories",
                      note=f"{', '.join(twice)} given more than once")
    summaries = [summarize_run(r) for r in run_dirs]
    by_key: dict[str, list[RunSummary]] = {}
    for s in summaries:
        by_key.setdefault(_experiment(s.config), []).append(s)
    keys = sorted({k for s in summaries for k in s.config} - NOT_THE_EXPERIMENT)
    members = list(by_key.values())
    differing = [k for k in keys
                 if len({json.dumps(m[0].config.get(k), sort_keys=True, default=str) for m in members}) > 1]
    groups = []
    for runs in members:
        # Label a group by what sets it apart; with one group only, by its model (several seeds) or run name.
        if differing:
            label = ", ".join(f"{k}={_short_value(runs[0].config.get(k))}" for k in differing)
        else:
            label = str(runs[0].config.get("model")) if len(runs) > 1 else runs[0].name
        groups.append(Group(label, runs, {key: mean_std(r.values[key] for r in runs) for key, *_ in COLUMNS}))
    return Comparison(groups, differing, sorted({s.split for s in summaries}))


def _short_value(v: Any, limit: int = 40) -> str:
    text = json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)
    if isinstance(v, str) and len(text) > limit and ("/" in text or os.sep in text):
        text = Path(text).name  # data folders: the folder name tells them apart
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------------- formatting
def format_cell(stat: MeanStd, kind: str) -> str:
    """One table cell: a group's mean ± std (the std left out for a single run), formatted by column kind."""
    if stat.mean is None:
        return "—"
    if kind == "pct":
        return stat.text(2, scale=100, unit=" %")
    if kind == "seconds":
        return stat.text(1, unit=" s")
    if kind == "int":
        return f"{int(round(stat.mean)):,}"
    if stat.std is not None and stat.std > 0:
        return stat.text(1)
    return f"{stat.mean:.0f}" if float(stat.mean).is_integer() else f"{stat.mean:.1f}"


def best_groups(comparison: Comparison) -> dict[str, int]:
    """{column: index of the best group} for columns with a direction (ties: the first)."""
    best = {}
    for key, _, _, higher in COLUMNS:
        if higher is None or len(comparison.groups) < 2:
            continue
        scored = [(g.stats[key].mean, i) for i, g in enumerate(comparison.groups) if g.stats[key].mean is not None]
        if len(scored) > 1:
            best[key] = (max if higher else min)(scored, key=lambda t: t[0])[1]
    return best


def render_table(comparison: Comparison, console: Any) -> None:
    """The side-by-side table in the terminal (rich)."""
    from rich.table import Table

    splits = "/".join(comparison.splits)
    table = Table(title=f"{sum(g.n for g in comparison.groups)} runs in {len(comparison.groups)} group(s)",
                  caption="mean ± std over the seeds of a group" if any(g.n > 1 for g in comparison.groups) else None)
    table.add_column("run / group")
    table.add_column("n", justify="right")
    for key, title, _, _ in COLUMNS:
        table.add_column(f"{title} ({splits})" if key == "test_accuracy" else title, justify="right")
    best = best_groups(comparison)
    for i, g in enumerate(comparison.groups):
        cells = []
        for key, _, kind, _ in COLUMNS:
            text = format_cell(g.stats[key], kind)
            cells.append(f"[bold green]{text}[/bold green]" if best.get(key) == i else text)
        name = f"{g.label}\n[dim]{', '.join(r.name for r in g.runs)}[/dim]" if g.label != g.runs[0].name else g.label
        table.add_row(name, str(g.n), *cells)
    console.print(table)
    if comparison.differing:
        console.print("groups differ in: " + ", ".join(comparison.differing))
    hardware = sorted({r.hardware for g in comparison.groups for r in g.runs})
    console.print("hardware: " + "; ".join(hardware))


def write_compare_html(comparison: Comparison, out: str | os.PathLike) -> Path:
    """compare.html: the table, the overlaid curves (embedded), and each group's runs and settings."""
    from ..pages import embed_png, render
    from .plots import plot_compare_curves

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        curves = Path(tmp) / "curves.png"
        plot_compare_curves([{"label": g.label, "histories": [r.history for r in g.runs]} for g in comparison.groups],
                            curves)
        figure = embed_png(curves)
    best = best_groups(comparison)
    rows = []
    for i, g in enumerate(comparison.groups):
        rows.append({
            "label": g.label, "n": g.n,
            "cells": [{"text": format_cell(g.stats[k], kind), "best": best.get(k) == i} for k, _, kind, _ in COLUMNS],
            "runs": [{"name": r.name, "path": str(r.path.resolve()), "seed": r.seed, "hardware": r.hardware,
                      "report": str((r.path / "report.html").resolve()) if (r.path / "report.html").exists() else None,
                      "cells": [format_cell(mean_std([r.values[k]]), kind) for k, _, kind, _ in COLUMNS]}
                     for r in g.runs],
            "settings": {k: _short_value(g.runs[0].config.get(k), 80) for k in comparison.differing},
        })
    html = render("compare.html", columns=[c[1] for c in COLUMNS], rows=rows, figure=figure,
                  differing=comparison.differing, splits="/".join(comparison.splits),
                  hardware=sorted({r.hardware for g in comparison.groups for r in g.runs}),
                  generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  total=sum(g.n for g in comparison.groups))
    atomic_write_text(out, html)
    return out
