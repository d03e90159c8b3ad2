"""`--logger csv` on a resumed run: the interrupted process's rows stay in metrics.csv.

Lightning's CSV writer deletes metrics.csv when it starts, so a resumed run's file began at the epoch it resumed
from. This writer keeps the file, less the rows the resumed run supersedes: the interrupted process may have
logged steps after its last checkpoint, which the resumed run trains and logs again. The first step the resumed
run logs says where it restarted; rows from that step on are dropped once, at its first save, and the file
rewritten whole (temp file and rename) before Lightning appends to it.
"""

from __future__ import annotations

import csv
import io
import os

from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from ..io import atomic_write_text


class ContinuedCSVWriter(ExperimentWriter):
    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        self._merged = False

    def _check_log_dir_exists(self) -> None:
        """Lightning's deletes the metrics file found here; a resumed run continues it."""

    def save(self) -> None:
        if not self._merged and self.metrics and os.path.isfile(self.metrics_file_path):
            self._merged = True
            restart = min(float(m["step"]) for m in self.metrics)
            with open(self.metrics_file_path, newline="") as file:
                reader = csv.DictReader(file)
                earlier = [row for row in reader if _step(row) < restart]
                fields = sorted(set(reader.fieldnames or ()) | set().union(*self.metrics))
            text = io.StringIO(newline="")
            writer = csv.DictWriter(text, fieldnames=fields)
            writer.writeheader()
            writer.writerows(earlier)
            atomic_write_text(self.metrics_file_path, text.getvalue())  # never half a file, if killed here
            self.metrics_keys = fields  # Lightning's save below appends under this header
        super().save()


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")  # an unreadable step is not kept: NaN < restart is False
