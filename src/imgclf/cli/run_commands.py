"""Commands on run directories: evaluate, predict, explain, calibrate, export, serve, report, compare and runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import invalid
from ..io import terminal_safe, writable_file
from .base import PRECISION_HELP, UNKNOWN_HELP, app, new_console, on_off
from .image_args import exit_none_readable, image_paths, refuse_missing
from .metrics_table import print_metrics, print_most_confused


@app.command()
def evaluate(run: Path = typer.Argument(..., help="Run directory."),
             data: Optional[Path] = typer.Option(None, help="Evaluate on this folder (a multi-label run: or an "
                                                 "index file of label sets) instead of the run's test split."),
             split: str = typer.Option("test", help="Split of the run's data set: test, val or train; with --data, "
                                                    "its split folder (test/ by default, else val/, then train/), "
                                                    "or an index's rows of that split (its split column)."),
             tta: Optional[bool] = typer.Option(None, "--tta/--no-tta",
                                                help="Also report test-time augmentation: the mean prediction over "
                                                     "the image plus, only where the run's training made them, its "
                                                     "mirror images (augment hflip, vflip) and two small shifts "
                                                     "(shift, crop); metrics.json names the views used. --tta is "
                                                     "refused for a run trained with none of these. Default: on for "
                                                     "the run's own test split where training made the views (as "
                                                     "training's evaluation did, so its report keeps them), else off."),
             precision: str = typer.Option("auto", help=PRECISION_HELP + " metrics.json records it."),
             backend: str = typer.Option("torch", help="torch, or onnx: score RUN/export/model.onnx (fp32, or int8 "
                                                       "from export --quantize int8) instead of the run's network; "
                                                       "written to evaluations/onnx-*, never over the run's own.")
             ) -> None:
    """Evaluate a run: predictions.csv, metrics.json and the classification report.

    For --data, another --split or --backend onnx they are written beside the run's own, in evaluations/."""
    from ..evaluation.run_eval import results_dir
    from ..pipeline import evaluate as evaluate_run

    metrics = evaluate_run(run, data=data, split=split, tta=tta, precision=precision, backend=backend)
    print_metrics(metrics)
    print_most_confused(metrics)
    page = " (and report.html, redrawn with them)" if data is None and split == "test" and backend == "torch" \
        and (Path(run) / "report.html").exists() else ""
    typer.echo(f"wrote {results_dir(run, data, split, backend) / 'metrics.json'} and predictions.csv{page}")


@app.command()
def predict(run: Path = typer.Argument(..., help="Run directory."),
            images: list[str] = typer.Argument(..., help="Image files and/or folders."),
            top_k: int = typer.Option(3, "--top-k", min=1, help="How many classes to list per image."),
            fmt: Optional[str] = typer.Option(None, "--format", help="table, csv or json (default: csv or json "
                                              "when --output ends in .csv or .json, else table)."),
            output: Optional[Path] = typer.Option(None, "--output", "-o",
                                                  help="Write to this file instead of stdout (-: stdout)."),
            tta: bool = typer.Option(False, help="Average each prediction over the image plus, only where the "
                                                 "run's training made them, its mirror images (augment hflip, "
                                                 "vflip) and two small shifts (shift, crop). Refused for a run "
                                                 "trained with none of these."),
            backend: str = typer.Option("torch", help="torch or onnx (needs `imgclf export RUN --format onnx`)."),
            unknown: str = typer.Option("on", help=UNKNOWN_HELP),
            threshold: Optional[float] = typer.Option(None, help="Multi-label runs: one decision threshold for "
                                                      "every label instead of the ones tuned on validation "
                                                      "(model.json thresholds)."),
            precision: str = typer.Option("auto", help=PRECISION_HELP + " The onnx backend runs in fp32 (auto or "
                                          "32), an int8 export (export --quantize int8) in int8 (auto).")) -> None:
    """Predict labels and calibrated probabilities for images, or unknown for an image like no class.

    Each prediction carries its in-distribution score. Unreadable files get an error row.

    Exit status: 0 when at least one file was predicted, 2 when none could be."""
    from ..backends import check_backend, load_classifier
    from ..predict_format import format_predictions

    if output is not None and str(output) == "-":  # the usual spelling of stdout, not a file named -
        output = None
    if fmt is None:
        suffix = output.suffix.lower().lstrip(".") if output else ""
        fmt = suffix if suffix in ("csv", "json") else "table"
        if suffix not in ("", "csv", "json", "txt"):
            from ..notices import warn

            warn(f"output {output.name} gets the table as text (tab-separated); --format csv or json, or an "
                 "--output ending in .csv or .json, writes those")
    if fmt not in ("table", "csv", "json"):
        raise invalid("format", fmt, ("table", "csv", "json"))
    named = output.suffix.lower().lstrip(".") if output else ""
    if named in ("csv", "json") and fmt != named:  # JSON in a .csv: a spreadsheet opened it as one broken column
        from ..notices import warn

        warn(f"output {output.name} ends in .{named} but gets --format {fmt}, as asked")
    flag_unknown = on_off("unknown", unknown)
    check_backend("backend", backend)
    if output:
        from ..pipeline.run_folder import refuse_run_file

        output = writable_file("output", output)
        refuse_run_file("output", output, run)
    clf = load_classifier(run, backend, precision=precision)
    refuse_missing(images)  # after the run: the first argument's error first
    paths = image_paths(images, utf8_names=False)  # its output escapes such a name, as when one is named
    if output:
        from ..inputs import output_among_inputs  # here: the quick commands import no numpy or torch

        paths = output_among_inputs("output", output, paths, images)
    extra = {} if threshold is None else {"threshold": threshold}  # the ONNX backend takes it only when given
    predictions = clf.predict(paths, top_k=top_k, tta=tta, unknown=flag_unknown, **extra)
    text = format_predictions(predictions, fmt, multilabel=clf.card.task == "multilabel",
                              top_k=min(top_k, len(clf.card.classes)))
    if output:
        from ..io import atomic_write_text

        atomic_write_text(output, text)
        bad = sum(1 for p in predictions if p.error)
        good = len(predictions) - bad
        count = f"{good:,} prediction{'s' if good != 1 else ''}" + (f", {bad:,} unreadable" if bad else "")
        # on stderr: -o may name this process's own stdout (/dev/stdout), which holds the predictions; with none
        # readable, the error below names the file
        if good:
            typer.echo(f"wrote {terminal_safe(output)} ({count})", err=True)
    else:
        write_stdout(text)
    if all(p.error for p in predictions):  # the rows say why; the status tells a script that nothing was predicted
        exit_none_readable(len(predictions), output)


@app.command()
def explain(run: Path = typer.Argument(..., help="Run directory."),
            images: list[str] = typer.Argument(..., help="Image files and/or folders."),
            output: Path = typer.Option(Path("explain.png"), "--output", "-o", help="The figure to write (.png)."),
            label: Optional[str] = typer.Option(None, help="Show the evidence for this class on every image "
                                                "(default: each image's predicted class)."),
            max_images: int = typer.Option(48, "--max-images", min=1, help="Explain at most this many images "
                                           "(the first readable ones, in the order given; folders sorted by name); "
                                           "the figure draws at most 48 of them."),
            unknown: str = typer.Option("on", help=UNKNOWN_HELP + " An unknown image's map shows its closest "
                                        "class."),
            precision: str = typer.Option("auto", help=PRECISION_HELP + " Of the predictions; the maps are "
                                          "computed in fp32.")) -> None:
    """Grad-CAM for your images: where the network found the evidence for its prediction, as a figure.

    Each image is drawn above its heatmap, captioned with its name and prediction; a line per image is printed.
    Unreadable files are reported and skipped. Exit status: 0 when at least one image was explained, 2 when none
    could be."""
    from ..evaluation.explain import FIGURE_IMAGES, explain_images, figure_path, plot_explanations
    from ..inference import load

    from ..pipeline.run_folder import refuse_run_file

    output = figure_path("output", output)
    refuse_run_file("output", output, run)
    flag_unknown = on_off("unknown", unknown)
    clf = load(run, precision=precision, fold_batch_norm=False)
    refuse_missing(images)  # after the run: the first argument's error first
    names = image_paths(images)
    from ..inputs import output_among_inputs

    names = output_among_inputs("output", output, names, images)
    multilabel = clf.card.task == "multilabel"
    # --max-images counts images explained: unreadable files among the first ones took their places, so fewer were
    # explained than asked while readable ones were left
    explanations, looked = [], 0
    while looked < len(names) and (wanted := max_images - sum(e.heatmap is not None for e in explanations)) > 0:
        explanations += explain_images(clf, names[looked:looked + wanted], label=label, unknown=flag_unknown)
        looked += wanted
    for e in explanations:
        p = e.prediction
        if p.error:
            typer.echo(f"{terminal_safe(e.path)}: unreadable: {terminal_safe(p.error)}")
            continue
        said = f"{p.best_label} {p.probability:.3f}"
        if multilabel:  # the labels carried, then the most probable, carried or not, whose map is drawn
            said = f"{p.label or 'no label'} (top {said})"
        elif p.unknown:
            said = f"unknown (closest {said})"
        shown_class = "" if e.explained == p.best_label else f"; map of {e.explained}"
        typer.echo(f"{terminal_safe(e.path)}: {terminal_safe(said)}{terminal_safe(shown_class)}")
    readable = sum(e.heatmap is not None for e in explanations)
    if not readable:
        exit_none_readable(len(explanations))
    plot_explanations(explanations, output, label=label, multilabel=multilabel, classes=clf.classes)
    drawn = min(readable, FIGURE_IMAGES)
    # files beyond --max-images were neither explained nor printed: at exactly 48 this said "the lines above
    # show the rest" of 135 files never explained
    notes = [f"the first {len(explanations):,} of {len(names):,} files; --max-images explains more"] \
        if len(names) > len(explanations) else []
    if drawn < readable:
        notes.append(f"{drawn} of the {readable:,} explained drawn, the lines above show the rest")
    typer.echo(f"figure: {output}" + (f" ({'; '.join(notes)})" if notes else ""))


@app.command()
def export(run: Path = typer.Argument(..., help="Run directory."),
           fmt: str = typer.Option("onnx", "--format", help="onnx, or pt2 (a torch.export program, model.pt2; also "
                                                                 "accepted as torchscript, its first name)."),
           out: Optional[Path] = typer.Option(None, "--out", help="Folder to write into (default: RUN/export)."),
           quantize: str = typer.Option("none", help="none, or int8 (onnx only): the convolutions run on 8-bit "
                                        "integers, calibrated on the run's validation images (still on disk); "
                                        "faster on CPUs with VNNI. The card records how often it agrees with fp32."
                                        ),
           calibration: Optional[Path] = typer.Option(
               None, "--calibration", help="With --quantize int8: calibrate and check on the images in this folder "
                                           "(images like the run's, class sub-folders or not) instead of the run's "
                                           "validation split, e.g. where the training data is not on this "
                                           "machine.")) -> None:
    """Export a run to ONNX or .pt2 with its preprocessing, temperature and unknown detector.

    uint8 NHWC in; calibrated probabilities, in-distribution score and unknown flag out; plus its model card.

    Beside it, model.onnx.md (model.pt2.md) tells how to call it without imgclf: imgclf's exact decoding, an
    example."""
    from ..export import export_run
    from ..records import ExportedCard

    path = export_run(run, fmt, out, quantize=quantize, calibration=calibration)
    typer.echo(f"wrote {path}, its card {path.name}.json and how to call it, {path.name}.md")
    card = ExportedCard.model_validate_json(path.with_name(path.name + ".json").read_text())
    if (check := card.export.quantization_check) is not None:
        from ..quantize import agreement_text

        typer.echo(f"int8: {agreement_text(check)}")


@app.command()
def serve(run: Path = typer.Argument(..., help="Run directory."),
          host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 exposes it to the network)."),
          port: int = typer.Option(8000, min=0, max=65535, help="TCP port."),
          max_upload_mb: float = typer.Option(10.0, min=0.001, max=10_000.0,
                                              help="Largest request body, in MB (10^6 bytes)."),
          max_files: int = typer.Option(32, min=1, help="Most images per request."),
          backend: str = typer.Option("torch", help="torch, or onnx: onnxruntime over RUN/export/model.onnx "
                                                    "(make it with `imgclf export RUN`); the same answers as "
                                                    "torch at --precision 32 (at bf16, scores differ a little, "
                                                    "and a few unknown verdicts near the threshold with them; "
                                                    "an int8 export answers as its card's check says)."),
          threads: Optional[int] = typer.Option(None, min=1, help="Forward-pass threads (default: half the cores)."),
          access_log: bool = typer.Option(True, help="Log every request."),
          unknown: str = typer.Option("on", help=UNKNOWN_HELP + " A request may ask ?unknown=off."),
          precision: str = typer.Option("auto", help=PRECISION_HELP + " The onnx backend runs in fp32 (auto or 32), "
                                        "an int8 export in int8 (auto); GET /health says which."),
          allow_origin: list[str] = typer.Option([], help="A web origin (scheme://host[:port], or * for any) whose "
                                                 "pages' scripts may call the API from a browser (CORS); repeat "
                                                 "for several. None by default.")) -> None:
    """Serve a run: upload page at /, POST /predict, GET /model, GET /health."""
    from ..backends import check_backend
    from ..serve import serve as run_server

    check_backend("backend", backend)
    flag_unknown = on_off("unknown", unknown)
    run_server(run, host=host, port=port, access_log=access_log, backend=backend, threads=threads,
               max_upload_bytes=int(max_upload_mb * 1_000_000), max_files=max_files, unknown=flag_unknown,
               precision=precision, allow_origins=allow_origin)


@app.command()
def report(run: Path = typer.Argument(..., help="Run directory."),
           explain: bool = typer.Option(True, help="Include Grad-CAM heatmaps (needs the weights and grad-cam)."),
           samples: int = typer.Option(12, help="Images in the grid of sample predictions (S3 shows 20).")) -> None:
    """Redraw a run's figures (plots/*.png) and write its self-contained report.html."""
    from ..evaluation.report import write_report
    from ..pipeline.run_folder import not_while_training

    failures: list[str] = []
    with not_while_training(run, "report"):
        path = write_report(run, explain=explain, failures=failures, samples=samples)
    for failure in failures:
        typer.echo(f"figure could not be drawn: {terminal_safe(failure)}", err=True)
    typer.echo(f"report: {path}")


@app.command()
def calibrate(run: Path = typer.Argument(..., help="Run directory."),
              method: Optional[str] = typer.Option(None, "--calibrate", help="temperature or none; default: the "
                                                   "run's own setting.", show_default=False),
              # named as the settings are, so that an error names the flag too ("unknown_detector
              # (--unknown-detector) must be ...")
              unknown_detector: Optional[str] = typer.Option(
                  None, "--unknown-detector", help="msp, energy, mahalanobis, mahalanobis-l2 or msp+mahalanobis-l2; "
                  "default: the run's own.", show_default=False),
              unknown_acceptance: Optional[float] = typer.Option(
                  None, "--unknown-acceptance", help="Share of the validation images the threshold keeps as known; "
                  "default: the run's own.", show_default=False),
              report: bool = typer.Option(True, help="Write report.html again (--no-report: remove the one that "
                                          "showed the run before; `imgclf report RUN` writes it later).")) -> None:
    """Refit a run's temperature and unknown detector on its own images, without training.

    Rewrites model.json, config.yaml, the statistics, metrics.json, predictions.csv and report.html."""
    from ..calibration import bound_reached
    from ..pipeline.recalibrate import recalibrate
    from ..records import RunDir

    settings = {k: v for k, v in (("calibrate", method), ("unknown_detector", unknown_detector),
                                  ("unknown_acceptance", unknown_acceptance)) if v is not None}
    card = recalibrate(run, report=report, **settings)
    u, t = card.unknown, card.temperature
    reads = f", reads {u.features} ({u.feature_dim} values)" if u.feature_dim else ""
    skipped = card.calibration.skipped if card.calibration is not None else ""
    # a fit skipped leaves the temperature at 1: say why rather than print it as if it were fitted
    temperature = f"no temperature fitted ({skipped})" if skipped else f"temperature {t:.3f}"
    if not skipped and card.calibration is not None and card.calibration.method == "temperature" \
            and (bound := bound_reached(t)):
        temperature += f" ({bound})"  # 50.000, the search's upper bound, read as an ordinary fit
    typer.echo(f"{temperature}; unknown: {u.detector}{reads}, threshold {u.threshold:.4g} keeps "
               f"{u.accepted:.1%} of {u.images} validation images")
    # a run never evaluated (a tuning trial) stays so: no metrics.json, predictions.csv or report was written,
    # and the card's headline is its validation score, not a test accuracy
    evaluated = RunDir(run).has("metrics.json")
    if card.metrics is not None and card.metrics.accuracy is not None:
        typer.echo(f"{card.metrics.split or 'test'} accuracy {card.metrics.accuracy:.4f}")
    scored = ", metrics.json, predictions.csv" + (", report.html" if report else "; no report.html (--no-report)") \
        if evaluated else "; the run was never evaluated, so no metrics.json, predictions.csv or report.html"
    typer.echo(f"wrote {Path(run) / 'model.json'}, config.yaml, {u.statistics}{scored}")


@app.command()
def compare(runs: list[Path] = typer.Argument(..., help="Two or more run directories, or folders of runs (every run "
                                             "under such a folder)."),
            out: Path = typer.Option(Path("compare.html"), "--out", "--output", "-o",  # a file, as predict's -o
                                     help="Where to write the HTML comparison.")) -> None:
    """Side-by-side table and overlaid validation curves; runs differing only in seed shown as mean ± std."""
    from ..evaluation.compare import compare_runs
    from ..evaluation.compare_render import page_path, render_table, write_compare_html

    page_path("out", out, said="--out")
    comparison = compare_runs(runs, say_skipped=False)  # the table lists the skipped runs itself
    render_table(comparison, new_console())
    path = write_compare_html(comparison, out)
    typer.echo(f"comparison: {path}")


@app.command()
def runs(folder: Path = typer.Argument(Path("runs"), metavar="FOLDER", help="Folder holding run directories "
                                       "(searched recursively).", show_default=True),
         sort: str = typer.Option("created", help="Column to sort by: name, model, data, epochs, val_accuracy, "
                                  "val_map (multi-label), test_accuracy, test_map (multi-label), macro_f1, "
                                  "train_seconds, created or status "
                                  "(scores best first).",
                                  show_default=True),
         reverse: bool = typer.Option(False, "--reverse", help="Reverse the order."),
         as_json: bool = typer.Option(False, "--json", help="Print a JSON list of objects for scripts.")) -> None:
    """List the runs under a folder: model, data, epochs, accuracies, macro F1, time, when, status.

    Status is completed, running (its training holds the run's lock), pruned (a search trial the pruner
    stopped), interrupted or failed; a run whose files
    cannot be read is listed as failed with the reason. For a multi-label run both accuracies are label-wise
    (1 - Hamming loss): validation's at 0.5, as training measures it, test's at the labels' tuned thresholds."""
    from ..runs import list_runs, render_runs

    rows = list_runs(folder, sort=sort, reverse=reverse)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        render_runs(rows, new_console(), folder)


def write_stdout(text: str) -> None:
    """The predictions as they are where a program reads them (a pipe, a file): click's echo would strip what
    looks like a colour code from a file name there. On a terminal, control characters in names are escaped
    line by line (`io.terminal_safe`) so that a name cannot act on it."""
    import sys

    from ..io import terminal_safe

    if sys.stdout.isatty():
        text = "".join(terminal_safe(line) + "\n" for line in text.splitlines())
    sys.stdout.write(text)
    sys.stdout.flush()
