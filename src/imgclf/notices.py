"""Warnings about the user's data and settings (a tiny validation split, a leak between splits, a class named
"unknown"): one line each on stderr, `warning ...`, through the `imgclf` logger, so that a script or notebook
silences them as it silences any library's logs:

    import logging
    logging.getLogger("imgclf").setLevel(logging.ERROR)   # or logging.disable(logging.WARNING)

They do not go to the root logger (a program that configures logging would print each twice). The modules' own
loggers (`imgclf.data.color`, `imgclf.data.sources`) are its children: their warnings print the same way."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

LOGGER_NAME = "imgclf"


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (a test runner or a notebook swaps it after import)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # logging.StreamHandler.__init__ sets it; the property reads sys.stderr
        pass


def install() -> logging.Logger:
    """The `imgclf` logger with its stderr handler (once), not propagating to the root logger."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h, _CurrentStderr) for h in logger.handlers):
        handler = _CurrentStderr()
        handler.setLevel(logging.WARNING)  # the INFO lines of a module's own logger (imgclf.data.sources) pass by
        handler.setFormatter(logging.Formatter("warning %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    return logger


_said: set[str] | None = None  # inside `each_once`: what was said (its keys)
_held: set[str] | None = None  # inside `each_once`: the kinds of warning held back (`hold_back`)


@contextmanager
def each_once() -> Iterator[None]:
    """Inside, a warning already said is not said again: a search's trials share one data set and settings, and
    each trial's run repeated its split warnings (a screenful per trial)."""
    global _said, _held
    outer, outer_held = _said, _held
    _said = set() if outer is None else outer
    _held = set() if outer_held is None else outer_held
    try:
        yield
    finally:
        _said, _held = outer, outer_held


def hold_back(*kinds: str) -> None:
    """Inside `each_once`, warnings whose key is "KIND: ..." for these kinds are not said: the caller has said what
    they would, in its own words (a study under S4's protocol, whose runs' advice to enlarge the val split names a
    setting it fixes)."""
    if _held is not None:
        _held.update(kinds)


def warn(message: str, key: str | None = None) -> None:
    """`message` as a warning line on stderr, unless the `imgclf` logger was set above WARNING. key: what makes it
    the same warning inside `each_once` (default the message; a warning naming the run it was said in gives
    its text without that name)."""
    if _held and key is not None and key.partition(": ")[0] in _held:
        return
    if _said is not None:
        if (key or message) in _said:
            return
        _said.add(key or message)
    install().warning(message)


def silence_pillow_warnings() -> None:
    """Pillow's warnings silenced for the rest of the process: its DecompressionBombWarning (imgclf refuses a bomb by
    its size, and decodes a large photo scaled down) and its notes on what it read around (a corrupt EXIF block: the
    image is used as stored), which printed as raw warnings with a line of Pillow's source between predictions.
    Called where the process is imgclf's own (the command line, a decode worker it started), never by the library
    in a caller's process: a `catch_warnings` around each image opened swapped the process's one filter list, and
    concurrent decodes (a caller's threads, predict's decode pool) left it changed, dropping the caller's own
    filters and silencing its DecompressionBombWarning made an error."""
    import warnings

    warnings.filterwarnings("ignore", module=r"PIL\.")
