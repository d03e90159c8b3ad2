"""The pipeline layer: the sequence every entry point runs (CLI, Python API, studies, demo, benchmarks).

    resolve config (defaults → recipe → YAML file → explicit values) → run directory → data → model
    → train (`imgclf.train`) → weights + model card → evaluate (`imgclf.evaluation`) → report

`train/` only trains, `evaluation/` only reads run files, `models/` knows neither; this package joins them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..config_checks import SPLITS
from ..errors import check_switch, invalid
from ..records import MetricsRecord
from ..records.run_dir import run_path
from .resolve import refuse_unknown_keywords, resolve_config, resume_config
from .resume import resume_run
from .run import Run, train_run

__all__ = ["Run", "evaluate", "fit", "resolve_config", "resume_config", "train_run"]


FIT_KEYWORDS = ("overwrite", "resume", "report")


def fit(config: TrainConfig | Mapping[str, Any] | None = None, *, recipe: str | None = None,
        config_file: str | os.PathLike | None = None, overwrite: bool = False,
        resume: str | os.PathLike | None = None, report: bool = True, **values: Any) -> Run:
    """Train and write a complete run directory.

    Settings layer as `resolve_config` says: TrainConfig's defaults, the recipe's, the YAML file's, then
    `config` and keyword arguments (`imgclf.fit(data="data/", recipe="fast-fmnist", time_limit="10m")`).
    `resume="runs/x"` continues an interrupted run from its last checkpoint with its stored config (keyword
    arguments override it, e.g. more epochs). `report=False` skips report.html (grids of many small runs;
    a resumed run's earlier report is removed).
    With `folds=K` (and no `fold`) it trains K cross-validation folds and returns a `pipeline.folds.Folds`.
    """
    overwrite, report = check_switch("overwrite", overwrite), check_switch("report", report)
    if resume is not None:
        if config is not None or recipe is not None or config_file is not None:
            given = "config" if config is not None else "recipe" if recipe is not None else "config_file"
            raise invalid(given, config if given == "config" else recipe if given == "recipe" else config_file,
                          "left unset with resume: a resumed run keeps its stored config.yaml", also={"resume": resume})
        if overwrite:  # the resumed run continues its own folder: nothing in it is replaced
            raise invalid("overwrite", overwrite, "left unset with resume: a resumed run continues its own folder",
                          also={"resume": resume}, hint="Start a new run with --out NEW to train afresh")
        refuse_unknown_keywords(values, FIT_KEYWORDS)
        run_path(resume, "resume")
        return resume_run(resume, report=report, **values)
    cfg = resolve_config(config, recipe=recipe, config_file=config_file, keywords=FIT_KEYWORDS, **values)
    if cfg.folds and cfg.fold is None:  # every fold: a `Folds` (OUT/fold-i runs and folds.json), not one Run
        from .folds import fit_folds

        return fit_folds(cfg, overwrite=overwrite, report=report, log=_stderr if cfg.progress else None)
    return train_run(cfg, overwrite=overwrite, report=report)


def _stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def evaluate(run_dir: str | os.PathLike, data: str | os.PathLike | None = None, split: str = "test",
             tta: bool | str | None = None, precision: str = "auto", progress: bool = True,
             backend: str = "torch") -> MetricsRecord:
    """Evaluate a run on its test split (or another folder); writes predictions.csv and metrics.json. Warns (the
    `imgclf` logger) when the scores overstate: validation images scored for want of a test split, or images the
    run trained on. tta None: "auto" for the run's own test split, as training evaluated it (its TTA scores were
    dropped from metrics.json and the report, with a warning), else off. progress=False: no progress lines
    (stderr) for a long cache build or prediction. backend onnx: the run's export/model.onnx answers, and its
    scores go to evaluations/onnx-* (`results_dir`), never over the run's own."""
    from ..evaluation.run_eval import evaluate_run
    from ..evaluation.seen import seen_warning, stored_validation_scores_note
    from ..notices import warn
    from ..records import RunDir
    from .run_folder import not_while_training

    progress = check_switch("progress", progress)
    if not isinstance(split, str) or split not in SPLITS:  # split=None reached a path join (TypeError)
        raise invalid("split", split, sorted(SPLITS))
    if isinstance(run_dir, (str, os.PathLike)):
        from ..records.run_dir import run_path

        run_dir = run_path(run_dir)  # "~/runs/a": the read-only check and the lock below read the folder itself
    from ..backends import check_backend

    check_backend("backend", backend)
    # what the report reads: metrics.json in the run directory itself (the torch network's own scores)
    own = data is None and split == "test" and backend == "torch"
    if tta is None:
        tta = "auto" if own else False
    # a read-only run (a colleague's, a read-only mount) is refused before the work (a `data` that is no path is
    # the evaluation's own error to give)
    if isinstance(run_dir, (str, os.PathLike)) and Path(run_dir).is_dir() and \
            (data is None or isinstance(data, (str, os.PathLike))):
        from ..evaluation.run_eval import results_dir
        from ..io import writable_folder

        writable_folder("run", results_dir(run_dir, data, split, backend))
    # only the run's own test split rewrites its files (metrics.json, model.json, the report); scores of other
    # images go to evaluations/, beside a training or another evaluation
    with not_while_training(run_dir, "evaluate") if own else contextlib.nullcontext():
        before = _tta_scores(RunDir(run_dir)) if own and not tta else None
        metrics = evaluate_run(run_dir, data=data, split=split, tta=tta, precision=precision, progress=progress,
                               backend=backend, **RunDir(run_dir).decode_cache_settings())
        if own and RunDir(run_dir).has("model.json"):
            _card_follows(RunDir(run_dir), metrics)
        if own and RunDir(run_dir).has("report.html"):
            from ..evaluation.report import write_report

            write_report(run_dir)  # it showed the scores just replaced (a TTA block this evaluation did not compute)
    if before is not None:
        warn(f"the earlier evaluation's test-time augmentation scores (accuracy {before.accuracy:.4f}) are not in "
             "the new metrics.json, which this evaluation without --tta wrote: evaluate with --tta (Python: tta=True) "
             "to have them again")
    if data is None and split == "test" and metrics.split == "val":
        warn(stored_validation_scores_note(RunDir(run_dir), metrics.task))
    if metrics.seen is not None:
        warn(seen_warning(metrics.seen, metrics.count))
    if data is None:
        for leak in _leaks_into(RunDir(run_dir), metrics.split):
            warn(leak)
    return metrics


def _card_follows(run: Any, metrics: MetricsRecord) -> None:
    """model.json's headline scores, which GET /model and `imgclf runs` show, made those of the evaluation that
    just replaced metrics.json (they kept the earlier evaluation's loss and macro F1)."""
    from .card import with_evaluation

    run.write_card(with_evaluation(run, run.read_card(), metrics))


def _tta_scores(run: Any) -> Any:
    """The TTA block of a run's own metrics.json, if it has one (None for a run not yet evaluated)."""
    from ..errors import ImgclfError

    try:
        return run.read_metrics().tta if run.has("metrics.json") else None
    except ImgclfError:
        return None


def _leaks_into(run: Any, split: str) -> list[str]:
    """Training's leak warnings for `split`, the run's own as evaluated, as the report repeats them (evaluate was
    silent, while --data on the same folder warned)."""
    from ..data.groups import recorded_leak_warnings
    from ..errors import ImgclfError

    try:
        return recorded_leak_warnings(run.read_dataset(), run.path, split)
    except ImgclfError:  # no dataset.json to read them from
        return []

