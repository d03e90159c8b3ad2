"""The audit's counts as a few console lines: what `imgclf audit` ends with and `imgclf inspect` shows while
the folder's last audit is fresh."""

from __future__ import annotations

from typing import Any


# measured by benchmarks/trust_audit_run.py (docs/trust.md): Fashion-MNIST with 2 % of labels flipped
RUN_HINT = ("labels were judged on pixels: a run trained on this data judges them on its own features (imgclf audit "
            "DATA --run RUN; on Fashion-MNIST a 6-epoch run flagged 677 clean images instead of 3,651, while a "
            "run of a minute or two may flag more than pixels do)")


NOT_CHECKED = "label errors not checked: "  # how the audit's note starts when it looked for none


def count_lines(counts: Any, leakage: dict[str, int], accuracy: float | None = None, checked: bool = True,
                note: str = "", run_split: bool = False, no_splits: bool | str = False) -> list[str]:
    """Plain-text lines (Rich markup only for colour) for an AuditCounts. checked: whether label errors were
    looked for (False: 'not checked', never a count of 0 that reads as clean); note: the features' note (why not,
    or which classes were left out); run_split: the splits are the run's, not the folder's; no_splits: a flat
    folder audited without a run, where no leak can be (its 0 read as checked and clean), or "run": with a run
    whose split could not be used (its files moved, or none of these images in it)."""
    from ..config_text import plural
    from ..io import console_text

    c = counts
    warn = lambda n: f"[yellow]{n}[/yellow]" if n else str(n)  # noqa: E731
    if not checked:
        labels = f"likely label errors: [yellow]not checked[/yellow]: {console_text(note.removeprefix(NOT_CHECKED))}"
    else:
        labels = (f"likely label errors: {warn(c.label_issues)}"
                  + (f" (out-of-fold accuracy {100 * accuracy:.1f} %)" if accuracy is not None else "")
                  + (f"; {console_text(note)}" if note else ""))
    between = ", ".join(f"{k} {v}" for k, v in leakage.items() if v)
    lines = [
        f"duplicates: {plural(c.duplicate_groups, 'group')} ({c.exact_groups} exact, {c.near_groups} near), "
        f"{plural(c.redundant_images, 'redundant image')}, {c.identical_images} byte-identical to another",
        ("leakage: not judged: the run's split could not be used here (see the warning above), and a flat folder "
         "has no splits of its own" if no_splits == "run" else
         "leakage: none to find: a flat folder has no splits (--run RUN checks a run's)") if no_splits else
        f"leakage: {warn(c.leaked_images)} val/test images with a copy or near-copy in an earlier split"
        + (" of the run" if run_split else "")
        + (f" ({c.leakage_groups} groups: {between})" if c.leakage_groups else ""),
        f"conflicting labels: {warn(c.conflicting_label_groups)} group{'s hold' if c.conflicting_label_groups != 1 else ' holds'} one picture under several classes",
        labels,
        f"outliers: {c.outliers}; dark, bright, flat, near-empty or noise-like: {c.pixel_issues}",
    ]
    return lines


def _no_splits(record: Any) -> bool | str:
    """A flat folder whose leaks were not looked for: "run" where a run was given but its split went unused."""
    if record.layout != "flat" or record.settings.splits == "run":
        return False
    return "run" if record.settings.run else True


def render_counts(record: Any, console: Any, heading: str | None = None) -> None:
    c = record.counts
    console.print(heading or f"[bold]audit[/bold] of {c.images} images ({c.skipped} skipped), features: "
                             f"{record.features.source}")
    for line in count_lines(c, record.leakage, record.features.accuracy, record.features.folds > 0,
                            record.features.note, record.settings.splits == "run",
                            _no_splits(record)):
        console.print(f"  {line}")
    if 0 < record.features.folds < record.settings.folds:
        console.print(f"  label errors from {record.features.folds} folds, not the {record.settings.folds} asked: a "
                      f"fold needs an image of every class, and the smallest has {record.features.folds}")
    if record.features.source == "pixels" and record.features.folds:
        console.print(f"  [dim]{RUN_HINT}[/dim]")
