"""A run's report from before it changed: trained further or refitted without a new report, its page and figures
show the run as it was, so they are removed rather than left to be read as the run's."""

from __future__ import annotations

import os
from pathlib import Path

REPORT_FILE = "report.html"


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
