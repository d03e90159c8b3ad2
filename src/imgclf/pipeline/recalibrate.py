"""Fit a finished run's temperature and unknown detector again, without training: another detector or acceptance
rate, `--calibrate none`, or a run trained before a change to that step (the detector's features).

The run's own images are prepared as training prepared them (its config.yaml) and must still be the ones its
dataset.json lists for train and val: statistics and thresholds fitted on other images would describe another
run. Writes in an order that an interruption cannot leave inconsistent where it matters: an evaluated run's split
checked on disk and its report removed, the new statistics under the file name the card does not use, then
config.yaml, then the card, then the old statistics are removed. A run
that was evaluated (metrics.json) is evaluated again as training evaluates, and its report redrawn: the plain
predicted classes do not change (dividing the logits by one temperature keeps their order), but the scores that
read probabilities, the unknown flags and the test-time-view average can. A run never evaluated (a tuning
trial) stays so.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import TrainConfig, make_config
from ..errors import Described, bad_path, check_switch, invalid
from ..io import writable_folder
from ..ood import STATS_FILE
from ..records import DatasetRecord, ModelCard, RunDir
from ..file_names import shell_word

SETTINGS = ("calibrate", "unknown_detector", "unknown_acceptance")


def refitted(run: RunDir, out: Path, stats_name: str = STATS_FILE, features: str | None = None,
             **settings: object) -> tuple[ModelCard, TrainConfig]:
    """The run's card with its calibration and unknown blocks fitted again by the current `fit_trust` (with
    `settings` over the run's config; `features` as fit_trust takes it) on the run's own train and val images, the
    statistics written to out/`stats_name`; and the config used. Nothing of the run itself is written."""
    from ..inference import Classifier
    from ..prediction_precision import fitting_precision
    from ..models import get_model_info
    from .prepare import run_images
    from .same_data import check_data_in_place
    from .trust import fit_trust

    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise invalid("setting", unknown[0], SETTINGS)
    card = run.read_card()
    if card.task == "multilabel":
        raise bad_path("run", run.path, "a single-label run", "a multi-label run: its labels have decision "
                       "thresholds, not a temperature or an unknown detector")
    cfg = make_config(**{**run.read_config().model_dump(), **settings})
    check_data_in_place(run, cfg, "run", "calibrate")
    record = run.read_dataset()
    recorded = record.split_of_files()
    # the files it read: its splits', and those it skipped as unreadable (skipped again, not "added since")
    read = set(recorded) | {os.path.abspath(s.path) for s in record.skipped}
    data = run_images(cfg, get_model_info(cfg.model), card.img_size, recorded, only=read)
    _check_same_images(run, data)
    model = Classifier.load(run.path, plain=True).model  # the old statistics are not needed, nor trusted
    card.fitted_precision = fitting_precision(cfg.precision, next(model.parameters()).device)
    card.calibration, card.unknown = fit_trust(cfg, data, model, card, out, features=features, stats_name=stats_name,
                                               precision=card.fitted_precision)
    return card, cfg


def recalibrate(run_dir: str | os.PathLike, *, report: bool = True, **settings: object) -> ModelCard:
    """As `_recalibrate`, while no training writes into the run (`not_while_training`)."""
    from .run_folder import not_while_training

    settings = {name: value for name, value in settings.items() if value is not None}  # None: not given, as in fit
    writable_folder("run", run_dir)  # read-only: one line, not an internal error on the detector's temp file
    with not_while_training(run_dir, "calibrate"):
        return _recalibrate(run_dir, report=report, **settings)


def _recalibrate(run_dir: str | os.PathLike, *, report: bool = True, **settings: object) -> ModelCard:
    """Refit the run's calibration and unknown detector with `settings` (any of `SETTINGS`; the run's own where
    not given) on its own train and val images; rewrites the detector's statistics, config.yaml, model.json and,
    for an evaluated run, metrics.json, predictions.csv and (`report`) report.html, else removes the report that
    showed the run before. Returns the new card."""
    from ..evaluation.run_eval import check_own_split, evaluate_run, warn_of_earlier_evaluations
    from ..evaluation.stale_report import drop_stale_report, write_or_drop_report
    from .card import with_evaluation
    from .trust import drop_unused_statistics, free_stats_name

    report = check_switch("report", report)
    run = RunDir(run_dir)
    run.read_card()  # a run without a readable card is refused before anything is fitted
    new = free_stats_name(run)
    evaluated = run.has("metrics.json")  # a run never evaluated (a tuning trial) stays so
    if evaluated:
        # before the refit, which takes the time and writes the new statistics: an evaluation refused after the
        # card was rewritten (test images gone) left the new card beside the old metrics.json, predictions.csv
        # and report, which `imgclf report` then mixed
        check_own_split(run, own_only="calibrate reads the run's own images again (it refits on the validation "
                                      "split and scores the test split)")
    card, cfg = refitted(run, run.path, new, **settings)
    if evaluated:
        drop_stale_report(run.path)  # an interruption from here on leaves no page of the earlier fit
    run.write_config(cfg)
    run.write_card(card)
    drop_unused_statistics(run.path, card)
    warn_of_earlier_evaluations(run.path, "with the earlier temperature and unknown threshold")
    _warn_of_earlier_exports(run.path)
    if not evaluated:
        return card
    # as training evaluates: with test-time views too where training made them
    metrics = evaluate_run(run.path, cache_dir=cfg.cache_dir, workers=cfg.num_workers, tta="auto",
                           budget_bytes=cfg.cache_budget_bytes, progress=cfg.progress)
    run.write_card(with_evaluation(run, card, metrics))
    if cfg.fold is not None:
        from .folds_summary import refresh_summary

        refresh_summary(run.path)  # the cross-validation's folds.json held this fold's earlier scores
    write_or_drop_report(run.path, report)  # the earlier page showed the old temperature, threshold and scores
    return card


def _check_same_images(run: RunDir, data) -> None:
    """Train and val as prepared now must be the files (and labels) the run trained and selected on."""
    record = run.read_dataset()
    # as dataset.json records them (under the data folder's real path): a run trained through a symlinked folder
    # was refused, every file "differing" from its own recorded path
    current = DatasetRecord.model_validate(data.describe())
    for split in ("train", "val"):
        files, labels = record.split_paths(split)
        now, now_labels = current.split_paths(split)
        if sorted(zip(files, labels)) != sorted(zip(now, now_labels)):
            changed = len(set(files) ^ set(now))
            raise bad_path("run", run.path, "a run whose data folder still holds the images it trained on",
                           Described(f"its {split} split is not the one dataset.json lists ({len(files)} images "
                                     f"then, {len(now)} now, {changed} files differ)"),
                           hint="Retrain the run on the data as it is now")


def _warn_of_earlier_exports(run_dir: Path) -> None:
    """An export holds the temperature and threshold it was made with: imgclf's own backends refuse it from now
    on, but code that runs it without imgclf (as its page shows) answered with the old ones, and was not told."""
    from ..export import FORMATS
    from ..notices import warn

    for fmt, name in FORMATS.items():
        if (run_dir / "export" / name).exists():
            refused = " (imgclf's own onnx backend refuses it)" if fmt == "onnx" else ""
            warn(f"export/{name} holds the earlier temperature and unknown threshold: code that runs it without "
                 f"imgclf answers with them{refused}; export again: imgclf export {shell_word(run_dir)} --format {fmt}")
