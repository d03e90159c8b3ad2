"""One training run, start to finish: run directory → data → model → train → weights + card → evaluate
→ report.

Every file of the run directory is written here, through `imgclf.records`; `train/` only trains.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import hardware
from ..config import TrainConfig
from ..data.prepared import PreparedData
from ..errors import ImgclfError, invalid
from ..notices import warn
from ..io import remove_temp_files
from ..locks import exclusive
from ..models import get_model_info, list_models
from ..records import DatasetRecord, MetricsRecord, RunDir, SkippedFile
from ..records.run_dir import LOCK_FILE, WEIGHTS_FILE
from .prepare import data_and_model, input_size
from .resolve import resume_config
from .resume_checks import trained_seconds
from .run_folder import claim_run_dir, check_run_dir, remove_empty_folders, remove_run_files
from .split_warnings import warn_about_splits
from ..file_names import shell_word

if TYPE_CHECKING:
    from ..models.registry import ModelInfo


@dataclass
class Run:
    """A finished run: where it is, what it used, and how it went (everything also on disk)."""

    path: Path
    config: TrainConfig
    metrics: MetricsRecord | None
    best_epoch: int | None  # 1-based epoch whose weights were kept
    epochs_run: int
    train_seconds: float
    stopped_reason: str
    skipped: list[SkippedFile] = field(default_factory=list)
    figure_failures: list[str] = field(default_factory=list)  # "figure: reason" for figures the report lacks

    def __fspath__(self) -> str:  # a Run goes wherever a run folder's path does: imgclf.load(run), evaluate(run)
        return str(self.path)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (json.dumps takes it): the path as text, the config and metrics as their records dump them."""
        return {"path": str(self.path), "config": self.config.model_dump(mode="json"),
                "metrics": None if self.metrics is None else self.metrics.model_dump(mode="json"),
                "best_epoch": self.best_epoch, "epochs_run": self.epochs_run, "train_seconds": self.train_seconds,
                "stopped_reason": self.stopped_reason, "skipped": [s.model_dump(mode="json") for s in self.skipped],
                "figure_failures": list(self.figure_failures)}

    def refresh(self) -> None:
        """Read config.yaml and metrics.json again: `imgclf.calibrate(run)` and `imgclf.evaluate(run)` rewrite
        them and call this, so the Run they were given shows what its files now hold (its config kept the
        acceptance rate calibrate replaced, its metrics the threshold)."""
        run = RunDir(self.path)
        if run.has("config.yaml"):
            self.config = run.read_config()
        if run.has("metrics.json"):
            self.metrics = run.read_metrics()

    def __repr__(self) -> str:
        if self.metrics is None:
            return f"Run({str(self.path)!r})"
        return f"Run({str(self.path)!r}, accuracy={self.metrics.accuracy:.4f})"


def _auto_lr(cfg: TrainConfig, data: PreparedData, model, run_dir: Path) -> TrainConfig:
    """--lr auto: Lightning's LR finder on this run's data and model (weights restored after the sweep); the
    config then holds the number found, with lr_auto recording where it came from."""
    from .lr_find import sweep

    found = sweep(cfg, data, model, run_dir, within_run=True)
    if cfg.progress:
        lowest = "" if found.lowest_loss_lr is None else f"; lowest loss at {found.lowest_loss_lr:.3g}"
        print(f"lr     auto: {found.suggestion:.3g} (LR finder, {len(found.lrs)} steps{lowest}, see lr_find.png)",
              file=sys.stderr, flush=True)
    for caution in found.cautions:
        warn(f"--lr auto: {caution}")
    return cfg.model_copy(update={"lr": found.suggestion, "lr_auto": True})


def _recorded_weights_digest(run: RunDir) -> str | None:
    """The SHA-256 of model.safetensors its model.json recorded (None: no card, an unreadable one, or one written
    before cards kept digests)."""
    if not (run.has("model.json") and run.has(WEIGHTS_FILE)):
        return None
    try:
        return (run.read_card().file_sha256 or {}).get(WEIGHTS_FILE)
    except ImgclfError:
        return None


def size_origin(cfg: TrainConfig, info: Any) -> str:
    """Where a run's input size came from, said beside it when the user gave none: 800 x 600 photos trained at
    32 x 32 without a word of why or how to change it."""
    if cfg.img_size:
        return ""
    if "fast" in info.tags:
        return "the images' median side, at most 64; --img-size to change"
    return f"{info.name}'s default; --img-size to change"


def dataset_record(data: PreparedData) -> DatasetRecord:
    return DatasetRecord.model_validate(data.describe())


def train_run(cfg: TrainConfig, *, overwrite: bool = False, checkpoint: str | None = None, resume: bool = False,
              report: bool = True, evaluate: bool = True, callbacks: list | None = None) -> Run:
    """Run `cfg` into its run directory. `checkpoint` continues from a Lightning checkpoint (resume).

    `evaluate=False` stops after the model card (validation scores only): a search's trials must never see the
    test split, which is scored for the chosen trial alone (`imgclf.tune`); no metrics.json, no report.
    `callbacks`: extra Lightning callbacks for the training (a search's pruner)."""
    from ..train.finetune import transfer_model_args, transfer_warnings
    from ..train.engine_choice import check_engine, check_launch
    from .lr_find import check_auto_lr

    check_auto_lr(cfg, resume)
    if cfg.lr_auto and not resume:  # a config taken from a run whose finder chose lr: here it is a number given
        cfg = cfg.model_copy(update={"lr_auto": False})
    check_engine(cfg.accelerator, cfg.strategy, cfg.precision)
    check_launch(cfg.devices, cfg.num_nodes, accelerator=cfg.accelerator)
    from ..train.trackers import check_tracking_server, require_tracker_packages

    require_tracker_packages(cfg)  # before the run's folder is written, or a run it replaces removed
    if "mlflow" in cfg.logger and cfg.mlflow_uri and hardware.launch_rank() == 0:
        check_tracking_server(cfg.mlflow_uri)  # before the run's folder is written
    info = get_model_info(cfg.model)
    # transfer settings checked before any data is decoded; only a resume from a checkpoint needs no pretrained file
    transfer_args = transfer_model_args(cfg, info, Path(cfg.out) if resume and checkpoint and cfg.out else None)
    if hardware.launch_rank() == 0:
        from ..data.imbalance import imbalance_warnings
        from ..train.budget import schedule_warnings
        from ..unused_settings import unused_settings_warning

        for warning in [*(transfer_warnings(cfg) if transfer_args else []), *imbalance_warnings(cfg),
                        *schedule_warnings(cfg), *unused_settings_warning(cfg)]:
            warn(warning)
    if cfg.sizing == "probe" and "fast" not in info.tags:
        raise invalid("sizing", "probe", "fixed for this model: the probe sizes the width of the fast family "
                      f"({', '.join(n for n in list_models() if 'fast' in get_model_info(n).tags)})",
                      where=f"model {cfg.model}")
    img_size = input_size(cfg, info)  # a resumed run's config.yaml holds the size it trained at
    if cfg.img_size and cfg.data and not resume and hardware.launch_rank() == 0:
        from ..data.native_size import upscale_warning

        warning = upscale_warning(cfg.data, img_size, info.default_img_size)
        if warning:
            warn(warning)
    args = (info, img_size, transfer_args, checkpoint, resume, report, evaluate, callbacks)
    if hardware.launch_rank() != 0:
        # Worker processes of a data-parallel launch re-run this command: only rank 0 checks and writes run files.
        return _train_into(Path(cfg.out or os.environ.get("IMGCLF_RUN_DIR", "")), cfg, *args, replacing=False,
                           new_folder=False)
    run_dir, made = claim_run_dir(cfg, resume)
    # all of it this run's: a folder it made, or one that held nothing (an interrupted start takes all back there:
    # an empty --out kept the trackers' logs/, which refused the same command)
    new_folder = made is not None or not any(run_dir.iterdir())
    os.environ["IMGCLF_RUN_DIR"] = str(run_dir)  # inherited by the worker processes Lightning launches
    try:
        argument, hint = ("resume", "Wait for that run to end, then resume it") if resume else \
            ("out", "Wait for that run to end, or pass another --out")
        with exclusive(run_dir, LOCK_FILE, argument, "a run folder no other process is using",
                       "in use by another imgclf process (a training, or an evaluate, calibrate or report of it)",
                       hint):
            replacing = check_run_dir(run_dir, overwrite, resume)
            if resume:  # half-written files of the interrupted process are never picked up (none is being written)
                remove_temp_files(run_dir)
            return _train_into(run_dir, cfg, *args, replacing=replacing, new_folder=new_folder)
    except BaseException:
        if made is not None:
            if not (run_dir / "config.yaml").exists():  # stopped before the run began: what its LR sweep wrote goes
                for name in ("lr_find.json", "lr_find.png"):
                    (run_dir / name).unlink(missing_ok=True)
            remove_empty_folders(run_dir, made)
        raise


def _take_back(run: RunDir, new_folder: bool, everything: bool = False) -> None:
    """What a new run wrote before its first epoch, so that the same --out takes the corrected command: config.yaml
    and dataset.json; with `everything`, the run's other files too (the sweep's, the probe's), and in a folder this
    run made whatever else the loggers made (the folder itself goes once the lock is released)."""
    for name in ("config.yaml", "dataset.json"):
        run.file(name).unlink(missing_ok=True)
    if not everything:
        return
    remove_run_files(run.path)
    if new_folder:
        for path in run.path.iterdir():
            if path.name != LOCK_FILE:
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def _train_into(run_dir: Path, cfg: TrainConfig, info: ModelInfo, img_size: int, transfer_args: dict[str, Any],
                checkpoint: str | None, resume: bool, report: bool, evaluate: bool, callbacks: list | None, *,
                replacing: bool, new_folder: bool) -> Run:
    """`train_run` once its folder is claimed (and, on rank 0, locked): data → model → train → card → evaluate →
    report."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from ..train.fit import TrainingDiverged, TrainingInterrupted, non_finite_tensors, stop_signal, train_model
    from ..train.callbacks import save_weights
    from .card import headline, make_card, validation_headline
    from .resume_record import stored_resumes
    from .lr_find import card_info

    is_launch_zero = hardware.launch_rank() == 0
    cfg = cfg.model_copy(update={"out": str(run_dir)})
    run = RunDir(run_dir)
    # a resumed run keeps the split it recorded, whichever release drew it: its epochs never train on what it held out
    recorded = run.read_dataset().split_of_files() if resume and run.has("dataset.json") else None
    data, model, resolved = data_and_model(cfg, info, img_size, transfer_args, recorded)
    record = dataset_record(data)
    if resume and is_launch_zero:
        from .resume_checks import penalty_unrecorded
        from .same_data import check_same_images

        check_same_images(run, record, cfg)
        unrecorded = penalty_unrecorded(run, model)
        if unrecorded:
            warn(unrecorded)
    if resolved.class_weight not in ("none", "balanced"):  # a bad file is refused before anything is written
        from ..data.imbalance import weights_from_file

        weights_from_file(resolved.class_weight, data.classes)
    if replacing:  # the new command's data and model are built, its tracker's store opens: the run it replaces goes
        from ..train.trackers import check_tracking_store

        check_tracking_store(resolved, run_dir)
        remove_run_files(run_dir)
    sizing = None
    if resume:  # a resumed run keeps the model its config.yaml holds (stored as fixed), and the probe's record
        from .sizing_record import save_sizing, stored_sizing, with_resume_changes

        # `--resume RUN --sizing probe` passes the resume's check (the probe's request, as sizing.json maps the
        # stored values back) and probes nothing: config.yaml stays fixed, or `--config RUN/config.yaml` is refused
        resolved = resolved.model_copy(update={"sizing": "fixed"})
        sizing = stored_sizing(run_dir)
        if sizing is not None:
            found = card_info(run_dir) if resolved.lr_auto else None
            sizing = with_resume_changes(sizing, resolved, found.suggestion if found else None)
            if is_launch_zero:  # a later resume that goes back to the probe's values still knows of this one
                save_sizing(run_dir, sizing)
    elif resolved.sizing == "probe":
        from .sizing import size_run
        from .sizing_record import save_sizing

        resolved, model, sizing = size_run(resolved, data)
        if is_launch_zero:
            save_sizing(run_dir, sizing)
    if resolved.lr == "auto":
        resolved = _auto_lr(resolved, data, model, run_dir)
    from ..train.trackers import log_config, log_final, make_loggers

    try:
        # Written once the model is built (a bad model argument left a run that refused the corrected --out), and
        # in this try: a signal between the two files left config.yaml alone, neither resumable nor reusable
        changes: list[Any] = []
        if is_launch_zero:
            if resume and run.has("config.yaml"):  # before config.yaml takes this process's settings
                from .resume_record import record_resume

                # as the resume read it: a relative path in config.yaml names the folder it resolves to
                changes = record_resume(run_dir, resume_config(run_dir), resolved, checkpoint)
            run.write_config(resolved)
            run.write_dataset(record)
        if resolved.progress and is_launch_zero:
            from .announce import announce

            announce(resolved, data, model, run_dir, checkpoint, size_origin(cfg, info), changes)
        if is_launch_zero:  # (it hashes every file: a long window for a Ctrl-C on a large data set)
            warn_about_splits(data, [resolved.data] if isinstance(resolved.data, str) else list(resolved.data),
                              run_dir, resolved)
        try:
            loggers = make_loggers(resolved, run_dir, resume)
            log_config(loggers, resolved, resume)
        except BaseException:  # a tracker's store that cannot be opened: no stub left to refuse the corrected --out
            if is_launch_zero and not resume and not run.has("history.csv"):
                _take_back(run, new_folder)
            raise
        result = train_model(resolved, data, model, run_dir, checkpoint, loggers, callbacks,
                             budget_spent=sizing.counted_seconds if sizing else 0.0,
                             trained_before=trained_seconds(run) if checkpoint is not None else 0.0)
    except (ImgclfError, MisconfigurationException) as exc:
        # A setting refused before any epoch ran (normalize=backbone without a backbone, a frozen backbone with
        # plain ddp), or Lightning's own refusal of the machine: take back the files written above, so the
        # corrected command may use the same --out. (Not a Ctrl-C: a run interrupted is resumed; not a search's
        # pruning, whose trial stays a run.)
        if is_launch_zero and not resume and not run.has("history.csv") and not getattr(exc, "keeps_folder", 0):
            _take_back(run, new_folder, everything=isinstance(exc, TrainingDiverged))  # (and the sweep's, probe's)
            if isinstance(exc, TrainingDiverged):
                raise TrainingDiverged(f"{exc} Nothing of the run was kept: the corrected command may use the same "
                                       "--out.") from None
        raise
    except TrainingInterrupted:
        raise
    except KeyboardInterrupt as exc:
        # before Lightning's fit took Ctrl-C over (the trackers' set-up, the data's mean and std, the model's and
        # the trainer's set-up, stored features): it ended with no word, and the stub left refused the same --out
        if is_launch_zero and not resume and not run.has("history.csv"):
            # all but the lock only in a folder this run made: a folder given with --overwrite may hold the user's
            # own logs/ or export/, which a finished run keeps
            _take_back(run, new_folder, everything=new_folder)
            how = "nothing was kept: the same command may use the same --out"
        else:
            how = (f"continue with: imgclf train --resume {shell_word(run_dir)} (Python: "
                   f"imgclf.fit(resume={str(run_dir)!r}))")
        signal_name, exit_code = stop_signal(exc)  # SIGTERM (a scheduler's) was said as Ctrl-C, with 130
        state = f"training interrupted ({signal_name}) before it started"
        raise TrainingInterrupted(f"{state}; {how}", state=state, exit_code=exit_code) from None
    skipped = [SkippedFile.model_validate(s) for s in data.skipped]
    if not result.is_global_zero:
        return Run(run_dir, resolved, None, result.best_epoch, len(result.history), result.seconds,
                   result.stopped_reason, skipped)
    broken = non_finite_tensors(result.model)
    if broken:
        highest = max((r.loss for r in result.history if math.isfinite(r.loss)), default=float("nan"))
        lr = f"lr={resolved.lr:g} now, e.g. --lr {resolved.lr / 10:g}" if isinstance(resolved.lr, float) else "--lr"
        raise TrainingDiverged(
            f"training diverged: the weights kept (epoch {result.best_epoch}) hold NaN or infinite values in "
            f"{', '.join(broken[:3])}{' ...' if len(broken) > 3 else ''} (the training loss reached {highest:.3g}), "
            f"so they cannot predict. Try a lower learning rate ({lr}); {run_dir} keeps its history.csv for a "
            "look: train again into it with --overwrite")

    from ..train.interrupts import finishing

    # the weights, the card, the calibration, the scores and the report: a signal here says how to finish them
    with finishing(run_dir, len(result.history), result.stopped_reason, mark=True):
        # a resume that trained no epoch (finishing the card) may write the very weights its evaluations scored:
        # the digest the card recorded, against the one write_card records below (no file hashed twice)
        weights_before = _recorded_weights_digest(run) if resume else None
        card = make_card(resolved, data, result)
        card.training.resumes = (stored_resumes(run_dir) or None) if resume else None
        # the sweep that chose this run's lr; an lr-find run into the folder later chose nothing of it
        card.lr_find = card_info(run_dir) if resolved.lr_auto else None
        card.sizing = sizing
        from .recipe_changes import changes_from_recipe
        from .sizing import SIZED_SETTINGS

        card.training.recipe_changes = changes_from_recipe(resolved, SIZED_SETTINGS if sizing else ())
        from ..prediction_precision import fitting_precision
        from .trust import drop_unused_statistics, fit_trust_after_training, free_stats_name

        # predict's default (auto) then runs as the fits did: fp32 where they ran in fp32
        card.fitted_precision = fitting_precision(resolved.precision, next(result.model.parameters()).device)
        if data.task == "multilabel":
            from .multilabel import fit_thresholds

            # no temperature or unknown detector (softmax ideas); the labels' decision thresholds instead
            card.task = "multilabel"
            card.thresholds = fit_thresholds(data, result.model, card, card.fitted_precision)
        else:
            # before the card is written: evaluation, serving and export then all apply the temperature and threshold
            card.calibration, card.unknown = fit_trust_after_training(resolved, data, result.model, card, run_dir,
                                                                      precision=card.fitted_precision,
                                                                      stats_name=free_stats_name(run))
        if not evaluate:
            card.metrics = validation_headline(result.history, card.training, card.task)
        # last before the card: a load during a resume's fits read new weights beside the old card ("damaged")
        save_weights(result.model, run.file("model.safetensors"))
        run.write_card(card)
        drop_unused_statistics(run_dir, card)
        if not evaluate:
            return Run(run_dir, resolved, None, result.best_epoch, len(result.history), result.seconds,
                       result.stopped_reason, skipped)

        from ..evaluation.run_eval import evaluate_run, warn_of_earlier_evaluations

        if resume and (weights_before is None or (card.file_sha256 or {}).get(WEIGHTS_FILE) != weights_before):
            warn_of_earlier_evaluations(run_dir, "with the weights before this resume")
        # TTA too, where training made views to average over (the report shows both); evaluation streams as training
        metrics = evaluate_run(run_dir, cache_dir=cfg.cache_dir, workers=cfg.num_workers, tta="auto",
                               budget_bytes=cfg.cache_budget_bytes, progress=cfg.progress)
        card.metrics = headline(metrics, result.history, card.training)
        run.write_card(card)
        from ..evaluation.seen import validation_scores_note
        from ..evaluation.stale_report import write_or_drop_report

        # no test split: said as `imgclf evaluate` says it, where the scores overstate (not for a protocol whose
        # val split is its test split: a study keeping the last epoch)
        note, overstates = validation_scores_note(resolved, metrics.task) if metrics.split == "val" else ("", False)
        if overstates:
            warn(note)
        figure_failures: list[str] = []
        write_or_drop_report(run_dir, report, figure_failures)  # an earlier process's report showed the run before
        log_final(loggers, run_dir, metrics, result.global_step)  # after the report: its files go as artefacts
        return Run(run_dir, resolved, metrics, result.best_epoch, len(result.history), result.seconds,
                   result.stopped_reason, skipped, figure_failures)
