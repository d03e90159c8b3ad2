"""Commands on image folders: audit, inspect, subset, data fetch and study imbalance (thin layers over
imgclf.audit, imgclf.inspect, imgclf.data and imgclf.study)."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..io import writable_folder
from .base import app, data_app, generated_command, new_console, shown, split_list, study_app
from .training import train_options


@app.command("audit")
def audit_cmd(data: Path = typer.Argument(..., help="Image folder: class folders, or train/ (val/, test/) of class "
                                                    "folders."),
              run: Optional[Path] = typer.Option(None, "--run", help="Run directory whose model's penultimate "
                                                 "features judge labels and outliers (default: the images' "
                                                 "pixels), and whose own split (its dataset.json) leakage is "
                                                 "judged on."),
              out: Optional[Path] = typer.Option(None, "--out", help="Folder for audit.json and audit.html "
                                                 "(default: audits/<folder name>, or <folder name>-2 ... where "
                                                 "that holds another folder's audit)."),
              img_size: Optional[int] = typer.Option(None, "--img-size", help="Decode size without --run (default: "
                                                     "the images' median short side, 16 to 64)."),
              folds: int = typer.Option(5, "--folds", help="k of the out-of-fold probabilities (>= 2)."),
              seed: int = typer.Option(0, "--seed", help="Seed of the folds and projections (>= 0)."),
              as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON.")) -> None:
    """Audit an image folder: duplicates, leaks between splits, likely label errors, outliers.

    Exact and near-duplicates within a class, across classes and across train/val/test; likely label errors,
    outliers and near-empty images. Writes audit.json and a self-contained audit.html."""
    from ..audit import audit

    result = audit(data, run=run, out=out, img_size=img_size, folds=folds, seed=seed)
    counts = result.record.counts
    if as_json:
        features = result.record.features
        typer.echo(json.dumps({"counts": counts.model_dump(), "leakage": result.record.leakage,
                               "label_errors_checked": features.folds > 0, "note": features.note,
                               "splits": result.record.settings.splits,
                               "audit": str(result.json_path), "page": str(result.html_path),
                               "replaced": result.replaced}, indent=2))
        return
    from ..audit.summary import render_counts

    render_counts(result.record, new_console())
    console = new_console()
    replaced = f" (replaces the audit of {result.replaced} there)" if result.replaced else ""
    console.print(f"audit: {shown(result.json_path)}{replaced}")
    console.print(f"page: {shown(result.html_path)}")


@app.command("inspect")
def inspect_cmd(data: list[Path] = typer.Argument(..., help="Image folder, several merged as `train` merges them, "
                                                            "or a multi-label index file (CSV / JSON lines: path "
                                                            "and labels per image)."),
                as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
                plots: Optional[Path] = typer.Option(None, help="Write class-distribution and sample figures here.")) -> None:
    """What is in an image folder: classes, counts per split, sizes, modes, unreadable files, mu and rho."""
    from ..inspect import inspect_folder, render_inspection

    summary = inspect_folder(data[0] if len(data) == 1 else data, plots_dir=plots)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        render_inspection(summary, new_console())


@app.command()
def subset(data: Path = typer.Argument(..., help="Image folder: class-per-folder, or train/ with optional val/ and test/."),
           out: Path = typer.Option(..., "--out", help="New folder for the subset (links + subset.json)."),
           per_class: int = typer.Option(..., "--per-class", min=1, help="Base set: images per class before imbalancing."),
           rho: float = typer.Option(..., help="Imbalance ratio: majority class size / minority class size."),
           mu: Optional[float] = typer.Option(None, help="Share of classes that are minority (default: half of them, rounded down)."),
           minority: Optional[str] = typer.Option(None, help="Comma-separated minority classes (default: the smallest classes)."),
           seed: int = typer.Option(0, min=0, help="Seed of the per-class draws."),
           mode: str = typer.Option("symlink", help="symlink, hardlink or list (subset.csv only).")) -> None:
    """Make a step-imbalanced copy of a data set (S4): links or a file list, never pixel copies."""
    from ..data.subset import build_subset, read_manifest, subset_notes

    names = split_list("minority", minority, str) if minority else None
    there = read_manifest(out) is not None  # the same subset already there is kept, as build_subset checks
    m = build_subset(data, out, per_class, rho, mu, seed, names, mode)
    typer.echo(f"{'unchanged' if there else 'wrote'} {out} ({m['mode']}): {m['total']} images, rho {m['rho_actual']:g}, mu {m['mu']:g}; "
               f"{m['minority_count']} per minority class ({', '.join(m['minority'])}), "
               f"{m['majority_count']} per majority class")
    if m.get("unreadable"):
        first = m["unreadable"][0]
        typer.echo(f"note: {len(m['unreadable'])} unreadable file(s) passed over in the draw (listed in subset.json), "
                   f"the first {first['path']}: {first['reason']}")
    if m["mode"] == "list":
        typer.echo("note: subset.csv lists the files for other tools; imgclf trains on a subset made with --mode "
                   "symlink or --mode hardlink")
    for level, text in subset_notes(m):
        typer.echo(f"{level}: {text}", err=level == "warning")


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
                                             "i.e. ~/.cache/imgclf/downloads)."),
               per_class: Optional[int] = typer.Option(
                   None, "--per-class", help="fashion-mnist: write only this many images per class and split, "
                                             "drawn at random (default: all 70,000)."),
               seed: Optional[int] = typer.Option(
                   None, "--seed", help="fashion-mnist: the seed of the --per-class draw (default 0).")) -> None:
    """Write a built-in data set as a class-per-folder PNG tree.

    digits: scikit-learn's copy, offline.

    fashion-mnist: --source, else /usr/share/datasets/fashion-mnist (Debian: dataset-fashion-mnist), else downloaded.

    cifar10: the binary version (never the pickled python one) from --source, else downloaded.

    fer2013: the CSV (emotion, pixels, Usage) from --source, or downloaded from --url.

    Published MD5s (fashion-mnist, cifar10) are checked before a download is kept.
    """
    import logging

    from ..data.sources import fetch

    # Download progress and skipped-row counts are logged by the library; show them on stderr here.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("imgclf.data.sources")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # its warnings once, here, not again as the `imgclf` logger's
    from ..errors import Interrupted
    from ..train.interrupts import Terminated, sigterm_interrupts

    try:
        # SIGTERM (timeout, kill, a batch scheduler) as Ctrl-C: the image being written loses its temp file, which
        # the default action left behind, hidden, beside the finished images
        with sigterm_interrupts():
            path = fetch(name, out, source=source, url=url, md5=md5, cache_dir=cache_dir, per_class=per_class,
                         seed=seed)
    except KeyboardInterrupt as exc:
        signal_name, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("Ctrl-C", 130)
        raise Interrupted(f"fetch interrupted ({signal_name}); the images written are kept, and running the same "
                          "command again completes it", exit_code=code) from None
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    typer.echo(f"wrote {path}")


def _study_options() -> list[inspect.Parameter]:
    from ..study.configurations import CONTROLLED

    def opt(name: str, ann: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default)

    own = [
        inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str,
                          default=typer.Argument(..., help="Image folder to draw the imbalanced subsets from.")),
        opt("out", Path, typer.Option(..., "--out", help="Study folder: data/, runs/, study.json, study.html.")),
        opt("per_class", int, typer.Option(..., "--per-class", min=1, help="Base set: images per class (S4: 32).")),
        opt("rhos", str, typer.Option("1,3,7,15", help="Imbalance ratios.")),
        opt("mu", Optional[float], typer.Option(None, help="Share of minority classes (default: half of them, rounded down).")),
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
    skip = {"out", "config", "overwrite"}  # the study's own --out and --config; a study never overwrites
    # What the study decides stays an option, hidden: given, it reaches check_overrides' message (choose it with
    # --configs ...), where click said "No such option: --class-weight (Possible options: --weights)"
    decided = set(CONTROLLED) - {"model"}
    train = [_hidden(p) if p.name in decided else _study_default(p) for p in train_options()[1:]
             if p.name not in skip]
    config = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                               default=typer.Option(None, "--config", help="YAML file of training settings."))
    return own + train + [config]


def _hidden(param: inspect.Parameter) -> inspect.Parameter:
    """`param` left out of --help, its value still passed on."""
    import copy

    option = copy.copy(param.default)
    option.hidden = True
    return param.replace(default=option)


def _study_default(param: inspect.Parameter) -> inspect.Parameter:
    """The study's own default where it is not training's: S4's network (`imgclf train` defaults to simple_cnn)."""
    if param.name != "model":
        return param
    from ..study import DEFAULT_MODEL

    option = param.default
    own = f" \\[default: {DEFAULT_MODEL}, S4's network, at its own input size]"
    help_text = option.help.split(" \\[default:")[0] + own
    return param.replace(default=typer.Option(None, *option.param_decls, help=help_text, show_default=False))


def study_imbalance(data: str, **options: Any) -> None:
    """Run S4's imbalance study: ratios x configurations x seeds, then study.json + study.html."""
    from rich.table import Table

    from ..study.imbalance import run_imbalance_study

    own = {k: options.pop(k) for k in ("out", "per_class", "rhos", "mu", "configs", "seeds", "minority", "subset_seed",
                                       "run_reports", "protocol", "config")}
    writable_folder("out", own["out"])
    study = run_imbalance_study(
        data, own["out"], per_class=own["per_class"], rhos=split_list("rhos", own["rhos"], float), mu=own["mu"],
        configs=split_list("configs", own["configs"], str), seeds=split_list("seeds", own["seeds"], int),
        model=options.pop("model", None), minority=split_list("minority", own["minority"], str)
        if own["minority"] else None, subset_seed=own["subset_seed"],
        overrides={k: v for k, v in options.items() if v is not None}, run_reports=own["run_reports"],
        protocol=own["protocol"], log=typer.echo, config_file=own["config"])
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
    new_console().print(table)
    typer.echo(f"report: {Path(own['out']) / 'study.html'}")


generated_command(study_app, "imbalance", study_imbalance, _study_options)
