"""When a search's trials fail: how many failures in a row stop it, and the error of a search none of whose
trials completed (`NoTrialCompleted`), which `tune` finishes by saying whether the folder was kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ImgclfError, invalid_message

# A failed trial (a setting drawn that the run refuses) is replaced by a new draw; this many in a row mean the
# failure is the search's own, not a draw's, and the search stops instead of drawing for ever.
FAILED_IN_A_ROW = 10  # at most; a search of fewer trials stops after as many failures in a row (at least 3)


def failures_to_stop(trials: int) -> int:
    """Failed trials in a row that stop a search of `trials`: a failed draw is redrawn, but a search of 2 trials
    ran 10 failed ones where every draw was refused alike."""
    return min(FAILED_IN_A_ROW, max(3, trials))


class NoTrialCompleted(ImgclfError):
    """No trial of a search completed. `kept`: what to add where the search's folder is kept (its files say
    more); a new search's folder is emptied instead (`discard_unused`), and the message then says so."""

    def __init__(self, message: str, argument: str | None, kept: str = ""):
        super().__init__(message, argument)
        self.kept = kept

    def __reduce__(self):
        return type(self), (str(self), self.argument, self.kept)


def no_trial_completed(study: Any, folder: Path, trials: int) -> NoTrialCompleted:
    """The error of a search none of whose trials completed, from what each failed trial recorded (its message,
    and the setting it named: `failed_argument`)."""
    from optuna.trial import TrialState

    failed = [t for t in study.get_trials(deepcopy=False)
              if t.state == TrialState.FAIL and t.user_attrs.get("stopped", "").startswith("failed: ")]
    if not failed:
        return NoTrialCompleted(invalid_message("trials", trials, "enough for at least one trial to complete",
                                                note=f"none completed in {folder}"), "trials",
                                kept=" The trial folders and tune.json say why.")
    # the whole message (the record's is cut at 300 characters: a hint ended in "(img")
    last = failed[-1].user_attrs.get("error") or failed[-1].user_attrs["stopped"][len("failed: "):]
    causes = {t.user_attrs.get("failed_argument") for t in failed}
    if len(causes) == 1 and None not in causes:
        # every trial refused for one setting (a typo in the space, a base setting no run takes): that refusal
        # leads, naming its setting, not "trials must be ..." as if more trials could have helped
        return NoTrialCompleted(f"{last.rstrip('.')} (every trial of the search failed with it: {len(failed)} in "
                                f"{folder}).", causes.pop(), kept=" Its trials are listed in tune.json.")
    # refusals of several settings: the count of trials is what failed, and the last cause is named
    return NoTrialCompleted(invalid_message(
        "trials", trials, "enough for at least one trial to complete",
        note=f"none completed in {folder}: {len(failed)} failed, the last with: {last}",
        hint="Correct the setting named (in --space, Python space=, or the settings)"), "trials",
        kept=" The trial folders and tune.json say why each failed.")
