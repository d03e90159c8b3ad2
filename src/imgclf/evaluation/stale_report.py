"""A run's report from before it changed: trained further or refitted without a new report, its page and figures
show the run as it was, so they are removed rather than left to be read as the run's."""

from __future__ import annotations

import os
from pathlib import Path

REPORT_FILE = "report.html"


def write_or_drop_report(run_dir: str | os.PathLike, report: bool, failures: list[str] | None = None) -> None:
    """After the run changed (trained, refitted): its report written anew (`failures`: as `write_report`), or,
    with `report` False, the earlier one removed."""
    if report:
        from .report import write_report

        write_report(run_dir, failures=failures)
    else:
        drop_stale_report(run_dir)


def drop_stale_report(run_dir: str | os.PathLike) -> bool:
    """Remove report.html and the figures it embeds (plots/<figure>.png); True when there was a report."""
    run_dir = Path(run_dir)
    page = run_dir / REPORT_FILE
    if not page.exists():
        return False
    from .multilabel_report import FIGURES as LABEL_FIGURES
    from .report_figures import FIGURES

    for key in {*FIGURES, *LABEL_FIGURES}:
        (run_dir / "plots" / f"{key}.png").unlink(missing_ok=True)
    page.unlink()
    return True
