"""What a finished search writes: best.yaml, tune.json (`imgclf.records.TuneRecord`) and tune.html."""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from ..evaluation.interpret import accuracy_beside_val
from ..records import RunDir, TuneBest, TuneRecord, TuneTrial
from .objective import OBJECTIVES, objective_for
from ..file_names import shell_word

# best.yaml leaves out where the trial ran and what only described it: `imgclf train --config best.yaml` makes a
# new run (runs/<model>-<n>, or --out) with the best trial's settings, progress shown.
NOT_IN_BEST = ("out", "schema_version", "progress", "lr_auto")


def best_settings(path: Path, run: RunDir, base_time_limit: Any = None) -> dict[str, Any]:
    """The best trial's settings, with the time limit the search started from: a trial's own limit is its share
    of the search's budget, which would cap a later `train --config best.yaml --epochs 100` without a word."""
    from ..io import write_yaml

    settings = {k: v for k, v in run.read_config().model_dump(mode="json").items() if k not in NOT_IN_BEST}
    settings["time_limit"] = base_time_limit
    write_yaml(path, settings)
    return settings


def _trial(t: Any) -> TuneTrial:
    seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
        if t.datetime_complete is not None and t.datetime_start is not None else None
    value = t.value if t.value is not None else (t.intermediate_values[max(t.intermediate_values)]
                                                  if t.intermediate_values else None)
    return TuneTrial(number=t.number, state=t.state.name.lower(), value=value, params=dict(t.params),
                     run=t.user_attrs.get("run"), epochs=t.user_attrs.get("epochs"),
                     seconds=None if seconds is None else round(seconds, 1), stopped=t.user_attrs.get("stopped"))


def importances(study: Any) -> dict[str, float] | None:
    """Optuna's parameter importances over the complete trials; None when there are too few to say (fewer than 3
    complete trials, all with the same value, or no parameter that varied)."""
    import warnings

    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 3 or len({t.value for t in complete}) < 2:  # equal values: nothing to attribute
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError):  # every trial drew the same values, or one value only
        return None
    found = {k: float(v) for k, v in found.items() if math.isfinite(v)}
    return found or None


def tune_record(folder: Path, study: Any, search: dict[str, Any], trials: int, budget: float | None,
                seconds_used: float, stop_reason: str, final: bool = True) -> TuneRecord:
    """The search as it stands; `final=False` (after each trial) leaves out the importances, which take a fit.
    `seconds_used`: the trials' wall time as the search's budget counts it."""
    import optuna
    from optuna.trial import TrialState

    from .._version import __version__

    settings = search["settings"]
    chosen = None
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        best = study.best_trial
        run = RunDir(folder / best.user_attrs["run"])
        metrics = run.read_metrics() if run.has("metrics.json") else None
        chosen = TuneBest(number=best.number, value=best.value, params=dict(best.params), run=best.user_attrs["run"],
                          # multi-label: label-wise (not subset accuracy), beside the test mAP
                          test_accuracy=None if metrics is None else accuracy_beside_val(metrics),
                          test_macro_f1=None if metrics is None else metrics.macro.f1,
                          test_map=metrics.multilabel.map_macro if metrics is not None and metrics.multilabel
                          else None)
    return TuneRecord(
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), imgclf_version=__version__,
        optuna_version=optuna.__version__, data=settings["data"], model=settings["model"],
        objective=search.get("objective") or objective_for(settings).name,
        recipe=settings.get("recipe"), sampler=type(study.sampler).__name__, pruner=type(study.pruner).__name__,
        seed=search["seed"], trials_asked=trials, time_limit_seconds=budget,
        seconds_used=round(seconds_used, 1), stopped=stop_reason, space=search["space"],
        trials=[_trial(t) for t in study.get_trials(deepcopy=False)],
        best=chosen, importances=importances(study) if final else None)


def evaluate_best(run_dir: Path, say: Callable[[str], None], report: bool = True) -> None:
    """The chosen trial alone meets the test split: metrics.json, then (`report`) its report.html."""
    from ..evaluation.report import write_report
    from ..evaluation.run_eval import evaluate_run
    from ..pipeline.card import headline
    from ..records import RunDir

    run = RunDir(run_dir)
    cfg = run.read_config()
    # before, not after: the accuracies are the search's summary, which its caller prints (the CLI on stdout)
    say(f"testing {run_dir.name}, the best on validation, on the test split")
    metrics = evaluate_run(run_dir, cache_dir=cfg.cache_dir, workers=cfg.num_workers, tta="auto",
                           budget_bytes=cfg.cache_budget_bytes, progress=False)
    card = run.read_card()
    val = card.metrics.val_accuracy
    card.metrics = headline(metrics, run.read_history(), card.training)
    card.metrics.val_accuracy = val
    run.write_card(card)
    if report:
        write_report(run_dir)


# ------------------------------------------------------------------------------------------- figures
STATE_COLORS = {"complete": "#2563eb", "pruned": "#9ca3af", "fail": "#dc2626"}


def history_figure(record: TuneRecord, path: Path) -> Path:
    """Each trial's value (the record's objective) in order, pruned ones at their last reported epoch, the best so
    far."""
    from ..plotting import BEST_COLOR, FULL_WIDTH_PX, inches, new_figure, save_figure, style

    with style():
        fig = new_figure(inches(FULL_WIDTH_PX), inches(340))
        ax = fig.add_subplot()
        for state, color in STATE_COLORS.items():
            shown = [t for t in record.trials if t.state == state and t.value is not None]
            if shown:  # a pruned trial's figure is training's log at the epoch it stopped, not a kept score
                ax.scatter([t.number for t in shown], [t.value for t in shown], color=color, s=28, zorder=3,
                           label=f"pruned ({len(shown)}, as logged when stopped)" if state == "pruned"
                           else f"{state} ({len(shown)})")
        best, xs, ys = -math.inf, [], []
        for t in record.trials:
            if t.state == "complete" and t.value is not None:
                best = max(best, t.value)
                xs.append(t.number)
                ys.append(best)
        ax.step(xs, ys, where="post", color=BEST_COLOR, linewidth=1.6, label="best so far")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("trial")
        ax.set_ylabel(OBJECTIVES[record.objective].words)
        # below the axes: inside, it hid the trials at the bottom right (a pruned trial's low score)
        fig.legend(loc="outside lower center", ncol=4)
    return save_figure(fig, path)


def importance_figure(record: TuneRecord, path: Path) -> Path | None:
    from ..plotting import FULL_WIDTH_PX, TRAIN_COLOR, inches, new_figure, save_figure, style

    if not record.importances:
        return None
    names = list(record.importances)[::-1]
    with style():
        fig = new_figure(inches(FULL_WIDTH_PX), inches(90 + 34 * len(names)))
        ax = fig.add_subplot()
        ax.barh(names, [record.importances[n] for n in names], color=TRAIN_COLOR)
        for i, n in enumerate(names):
            ax.text(record.importances[n], i, f" {record.importances[n]:.2f}", va="center")
        ax.set_xlabel(f"importance (share of the variation in {OBJECTIVES[record.objective].words})")
        ax.grid(axis="y", visible=False)
    return save_figure(fig, path)


def choice_text(value: Any) -> str:
    """A searched value as the page shows it: the empty choice is the setting unset (augment: none)."""
    return "none" if value == "" or value is None else str(value)


def space_text(spec: dict[str, Any]) -> str:
    """A parameter's search space in words: '1e-04 to 0.01, log scale', 'hflip or none', '32, 64 or 128'."""
    if "choices" in spec:
        words = [choice_text(c) for c in spec["choices"]]
        return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
    text = f"{spec['low']:g} to {spec['high']:g}"
    if spec.get("step") is not None:
        text += f" in steps of {spec['step']:g}"
    return text + (", log scale" if spec.get("log") else "")


def _axis(values: list[Any], spec: dict[str, Any]) -> tuple[list[float], list[float], list[str]]:
    """Values of one parameter on a 0..1 axis, with tick positions and labels (log ranges in log space)."""
    if "choices" in spec:
        labels = [choice_text(c) for c in spec["choices"]]
        n = max(1, len(labels) - 1)
        index = {repr(c): i for i, c in enumerate(spec["choices"])}
        return [index.get(repr(v), 0) / n for v in values], [i / n for i in range(len(labels))], labels
    low, high = spec["low"], spec["high"]
    f = (lambda x: math.log10(x)) if spec.get("log") else (lambda x: x)
    span = (f(high) - f(low)) or 1.0
    ticks = [low, high]
    return [(f(v) - f(low)) / span for v in values], [0.0, 1.0], [f"{t:.3g}" for t in ticks]


def parallel_figure(record: TuneRecord, path: Path) -> Path | None:
    """Parallel coordinates: one line per complete trial across the parameters, coloured by its value."""
    from matplotlib import colormaps, colors

    from ..plotting import FULL_WIDTH_PX, inches, new_figure, save_figure, short, style

    done = [t for t in record.trials if t.state == "complete" and t.value is not None]
    names = [n for n in record.space if any(n in t.params for t in done)]
    if len(done) < 2 or not names:
        return None
    axes_data = {n: _axis([t.params.get(n) for t in done], record.space[n]) for n in names}
    values = [t.value for t in done]
    norm = colors.Normalize(min(values), max(values) if max(values) > min(values) else min(values) + 1e-9)
    cmap = colormaps["viridis"]
    with style():
        fig = new_figure(inches(FULL_WIDTH_PX), inches(380))
        ax = fig.add_subplot()
        xs = list(range(len(names) + 1))
        for i, t in sorted(enumerate(done), key=lambda it: it[1].value):  # best drawn last, on top
            ys = [axes_data[n][0][i] for n in names] + [norm(t.value)]
            ax.plot(xs, ys, color=cmap(norm(t.value)), linewidth=2.2 if t.number == record.best.number else 1.1,
                    alpha=0.9)
        for x, n in enumerate(names):
            ax.axvline(x, color="#444", linewidth=0.8)
            for pos, label in zip(axes_data[n][1], axes_data[n][2]):
                ax.text(x + 0.03, pos, short(label, 14), fontsize=8, va="center")
        ax.axvline(len(names), color="#444", linewidth=0.8)
        ax.text(len(names) + 0.03, 0, f"{min(values):.3f}", fontsize=8, va="center")
        ax.text(len(names) + 0.03, 1, f"{max(values):.3f}", fontsize=8, va="center")
        ax.set_xticks(xs, [short(n.replace("model_args.", ""), 16) for n in names] + [OBJECTIVES[record.objective].short])
        ax.set_yticks([])
        ax.set_xlim(-0.1, len(names) + 0.5)
        ax.set_ylim(-0.05, 1.05)
        ax.grid(False)
    return save_figure(fig, path)


# below this many complete trials the page says its importances are a hint: importances fitted on a handful of
# trials move with each one added, and the sampler's first trials (up to 10, `search._sampler`) are random draws
FEW_TRIALS_FOR_IMPORTANCES = 10


def best_trial_budget_note(best_run: Any) -> str:
    """Where the best trial was cut by its share of the search's time budget: best.yaml keeps the search's own
    epochs and limit (a trial's share would cap a later, longer run), so repeating the trial takes its epochs.
    Said after `imgclf train --config best.yaml` by the terminal and tune.html alike (the page gave the command
    alone, which trains another model than the one the search scored)."""
    run = RunDir(best_run)
    if not run.has("model.json"):
        return ""
    trained = run.read_card().training
    if not trained.stopped.startswith("time limit"):
        return ""
    config = run.read_config()
    if config.schedule in ("cosine", "onecycle", "budget"):
        # the rate at each epoch follows the whole span (epochs, or the time limit): fewer epochs decay sooner
        span = "its time limit" if config.schedule == "budget" else f"{config.epochs} epochs"
        return (f"; the trial's own settings: imgclf train --config {shell_word(run.file('config.yaml'))} "
                f"(its {config.schedule} "
                f"schedule ran over {span} and its share of the search's time budget stopped it after "
                f"{trained.epochs_run}: --epochs {trained.epochs_run} would decay the rate sooner; how many epochs "
                "its time limit allows depends on the machine)")
    return (f" --epochs {trained.epochs_run} to repeat the trial, which its share of the search's time budget "
            f"stopped after {trained.epochs_run} of {config.epochs} epochs (best.yaml keeps the "
            "search's epochs, without the trial's share of its time budget)")


def write_page(path: Path, record: TuneRecord, study: Any) -> Path:
    """tune.html: self-contained (figures inlined), linking the best trial's report.html."""
    from markupsafe import Markup, escape

    from ..io import atomic_write_text
    from ..pages import embed_png, render

    with tempfile.TemporaryDirectory() as tmp:
        figures = {"history": history_figure(record, Path(tmp) / "history.png"),
                   "importances": importance_figure(record, Path(tmp) / "importances.png"),
                   "parallel": parallel_figure(record, Path(tmp) / "parallel.png")}
        images = {name: embed_png(p) for name, p in figures.items()}
    best_report = Path(record.best.run) / "report.html"
    has_report = (path.parent / best_report).is_file()
    html = render("tune.html", record=record, images=images, best_report=best_report.as_posix(),
                  objective=OBJECTIVES[record.objective], few_trials=FEW_TRIALS_FOR_IMPORTANCES,
                  space={name: space_text(spec) for name, spec in record.space.items()},
                  # long setting names break after their underscores, so the table fits the page
                  headers={name: escape(name).replace("_", Markup("_<wbr>")) for name in record.space},
                  has_report=has_report, data=record.data if isinstance(record.data, str) else " + ".join(record.data),
                  budget_note=best_trial_budget_note(path.parent / record.best.run))
    atomic_write_text(path, html)
    return path
