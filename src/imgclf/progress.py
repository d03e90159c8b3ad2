"""Progress of the long steps outside training (building a cache, predicting a split), shown the way training's is.

On a terminal: a Rich bar on stderr that clears itself when done. Redirected: a few plain lines (when a quarter,
a half and three quarters are done) and a closing line, so a log stays readable with less and grep; nothing per
image either way. A step that ends within `SHOW_AFTER_SECONDS` prints nothing at all: most caches open or build in a
moment, and a line for each would bury the lines that matter.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO

from .hardware import launch_rank
from .io import terminal_safe

QUARTERS = (0.25, 0.5, 0.75)
SHOW_AFTER_SECONDS = 1.0  # tests set 0 to see the lines of a step that ran in a moment


class StepProgress:
    """`with StepProgress("decoding 10,000 images", 10_000) as bar: ... bar.update(len(chunk))`.

    Redirected output, at most five lines for any number of updates:
        decoding 10,000 images: 2,560/10,000 images (26 %), 3 s
        ...
        decoding 10,000 images: 10,000 images in 12.3 s, 3 unreadable
    """

    def __init__(self, label: str, total: int, unit: str = "images", *, enabled: bool = True,
                 after_seconds: float | None = None, stream: TextIO | None = None, terminal: bool | None = None):
        self.label = terminal_safe(label)
        self.total = max(0, int(total))
        self.unit = unit
        # other processes of a data-parallel launch do the same work; rank 0 speaks for them
        self.enabled = enabled and self.total > 0 and launch_rank() == 0
        self.after_seconds = SHOW_AFTER_SECONDS if after_seconds is None else after_seconds
        self.stream = stream
        self.terminal = terminal
        self.done = 0
        self.lines = 0  # plain lines written
        self._start = time.perf_counter()
        self._quarters = list(QUARTERS)
        self._bar: Any = None  # rich Progress, once shown on a terminal
        self._task: Any = None

    # --------------------------------------------------------------------------------------------- output
    def _out(self) -> TextIO:
        return self.stream or sys.stderr

    def _is_terminal(self) -> bool:
        if self.terminal is not None:
            return self.terminal
        return bool(getattr(self._out(), "isatty", lambda: False)())

    def _print(self, text: str) -> None:
        print(f"{self.label}: {text}", file=self._out(), flush=True)
        self.lines += 1

    def _elapsed(self) -> float:
        return time.perf_counter() - self._start

    # ----------------------------------------------------------------------------------------------- steps
    def update(self, n: int) -> None:
        self.done = min(self.total, self.done + int(n))
        if not self.enabled or self._elapsed() < self.after_seconds:
            return
        if self._is_terminal():
            self._show_bar()
            self._bar.update(self._task, completed=self.done)
            return
        passed = [q for q in self._quarters if self.done >= q * self.total]
        if passed and self.done < self.total:  # one line however many quarters one update passed
            self._quarters = [q for q in self._quarters if q not in passed]
            self._print(f"{self.done:,}/{self.total:,} {self.unit} ({100 * self.done / self.total:.0f} %), "
                        f"{self._elapsed():.0f} s")

    def _show_bar(self) -> None:
        if self._bar is not None:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        # a label holds user paths: "[/x]" raised Rich's MarkupError, ":train:" drew an emoji
        self._bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                             TimeRemainingColumn(), console=Console(file=self._out(), emoji=False), transient=True)
        self._task = self._bar.add_task(self.label, total=self.total, completed=self.done)
        self._bar.start()

    def announce(self, text: str) -> None:
        """One line now, before any update: for a step that reports no progress of its own while it runs, so that
        a long one is not silence."""
        if self.enabled:
            self._print(text)

    def close(self, note: str = "", ok: bool = True) -> None:
        """The closing line (with `note`, e.g. how many files failed) when the step took long enough to show."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if ok and self.enabled and self._elapsed() >= self.after_seconds:
            self._print(f"{self.done:,} {self.unit} in {self._elapsed():.1f} s" + (f", {note}" if note else ""))
        self.enabled = False  # closed: nothing more

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close(ok=kind is None)
