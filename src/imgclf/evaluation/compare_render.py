"""How `imgclf compare` shows a `Comparison`: the terminal table and compare.html (its table by evaluation set,
the overlaid validation curves, each group's runs and settings). The best group of each column is marked within
its section only."""

from __future__ import annotations

import math
import os
import tempfile
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import invalid
from ..io import atomic_write_text
from ..stats import MeanStd, mean_std
from .compare import COLUMNS, Comparison, Group, setting_text


def format_cell(stat: MeanStd, kind: str) -> str:
    """One table cell: a group's mean ± std (the std left out for a single run), formatted by column kind."""
    if stat.mean is None:
        return "—"
    if kind == "pct":
        return stat.text(2, scale=100, unit=" %")
    if kind == "seconds":
        return stat.text(1, unit=" s")
    if kind == "loss":
        return stat.text(3)
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
            if key.startswith("val_") and not section.val_alike:  # scored on other validation images
                continue
            scored = {i: comparison.groups[i].stats[key].mean for i in section.groups
                      if comparison.groups[i].stats[key].mean is not None}
            if len(scored) < 2:
                continue
            top = (max if higher else min)(scored.values())
            winners = {i for i, v in scored.items() if math.isclose(v, top, rel_tol=1e-9, abs_tol=1e-12)}
            if len(winners) < len(scored):
                best.setdefault(key, set()).update(winners)
    return best


def chosen_on_validation(comparison: Comparison) -> list[str]:
    """Per set of validation images that two groups or more validated on: the group a user should keep, chosen
    by validation accuracy (mAP for multi-label runs), never by test scores, which then would no longer be an
    honest estimate. Across the test sections: a search tests only its chosen trial, so its trials sit in two
    sections, and the choice among the untested ones named a worse trial than the search's own. Empty where no
    choice can be made so (no shared validation images, or a tie)."""
    by_val: dict[frozenset, list[int]] = {}
    for i, group in enumerate(comparison.groups):
        validated = frozenset(r.val_set for r in group.runs)
        if None not in validated:
            by_val.setdefault(validated, []).append(i)
    shared = [members for members in by_val.values() if len(members) > 1]
    out = []
    for members in shared:
        groups = [comparison.groups[i] for i in members]
        key, name = ("val_map", "validation mAP") if any(g.stats["val_map"].mean is not None for g in groups) \
            else ("val_accuracy", "validation accuracy")
        scored = {g.key: g.stats[key].mean for g in groups if g.stats[key].mean is not None}
        if len(scored) < 2:
            continue
        top = max(scored.values())
        winners = [k for k, v in scored.items() if math.isclose(v, top, rel_tol=1e-9, abs_tol=1e-12)]
        if len(winners) == len(scored):  # all tied: nothing to choose
            continue
        value = format_cell(MeanStd(top, None, 1), "pct")
        where = "" if len(shared) == 1 and len(members) == len(comparison.groups) else \
            f" (among {', '.join(g.key for g in groups)}, validated on the same images)"
        out.append(f"chosen on validation{where}: {' and '.join(winners)} ({'tied at ' if len(winners) > 1 else ''}"
                   f"{name} {value}; test scores are the estimate of the one kept, not what chooses it)")
    return out


# The terminal's columns, narrower than the page's: (key, header, kind). images/s is left to the page (it says
# more about the machine than the model), so the table fits 80 columns.
TERMINAL_COLUMNS = (
    ("val_accuracy", "val\nacc %", "pct"),
    ("val_map", "val\nmAP %", "pct"),
    ("test_accuracy", "test\nacc %", "pct"),
    ("test_map", "test\nmAP %", "pct"),
    ("macro_f1", "macro\nF1 %", "pct"),
    ("worst_recall", "worst\nrecall %", "pct"),
    ("minority_recall", "minority\nrecall %", "pct"),
    ("num_params", "\nparams", "count"),
    ("epochs", "\nepochs", "num"),
    ("train_seconds", "train\ns", "num"),
)


def _of_runs(stat: MeanStd, runs: int) -> str:
    """' (n=2)' where fewer of a group's runs have the column's value than the group has runs (one not
    evaluated): the n column counted it, the mean did not."""
    return f" (n={stat.n})" if stat.mean is not None and stat.n < runs else ""


def terminal_cell(stat: MeanStd, kind: str, runs: int = 0) -> str:
    """A narrow cell: the mean, and ± std on a second line (a group of seeds), no unit (the header has it); the
    runs behind it where fewer than the group's `runs`."""
    if stat.mean is None:
        return "—"
    return _terminal_value(stat, kind) + _of_runs(stat, runs).replace(" (", "\n(")


def _terminal_value(stat: MeanStd, kind: str) -> str:
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

    from ..io import console_text, terminal_safe

    groups = comparison.groups
    columns = [c for c in TERMINAL_COLUMNS if any(g.stats[c[0]].mean is not None for g in groups)]
    best = best_groups(comparison)
    total = sum(g.n for g in groups)
    for n, section in enumerate(comparison.sections):
        title = terminal_safe(section.title)
        if len(comparison.sections) == 1:
            runs, sets = ("run" if total == 1 else "runs"), ("group" if len(groups) == 1 else "groups")
            title = f"{total} {runs} in {len(groups)} {sets} · {title}"
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
                text = terminal_cell(g.stats[key], kind, g.n)
                cells.append(f"[bold green]{text}[/bold green]" if i in best.get(key, ()) else text)
            table.add_row(f"[bold]{g.key}[/bold]", str(g.n), *cells)
        console.print(table)
    console.print()
    key = Table.grid(padding=(0, 1))
    key.add_column(no_wrap=True)
    key.add_column(overflow="fold")  # long run names folded, not cut to look alike ("variant_1…" for 10 to 14)
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
                     "above; groups scored on different images (other than their seeds' draws of one folder) are not ranked "
                     "against each other")
    elif best:
        notes.append("best per column in green")
    notes.extend(chosen_on_validation(comparison))
    if any(r.config.get("task") == "multilabel" for g in groups for r in g.runs):
        from .interpret import MULTILABEL_ACCURACY_NOTE

        notes.append(MULTILABEL_ACCURACY_NOTE)
    notes.append("hardware: " + "; ".join(sorted({r.hardware for g in groups for r in g.runs})))
    notes.extend(resumed_notes(groups))
    for note in notes:
        console.print(console_text(note), soft_wrap=False, highlight=False)
    for run, why in comparison.skipped:
        console.print(console_text(f"skipped {run}: {why}"), style="yellow", soft_wrap=False,
                      highlight=False)


def _breakable(text: str) -> Any:
    """HTML of a label that may break after each comma: `augment=hflip,rotate=30,...` has no space to wrap at."""
    from markupsafe import Markup, escape

    return Markup(",<wbr>").join(escape(part) for part in text.split(","))


def _spread(stat: MeanStd, kind: str) -> str:
    """The ± std part of a page cell, shown under the mean so that the columns stay narrow ("" for one run)."""
    if not stat.std or stat.mean is None or kind == "int":  # a zero spread said as the terminal says it: not at all
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


def page_path(argument: str, out: str | os.PathLike, said: str | None = None) -> Path:
    """`out` as the page to write, checked before the runs are read; a name without .html is written all the same,
    with a warning (browsers and file managers go by the extension) naming it as `said` (the command line's
    --out; default `argument`)."""
    from ..io import terminal_safe, writable_file
    from ..notices import warn

    out = writable_file(argument, out)
    if out.suffix.lower() not in (".html", ".htm"):
        warn(f"{said or argument} {terminal_safe(out)} has no .html extension: the comparison is written there as "
             "HTML, which browsers and file managers recognise by the extension")
    return out


def _refuse_a_page_inside_a_run(out: Path, comparison: Comparison) -> None:
    """`--out RUN/metrics.json` wrote the page over the run's own record (the run then failed to load), and
    `--out RUN/report.html` over its report, without a word: a page inside any run compared, or passed over, is
    refused before anything is written."""
    from ..run_markers import RUN_GROUP_FILES

    target = out.expanduser().resolve()
    runs = [r.path for g in comparison.groups for r in g.runs] + [Path(p) for p, _ in comparison.skipped]
    for run in runs:
        where = Path(run).resolve()
        # the run itself, and a cross-validation's, a study's or a search's folder holding it: the next run of
        # those refused the page as a file of another
        holders = [(where, f"the run {run}, whose files it would overwrite or add to")] + [
            (group, f"{group}, a cross-validation's, study's or search's folder, which takes no other files")
            for group in (where.parent, where.parent.parent) if any((group / f).is_file() for f in RUN_GROUP_FILES)]
        for folder, what in holders:
            if target == folder or folder in target.parents:
                raise invalid("out", str(out), "a page outside the run directories compared",
                              note=f"it is inside {what}", hint=f"Write it beside them, e.g. "
                                                                f"{folder.parent / 'compare.html'}")


def write_compare_html(comparison: Comparison, out: str | os.PathLike) -> Path:
    """compare.html: the table (by evaluation set), the overlaid curves (embedded), each group's runs and
    settings."""
    from ..pages import embed_png, render
    from .plots import plot_compare_curves

    out = Path(out)
    _refuse_a_page_inside_a_run(out, comparison)
    with tempfile.TemporaryDirectory() as tmp:
        curves = Path(tmp) / "curves.png"
        plot_compare_curves([{"label": legend_label(g), "histories": [r.history for r in g.runs],
                              "members": "folds" if any(r.config.get("fold") for r in g.runs) else "seeds"}
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
                       "spread": _spread(g.stats[k], kind) + _of_runs(g.stats[k], g.n), "best": i in best.get(k, ())}
                      for k, _, kind, _ in COLUMNS if k in shown],
            "runs": [{"name": r.name, "path": str(r.path.resolve()), "seed": r.seed, "hardware": r.hardware,
                      "report": _link(r.path / "report.html", out) if (r.path / "report.html").exists() else None,
                      "evaluation": r.evaluation.describe([r.seed]) if r.evaluation else None,
                      "cells": [format_cell(mean_std([r.values[k]]), kind) for k, _, kind, _ in COLUMNS
                                if k in shown]}
                     for r in g.runs],
            "settings": {k: setting_text(k, g.runs[0].config.get(k), comparison.digits, clip=False)
                         for k in comparison.differing},
        })
    sections = [{"title": s.title, "rows": [rows[i] for i in s.groups]} for s in comparison.sections]
    multilabel = any(r.config.get("task") == "multilabel" for g in comparison.groups for r in g.runs)
    html = render("compare.html", resumed=resumed_notes(comparison.groups), multilabel=multilabel,
                  columns=[c[1] for c in COLUMNS if c[0] in shown], sections=sections, rows=rows,
                  figure=figure,
                  differing=comparison.differing, ranked=bool(best), chosen=chosen_on_validation(comparison),
                  hardware=sorted({r.hardware for g in comparison.groups for r in g.runs}),
                  generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  total=sum(g.n for g in comparison.groups), skipped=comparison.skipped)
    atomic_write_text(out, html)
    return out


def _link(target: Path, page: Path) -> str:
    """The href from `page` to `target`, relative, so the page's links survive the folder being moved, shared or
    served (browsers block file:// links from a page served over http)."""
    from urllib.parse import quote

    relative = os.path.relpath(target.resolve(), page.resolve().parent)
    return quote(Path(relative).as_posix())


def resumed_notes(groups: list[Any]) -> list[str]:
    """One line per run resumed with other settings: the settings it is grouped and labelled by are its last
    process's, not those of its first epochs."""
    return [f"{g.key} {r.name}: {r.resumed}; grouped by its last settings" for g in groups for r in g.runs
            if r.resumed]
