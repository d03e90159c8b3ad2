"""How long each trial of a time-limited search may train."""

from __future__ import annotations

# The part of its share of the budget a trial trains for: the rest is left for what it does around its training
# (data, model, card), which the first trial cannot know before it runs.
TRAINING_PART = 0.8


def trial_seconds(share: float, left: float, overheads: list[float]) -> float:
    """A trial's training time limit: TRAINING_PART of its share of the budget, the same for every trial while
    their overheads stay within the rest of a share, so that trials are ranked on their settings, not on their
    training time. The first trial had trained its whole share and the later ones that share less the mean
    overhead, which the first trial's cache build weighed on: a 9 s search for 3 trials trained 3, 1 and 2 s, and
    chose the first. Beyond that rest, a trial trains its share less the mean overhead of the trials so far, so
    that the search keeps to its budget but for one trial's overhead."""
    equal = TRAINING_PART * share
    if not overheads:
        return min(equal, left)
    return min(equal, min(share, left + overheads[0]) - sum(overheads) / len(overheads))
