"""A search's Optuna study in its folder (study.db): opened, its trials loaded for a resume, the trials a killed
process left running marked failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import bad_path
from .folder import STUDY_FILE, STUDY_NAME


def open_storage(folder: Path):
    import optuna

    return optuna.storages.RDBStorage(f"sqlite:///{folder / STUDY_FILE}")


def stored_trials(folder: Path, storage: Any) -> list[Any]:
    """The trials of the study in `folder` being resumed; a database with no study (a search stopped while Optuna
    made it, by a release that kept such folders) is refused by name, not as Optuna's KeyError."""
    import optuna

    try:
        return optuna.load_study(study_name=STUDY_NAME, storage=storage).trials
    except KeyError:
        raise bad_path("out", folder, "a search folder to resume", f"its {STUDY_FILE} holds no study (the search "
                       "was stopped before its first trial)", hint="Delete the folder and run the command without "
                       "--resume: nothing of the search was kept") from None


def fail_unfinished(storage: Any, study: Any) -> list[int]:
    """Trials left RUNNING by a killed process are marked FAIL: they never finished, and are not rerun under the
    same number (their run directories stay as they were left); the search carries on with new trials."""
    from optuna.trial import TrialState

    stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    for t in stale:
        storage.set_trial_user_attr(t._trial_id, "stopped", "interrupted (the search was killed)")
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return [t.number for t in stale]
