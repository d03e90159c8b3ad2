"""The `imgclf` command: a thin layer over the Python API. Errors a user can fix exit with status 2."""

from __future__ import annotations

import inspect
import json
import os
import sys
import typing
from pathlib import Path
from typing import Any, Optional

import typer

from .cli_errors import CommandGroup
from .errors import bad_path, invalid
from .io import terminal_safe, writable_file, writable_folder

_HELP_FLAGS = {"help_option_names": ["-h", "--help"]}
_GENERATED: dict[Any, Any] = {}  # command function -> the function listing its generated options
_DEFERRED: dict[Any, Any] = {}  # command function -> its Typer CommandInfo, built when the command runs


class _Commands(CommandGroup):
    """Builds only the command that runs. Typer builds a command's options with pydantic (its own type checks),
    train's come from TrainConfig and the study's from numpy code: `imgclf models` and `--version` should wait
    for none of them. Until it runs, a command holds its help line only, enough for `imgclf --help`'s list."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, cmd, rest = super().resolve_command(ctx, args)
        func = getattr(getattr(cmd, "callback", None), "__wrapped__", None)
        if func in _DEFERRED and func.__dict__.get("__signature__") is _PENDING:
            if func in _GENERATED:
                func.__signature__ = inspect.Signature(_GENERATED[func]())
            else:
                del func.__signature__  # the function's own parameters again
            cmd = typer.main.get_command_from_info(_DEFERRED[func], pretty_exceptions_short=True,
                                                   rich_markup_mode=getattr(cmd, "rich_markup_mode", None))
            self.commands[name] = cmd
        return name, cmd, rest


_PENDING = inspect.Signature([])


def _generated_command(group: typer.Typer, name: str, func: Any, options: Any) -> None:
    _GENERATED[func] = options
    group.command(name, context_settings=_HELP_FLAGS)(func)


def _defer_options(*groups: typer.Typer) -> None:
    for group in groups:
        for info in group.registered_commands:
            _DEFERRED[info.callback] = info
            info.callback.__signature__ = _PENDING


app = typer.Typer(cls=_Commands, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train, evaluate, explain and serve image classifiers from a folder of labelled images.")
data_app = typer.Typer(cls=_Commands, no_args_is_help=True, help="Built-in data sets.")
app.add_typer(data_app, name="data")


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"imgclf {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print imgclf's version and exit.")) -> None:
    """Train, evaluate, explain and serve image classifiers from a folder of labelled images."""


def _shown(text: Any) -> str:
    """A user-chosen name (file, class) for the console: neither Rich markup nor terminal control sequences."""
    from rich.markup import escape

    return escape(terminal_safe(text))


def _console():
    from rich.console import Console

    return Console(stderr=False, highlight=False, soft_wrap=True)  # a redirected summary keeps its lines whole


# ---------------------------------------------------------------------------------------------------
# train: its options are generated from TrainConfig, so the CLI and YAML can never drift apart.
# ---------------------------------------------------------------------------------------------------
def _train_options() -> list[inspect.Parameter]:
    from .config import TrainConfig

    params = [inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[list[str]],
                                default=typer.Argument(None, help="Image folder (class-per-folder, or train/ val/ "
                                                       "test/); several folders are used as one, classes merged by "
                                                       "folder name.", show_default=False, metavar="DATA"))]
    for name, field in TrainConfig.model_fields.items():
        if name in ("data", "schema_version", "lr_auto"):  # lr_auto records what --lr auto did; not a flag
            continue
        ann = field.annotation
        origin = typing.get_origin(ann)
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if ann is bool:
            py_type: Any = Optional[bool]
        elif origin is dict or (args and typing.get_origin(args[0]) is dict):
            py_type = Optional[str]
        elif origin is list and typing.get_origin(typing.get_args(ann)[0]) is typing.Literal:
            py_type = Optional[list[str]]  # a repeatable flag: --logger csv --logger mlflow
        elif ann in (int, float) or (len(args) == 1 and args[0] in (int, float)):  # lr (a number or auto): text
            py_type = Optional[ann if ann in (int, float) else args[0]]
        else:
            py_type = Optional[str]
        flag = "--" + name.replace("_", "-")
        decls = [f"{flag}/--no-{name.replace('_', '-')}"] if ann is bool else [flag]
        help_text = field.description or ""
        choices = typing.get_args(ann) if typing.get_origin(ann) is typing.Literal else ()
        if choices:
            help_text += f" One of: {', '.join(map(str, choices))}."
        if field.default is not None and not callable(field.default_factory or None):
            # escaped: Rich reads [default: ...] as markup and drops it (the options default to None, so that a
            # flag left out never hides a recipe's value, and typer cannot show the real default itself)
            help_text += f" \\[default: {field.default}]"
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=py_type,
                                        default=typer.Option(None, *decls, help=help_text, show_default=False)))
    extra = [
        ("config", Optional[Path], typer.Option(None, "--config", help="YAML file of settings (flags override it).")),
        ("overwrite", bool, typer.Option(False, "--overwrite", help="Replace the run in --out if there is one.")),
        ("resume", Optional[Path], typer.Option(None, "--resume", help="Continue an interrupted run directory.")),
    ]
    for name, ann, default in extra:
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default))
    return params


def train(data: Optional[list[str]] = None, **options: Any) -> None:
    """Train a model on an image folder and write a complete run directory."""
    from .pipeline import fit

    config, overwrite, resume = options.pop("config"), options.pop("overwrite"), options.pop("resume")
    if data:
        options["data"] = data[0] if len(data) == 1 else data
    if resume:
        run = fit(resume=resume, **options)
    else:
        run = fit(config_file=config, overwrite=overwrite, **options)
    from .pipeline.folds import Folds

    if isinstance(run, Folds):
        _print_folds(run)
    else:
        _print_run_summary(run)


def _print_folds(folds: Any) -> None:
    """The cross-validation's summary: mean ± std over the folds of each metric, then where it is."""
    from rich.table import Table

    summary = folds.summary
    table = Table(title=f"{summary['folds']} folds: mean ± std (test split: {summary['test_images']} images, the "
                  "same for every fold)", title_justify="left")
    table.add_column("metric")
    table.add_column("mean ± std", justify="right")
    table.add_column("per fold", justify="right")
    for name, stat in summary["metrics"].items():
        if stat["mean"] is None:
            continue
        spread = "" if stat["std"] is None else f" ± {stat['std']:.4f}"
        each = " ".join("—" if f[name] is None else f"{f[name]:.3f}" for f in summary["per_fold"])
        table.add_row(name.replace("_", " "), f"{stat['mean']:.4f}{spread}", each)
    _console().print(table)
    typer.echo(f"folds: {folds.path} (fold-1 ... fold-{summary['folds']}, folds.json)")


_generated_command(app, "train", train, _train_options)


def lr_find(data: Optional[list[str]] = None, **options: Any) -> None:
    """Sweep the learning rate with Lightning's LR finder and print the suggestion.

    A run's settings on a data folder, no run trained; writes lr_find.png and lr_find.json to --out."""
    from .pipeline.lr_find import lr_find as find

    config, overwrite = options.pop("config"), options.pop("overwrite")
    sweep = {k: options.pop(k) for k in ("start_lr", "end_lr", "steps")}
    if data:
        options["data"] = data[0] if len(data) == 1 else data
    options = {k: v for k, v in options.items() if v is not None}
    result = find(config_file=config, overwrite=overwrite, **sweep, **options)
    typer.echo(f"suggested lr {result.suggestion:.3g}  ({len(result.lrs)} steps from {result.min_lr:g} to "
               f"{result.max_lr:g}; curve {result.path / 'lr_find.png'})")
    typer.echo(f"use: imgclf train ... --lr {result.suggestion:.3g}   (or --lr auto to run the finder in train)")


def _lr_find_options() -> list[inspect.Parameter]:
    params = [p for p in _train_options() if p.name not in ("resume", "lr")]
    out = typer.Option(None, "--out", help="Folder for lr_find.json and lr_find.png (default: lr-find/<model>-<n>).",
                       show_default=False)
    params = [p.replace(default=out) if p.name == "out" else p for p in params]
    own = [
        ("start_lr", float, typer.Option(1e-7, "--start-lr", help="First learning rate of the sweep.")),
        ("end_lr", float, typer.Option(1.0, "--end-lr", help="Last learning rate of the sweep.")),
        ("steps", int, typer.Option(100, "--steps", help="Training steps of the sweep (at least 15).")),
    ]
    for name, ann, default in own:
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default))
    return params


_generated_command(app, "lr-find", lr_find, _lr_find_options)


def tune(data: Optional[list[str]] = None, **options: Any) -> None:
    """Search hyper-parameters with Optuna: every trial an ordinary run, the best tested.

    Trials are selected on the validation split; only the best one is evaluated on the test split. Writes
    OUT/study.db (resumable with --resume), OUT/trials/trial-NNN, best.yaml, tune.json and tune.html."""
    from .search.search import stderr_log
    from .search.search import tune as search

    own = {k: options.pop(k) for k in ("trials", "time_limit", "space", "resume", "config")}
    if data:
        options["data"] = data[0] if len(data) == 1 else data
    options = {k: v for k, v in options.items() if v is not None}
    result = search(trials=own["trials"], time_limit=own["time_limit"], space=own["space"], resume=own["resume"],
                    config_file=own["config"], log=stderr_log if options.get("progress", True) else None, **options)
    best = result.record.best
    test = "" if best.test_accuracy is None else f", test accuracy {best.test_accuracy:.4f}"
    typer.echo(f"best trial {best.number}: validation accuracy {best.value:.4f}{test}  ({result.best_run})")
    typer.echo(f"search: {result.path} (tune.html, tune.json); train it again: imgclf train --config "
               f"{result.path / 'best.yaml'}")


def _tune_options() -> list[inspect.Parameter]:
    params = [p for p in _train_options() if p.name not in ("resume", "overwrite", "time_limit", "folds", "fold")]
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
        ("resume", bool, typer.Option(False, "--resume", help="Continue the search in --out (trials already "
                                      "finished are kept, not rerun).")),
    ]
    for name, ann, default in own:
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default))
    return params


_generated_command(app, "tune", tune, _tune_options)


def _print_run_summary(run: Any) -> None:
    from .hardware import launch_rank

    if launch_rank() != 0:
        return  # worker processes of a data-parallel run stay quiet; rank 0 reports
    m = run.metrics
    console = _console()
    console.print(f"[bold]run[/bold] {_shown(run.path)}  ({run.epochs_run} epochs, {run.train_seconds:.1f} s, {run.stopped_reason})")
    if m and m.multilabel is not None:
        console.print(f"[bold]{m.split}[/bold] {_multilabel_line(m)}")
    elif m:
        worst = f"  worst class {m.worst_class.name} recall {m.worst_class.recall:.3f}" if m.worst_class else ""
        console.print(f"[bold]{m.split}[/bold] accuracy {m.accuracy:.4f}  macro F1 {m.macro.f1:.4f}  "
                      f"macro recall {m.macro.recall:.4f}{worst}")
    skipped = run.skipped
    if skipped:
        console.print(f"[yellow]{len(skipped)} file(s) skipped[/yellow] (all listed in {run.path / 'dataset.json'}):")
        for s in skipped[:10]:
            console.print(f"  {_shown(s.path)}: {_shown(s.reason)}", soft_wrap=True)
        if len(skipped) > 10:
            console.print(f"  ... and {len(skipped) - 10} more")
    if run.figure_failures:
        console.print(f"[yellow]{len(run.figure_failures)} figure(s) could not be drawn[/yellow] (the report says "
                      "so in their place):")
        for failure in run.figure_failures:
            console.print(f"  {_shown(failure)}", soft_wrap=True)
    report = run.path / "report.html"
    if report.exists():
        console.print(f"report: {report}")


# ---------------------------------------------------------------------------------------------------
@app.command()
def demo(out: Path = typer.Option(Path("imgclf-demo"), help="Folder for the exported digits and the run."),
         epochs: int = typer.Option(15, help="Training epochs."),
         progress: bool = typer.Option(True, help="Show a progress bar.")) -> None:
    """Offline demo: scikit-learn's digits as PNGs -> train a small CNN -> evaluate -> run directory."""
    from .demo import run_demo

    run = run_demo(out, epochs, progress)
    _print_run_summary(run)


@app.command("audit")
def audit_cmd(data: Path = typer.Argument(..., help="Image folder: class folders, or train/ (val/, test/) of class "
                                                    "folders."),
              run: Optional[Path] = typer.Option(None, "--run", help="Run directory whose model's penultimate "
                                                 "features judge labels and outliers (default: the images' pixels)."),
              out: Optional[Path] = typer.Option(None, "--out", help="Folder for audit.json and audit.html "
                                                 "(default: audits/<folder name>)."),
              img_size: Optional[int] = typer.Option(None, "--img-size", help="Decode size without --run (default: "
                                                     "the images' median short side, 16 to 64)."),
              folds: int = typer.Option(5, "--folds", help="k of the out-of-fold probabilities (>= 2)."),
              seed: int = typer.Option(0, "--seed", help="Seed of the folds and projections (>= 0)."),
              as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON.")) -> None:
    """Audit an image folder: duplicates, leaks between splits, likely label errors, outliers.

    Exact and near-duplicates within a class, across classes and across train/val/test; likely label errors,
    outliers and near-empty images. Writes audit.json and a self-contained audit.html."""
    from .audit import audit

    result = audit(data, run=run, out=out, img_size=img_size, folds=folds, seed=seed)
    counts = result.record.counts
    if as_json:
        typer.echo(json.dumps({"counts": counts.model_dump(), "leakage": result.record.leakage,
                               "audit": str(result.json_path), "page": str(result.html_path)}, indent=2))
        return
    from .audit.summary import render_counts

    render_counts(result.record, _console())
    console = _console()
    console.print(f"audit: {_shown(result.json_path)}")
    console.print(f"page: {_shown(result.html_path)}")


@app.command("inspect")
def inspect_cmd(data: Path = typer.Argument(..., help="Image folder, or a multi-label index file (CSV / JSON "
                                                      "lines: path and labels per image)."),
                as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
                plots: Optional[Path] = typer.Option(None, help="Write class-distribution and sample figures here.")) -> None:
    """What is in an image folder: classes, counts per split, sizes, modes, unreadable files, mu and rho."""
    from .inspect import inspect_folder, render_inspection

    summary = inspect_folder(data, plots_dir=plots)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        render_inspection(summary, _console())


@app.command()
def evaluate(run: Path = typer.Argument(..., help="Run directory."),
             data: Optional[Path] = typer.Option(None, help="Evaluate on this folder instead of the run's test split."),
             split: str = typer.Option("test", help="Split of the run's data set: test or val."),
             tta: bool = typer.Option(False, help="Also report test-time augmentation: the mean prediction over "
                                                  "the image plus, only where the run's training made them, its "
                                                  "mirror images (augment hflip, vflip) and two small shifts "
                                                  "(shift, crop); metrics.json names the views used. Refused for "
                                                  "a run trained with none of these.")) -> None:
    """Evaluate a run: predictions.csv, metrics.json and the classification report.

    For --data or another --split they are written beside the run's own, in evaluations/."""
    from .evaluation.run_eval import results_dir
    from .pipeline import evaluate as evaluate_run

    metrics = evaluate_run(run, data=data, split=split, tta=tta)
    _print_metrics(metrics)
    _print_most_confused(metrics)
    if data is not None:
        from .evaluation.run_eval import classes_left_out

        left_out = classes_left_out(run, data)
        if left_out:
            typer.echo(f"left out class folder(s) {', '.join(map(_shown, left_out))}, as the run's training did "
                       "(its classes / drop_classes)")
    typer.echo(f"wrote {results_dir(run, data, split) / 'metrics.json'} and predictions.csv")


def _print_metrics(m: Any) -> None:
    from rich.table import Table

    console = _console()
    loss = "-" if m.loss is None else f"{m.loss:.4f}"
    table = Table(title=f"{m.split}: accuracy {m.accuracy:.4f}, loss {loss}, {m.count} images")
    for col in ("class", "precision", "recall", "f1", "support", "auc"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, row in m.per_class.items():
        auc = m.auc.get(name)
        table.add_row(_shown(name), f"{row.precision:.3f}", f"{row.recall:.3f}", f"{row.f1:.3f}", str(row.support),
                      "-" if auc is None else f"{auc:.3f}")
    for avg in ("macro", "weighted"):
        r = getattr(m, avg)
        table.add_row(f"{avg} avg", f"{r.precision:.3f}", f"{r.recall:.3f}", f"{r.f1:.3f}", str(m.count), "")
    console.print(table)
    if m.tta is not None:
        console.print(f"with TTA ({m.tta.transforms}): accuracy {m.tta.accuracy:.4f}")
    if m.skipped:
        console.print(f"[yellow]{len(m.skipped)} file(s) skipped:[/yellow]")
        for s in m.skipped[:20]:
            console.print(f"  {_shown(s.path)}: {_shown(s.reason)}")


UNKNOWN_HELP = ("on: an image scoring below the run's threshold (model.json 'unknown', set on the validation split) "
                "is labelled unknown, with its score and closest class; off: always the most probable class.")


def _on_off(name: str, value: str) -> bool:
    if value not in ("on", "off"):
        raise invalid(name, value, ("on", "off"))
    return value == "on"


@app.command()
def predict(run: Path = typer.Argument(..., help="Run directory."),
            images: list[Path] = typer.Argument(..., help="Image files and/or folders."),
            top_k: int = typer.Option(3, "--top-k", min=1, help="How many classes to list per image."),
            fmt: str = typer.Option("table", "--format", help="table, csv or json."),
            output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
            tta: bool = typer.Option(False, help="Average each prediction over the image plus, only where the "
                                                 "run's training made them, its mirror images (augment hflip, "
                                                 "vflip) and two small shifts (shift, crop). Refused for a run "
                                                 "trained with none of these."),
            backend: str = typer.Option("torch", help="torch or onnx (needs `imgclf export RUN --format onnx`)."),
            unknown: str = typer.Option("on", help=UNKNOWN_HELP),
            threshold: Optional[float] = typer.Option(None, help="Multi-label runs: one decision threshold for "
                                                      "every label instead of the ones tuned on validation "
                                                      "(model.json thresholds).")) -> None:
    """Predict labels and calibrated probabilities for images, or unknown for an image like no class.

    Each prediction carries its in-distribution score. Unreadable files get an error row."""
    from .predict_format import format_predictions
    from .inference import load

    if fmt not in ("table", "csv", "json"):
        raise invalid("format", fmt, ("table", "csv", "json"))
    flag_unknown = _on_off("unknown", unknown)
    if output:
        writable_file("output", output)
    missing = [str(p) for p in images if not p.exists()]
    if missing:
        raise bad_path("images", ", ".join(missing), "existing files or folders")
    if backend == "onnx":
        from .export import load_onnx

        clf: Any = load_onnx(run)
    elif backend == "torch":
        clf = load(run)
    else:
        raise invalid("backend", backend, ("torch", "onnx"))
    extra = {} if threshold is None else {"threshold": threshold}  # the ONNX backend takes it only when given
    predictions = clf.predict([str(p) for p in images], top_k=top_k, tta=tta, unknown=flag_unknown, **extra)
    text = format_predictions(predictions, fmt)
    if output:
        from .io import atomic_write_text

        atomic_write_text(output, text)
    else:
        typer.echo(text, nl=False)


@app.command()
def models(pattern: str = typer.Argument("*", help="Glob over model names."),
           pretrained: bool = typer.Option(False, "--pretrained", help="List pretrained (timm) backbones.")) -> None:
    """List the registered models."""
    from rich.table import Table

    table = Table()
    for col in ("name", "input", "description"):
        table.add_column(col)
    if pretrained:
        from .models.transfer import list_pretrained

        for name, desc in list_pretrained(pattern):
            table.add_row(name, "see weights", desc)  # each backbone's own size is in its description
    else:
        from .models.registry import list_registered  # a static listing: importing the builders means torch

        for m in list_registered(pattern):
            table.add_row(m.name, f"{m.default_img_size}x{m.default_img_size}x{m.default_in_chans}", m.description)
    if not table.row_count:  # an empty table would read as "no models installed"
        kind = "pretrained backbone" if pretrained else "registered model"
        raise invalid("pattern", pattern, f"a glob matching at least one {kind} name",
                      hint=f"imgclf models{' --pretrained' if pretrained else ''} lists them all")
    _console().print(table)


@data_app.command("fetch")
def data_fetch(name: str = typer.Argument(..., help="digits, fashion-mnist, cifar10 or fer2013."),
               out: Path = typer.Option(..., "--out", help="Folder to write the PNG tree into."),
               source: Optional[Path] = typer.Option(
                   None, help="Local copy: fashion-mnist's IDX folder; cifar-10-binary.tar.gz or its extracted "
                              "folder; fer2013.csv (.csv.gz, or a .tar.gz / .zip holding it)."),
               url: Optional[str] = typer.Option(
                   None, help="Download from here instead of the official address (fashion-mnist: the folder "
                              "holding the four .gz files). fer2013 has no public address: it needs --url or --source."),
               md5: Optional[str] = typer.Option(
                   None, help="fer2013: the MD5 your copy must match (none is published)."),
               cache_dir: Optional[Path] = typer.Option(
                   None, "--cache-dir", help="Where downloads are kept (default $IMGCLF_CACHE/downloads, "
                                             "i.e. ~/.cache/imgclf/downloads).")) -> None:
    """Write a built-in data set as a class-per-folder PNG tree.

    digits: scikit-learn's copy, offline.

    fashion-mnist: --source, else /usr/share/datasets/fashion-mnist (Debian: dataset-fashion-mnist), else downloaded.

    cifar10: the binary version (never the pickled python one) from --source, else downloaded.

    fer2013: the CSV (emotion, pixels, Usage) from --source, or downloaded from --url.

    Published MD5s (fashion-mnist, cifar10) are checked before a download is kept.
    """
    import logging

    from .data.sources import fetch

    # Download progress and skipped-row counts are logged by the library; show them on stderr here.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("imgclf.data.sources")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        path = fetch(name, out, source=source, url=url, md5=md5, cache_dir=cache_dir)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    typer.echo(f"wrote {path}")


@app.command()
def export(run: Path = typer.Argument(..., help="Run directory."),
           fmt: str = typer.Option("onnx", "--format", help="onnx, or torchscript (a torch.export .pt2 program)."),
           out: Optional[Path] = typer.Option(None, "--out", help="Folder to write into (default: RUN/export).")) -> None:
    """Export a run to ONNX or .pt2 with its preprocessing, temperature and unknown detector.

    uint8 NHWC in; calibrated probabilities, in-distribution score and unknown flag out; plus its model card."""
    from .export import export_run

    path = export_run(run, fmt, out)
    typer.echo(f"wrote {path} and {path.name}.json")


@app.command()
def serve(run: Path = typer.Argument(..., help="Run directory."),
          host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 exposes it to the network)."),
          port: int = typer.Option(8000, min=0, max=65535, help="TCP port."),
          max_upload_mb: float = typer.Option(10.0, min=0.001, help="Largest request body, in MB (10^6 bytes)."),
          max_files: int = typer.Option(32, min=1, help="Most images per request."),
          backend: str = typer.Option("torch", help="torch, or onnx: onnxruntime over RUN/export/model.onnx "
                                                    "(make it with `imgclf export RUN`); same answers."),
          threads: Optional[int] = typer.Option(None, min=1, help="Forward-pass threads (default: half the cores)."),
          access_log: bool = typer.Option(True, help="Log every request."),
          unknown: str = typer.Option("on", help=UNKNOWN_HELP + " A request may ask ?unknown=off.")) -> None:
    """Serve a run: upload page at /, POST /predict, GET /model, GET /health."""
    from .serve import serve as run_server
    from .serve.app import BACKENDS

    if backend not in BACKENDS:  # before the run is loaded: the flag is wrong whatever the run holds
        raise invalid("--backend", backend, BACKENDS)
    flag_unknown = _on_off("unknown", unknown)
    run_server(run, host=host, port=port, access_log=access_log, backend=backend, threads=threads,
               max_upload_bytes=int(max_upload_mb * 1_000_000), max_files=max_files, unknown=flag_unknown)


# ---------------------------------------------------------------------------------------------------
# subset and study imbalance (issue 5): thin layers over imgclf.data.subset and imgclf.study.imbalance
# ---------------------------------------------------------------------------------------------------
def _split_list(name: str, text: str, kind: type) -> list[Any]:
    try:
        return [kind(p.strip()) for p in text.split(",") if p.strip()]
    except ValueError:
        raise invalid(name, text, f"a comma-separated list of {kind.__name__} values such as "
                                  f"{'1,3,7,15' if kind is float else '0,1,2'}") from None


@app.command()
def subset(data: Path = typer.Argument(..., help="Image folder: class-per-folder, or train/ with optional val/ and test/."),
           out: Path = typer.Option(..., "--out", help="New folder for the subset (links + subset.json)."),
           per_class: int = typer.Option(..., "--per-class", min=1, help="Base set: images per class before imbalancing."),
           rho: float = typer.Option(..., help="Imbalance ratio: majority class size / minority class size."),
           mu: Optional[float] = typer.Option(None, help="Share of classes that are minority (default 0.5)."),
           minority: Optional[str] = typer.Option(None, help="Comma-separated minority classes (default: the smallest classes)."),
           seed: int = typer.Option(0, min=0, help="Seed of the per-class draws."),
           mode: str = typer.Option("symlink", help="symlink, hardlink or list (subset.csv only).")) -> None:
    """Make a step-imbalanced copy of a data set (S4): links or a file list, never pixel copies."""
    from .data.subset import build_subset

    names = _split_list("minority", minority, str) if minority else None
    m = build_subset(data, out, per_class, rho, mu, seed, names, mode)
    typer.echo(f"wrote {out} ({m['mode']}): {m['total']} images, rho {m['rho_actual']:g}, mu {m['mu']:g}; "
               f"{m['minority_count']} per minority class ({', '.join(m['minority'])}), "
               f"{m['majority_count']} per majority class")
    if not m["exact"]:
        k, n_min = len(m["classes"]), len(m["minority"])
        typer.echo(f"note: the total is {m['total']} instead of {m['target_total']} (rounding): the exact sizes need "
                   f"{k} x per-class divisible by {n_min} + {k - n_min} x rho")


study_app = typer.Typer(cls=_Commands, no_args_is_help=True,
                        help="Experiment grids whose cells are ordinary run directories.")
app.add_typer(study_app, name="study")


def _study_options() -> list[inspect.Parameter]:
    from .study.imbalance import CONTROLLED

    def opt(name: str, ann: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default)

    own = [
        inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str,
                          default=typer.Argument(..., help="Image folder to draw the imbalanced subsets from.")),
        opt("out", Path, typer.Option(..., "--out", help="Study folder: data/, runs/, study.json, study.html.")),
        opt("per_class", int, typer.Option(..., "--per-class", min=1, help="Base set: images per class (S4: 32).")),
        opt("rhos", str, typer.Option("1,3,7,15", help="Imbalance ratios.")),
        opt("mu", Optional[float], typer.Option(None, help="Share of minority classes (default 0.5).")),
        opt("configs", str, typer.Option("none,reg,reg+bn", help="Configurations: none, reg, reg+bn; also weighted, "
                                          "oversample, undersample, focal, and '+' combinations.")),
        opt("seeds", str, typer.Option("0", help="Training seeds; results are mean +- std over them.")),
        opt("minority", Optional[str], typer.Option(None, help="Comma-separated minority classes (default: the smallest classes).")),
        opt("subset_seed", int, typer.Option(0, "--subset-seed", min=0, help="Seed of the subsets' draws.")),
        opt("run_reports", bool, typer.Option(True, "--run-reports/--no-run-reports",
                                               help="Also write each run's report.html (slow for many tiny runs).")),
        opt("protocol", str, typer.Option("standard", help="How each subset is split. standard: train / validation "
                                          "/ test (--val-split, --test-split), curves on validation. s4: S4's 70/30 "
                                          "train/test, no validation; test scored every epoch for the curves, last "
                                          "epoch's weights kept, no early stopping.", show_default=True)),
    ]
    skip = (set(CONTROLLED) - {"model"}) | {"config", "overwrite", "resume"}
    train = [p for p in _train_options()[1:] if p.name not in skip]
    config = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                               default=typer.Option(None, "--config", help="YAML file of training settings."))
    return own + train + [config]


def study_imbalance(data: str, **options: Any) -> None:
    """Run S4's imbalance study: ratios x configurations x seeds, then study.json + study.html."""
    from rich.table import Table

    from .study.imbalance import run_imbalance_study
    from .study.settings import study_settings

    own = {k: options.pop(k) for k in ("out", "per_class", "rhos", "mu", "configs", "seeds", "minority", "subset_seed",
                                       "run_reports", "protocol")}
    writable_folder("out", own["out"])
    model, values, ignored = study_settings(options.pop("config"), options, own["protocol"])
    if ignored:
        typer.echo(f"note: the study's configurations{' and protocol' if own['protocol'] != 'standard' else ''} set "
                   f"{', '.join(ignored)}; ignoring the recipe/config file's values")
    study = run_imbalance_study(
        data, own["out"], per_class=own["per_class"], rhos=_split_list("rhos", own["rhos"], float), mu=own["mu"],
        configs=_split_list("configs", own["configs"], str), seeds=_split_list("seeds", own["seeds"], int),
        model=model, minority=_split_list("minority", own["minority"], str) if own["minority"] else None,
        subset_seed=own["subset_seed"], overrides=values, run_reports=own["run_reports"], protocol=own["protocol"],
        log=typer.echo)
    table = Table(title=f"imbalance study: mean ± std over seeds ({study['finished_runs']}/{len(study['runs'])} runs)")
    for col in ("rho", "config", "seeds", "accuracy", "macro recall", "minority recall"):
        table.add_column(col, justify="left" if col == "config" else "right")

    def cell(stat: dict[str, Any]) -> str:
        if stat["mean"] is None:
            return "-"
        return f"{stat['mean']:.3f}" + (f" ± {stat['std']:.3f}" if stat["std"] is not None else "")

    for row in study["summary"]:
        table.add_row(f"{row['rho']:g}", row["config"], str(len(row["seeds"])), cell(row["accuracy"]),
                      cell(row["macro_recall"]), cell(row["minority_recall"]))
    _console().print(table)
    typer.echo(f"report: {Path(own['out']) / 'study.html'}")


_generated_command(study_app, "imbalance", study_imbalance, _study_options)


@app.command()
def report(run: Path = typer.Argument(..., help="Run directory."),
           explain: bool = typer.Option(True, help="Include Grad-CAM heatmaps (needs the weights and grad-cam).")) -> None:
    """Redraw a run's figures (plots/*.png) and write its self-contained report.html."""
    from .evaluation.report import write_report

    failures: list[str] = []
    path = write_report(run, explain=explain, failures=failures)
    for failure in failures:
        typer.echo(f"figure could not be drawn: {terminal_safe(failure)}", err=True)
    typer.echo(f"report: {path}")


@app.command()
def compare(runs: list[Path] = typer.Argument(..., help="Two or more run directories."),
            out: Path = typer.Option(Path("compare.html"), "--out", help="Where to write the HTML comparison.")) -> None:
    """Side-by-side table and overlaid validation curves; runs differing only in seed shown as mean ± std."""
    from .evaluation.compare import compare_runs, render_table, write_compare_html

    import warnings

    from .evaluation.compare import UnfinishedRunWarning

    writable_file("out", out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnfinishedRunWarning)  # the table lists the skipped runs itself
        comparison = compare_runs(runs)
    render_table(comparison, _console())
    path = write_compare_html(comparison, out)
    typer.echo(f"comparison: {path}")


@app.command()
def runs(folder: Path = typer.Argument(Path("runs"), metavar="[DIR]", help="Folder holding run directories "
                                       "(searched recursively).", show_default=True),
         sort: str = typer.Option("created", help="Column to sort by: name, model, data, epochs, val_accuracy, "
                                  "test_accuracy, macro_f1, train_seconds, created or status (scores best first).",
                                  show_default=True),
         reverse: bool = typer.Option(False, "--reverse", help="Reverse the order."),
         as_json: bool = typer.Option(False, "--json", help="Print a JSON list of objects for scripts.")) -> None:
    """List the runs under a folder: model, data, epochs, accuracies, macro F1, time, when, status.

    Status is completed, pruned (a search trial the pruner stopped), interrupted or failed; a run whose files
    cannot be read is listed as failed with the reason."""
    from .runs import list_runs, render_runs

    rows = list_runs(folder, sort=sort, reverse=reverse)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        render_runs(rows, _console(), folder)


def _multilabel_line(m: Any) -> str:
    ml = m.multilabel
    ap = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731  (None: no label had a positive)
    return (f"mAP {ap(ml.map_macro)} (micro {ap(ml.map_micro)})  macro F1 {m.macro.f1:.4f}  subset accuracy "
            f"{ml.subset_accuracy:.4f}  Hamming loss {ml.hamming_loss:.4f}  (labels at their tuned thresholds)")


def _print_most_confused(metrics: Any, top: int = 5) -> None:
    from .evaluation.interpret import most_confused

    if metrics.multilabel is not None:  # its confusion is label co-occurrence: no class was mistaken for another
        _console().print(_multilabel_line(metrics))
        return

    pairs = most_confused(metrics, top=top)
    if pairs:
        _console().print("most confused: " + "; ".join(f"{_shown(c.true)} → {_shown(c.pred)} ({c.count}, "
                                                        f"{100 * c.rate:.0f} %)"
                                                        for c in pairs))


class _RecipesCommand(typer.core.TyperCommand):
    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return ["[OPTIONS]", "[[show] NAME]"]  # click would write the word list as [[show] NAME]...


@app.command(cls=_RecipesCommand)
def recipes(words: Optional[list[str]] = typer.Argument(None, metavar="[show] NAME", show_default=False,
                                                        help="A recipe to print; 'show NAME' says the same.")) -> None:
    """List the named recipes, or print one recipe's file as shipped: imgclf recipes NAME.

    The reference systems reproduced, and our own; the file keeps its comments."""
    from .errors import Described
    from .recipes import list_recipes, recipe_bytes

    words = list(words or [])
    if words[:1] == ["show"]:  # no recipe is called show: `recipes show NAME` reads as a subcommand would
        words = words[1:]
        if not words:
            raise invalid("NAME", Described("nothing after 'show'"), "a recipe name",
                          hint="imgclf recipes lists them")
    if len(words) > 1:
        raise invalid("recipes arguments", " ".join(words), "one recipe NAME, or show NAME")
    if words:
        typer.echo(recipe_bytes(words[0]), nl=False)  # bytes as shipped: a YAML round trip would drop the comments
        return
    from rich.table import Table

    table = Table()
    table.add_column("recipe")
    table.add_column("description")
    for recipe_name, description in list_recipes():
        table.add_row(recipe_name, description)
    _console().print(table)
    typer.echo("use: imgclf train DATA --recipe NAME [overrides]")


_defer_options(app, data_app, study_app)


def main() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    app()


if __name__ == "__main__":
    main()
