"""A search's Optuna study in its folder (study.db): opened, its trials loaded for a resume, the trials a killed
process left running marked failed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from ..errors import bad_path
from .folder import STUDY_FILE, STUDY_NAME


_OPENED: ContextVar[list[Any] | None] = ContextVar("imgclf_search_storages", default=None)


@contextmanager
def storages_closed() -> Iterator[None]:
    """The study databases opened inside are closed on the way out: Optuna's first import keeps the traceback of
    its failed redis import, which holds the frames then on the stack, and with them a storage whose engine kept
    study.db open for the life of the process (twice: the database and its journal)."""
    token = _OPENED.set([])
    try:
        yield
    finally:
        for storage in _OPENED.get() or []:
            storage.engine.dispose()
        _OPENED.reset(token)


def open_storage(folder: Path):
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{folder / STUDY_FILE}")
    opened = _OPENED.get()
    if opened is not None:
        opened.append(storage)
    return storage


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
