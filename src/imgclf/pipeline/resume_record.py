"""Each resume of a run and the settings it changed (resumes.json until the card takes it): config.yaml holds the
last process's settings only, so a run resumed with another batch size or augmentation read on its card as if it
had trained with them from the first epoch."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import RUNTIME_ONLY, TrainConfig

RESUMES_FILE = "resumes.json"
# settings that say where and how a process runs, not what it trains
NOT_TRAINING = RUNTIME_ONLY | {"out", "recipe"}


def changed_settings(before: TrainConfig, after: TrainConfig) -> list[Any]:
    """The training settings `after` gives other values than `before`, as the card's SettingChange list."""
    from ..records import SettingChange

    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    return [SettingChange(setting=name, before=old.get(name), after=value) for name, value in new.items()
            if name not in NOT_TRAINING and old.get(name) != value]


def stored_resumes(run_dir: Path, argument: str = "resume") -> list[Any]:
    """The resumes earlier processes recorded ([] for a run never resumed, or resumed before the file was kept)."""
    from pydantic import TypeAdapter, ValidationError

    from ..errors import invalid
    from ..io import read_json
    from ..records import ResumeInfo
    from ..records.base import validation_problems

    path = Path(run_dir) / RESUMES_FILE
    if not path.is_file():
        return []
    try:
        return TypeAdapter(list[ResumeInfo]).validate_python(read_json(path))
    except ValidationError as exc:
        raise invalid(argument, run_dir, f"a run directory whose {RESUMES_FILE} matches its record (ResumeInfo)",
                      note=validation_problems(exc)) from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise invalid(argument, run_dir, f"a run directory whose {RESUMES_FILE} can be read",
                      note=(str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]) from None


def record_resume(run_dir: Path, stored: TrainConfig, resumed: TrainConfig, epochs_before: int) -> None:
    """Append this resume to the run's resumes.json (atomically): after how many epochs, and what it changed."""
    from ..io import write_json
    from ..records import ResumeInfo

    entry = ResumeInfo(after_epochs=epochs_before, changed=changed_settings(stored, resumed),
                       started=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    write_json(Path(run_dir) / RESUMES_FILE,
               [r.model_dump(mode="json") for r in [*stored_resumes(run_dir), entry]])
