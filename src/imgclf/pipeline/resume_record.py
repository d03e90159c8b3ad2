"""Each resume of a run and the settings it changed (resumes.json until the card takes it): config.yaml holds the
last process's settings only, so a run resumed with another batch size or augmentation read on its card as if it
had trained with them from the first epoch."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import RUNTIME_ONLY, TrainConfig
from ..records.side_files import RESUMES_FILE, ResumesRecord
# settings that say where and how a process runs or is logged, not what it trains
NOT_TRAINING = RUNTIME_ONLY | {"out", "recipe"}


def changed_settings(before: TrainConfig, after: TrainConfig) -> list[Any]:
    """The training settings `after` gives other values than `before`, as the card's SettingChange list."""
    from ..records import SettingChange

    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    return [SettingChange(setting=name, before=old.get(name), after=value) for name, value in new.items()
            if name not in NOT_TRAINING and old.get(name) != value]


def stored_resumes(run_dir: Path, argument: str = "resume") -> list[Any]:
    """The resumes earlier processes recorded ([] for a run never resumed, or resumed before the file was kept)."""
    from ..records.base import read_record

    path = Path(run_dir) / RESUMES_FILE
    return read_record(path, ResumesRecord, argument, run_dir, "a run directory").resumes if path.is_file() else []


def record_resume(run_dir: Path, stored: TrainConfig, resumed: TrainConfig, checkpoint: str | None) -> list[Any]:
    """Append this resume to the run's resumes.json (atomically): where in training it continued (what
    `checkpoint` holds; None: no checkpoint, training begins again) and what it changed. A resume that trains no
    epoch (`--epochs` at the epochs trained: finishing the card and report) changed no epoch's training, and
    attempts that failed before saving anything are one resume with the one after them. Returns the settings
    changed (`SettingChange`), as recorded."""
    from ..io import write_json
    from ..records import ResumeInfo, RunDir
    from ..train.checkpoint_state import batches_into_epoch, saved_epochs_of

    # the epochs the checkpoint holds: history.csv may hold one more, whose line was printed before a Ctrl-C
    # (that epoch trains again; the record said the resume came after it)
    saved = saved_epochs_of(checkpoint) if checkpoint else 0
    epochs = saved if saved is not None else len(RunDir(run_dir).read_history()) if checkpoint else 0
    batches = batches_into_epoch(checkpoint) if checkpoint else 0
    changed = [c for c in changed_settings(stored, resumed)
               if not (c.setting == "epochs" and checkpoint and resumed.epochs <= epochs and not batches)]
    earlier = stored_resumes(run_dir)
    last = earlier[-1] if earlier else None
    if last is not None and (last.after_epochs, last.batches_into_epoch, last.from_checkpoint) == \
            (epochs, batches, checkpoint is not None):
        # the same point again: nothing trained since the last resume saved a checkpoint, so the settings before
        # it are still the last that trained
        changed = _merged(last.changed, changed)
        earlier = earlier[:-1]
    entry = ResumeInfo(after_epochs=epochs, batches_into_epoch=batches, from_checkpoint=checkpoint is not None,
                       changed=changed, started=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    write_json(Path(run_dir) / RESUMES_FILE, ResumesRecord(resumes=[*earlier, entry]).model_dump(mode="json"))
    return changed


def _merged(first: list[Any], then: list[Any]) -> list[Any]:
    """Two resumes' changes from one point as one: each setting from its first `before` to its last `after`."""
    from ..records import SettingChange

    before = {c.setting: c.before for c in first}
    after = {c.setting: c.after for c in first}
    for c in then:
        before.setdefault(c.setting, c.before)
        after[c.setting] = c.after
    return [SettingChange(setting=name, before=before[name], after=after[name]) for name in after
            if before[name] != after[name]]
