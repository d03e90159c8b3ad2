"""One trial of a search: draw its settings, train them as an ordinary run (validated, not tested), and tell
Optuna how it went; a signal while it is told waits until it is."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ImgclfError, invalid
from .interrupt import SearchInterrupted, interrupted_message
from .objective import objective_for
from .space import Param, apply


def trial_dir(folder: Path, number: int) -> Path:
    return folder / "trials" / f"trial-{number:03d}"


def run_trial(study: Any, params: list[Param], settings: dict[str, Any], folder: Path, seconds: float | None,
               say: Callable[[str], None]) -> None:
    """One trial: draw its settings, train them as an ordinary run (validation only), tell Optuna how it went."""
    import optuna
    from optuna.trial import TrialState

    from ..config import make_config
    from ..pipeline.run import train_run
    from ..train.fit import TrainingInterrupted, stop_signal
    from ..train.interrupts import signals_deferred
    from .pruning import PruneAtEpochEnd

    objective = objective_for(settings)  # scored at the kept epoch, watched by the pruner at each one
    trial = study.ask()
    run_dir = trial_dir(folder, trial.number)
    trial.set_user_attr("run", str(run_dir.relative_to(folder)))
    sampled = {p.name: p.suggest(trial) for p in params}
    values = apply(settings, sampled)
    values.update(out=str(run_dir), progress=False)
    if seconds is not None:
        values["time_limit"] = f"{max(1.0, seconds):.0f}s"
    shown = ", ".join(f"{k}={_short(v)}" for k, v in sampled.items())
    start = time.perf_counter()
    try:
        cfg = make_config(**values)
        run = train_run(cfg, report=False, evaluate=False,
                        callbacks=[PruneAtEpochEnd(trial, monitor=objective.monitor)])
    except optuna.TrialPruned:
        # the epochs it trained before the pruner stopped it (tune.json and tune.html showed none): each reported its
        # validation accuracy (step = 0-based epoch) before the pruner read it
        reported = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number).intermediate_values
        epochs = max(reported) + 1 if reported else 0
        # Optuna's own words ("pruned at epoch 2") count from 0: the run's history says epoch 3
        why = f"pruned after epoch {epochs}: the pruner judged its {objective.words} too low at that epoch"
        trial.set_user_attr("stopped", why)
        trial.set_user_attr("epochs", epochs)
        study.tell(trial, state=TrialState.PRUNED)
        say(f"trial {trial.number:3d}  {why}  {shown}")
        return
    except (KeyboardInterrupt, SystemExit, TrainingInterrupted) as exc:  # Ctrl-C / SIGTERM: the search stops here
        trial.set_user_attr("stopped", "interrupted")
        # the epochs it finished, each reported (tune.json said null where its history held 6)
        reported = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number).intermediate_values
        trial.set_user_attr("epochs", max(reported) + 1 if reported else 0)
        study.tell(trial, state=TrialState.FAIL)
        code = exc.exit_code if isinstance(exc, TrainingInterrupted) else stop_signal(exc)[1]
        raise SearchInterrupted(interrupted_message(exc, folder, trial.number, run_dir), trial.number, code) from None
    except ImgclfError as exc:  # a setting this trial drew that the run refuses: the search goes on
        trial.set_user_attr("stopped", f"failed: {str(exc).splitlines()[0][:300]}")
        trial.set_user_attr("error", str(exc))  # whole, for the search's own error if no trial completes
        trial.set_user_attr("failed_argument", exc.argument)  # the setting refused: one for all leads the error
        study.tell(trial, state=TrialState.FAIL)
        # its first sentence (a diverged run's goes on for 400 characters) and what was drawn: which lr diverged
        said = str(exc).splitlines()[0].split(". ")[0][:200]
        say(f"trial {trial.number:3d}  failed: {said}  {shown}")
        return
    # the run is finished: a signal while it is told waits until it is (it left the trial "running", and the resume
    # marked the finished run failed); the search then stops between trials
    with signals_deferred():
        _tell_finished(study, trial, run, objective, settings, say, shown, start)


def _tell_finished(study: Any, trial: Any, run: Any, objective: Any, settings: dict[str, Any],
                   say: Callable[[str], None], shown: str, start: float) -> None:
    from optuna.trial import TrialState

    from ..records import RunDir

    metrics = RunDir(run.path).read_card().metrics
    value = getattr(metrics, objective.name)
    trial.set_user_attr("stopped", run.stopped_reason)
    trial.set_user_attr("epochs", run.epochs_run)
    trial.set_user_attr("train_seconds", run.train_seconds)
    if value is None and metrics.val_accuracy is not None:  # validated, but no mAP: no validation positive at all
        trial.set_user_attr("stopped", "failed: no validation image carries a label (no mAP)")
        study.tell(trial, state=TrialState.FAIL)
        raise invalid("data", settings["data"], "multi-label data with labelled validation images",
                      note="no validation image carries any of the labels, so the validation mAP that trials are "
                           "ranked by is undefined (every trial would fail alike)",
                      hint="Give the validation split images with labels (the index's val rows, or --val-split)")
    if value is None:
        trial.set_user_attr("stopped", f"failed: no {objective.words} (a validation split is needed)")
        study.tell(trial, state=TrialState.FAIL)
        say(f"trial {trial.number:3d}  failed: no {objective.words}")
        return
    study.tell(trial, value)
    epochs = f"{run.epochs_run} epoch{'s' if run.epochs_run != 1 else ''}"
    say(f"trial {trial.number:3d}  {objective.short} {value:.4f}  {epochs}, {time.perf_counter() - start:.0f} s  "
        f"{shown}")


def _short(value: Any) -> str:
    # an empty choice is "none" in this space (augment="": no augmentation), as the page and compare say it
    return f"{value:.3g}" if isinstance(value, float) else "none" if value == "" else str(value)
