"""`imgclf tune`: a hyper-parameter search with Optuna, every trial an ordinary run through the pipeline.

    OUT/study.db          the Optuna study (SQLite): what makes --resume continue a killed search
    OUT/search.yaml       the settings the search started from, its space and seed (a resume must match them)
    OUT/trials/trial-NNN  one run directory per trial (NNN = Optuna's trial number), validated, never tested
    OUT/best.yaml         the best trial's settings: imgclf train --config OUT/best.yaml [DATA]
    OUT/tune.json         every trial, the best, parameter importances (imgclf.records.TuneRecord); rewritten
                          after each trial (stopped: 'running: ...'), so a search cut short still has it
    OUT/tune.html         history, importances, parallel coordinates, a link to the best trial's report
    OUT/tune.lock         held by the process searching (gone when it ends): a second `tune` on the folder is
                          refused while it lives

Selection uses the validation split only: a trial's value is the validation accuracy of the weights it kept (for
multi-label data their validation mAP: `objective`), Optuna's TPE sampler (seeded) proposes the next settings and a
pruner (median by default) stops a trial whose per-epoch value, reported by optuna-integration's Lightning
callback, trails the others. Only the
chosen trial is then evaluated on the test split (and gets its report.html).

Budget: `time_limit` is the whole search's. Each trial gets an equal share (time_limit / trials, or what is left
if less) of wall time: its training time limit is 0.8 of that share, the same for every trial while the time
trials spend outside training (data, model, card) stays within the rest (`budget.trial_seconds`), else the share
less that time's mean, on top of the config's epochs; a trial starts only while at least half a share is
left, counted from the trials' real durations (so a resumed search spends what is left, not a new budget). Without
`time_limit` every trial trains the config's epochs (or its own time limit, as a recipe sets one).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..config_text import parse_seconds
from ..errors import check_switch, invalid
from ..records.tune import TUNE_FILE
from .checks import check_base, check_hooks
from .folder import (SEARCH_FILE, STUDY_FILE, STUDY_NAME, check_resume, check_same_model, discard_unused, file_sets,
                     refuse_changed_data, resumed_request, search_folder)
from .budget import trial_seconds
from .study_db import fail_unfinished, open_storage, storages_closed, stored_trials
from .failures import NoTrialCompleted, failures_to_stop, no_trial_completed
from .interrupt import SearchInterrupted, interrupted_message
from .objective import objective_for
from .space import SAME_SPLIT, Param, check_against, default_space, parse_param, read_space, typed_for_model
from .trial import run_trial as _run_trial
from ..file_names import shell_word

BEST_FILE, JSON_FILE, HTML_FILE = "best.yaml", TUNE_FILE, "tune.html"
LOCK_FILE = "tune.lock"


@dataclass
class TuneResult:
    """A finished search: its folder, the best trial's run and settings, and every trial (as in tune.json)."""

    path: Path
    best_run: Path
    best_value: float
    best_params: dict[str, Any]
    record: Any  # imgclf.records.TuneRecord

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the folder, the best trial, and tune.json's record of every trial."""
        return {"path": str(self.path), "best_run": str(self.best_run), "best_value": self.best_value,
                "best_params": dict(self.best_params), "record": self.record.model_dump(mode="json")}

    def __repr__(self) -> str:
        return f"TuneResult({str(self.path)!r}, best_value={self.best_value:.4f}, best_run={str(self.best_run)!r})"


def _space(space: Any, base: TrainConfig, lr_given: bool = False) -> list[Param]:
    if space is None:
        return default_space(base, lr_given)
    if isinstance(space, (str, os.PathLike)):
        return read_space(space)
    if isinstance(space, Mapping):
        if not space:
            raise invalid("space", space, "a mapping of field: range entries, at least one")
        return [parse_param(name, spec) for name, spec in space.items()]
    raise invalid("space", space, "a YAML file, a mapping of field: range entries, or None (the model's default)")


def _settings(base: TrainConfig) -> dict[str, Any]:
    """The base config as trials get it: what was resolved, without the search's own folders."""
    return {k: v for k, v in base.model_dump(mode="json").items() if k not in ("out", "schema_version", "lr_auto")}


def _used_seconds(study: Any) -> float:
    return sum((t.datetime_complete - t.datetime_start).total_seconds() for t in study.get_trials(deepcopy=False)
               if t.datetime_complete is not None and t.datetime_start is not None)


def _overheads(study: Any) -> list[float]:
    """Wall seconds each finished trial spent outside its training, in trial order."""
    return [max(0.0, (t.datetime_complete - t.datetime_start).total_seconds() - t.user_attrs["train_seconds"])
            for t in study.get_trials(deepcopy=False)
            if t.datetime_complete is not None and "train_seconds" in t.user_attrs]


def _pruner(trials: int):
    import optuna

    # a trial is compared with the median of the others from its second epoch, once two trials have finished:
    # small searches (the common case here) would otherwise never prune
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)


def _sampler(seed: int, existing: int, trials: int):
    import optuna

    # seeded by the trials already in the study too: a resumed search must not draw the first trials' settings again
    startup = min(10, max(3, trials // 3))
    return optuna.samplers.TPESampler(seed=seed + existing, n_startup_trials=startup)


def tune(config: TrainConfig | Mapping[str, Any] | None = None, *, trials: int, time_limit: str | float | None = None,
         space: Any = None, recipe: str | None = None, config_file: str | os.PathLike | None = None,
         resume: bool = False, out: str | os.PathLike | None = None, pruner: Any = None,
         log: Callable[[str], None] | None = None, report: bool = True, **values: Any) -> TuneResult:
    """Search `trials` settings of a run (config, recipe, YAML file and keyword arguments as `imgclf.fit` takes
    them; `values["time_limit"]` is not a trial's: the search's is `time_limit`), `space` being a --space YAML
    file, a mapping of field -> range/choices, or None for the model family's default. `resume=True` continues the
    search in `out`. `pruner`: an Optuna pruner instead of the median pruner. `report=False`: no report.html for the
    chosen trial (trials never get one). See the module docstring."""
    from ..pipeline.resolve import resolve_config

    resume, report = check_switch("resume", resume), check_switch("report", report)
    check_hooks(pruner, log)
    say = log or (lambda line: None)
    if resume:
        config, values, space, time_limit, started = resumed_request(out, config, config_file, recipe, values,
                                                                     space, time_limit)
    budget = parse_seconds(time_limit)
    base = resolve_config(config, recipe=recipe, config_file=config_file, **{**values, "out": None},
                          keywords=("trials", "time_limit", "space", "resume", "out", "pruner", "log", "report"))
    trials = check_base(base, trials, budget)
    if resume:  # before the stored space is read against the model: that refusal named a space never given
        check_same_model(out, started, base.model)
    # a rate given centres the default space: --lr, a config mapping's, or a --config file's (best.yaml, a run's
    # config.yaml), which the range ignored
    lr_given = values.get("lr") is not None or (isinstance(config, Mapping) and config.get("lr") is not None) \
        or file_sets("lr", config_file)
    params = typed_for_model(_space(space, base, lr_given), base.model)
    settings = _settings(base)
    check_against(params, {**settings, "out": None})
    # the budget is kept for a resume that does not give it again (check_resume compares the rest)
    search = {"settings": settings, "space": {p.name: p.describe() for p in params}, "seed": base.seed,
              "time_limit": time_limit, "objective": objective_for(settings).name}
    from ..pipeline.run_folder import first_missing

    made = None if resume else first_missing(Path(out).expanduser().absolute() if out is not None else
                                             Path("tune").absolute())
    folder = search_folder(out, base.model, resume, base.data)
    made = made or (folder if out is None and not resume else None)  # tune/<model>-N, in a tune/ there was
    from ..train.interrupts import remembered_ctrl_c, sigterm_interrupts

    from ..notices import each_once

    try:
        # between trials SIGTERM ended the search with no word, its locks left behind; the trials' runs share the
        # data and settings, so their warnings are said once
        with sigterm_interrupts(), remembered_ctrl_c() as ctrl_c, each_once(), storages_closed():
            return _search(folder, base, params, search, trials, time_limit, budget, resume, pruner, say, report,
                           ctrl_c)
    except NoTrialCompleted as exc:
        # only the refusal of every trial: another error keeps the folder as it is
        if not resume and discard_unused(folder, LOCK_FILE):
            if made is not None:  # nor the empty folders it made (a failed train leaves none either)
                from ..pipeline.run_folder import remove_empty_folders

                remove_empty_folders(folder, made)
            said = f"{exc} Nothing of the search was kept" + (
                ": the corrected command may use the same --out." if out is not None else ".")
        else:
            said = f"{exc}{exc.kept}"
        exc.args = (said, *exc.args[1:])
        raise


def _search(folder: Path, base: TrainConfig, params: list[Param], search: dict[str, Any], trials: int,
            time_limit: Any, budget: float | None, resume: bool, pruner: Any, say: Callable[[str], None],
            report: bool, ctrl_c: Callable[[], bool] = lambda: False) -> TuneResult:
    """The search in its claimed folder: the study created or loaded, the trials run, the best tested."""
    import optuna
    from optuna.trial import TrialState

    from ..io import read_yaml, write_yaml
    from ..locks import exclusive
    from ..train.fit import stop_signal

    # one process per search folder: a second `tune --resume` would mark the first one's running trial failed and
    # both would add trials to one study
    with exclusive(folder, LOCK_FILE, "out", "a search folder no other process is using",
                   "in use by another imgclf tune",
                   # held until the search ends
                   "Wait for that search to end (or stop it), then pass --resume (Python: resume=True)"):
        if resume:
            stored = read_yaml(folder / SEARCH_FILE)
            check_resume(folder, stored, search)
            refuse_changed_data(folder, base)
            if stored.get("time_limit") != time_limit:  # a budget given again replaces it, for later resumes too
                write_yaml(folder / SEARCH_FILE, {**stored, "time_limit": time_limit})

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            storage = open_storage(folder)
            existing = stored_trials(folder, storage) if resume else []
            study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="maximize",
                                        load_if_exists=resume, sampler=_sampler(base.seed, len(existing), trials),
                                        pruner=pruner or _pruner(trials))
            if not resume:  # after the study: search.yaml without a study could be neither resumed nor reused
                write_yaml(folder / SEARCH_FILE, search)
        except (KeyboardInterrupt, SystemExit) as exc:  # Ctrl-C in the seconds Optuna takes to make its database
            if resume:
                raise
            for name in (STUDY_FILE, f"{STUDY_FILE}-journal", SEARCH_FILE):
                (folder / name).unlink(missing_ok=True)
            raise SearchInterrupted(f"search interrupted before its first trial ({stop_signal(exc)[0]}): nothing was "
                                    "kept, so the same command starts it again", None, stop_signal(exc)[1]) from None
        failed = fail_unfinished(storage, study) if resume else []
        if failed:
            say(f"resume: trial(s) {', '.join(map(str, failed))} had not finished; marked failed, not rerun")
        share = None if budget is None else budget / trials
        finished = lambda: [t for t in study.get_trials(deepcopy=False)  # noqa: E731
                            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        stop_reason = f"{trials} trials"
        if finished():
            say(f"resume: {len(finished())} trial(s) already done")
        if len(finished()) > trials:  # "5 trials" beside the 9 the record lists read as a contradiction
            stop_reason = f"{trials} trials asked, {len(finished())} already done"
        failed_in_a_row = 0
        while len(finished()) < trials:
            if failed_in_a_row >= failures_to_stop(trials):
                stop_reason = f"{failed_in_a_row} trials in a row failed"
                say(f"stop   {stop_reason}")
                break
            left = None if budget is None else budget - _used_seconds(study)
            if left is not None and left < 0.5 * share:
                stop_reason = f"time limit ({time_limit})"
                break
            training = None if left is None else trial_seconds(share, left, _overheads(study))
            try:
                if ctrl_c():  # a Ctrl-C that Python dropped (raised in a weakref callback): the search stops here
                    raise KeyboardInterrupt
                _run_trial(study, params, search["settings"], folder, training, say)
                last = study.get_trials(deepcopy=False)[-1]
                failed_in_a_row = failed_in_a_row + 1 if last.state == TrialState.FAIL else 0
                refused = last.user_attrs.get("failed_argument") if last.state == TrialState.FAIL else None
                if refused in ("data", *SAME_SPLIT):  # no draw changes the data, or the split every trial shares
                    say(f"stop   {(stop_reason := f'the {refused} was refused')}")
                    break
                _write_record(folder, study, search, trials, budget, f"running: {len(finished())} of {trials} "
                              "trials done", final=False)
            except SearchInterrupted as exc:
                _write_record(folder, study, search, trials, budget, f"interrupted during trial {exc.trial}: "
                              f"{len(finished())} of {trials} trials done", final=False)
                raise
            except (KeyboardInterrupt, SystemExit) as exc:  # outside a trial's training (drawing, telling, recording)
                _write_record(folder, study, search, trials, budget, f"interrupted between trials: "
                              f"{len(finished())} of {trials} trials done", final=False)
                raise SearchInterrupted(interrupted_message(exc, folder), None, stop_signal(exc)[1]) from None
        try:
            if ctrl_c():  # dropped during the last trial: the best is not tested, as after any other Ctrl-C
                raise KeyboardInterrupt
            return finish(folder, study, search, trials, budget, stop_reason, say, report)
        except (KeyboardInterrupt, SystemExit) as exc:  # while the best trial was tested: tune.json said "running"
            _write_record(folder, study, search, trials, budget, f"interrupted while testing the best trial: "
                          f"{len(finished())} of {trials} trials done", final=False)
            raise SearchInterrupted(f"search interrupted while testing the best trial ({stop_signal(exc)[0]}). Finish "
                                    "it by running the same imgclf tune command with --resume --out "
                                    f"{shell_word(folder)} "
                                    "(Python: resume=True): the trials are kept and the best is tested again", None,
                                    stop_signal(exc)[1]) from None


def _write_record(folder: Path, study: Any, search: dict[str, Any], trials: int, budget: float | None,
                  stop_reason: str, final: bool = True) -> Any:
    """tune.json as the search stands: rewritten after every trial, so that a search cut short still says how each
    trial ended (`imgclf runs` lists its pruned trials as pruned)."""
    from ..io import write_json
    from .outputs import tune_record

    record = tune_record(folder, study, search, trials, budget, _used_seconds(study), stop_reason, final=final)
    write_json(folder / JSON_FILE, record.model_dump(mode="json"))
    return record


def finish(folder: Path, study: Any, search: dict[str, Any], trials: int, budget: float | None, stop_reason: str,
           say: Callable[[str], None], report: bool = True) -> TuneResult:
    """The best trial tested (once) with its report, then best.yaml, tune.json and tune.html."""
    from optuna.trial import TrialState

    from ..records import RunDir
    from .outputs import best_settings, evaluate_best, write_page

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        _write_record(folder, study, search, trials, budget, f"{stop_reason}, none completed")
        raise no_trial_completed(study, folder, trials)
    best = study.best_trial
    best_run = folder / best.user_attrs["run"]
    run = RunDir(best_run)
    # again where a Ctrl-C cut the testing after metrics.json: its card and report were never written, and a
    # resume that saw metrics.json left them so (the same trial, the same test images)
    if not run.has("metrics.json") or (report and not run.has("report.html")):
        evaluate_best(best_run, say, report)
    best_settings(folder / BEST_FILE, run, search["settings"].get("time_limit"))
    record = _write_record(folder, study, search, trials, budget, stop_reason)
    write_page(folder / HTML_FILE, record, study)
    return TuneResult(folder, best_run, best.value, dict(best.params), record)


def stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
