"""Errors a user can act on. The CLI turns these into one line and exit status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ImgclfError(ValueError):
    """A problem with the user's input: names the argument, echoes the value, lists what is allowed."""


def invalid(argument: str, received: object, allowed: str | Iterable[str]) -> ImgclfError:
    """Build the house-style error: `argument must be <allowed>. Received: argument=<value>`."""
    if not isinstance(allowed, str):
        options = sorted(str(a) for a in allowed)
        close = difflib.get_close_matches(str(received), options, n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        allowed = "one of {" + ", ".join(options) + "}." + hint
    return ImgclfError(f"{argument} must be {allowed} Received: {argument}={received!r}")
