"""train, lr-find, tune and demo: their options are generated from TrainConfig, so the CLI and YAML can
never drift apart."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any, Optional

import typer

from ..file_names import shell_word
from .base import app, generated_command, new_console
from .run_summary import _print_run_summary


def train_options() -> list[inspect.Parameter]:
    from rich.markup import escape

    from ..config import TrainConfig

    params = [inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[list[str]],
                                default=typer.Argument(None, help="Image folder (class-per-folder, or train/ val/ "
                                                       "test/); several folders are used as one, classes merged by "
                                                       "folder name. Or one index file of label sets (.csv, .jsonl, "
                                                       ".ndjson): a multi-label run (docs/multilabel.md).",
                                                       show_default=False, metavar="DATA"))]
    for name, field in TrainConfig.model_fields.items():
        if name in ("data", "schema_version", "lr_auto"):  # lr_auto records what --lr auto did; not a flag
            continue
        ann = field.annotation
        origin = typing.get_origin(ann)
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        # a number that can be unset: the number, or the word none (TrainConfig unsets it)
        nullable_number = len(args) == 1 and args[0] in (int, float) and type(None) in typing.get_args(ann)
        if ann is bool:
            py_type: Any = Optional[bool]
        elif origin is dict or (args and typing.get_origin(args[0]) is dict):
            py_type = Optional[str]
        elif origin is list and typing.get_origin(typing.get_args(ann)[0]) is typing.Literal:
            py_type = Optional[list[str]]  # a repeatable flag: --logger csv --logger mlflow
        elif ann in (int, float):
            py_type = Optional[ann]
        else:  # text; lr is a number or auto
            py_type = Optional[str]
        flag = "--" + name.replace("_", "-")
        parser = _number_or_none(flag, args[0]) if nullable_number else None
        metavar = f"<{args[0].__name__}|none>" if nullable_number else None
        decls = [f"{flag}/--no-{name.replace('_', '-')}"] if ann is bool else [flag]
        help_text = escape(field.description or "")  # Rich would read imgclf[track] as markup and drop [track]
        choices = typing.get_args(ann) if typing.get_origin(ann) is typing.Literal else ()
        if choices:
            help_text += f" One of: {', '.join(map(str, choices))}."
        if field.default is not None and not callable(field.default_factory or None):
            # escaped: Rich reads [default: ...] as markup and drops it (the options default to None, so that a
            # flag left out never hides a recipe's value, and typer cannot show the real default itself)
            help_text += f" \\[default: {field.default}]"
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=py_type,
                                        default=typer.Option(None, *decls, help=help_text, show_default=False,
                                                             parser=parser, metavar=metavar)))
    extra = [
        ("config", Optional[Path], typer.Option(None, "--config", help="YAML file of settings (flags override it).")),
        ("overwrite", bool, typer.Option(False, "--overwrite", help="Replace the run in --out if there is one.")),
        ("resume", Optional[Path], typer.Option(None, "--resume", help="Continue a run directory, interrupted or "
                                                                        "finished (--epochs N to train on).")),
    ]
    for name, ann, default in extra:
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default))
    return params


def _number_or_none(flag: str, kind: type) -> Any:
    from ..config_text import is_none_word
    from ..errors import invalid

    def parse(text: str) -> Any:
        if is_none_word(text):
            return text
        try:
            return kind(text)
        except ValueError:
            raise invalid(flag, text, f"{'an integer' if kind is int else 'a number'}, or none (unset)") from None

    return parse


SWITCH_WORDS = ("no", "yes", "true", "false", "on", "off")


def _refuse_a_switch_word_as_data(data: list[str]) -> None:
    """`--overwrite no`: a flag takes no value, so "no" became a second data folder, and the error sent the user to
    check their data (a data folder named 'no' was not found)."""
    from pathlib import Path

    from ..errors import invalid

    for word in data[1:]:
        if word.lower() in SWITCH_WORDS and not Path(word).exists():
            raise invalid("data", word, "image folders (a second one is merged with the first)",
                          note="no such folder", hint=f"A flag such as --overwrite or --report takes no value: "
                          f"leave out {word!r} (--no-report turns that one off)")


def train(data: Optional[list[str]] = None, **options: Any) -> None:
    """Train a model on an image folder and write a complete run directory."""
    from ..pipeline import fit

    config, overwrite, resume = options.pop("config"), options.pop("overwrite"), options.pop("resume")
    report = options.pop("report")
    if data:
        _refuse_a_switch_word_as_data(data)
        options["data"] = data[0] if len(data) == 1 else data
    if resume:  # --config and --overwrite go along, to be refused: a resumed run keeps its own folder and config
        run = fit(resume=resume, config_file=config, overwrite=overwrite, report=report, **options)
    else:
        run = fit(config_file=config, overwrite=overwrite, report=report, **options)
    from ..pipeline.folds import Folds

    if isinstance(run, Folds):
        _print_folds(run)
    else:
        _print_run_summary(run)


def _train_command_options() -> list[inspect.Parameter]:
    report = typer.Option(True, "--report/--no-report", help="Write report.html and its figures once the run is "
                          "scored (--no-report: skip them, e.g. in a grid of many small runs; `imgclf report RUN` "
                          "writes them later; a resumed run's earlier report is removed).")
    return [*train_options(),
            inspect.Parameter("report", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=report)]


def _print_folds(folds: Any) -> None:
    """The cross-validation's summary: mean ± std over the folds of each metric, then where it is."""
    from rich.table import Table

    summary = folds.summary
    table = Table(title=f"{summary['folds']} folds: mean ± std (test split: {summary['test_images']} images, the "
                  "same for every fold)", title_justify="left")
    table.add_column("metric")
    table.add_column("mean ± std", justify="right")
    table.add_column("per fold", justify="right")
    from ..evaluation.interpret import best_val_accuracy
    from ..records import RunDir

    # the two losses are not of the same probabilities where evaluation applies the fitted temperature
    calibrated = RunDir(folds.runs[0]).read_card().calibration is not None
    shown_as = {"val_loss": "val loss (raw, as training chose the epoch)",
                "test_loss": "test loss (after the temperature)"} if calibrated else {}
    # the val accuracy is the kept weights' after their BatchNorm statistics were recomputed, the val loss the
    # epoch's line: 0.95 beside a loss of 2.15 (chance) with nothing to say why, where a run's summary says it
    lines = []
    for run in folds.runs:
        card, history = RunDir(run).read_card(), RunDir(run).read_history()
        after = card.training.val_accuracy_after_batch_norm
        lines.append((after, best_val_accuracy(history, card.training.best_epoch)))
    if any(a is not None and b is not None and abs(a - b) >= 0.0005 for a, b in lines):
        shown_as["val_accuracy"] = "val accuracy (BatchNorm statistics recomputed)"
        shown_as.setdefault("val_loss", "val loss (the epoch's line)")
    for name, stat in summary["metrics"].items():
        if stat["mean"] is None:
            continue
        spread = "" if stat["std"] is None else f" ± {stat['std']:.4f}"
        each = " ".join("—" if f[name] is None else f"{f[name]:.3f}" for f in summary["per_fold"])
        table.add_row(shown_as.get(name, name.replace("_", " ")), f"{stat['mean']:.4f}{spread}", each)
    new_console().print(table)
    if "val_accuracy" in shown_as:
        typer.echo("val accuracy of the kept weights after their BatchNorm statistics were recomputed on training "
                   "images; the epochs' lines read " + " ".join("—" if b is None else f"{b:.3f}" for _, b in lines))
    typer.echo(f"folds: {folds.path} (fold-1 ... fold-{summary['folds']}, folds.json)")


generated_command(app, "train", train, _train_command_options)


def lr_find(data: Optional[list[str]] = None, **options: Any) -> None:
    """Sweep the learning rate with Lightning's LR finder and print the suggestion.

    A run's settings on a data folder, no run trained; writes lr_find.png and lr_find.json to --out."""
    import math

    from ..notices import warn
    from ..pipeline.lr_find import lr_find as find

    config, overwrite = options.pop("config"), options.pop("overwrite")
    sweep = {k: options.pop(k) for k in ("start_lr", "end_lr", "steps")}
    if data:
        options["data"] = data[0] if len(data) == 1 else data
    options = {k: v for k, v in options.items() if v is not None}
    result = find(config_file=config, overwrite=overwrite, **sweep, **options)
    typer.echo(f"swept on {result.data_line}")
    typer.echo(f"suggested lr {result.suggestion:.3g}  ({result.described}; curve {result.path / 'lr_find.png'})")
    typer.echo(f"use: imgclf train ... --lr {result.suggestion:.3g}   (or --lr auto to run the finder in train)")
    # the other usual pick, higher or lower: on the 3-class shapes the lower one was the rate that trained
    if result.tenth_of_lowest is not None and not result.still_falling \
            and not math.isclose(result.tenth_of_lowest, result.suggestion, rel_tol=0.05):
        typer.echo(f"also worth a run: --lr {result.tenth_of_lowest:.3g}  (a tenth of {result.lowest_loss_lr:.3g}, "
                   "where the loss was lowest; some models train better there: see the LR finder section of "
                   "docs/results.md)")
    for caution in result.cautions:
        warn(caution)


def _lr_find_options() -> list[inspect.Parameter]:
    import copy

    from ..pipeline.lr_find import REFUSED

    params = [p for p in train_options() if p.name != "resume"]
    for i, p in enumerate(params):  # still parsed, to be refused with the reason, but not offered in --help
        if p.name in REFUSED:
            hidden = copy.copy(p.default)
            hidden.hidden = True
            params[i] = p.replace(default=hidden)
    out = typer.Option(None, "--out", help="Folder for lr_find.json and lr_find.png (default: lr-find/<model>-<n>).",
                       show_default=False)
    params = [p.replace(default=out) if p.name == "out" else p for p in params]
    own = [
        ("start_lr", float, typer.Option(1e-7, "--start-lr", help="First learning rate of the sweep.")),
        ("end_lr", float, typer.Option(1.0, "--end-lr", help="Last learning rate of the sweep (at most 10).")),
        ("steps", int, typer.Option(100, "--steps", help="Training steps of the sweep (at least 19).")),
    ]
    for name, ann, default in own:
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default))
    return params


generated_command(app, "lr-find", lr_find, _lr_find_options)


def tune(data: Optional[list[str]] = None, **options: Any) -> None:
    """Search hyper-parameters with Optuna: every trial an ordinary run, the best tested.

    Trials are selected on the validation split; only the best one is evaluated on the test split. Writes
    OUT/study.db (resumable with --resume), OUT/trials/trial-NNN, best.yaml, tune.json and tune.html."""
    from ..search.objective import OBJECTIVES
    from ..search.outputs import best_trial_budget_note
    from ..search.search import stderr_log
    from ..search.search import tune as search

    own = {k: options.pop(k) for k in ("trials", "time_limit", "space", "resume", "config")}
    if data:
        options["data"] = data[0] if len(data) == 1 else data
    options = {k: v for k, v in options.items() if v is not None}
    result = search(trials=own["trials"], time_limit=own["time_limit"], space=own["space"], resume=own["resume"],
                    config_file=own["config"], log=stderr_log if options.get("progress", True) else None, **options)
    best = result.record.best
    test = "" if best.test_accuracy is None else f", test accuracy {best.test_accuracy:.4f}"
    if best.test_map is not None:  # multi-label
        test = f", test mAP {best.test_map:.4f}{test.replace('test accuracy', 'label-wise test accuracy')}" \
               + (" (at the tuned thresholds)" if best.test_accuracy is not None else "")

    stopped = result.record.stopped
    # only tune.json said so: fewer trials than asked ("5 trials in a row failed" begins as "5 trials" does)
    if stopped != f"{own['trials']} trials" and not stopped.startswith(f"{own['trials']} trials asked"):
        done = sum(t.state == "complete" for t in result.record.trials)
        why = f"by its {stopped}" if stopped.startswith("time limit") else f"early: {stopped}"
        typer.echo(f"stopped {why}: {done} of {own['trials']} trials completed", err=True)

    words = OBJECTIVES[result.record.objective].words
    typer.echo(f"best trial {best.number}: {words} {best.value:.4f}{test}  ({result.best_run})")
    typer.echo(f"search: {result.path} (tune.html, tune.json); train it again: imgclf train --config "
               f"{shell_word(result.path / 'best.yaml')}{best_trial_budget_note(result.best_run)}")


def _tune_options() -> list[inspect.Parameter]:
    params = [p for p in train_options() if p.name not in ("resume", "overwrite", "time_limit", "folds", "fold")]
    out = typer.Option(None, "--out", help="Search folder (default: tune/<model>-<n>).", show_default=False)
    params = [p.replace(default=out) if p.name == "out" else p for p in params]
    own = [
        ("trials", int, typer.Option(..., "--trials", help="Number of trials (finished or pruned) to run.")),
        ("time_limit", Optional[str], typer.Option(None, "--time-limit", help="Total budget of the search, such as "
                                                   "30m: each trial trains at most its equal share, and no trial "
                                                   "starts once less than half a share is left.")),
        ("space", Optional[Path], typer.Option(None, "--space", help="YAML file of the settings to search: "
                                               "'lr: {low: 1e-4, high: 1e-1, log: true}', 'batch_size: [32, 64]', "
                                               "'model_args.dropout: {low: 0, high: 0.5}' (default: the model "
                                               "family's space).")),
        ("resume", bool, typer.Option(False, "--resume", help="Continue the search in --out: trials already "
                                      "finished are kept, not rerun; a trial that was interrupted counts as failed "
                                      "and a new one takes its place.")),
    ]
    for name, ann, default in own:
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default))
    return params


generated_command(app, "tune", tune, _tune_options)


@app.command()
def demo(out: Path = typer.Option(Path("imgclf-demo"), help="Folder for the exported digits and the run."),
         epochs: int = typer.Option(15, help="Training epochs."),
         progress: bool = typer.Option(True, help="Show a progress bar.")) -> None:
    """Offline demo: scikit-learn's digits as PNGs -> train a small CNN -> evaluate -> run directory."""
    from ..demo import run_demo

    run = run_demo(out, epochs, progress)
    _print_run_summary(run)
