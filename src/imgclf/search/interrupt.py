"""A search stopped by a signal: which trial it was in, and how to go on (the trial run's own hint would finish
that trial outside the search)."""

from __future__ import annotations

from pathlib import Path

from ..train.fit import TrainingInterrupted, stop_signal
from ..file_names import shell_word


class SearchInterrupted(TrainingInterrupted):
    """A search stopped by a signal, in trial `trial` (None: between trials); its message says how to go on."""

    def __init__(self, message: str, trial: int | None, exit_code: int = 130):
        super().__init__(message, exit_code=exit_code)
        self.trial = trial

    def __reduce__(self):  # pickled with what __init__ takes
        return type(self), (str(self), self.trial, self.exit_code)


def interrupted_message(exc: BaseException, folder: Path, number: int | None = None, run: Path | None = None) -> str:
    """What a search in `folder` stopped in trial `number`, whose run is `run` (None: between trials), says: the
    run's own hint (imgclf train --resume TRIAL) would finish that trial outside the search, whose study has
    marked it failed; the search goes on with --resume."""
    what = getattr(exc, "state", None) or stop_signal(exc)[0]  # a bare signal named: "(SIGTERM)", not "(interrupted)"
    go_on = (f"Continue the search by running the same imgclf tune command with --resume --out {shell_word(folder)} "
             "(Python: the "
             f"same imgclf.tune call with resume=True, out={str(folder)!r}): finished trials are kept")
    if number is None:
        return f"search interrupted between trials ({what}). {go_on}"
    # stopped before the trial made its folder, there is none to point at
    stays = f"; its run stays in {run}" if run is not None and Path(run).exists() else ""
    return (f"search interrupted in trial {number} ({what}{stays}). "
            f"{go_on}, trial {number} counts as failed and new trials take its place")
