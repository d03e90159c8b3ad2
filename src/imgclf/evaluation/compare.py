"""`imgclf compare RUN RUN ...`: a side-by-side table and overlaid validation curves for several runs.

Runs whose resolved config.yaml is the same except for the seed (and settings that cannot change the result,
such as the output folder) are one group, reported as mean ± std over its seeds — the way airbench reports
"94.01 mean accuracy (n=200 trials)" rather than one lucky run.

Only like is ranked with like: groups are ranked ("best" per column) within an evaluation set, the exact images
their metrics.json was scored on, never across data sets. Each group gets a letter (A, B, ...) that the tables
and the curves' legend share, so a long label is written out once, in the key, and never clipped.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import textwrap
import warnings
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
# `fold`: the K runs of a cross-validation are one group, reported as mean ± std over the folds.
NOT_THE_EXPERIMENT = frozenset({"seed", "out", "progress", "num_workers", "cache_dir", "cache_budget",
                                "schema_version", "fold"})

# (key, column title, kind, higher is better); kind decides the formatting.
COLUMNS: tuple[tuple[str, str, str, bool | None], ...] = (
    ("val_accuracy", "val acc", "pct", True),
    ("test_accuracy", "test acc", "pct", True),
    ("test_map", "test mAP", "pct", True),  # multi-label runs only (their test acc is subset accuracy)
    ("macro_f1", "macro F1", "pct", True),
    ("minority_recall", "minority recall", "pct", True),
    ("worst_recall", "worst-class recall", "pct", True),
    ("num_params", "params", "int", None),
    ("epochs", "epochs", "num", None),
    ("train_seconds", "train time", "seconds", False),
    ("images_per_s", "images/s", "num", True),
)


# What an unset (None) or empty setting means, for a group's label: `augment=` or `l2=None` says nothing.
UNSET_MEANS = {"augment": "none", "early_stopping": "off", "l2": "model's own", "head": "default",
               "img_size": "model's", "model_args": "defaults", "classes": "all", "steps_per_epoch": "one pass",
               "val_steps": "whole split", "checkpoint_every": "epoch ends", "out": "default",
               "folds": "none"}


@dataclass(frozen=True)
class EvaluationSet:
    """The images a run's metrics.json was scored on. Two runs are ranked against each other only when their
    sets are the same: the same files with the same labels (key)."""

    key: str  # digest of the (path, label) list; without dataset.json, of the metrics' split name and count
    split: str  # metrics.split: test, val, or DATA:split (a run evaluated on another folder by an older release)
    count: int
    data: str  # the data folder name(s)
    drawn: bool  # the run drew the split from its folder with its seed (no test/ or val/ folder)

    def describe(self, seeds: list[int] | None = None) -> str:
        where = f"{self.split} split of {self.data}" if ":" not in self.split else f"{_short_value(self.split)}"
        text = f"{where}, {self.count:,} images"
        unique = sorted(set(seeds or []))
        if self.drawn and unique:
            text += f", drawn with seed{'s' if len(unique) > 1 else ''} {', '.join(map(str, unique))}"
        return text


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
    evaluation: EvaluationSet | None = None  # None: not evaluated (no metrics.json)


@dataclass
class Group:
    label: str
    runs: list[RunSummary]
    stats: dict[str, MeanStd] = field(default_factory=dict)  # column key -> mean ± std over the group's runs
    key: str = ""  # A, B, ...: the short name the tables and the curves share

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def evaluations(self) -> tuple[EvaluationSet, ...]:
        """The distinct evaluation sets of its runs (seeds drawing their own test split give one each)."""
        sets = {r.evaluation.key: r.evaluation for r in self.runs if r.evaluation is not None}
        return tuple(sets[k] for k in sorted(sets))


@dataclass
class Section:
    """Groups scored on the same images: ranked against each other, and only against each other."""

    title: str
    groups: list[int]  # indices into Comparison.groups


@dataclass
class Comparison:
    groups: list[Group]
    differing: list[str]  # config keys whose values differ between groups
    splits: list[str]
    sections: list[Section] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run, why): unfinished runs left out


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
        "test_map": _value(metrics.multilabel.map_macro) if metrics and metrics.multilabel else None,
        "macro_f1": _value(metrics.macro.f1) if metrics else None,
        "minority_recall": mean_recall(metrics.per_class, minority) if metrics and minority else None,
        "worst_recall": _value(metrics.worst_class.recall) if metrics and metrics.worst_class else None,
        "num_params": _value(card.num_params),
        "epochs": _value(training.epochs_run or len(history) or None),
        "train_seconds": _value(training.train_seconds),
        "images_per_s": _value(training.images_per_s),
    }
    evaluation = _evaluation_set(metrics, dataset, config.data) if metrics else None
    return RunSummary(run_dir, run_dir.resolve().name, config.model_dump(mode="json"), config.seed,
                      metrics.split if metrics else "?", values, history, hardware, evaluation)


def _evaluation_set(metrics: Any, dataset: Any, data: Any) -> EvaluationSet:
    if dataset is not None:
        folders = list(getattr(dataset, "roots", None) or [dataset.root])
    else:
        folders = data if isinstance(data, list) else [data]
    names = ", ".join(Path(str(f)).name or str(f) for f in folders)
    if dataset is None or metrics.split not in dataset.splits:
        key = f"{metrics.split}|{metrics.count}|{'|'.join(map(str, folders))}"
        return EvaluationSet(hashlib.sha256(key.encode()).hexdigest()[:16], metrics.split, metrics.count, names, False)
    files, labels = dataset.split_paths(metrics.split)
    digest = hashlib.sha256()
    for f, y in sorted(zip(files, labels)):
        digest.update(f"{f}\t{y}\n".encode("utf-8", "surrogateescape"))
    # a split the run drew from its folder (flat layout, or val taken from train/) differs from seed to seed
    drawn = dataset.layout == "flat" or (metrics.split == "val" and dataset.val_source != "val/ folder")
    return EvaluationSet(digest.hexdigest()[:16], metrics.split, metrics.count, names, drawn)


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
    finished, skipped = [], []
    for r in run_dirs:
        why = unfinished(r)
        if why:
            skipped.append((str(r), why))
            warnings.warn(f"compare: skipped {r}: {why}", UnfinishedRunWarning, stacklevel=2)
        else:
            finished.append(r)
    if not finished:
        raise invalid("runs", [str(r) for r in run_dirs], "at least one finished run directory (with model.json)",
                      note="none has finished training")
    summaries = [summarize_run(r) for r in finished]
    by_key: dict[str, list[RunSummary]] = {}
    for s in summaries:
        # scores on another folder (written over the run's own by an older release) are never averaged with
        # scores on the run's own split
        other_data = s.split if ":" in s.split else ""
        by_key.setdefault(_experiment(s.config) + other_data, []).append(s)
    keys = sorted({k for s in summaries for k in s.config} - NOT_THE_EXPERIMENT)
    members = list(by_key.values())
    differing = [k for k in keys
                 if len({json.dumps(m[0].config.get(k), sort_keys=True, default=str) for m in members}) > 1]
    groups = []
    for runs in members:
        # Label a group by what sets it apart; with one group only, by its model (several seeds) or run name.
        if differing:
            label = ", ".join(f"{k}={_setting(k, runs[0].config.get(k))}" for k in differing)
        else:
            label = str(runs[0].config.get("model")) if len(runs) > 1 else runs[0].name
        if ":" in runs[0].split:
            label += f", scored on {_short_value(runs[0].split)}"
        folds = sorted({r.config.get("fold") for r in runs if r.config.get("fold")})
        if folds:
            label += f" ({len(folds)} of {runs[0].config.get('folds')} folds)"
        groups.append(Group(label, runs, {key: mean_std(r.values[key] for r in runs) for key, *_ in COLUMNS}))
    groups, sections = _sections(groups)
    for i, g in enumerate(groups):
        g.key = _letter(i)
    return Comparison(groups, differing, sorted({s.split for s in summaries}), sections, skipped)


class UnfinishedRunWarning(UserWarning):
    """A run given to `compare` that has not finished training; it is left out of the comparison."""


def unfinished(run_dir: str | os.PathLike) -> str:
    """Why a run directory is still unfinished (no model card yet: training interrupted or under way), or ""
    for a finished run and for anything that is not a run at all (summarize_run reports those)."""
    run = RunDir(run_dir)
    if run.has("model.json") or not (run.has("config.yaml") or run.has("checkpoints/last.ckpt")):
        return ""
    if run.has("checkpoints/last.ckpt"):
        return "interrupted, no model.json (imgclf train --resume continues it)"
    return "unfinished, no model.json (training stopped before its first checkpoint, or is under way)"


def _sections(groups: list[Group]) -> tuple[list[Group], list[Section]]:
    """Groups ordered by evaluation set (first appearance), and one Section per set."""
    by_set: dict[tuple[str, ...], list[Group]] = {}
    for g in groups:
        by_set.setdefault(tuple(e.key for e in g.evaluations), []).append(g)
    ordered, sections, titles = [], [], []
    for members in by_set.values():
        seeds = [r.seed for g in members for r in g.runs if r.evaluation is not None]
        titles.append(_section_title(members[0].evaluations, seeds))
        sections.append(Section(titles[-1], list(range(len(ordered), len(ordered) + len(members)))))
        ordered += members
    for section, (key, members) in zip(sections, by_set.items()):
        if titles.count(section.title) > 1:  # same description, other files (a folder changed in between)
            section.title += f" [images {key[0][:6] if key else '-'}]"
    return ordered, sections


def _section_title(sets: tuple[EvaluationSet, ...], seeds: list[int]) -> str:
    """What the groups of a section were scored on; a split drawn per seed names the seeds that drew it."""
    if not sets:
        return "not evaluated (no metrics.json)"
    first = sets[0]
    if all((e.split, e.data, e.count, e.drawn) == (first.split, first.data, first.count, first.drawn) for e in sets):
        return first.describe(seeds)
    return "; ".join(e.describe() for e in sets)


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"G{i + 1}"


def _setting(key: str, value: Any) -> str:
    """A setting's value for a label: what an unset or empty value means rather than `augment=`."""
    if value is None or value == "" or value == {} or value == []:
        return UNSET_MEANS.get(key, "none")
    if isinstance(value, list) and all(isinstance(v, str) for v in value) and key == "data":
        return " + ".join(_short_value(v, 30) for v in value)  # several data folders
    return _short_value(value)


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


def best_groups(comparison: Comparison) -> dict[str, set[int]]:
    """{column: indices of the best groups of each section} for columns with a direction; groups that tie for
    best are all marked, and a column where every group ties marks none.

    Within a section only: a higher accuracy on other images (another data set, another test split) is not a
    better result, and highlighting it as one was how `compare` misled (issue 26)."""
    best: dict[str, set[int]] = {}
    for key, _, _, higher in COLUMNS:
        if higher is None:
            continue
        for section in comparison.sections:
            scored = {i: comparison.groups[i].stats[key].mean for i in section.groups
                      if comparison.groups[i].stats[key].mean is not None}
            if len(scored) < 2:
                continue
            top = (max if higher else min)(scored.values())
            winners = {i for i, v in scored.items() if math.isclose(v, top, rel_tol=1e-9, abs_tol=1e-12)}
            if len(winners) < len(scored):
                best.setdefault(key, set()).update(winners)
    return best


# The terminal's columns, narrower than the page's: (key, header, kind). images/s is left to the page (it says
# more about the machine than the model), so the table fits 80 columns.
TERMINAL_COLUMNS = (
    ("val_accuracy", "val\nacc %", "pct"),
    ("test_accuracy", "test\nacc %", "pct"),
    ("test_map", "test\nmAP %", "pct"),
    ("macro_f1", "macro\nF1 %", "pct"),
    ("worst_recall", "worst\nrecall %", "pct"),
    ("minority_recall", "minority\nrecall %", "pct"),
    ("num_params", "\nparams", "count"),
    ("epochs", "\nepochs", "num"),
    ("train_seconds", "train\ns", "num"),
)


def terminal_cell(stat: MeanStd, kind: str) -> str:
    """A narrow cell: the mean, and ± std on a second line (a group of seeds), no unit (the header has it)."""
    if stat.mean is None:
        return "—"
    if kind == "count":
        n = stat.mean
        return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.0f} k" if n >= 1e3 else f"{n:.0f}"
    scale, digits = (100, 2) if kind == "pct" else (1, 1)
    mean = f"{scale * stat.mean:.{digits}f}"
    if kind == "num" and float(stat.mean).is_integer() and not stat.std:
        mean = f"{stat.mean:.0f}"
    return mean + (f"\n±{scale * stat.std:.{digits}f}" if stat.std else "")


def render_table(comparison: Comparison, console: Any) -> None:
    """The side-by-side tables in the terminal (rich), one per evaluation set, then the key of the group letters.
    Fits 80 columns: group labels live in the key below the tables, which wraps, not in a table column."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from ..io import terminal_safe

    groups = comparison.groups
    columns = [c for c in TERMINAL_COLUMNS if any(g.stats[c[0]].mean is not None for g in groups)]
    best = best_groups(comparison)
    total = sum(g.n for g in groups)
    for n, section in enumerate(comparison.sections):
        title = terminal_safe(section.title)
        if len(comparison.sections) == 1:
            title = f"{total} runs in {len(groups)} group{'s' if len(groups) != 1 else ''} · {title}"
        # the title on its own, wrapped at the console's width (a table title wider than its table is not)
        console.print(("\n" if n else "") + escape(title), style="bold", soft_wrap=False, highlight=False)
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        table.add_column("", no_wrap=True)
        table.add_column("\nn", justify="right")
        for _, header, _ in columns:
            table.add_column(header, justify="right")
        for i in section.groups:
            g = groups[i]
            cells = []
            for key, _, kind in columns:
                text = terminal_cell(g.stats[key], kind)
                cells.append(f"[bold green]{text}[/bold green]" if i in best.get(key, ()) else text)
            table.add_row(f"[bold]{g.key}[/bold]", str(g.n), *cells)
        console.print(table)
    console.print()
    key = Table.grid(padding=(0, 1))
    key.add_column(no_wrap=True)
    key.add_column()
    for g in groups:
        names = ", ".join(r.name for r in g.runs)
        text = Text(terminal_safe(g.label))
        if names != g.label:
            text.append(f"  ({'runs ' if g.n > 1 else ''}{terminal_safe(names)})", style="dim")
        key.add_row(Text(g.key, style="bold"), text)
    console.print(key)
    notes = []
    if comparison.differing:
        notes.append("groups differ in: " + ", ".join(comparison.differing))
    if any(g.n > 1 for g in groups):
        notes.append("mean and ±std over the seeds (or cross-validation folds) of a group")
    if len(comparison.sections) > 1:
        notes.append(f"best per column in green within each of the {len(comparison.sections)} evaluation sets "
                     "above; groups scored on different images are not ranked against each other")
    elif best:
        notes.append("best per column in green")
    notes.append("hardware: " + "; ".join(sorted({r.hardware for g in groups for r in g.runs})))
    for note in notes:
        console.print(escape(terminal_safe(note)), soft_wrap=False, highlight=False)
    for run, why in comparison.skipped:
        console.print(escape(terminal_safe(f"skipped {run}: {why}")), style="yellow", soft_wrap=False,
                      highlight=False)


def _breakable(text: str) -> Any:
    """HTML of a label that may break after each comma: `augment=hflip,rotate=30,...` has no space to wrap at."""
    from markupsafe import Markup, escape

    return Markup(",<wbr>").join(escape(part) for part in text.split(","))


def _spread(stat: MeanStd, kind: str) -> str:
    """The ± std part of a page cell, shown under the mean so that the columns stay narrow ("" for one run)."""
    if stat.std is None or stat.mean is None or kind == "int":
        return ""
    return "± " + format_cell(MeanStd(stat.std, None, 1), kind)


def legend_label(group: Group, width: int = 42, max_lines: int = 3) -> str:
    """The curves' legend entry: the letter and the label, wrapped (a legend does not wrap by itself, and a long
    single line ran off the figure), at most `max_lines` lines; the page's key has the whole label."""
    lines = textwrap.wrap(f"{group.key}: {group.label}", width) or [group.key]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1] + "…"
    if len(group.runs) > 1 and len(lines[-1]) > width - 24:  # the figure appends " (mean of N seeds ± std)"
        lines.append("")
    return "\n".join(lines)


def write_compare_html(comparison: Comparison, out: str | os.PathLike) -> Path:
    """compare.html: the table (by evaluation set), the overlaid curves (embedded), each group's runs and
    settings."""
    from ..pages import embed_png, render
    from .plots import plot_compare_curves

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        curves = Path(tmp) / "curves.png"
        plot_compare_curves([{"label": legend_label(g), "histories": [r.history for r in g.runs]}
                             for g in comparison.groups], curves)
        figure = embed_png(curves)
    best = best_groups(comparison)
    # a column no run has a value for (minority recall on balanced data) is left out rather than all dashes
    shown = {k for k, *_ in COLUMNS if any(g.stats[k].mean is not None for g in comparison.groups)}
    rows = []
    for i, g in enumerate(comparison.groups):
        rows.append({
            "key": g.key, "label": g.label, "label_html": _breakable(g.label), "n": g.n,
            "cells": [{"text": format_cell(MeanStd(g.stats[k].mean, None, g.stats[k].n), kind),
                       "spread": _spread(g.stats[k], kind), "best": i in best.get(k, ())}
                      for k, _, kind, _ in COLUMNS if k in shown],
            "runs": [{"name": r.name, "path": str(r.path.resolve()), "seed": r.seed, "hardware": r.hardware,
                      "report": str((r.path / "report.html").resolve()) if (r.path / "report.html").exists() else None,
                      "evaluation": r.evaluation.describe([r.seed]) if r.evaluation else "not evaluated",
                      "cells": [format_cell(mean_std([r.values[k]]), kind) for k, _, kind, _ in COLUMNS
                                if k in shown]}
                     for r in g.runs],
            "settings": {k: _setting(k, g.runs[0].config.get(k)) for k in comparison.differing},
        })
    sections = [{"title": s.title, "rows": [rows[i] for i in s.groups]} for s in comparison.sections]
    html = render("compare.html", columns=[c[1] for c in COLUMNS if c[0] in shown], sections=sections, rows=rows, figure=figure,
                  differing=comparison.differing, ranked=bool(best),
                  hardware=sorted({r.hardware for g in comparison.groups for r in g.runs}),
                  generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  total=sum(g.n for g in comparison.groups))
    atomic_write_text(out, html)
    return out
