"""Fit a finished run's temperature and unknown detector again, without training: another detector or acceptance
rate, `--calibrate none`, or a run trained before a change to that step (the detector's features).

The run's own images are prepared as training prepared them (its config.yaml) and must still be the ones its
dataset.json lists for train and val: statistics and thresholds fitted on other images would describe another
run. The new statistics go to the file name the card does not use yet, the card follows, the old file goes last,
so an interrupted refit leaves a card whose statistics match it. metrics.json, predictions.csv and the report are
then written again from the refitted card (the predicted classes do not change: a temperature keeps their order).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import make_config
from ..errors import Described, bad_path, invalid
from ..ood import STATS_FILES
from ..records import ModelCard, RunDir

SETTINGS = ("calibrate", "unknown_detector", "unknown_acceptance")


def recalibrate(run_dir: str | os.PathLike, *, report: bool = True, **settings: object) -> ModelCard:
    """Refit the run's calibration and unknown detector with `settings` (any of `SETTINGS`; the run's own where
    not given) on its own train and val images; rewrites model.json, config.yaml, the detector's statistics,
    metrics.json, predictions.csv and (`report`) report.html. Returns the new card."""
    from ..evaluation.run_eval import evaluate_run
    from ..inference import Classifier
    from ..models import get_model_info
    from .card import headline
    from .prepare import run_images
    from .trust import fit_trust

    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise invalid("setting", unknown[0], SETTINGS)
    run = RunDir(run_dir)
    card = run.read_card()
    if card.task == "multilabel":
        raise bad_path("run", run_dir, "a single-label run", "a multi-label run: its labels have decision "
                       "thresholds, not a temperature or an unknown detector")
    cfg = make_config(**{**run.read_config().model_dump(), **settings})
    data = run_images(cfg, get_model_info(cfg.model), card.img_size)
    _check_same_images(run, data)
    old = card.unknown.statistics if card.unknown is not None else None
    new = STATS_FILES[1] if old == STATS_FILES[0] else STATS_FILES[0]
    model = Classifier.load(run.path).model
    card.calibration, card.unknown = fit_trust(cfg, data, model, card, run.path, stats_name=new)
    run.write_card(card)
    if old and old != new:
        run.file(old).unlink(missing_ok=True)
    run.write_config(cfg)
    # as training evaluates: with test-time views too where training made them
    metrics = evaluate_run(run.path, cache_dir=cfg.cache_dir, workers=cfg.num_workers, tta="auto",
                           budget_bytes=cfg.cache_budget_bytes, progress=cfg.progress)
    card.metrics = headline(metrics, run.read_history(), card.training.best_epoch if card.training else None)
    run.write_card(card)
    if report:
        from ..evaluation.report import write_report

        write_report(run.path)
    return card


def _check_same_images(run: RunDir, data) -> None:
    """Train and val as prepared now must be the files (and labels) the run trained and selected on."""
    record = run.read_dataset()
    for split in ("train", "val"):
        files, labels = record.split_paths(split)
        now = [str(Path(p)) for p in data.paths(split)]
        if sorted(zip(files, labels)) != sorted(zip(now, data.splits[split].labels.tolist())):
            changed = len(set(files) ^ set(now))
            raise bad_path("run", run.path, "a run whose data folder still holds the images it trained on",
                           Described(f"its {split} split is not the one dataset.json lists ({len(files)} images "
                                     f"then, {len(now)} now, {changed} files differ)"),
                           hint="Retrain the run on the data as it is now")
