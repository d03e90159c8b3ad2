"""How long each trial of a time-limited search may train."""

from __future__ import annotations


def trial_seconds(share: float, left: float, overheads: list[float]) -> float:
    """A trial's training time limit: its share of the budget, less what the trials so far spent around their
    training on average (data, model, card), so that the search keeps to its budget but for one trial's overhead.
    The first trial trained its whole share (its overhead unknown before it ran); that overrun is not taken from
    the last trials, which then trained less than the others (30 s for 3 time-cut trials trained 10, 8 and 6 s)."""
    if not overheads:
        return min(share, left)
    return min(share, left + overheads[0]) - sum(overheads) / len(overheads)
