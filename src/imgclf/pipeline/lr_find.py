"""The learning-rate finder as a pipeline step: `imgclf lr-find` (its own out folder) and `train --lr auto` (the
run directory), both through Lightning's `Tuner.lr_find` (`imgclf.train.lr_sweep.find_lr`).

Either way the folder gets lr_find.json (the sweep and its suggestion) and lr_find.png (the curve).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import Described, bad_path, check_switch, invalid
from ..records import LR_FIND_FILE, LRFindInfo, LRFindRecord
from .lr_find_plot import plot_curve
from .run_folder import first_missing, remove_empty_folders

# Across the sweep's last window the smoothed loss must still fall by this share of its whole fall for the sweep to
# read as cut short: a loss at its floor (0.0 for the last 8 steps on easy data) was warned "still falling", and a
# sweep to 10x the end rate moved the suggestion from 0.0068 to 0.0091.
FLAT_SHARE = 0.01
from ..records.card import tenth_of

JSON_FILE, PNG_FILE = LR_FIND_FILE, "lr_find.png"
DEFAULTS, MAX_STEPS = {"start_lr": 1e-7, "end_lr": 1.0, "steps": 100}, 1_000_000  # (steps: training steps)
MAX_END_LR = 10.0


@dataclass
class LRFindResult:
    """What `imgclf.lr_find` hands back: the suggestion, the sweep, and the folder holding both."""

    path: Path
    suggestion: float | None  # None only in the files of a sweep that found none (an error then)
    lrs: list[float]
    losses: list[float]
    min_lr: float
    max_lr: float
    lowest_loss_lr: float | None = None  # where the sweep's loss was lowest (not used: shown beside the suggestion)
    raw_losses: list[float] | None = None  # each step's own loss, under the smoothed `losses`
    window: int | None = None  # steps in the centred mean `losses` is
    # passes over the training images the sweep's steps made: the suggestion moved 30x between --steps 100 and
    # 2000 (4 and 89 epochs of the digits), and nothing said how much training a sweep was
    epochs: float | None = None
    # the head alone was swept (a transfer model's frozen first epochs): (freeze_epochs, backbone_lr_mult)
    head_only: tuple[int, float] | None = None
    # what was swept on, said before the suggestion as train says it (the sweep named no data and no skipped file)
    data_line: str | None = None

    @property
    def still_falling(self) -> bool:
        """The loss was lowest in the sweep's last window, was still going down across it, and the sweep ran to its
        end: the fall had not ended, so the suggestion (where it ends) and a tenth of the lowest point read a curve
        that was cut short. A loss flat at its floor there (0.0 for the last steps on easy data) has ended its fall:
        sweeping higher moved nothing."""
        window = self.window or 1
        if self.stopped_early or self.lowest_loss_lr is None or len(self.lrs) <= window \
                or self.lowest_loss_lr < self.lrs[-window]:
            return False
        tail, whole = self.losses[-window - 1] - self.losses[-1], self.losses[0] - min(self.losses)
        return tail > FLAT_SHARE * whole

    @property
    def can_sweep_higher(self) -> bool:
        """Whether the sweep ended below the highest end_lr lr-find takes (the advice to sweep higher then helps)."""
        return self.lrs[-1] < MAX_END_LR * 0.99 if self.lrs else True

    @property
    def cautions(self) -> list[str]:
        """What the user should know before training at the suggestion: where the sweep ended still falling (the
        suggestion read a curve cut short: 28x below the full sweep's on 3-class shapes), and where a pretrained
        backbone swept frozen would later train at the head's rate (it wrecked the backbone's features there)."""
        out = []
        if self.still_falling:
            # at the highest end_lr the sweep takes, a higher one is no advice to give
            again = ("sweep again with imgclf lr-find and a higher --end-lr" if self.can_sweep_higher
                     else f"--end-lr is at its highest ({MAX_END_LR:g}), so try rates above the suggestion in short "
                     "runs (imgclf tune)")
            out.append(f"the loss was still falling at the sweep's end ({self.lrs[-1]:.2g}): the curve was cut "
                       f"before its lowest point, so the suggestion is low; {again}")
        if self.head_only is not None and self.suggestion is not None:
            frozen, mult = self.head_only
            out.append(f"the sweep trained the head alone (the backbone frozen, as in the first {frozen} epoch"
                       f"{'s' if frozen != 1 else ''}): after them the backbone trains at the rate x "
                       f"--backbone-lr-mult ({mult:g}), which at {self.suggestion * mult:.3g} can wreck its "
                       "pretrained features; pass --backbone-lr-mult 0.1 or lower")
        return out

    @property
    def tenth_of_lowest(self) -> float | None:
        return tenth_of(self.lowest_loss_lr)

    @property
    def stopped_early(self) -> bool:
        """Lightning stops the sweep where the loss diverges, before end_lr."""
        return bool(self.lrs) and self.lrs[-1] < 0.99 * self.max_lr

    @property
    def span(self) -> str:
        """The sweep as it ran ('1325 steps from 1e-07 to 0.0043'): the planned bounds alone misreported one that
        stopped early."""
        reached = self.lrs[-1] if self.lrs else self.min_lr
        return f"{len(self.lrs)} steps from {self.min_lr:g} to {reached:.2g}"

    @property
    def described(self) -> str:
        early = f" (stopped early, the loss diverged; the sweep was to {self.max_lr:g})" if self.stopped_early else ""
        shown = None if self.epochs is None else f"{self.epochs:.2g}" if self.epochs < 10 else f"{self.epochs:,.0f}"
        passes = f", {shown} epochs of the training images" if shown else ""  # not "1e+02 epochs" of a small folder
        return self.span + passes + early

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, as lr_find.json holds the sweep (a loss that was not finite is None)."""
        return {"path": str(self.path), "suggestion": self.suggestion, "lowest_loss_lr": self.lowest_loss_lr,
                "tenth_of_lowest": self.tenth_of_lowest, "min_lr": self.min_lr, "max_lr": self.max_lr,
                "stopped_early": self.stopped_early, "window": self.window, "epochs": self.epochs,
                "lrs": list(self.lrs),
                "losses": _json_floats(self.losses),
                "raw_losses": None if self.raw_losses is None else _json_floats(self.raw_losses)}

    def __repr__(self) -> str:
        return f"LRFindResult({str(self.path)!r}, suggestion={self.suggestion:.3g})"


def check_auto_lr(cfg: TrainConfig, resume: bool = False) -> None:
    """Settings with which --lr auto cannot run, refused before any data is decoded."""
    if cfg.lr != "auto":
        return
    if resume:
        raise invalid("lr", "auto", "a number with --resume: a resumed run keeps the learning rate it started with",
                      also={"resume": True})
    if cfg.features_only:
        raise invalid("lr", "auto", "a number with features_only: the finder sweeps the whole model's training, "
                      "not the head on stored features", also={"features_only": True})
    if cfg.devices != "1" or cfg.num_nodes != 1:
        raise invalid("lr", "auto", "a number on several devices: the finder runs in one process",
                      also={"devices": cfg.devices, "num_nodes": cfg.num_nodes},
                      hint="Run imgclf lr-find on one device first, then pass its suggestion as --lr")


def check_sweep(start_lr: float, end_lr: float, steps: int) -> None:
    """The sweep's own arguments, checked as the command line checks them (the Python API took steps="50", a raw
    TypeError, and steps=50.5, run as 51 and recorded as 50.5)."""
    for name, value in (("start_lr", start_lr), ("end_lr", end_lr)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise invalid(name, value, "a finite number, such as 1e-5")
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise invalid("steps", steps, "a whole number of sweep steps, such as 100")
    # one setting named (the command line adds its flag), the other echoed beside it
    if not start_lr > 0:
        raise invalid("start_lr", start_lr, "> 0, below end_lr", also={"end_lr": end_lr})
    if not start_lr < end_lr <= MAX_END_LR:
        raise invalid("end_lr", end_lr, f"above start_lr and at most {MAX_END_LR:g}", also={"start_lr": start_lr})
    from ..train.lr_sweep import SKIP_BEGIN, WINDOW

    if not SKIP_BEGIN + WINDOW <= steps <= MAX_STEPS:  # fewer leave no whole mean to read; 10**9 ran for ever
        raise invalid("steps", steps, f"from {SKIP_BEGIN + WINDOW} (the suggestion is read after the first "
                      f"{SKIP_BEGIN} steps, on means of {WINDOW}) to {MAX_STEPS:,}")


def sweep(cfg: TrainConfig, data: Any, model: Any, folder: Path, start_lr: float = DEFAULTS["start_lr"],
          end_lr: float = DEFAULTS["end_lr"], steps: int = DEFAULTS["steps"], within_run: bool = False) -> LRFindResult:
    """Run the finder on a prepared data set and built model (weights restored afterwards); write lr_find.json
    and lr_find.png into `folder`. No suggestion is an error: of `--lr auto` within a run, else of the sweep."""
    from ..io import write_json
    from ..train.lr_sweep import FALL_LEFT, RULE, WINDOW, find_lr

    check_sweep(start_lr, end_lr, steps)
    curve = find_lr(cfg, data, model, folder, start_lr, end_lr, steps)
    # passes, not images / training images: the last batch of a pass is a short one (96 images at batch 64 are 2
    # steps a pass, which read as 67 epochs for 100 steps where it was 50)
    epochs = round(len(curve.lrs) / max(1, math.ceil(len(data.splits["train"]) / cfg.batch_size)), 2)
    train, kind = len(data.splits["train"]), "labels" if data.task == "multilabel" else "classes"
    skipped = f", {len(data.skipped)} file{'s' if len(data.skipped) != 1 else ''} skipped (lr_find.json lists " \
        "them)" if data.skipped else ""
    result = LRFindResult(folder, curve.suggestion, curve.lrs, curve.losses, start_lr, end_lr, curve.lowest,
                          curve.raw, WINDOW, epochs, head_only(cfg, model),
                          f"{len(data.classes)} {kind}, {train:,} training images{skipped}")
    # lr-find writes its sweep whether or not there is a suggestion: a failed sweep's curve is what the user must
    # look at, and an earlier sweep's files in the folder would be mistaken for it. A run's folder gets none from a
    # failed sweep (a run that fails before its config.yaml leaves no folder behind).
    if curve.suggestion is not None or not within_run:
        record = LRFindRecord(suggestion=curve.suggestion, rule=RULE, window=WINDOW, fall_left=FALL_LEFT,
                              lowest_loss_lr=curve.lowest, min_lr=start_lr, max_lr=end_lr, steps=len(curve.lrs),
                              steps_asked=steps, epochs=epochs, cautions=result.cautions, still_falling=result.still_falling,
                              settings=_swept_settings(cfg), classes=len(data.classes), train_images=train,
                              skipped=data.skipped, lr=curve.lrs, loss=_json_floats(curve.losses),
                              loss_raw=_json_floats(curve.raw))
        write_json(folder / JSON_FILE, record.model_dump(mode="json"))
        plot_curve(result, folder / PNG_FILE)
    if curve.suggestion is None:
        finite = sum(math.isfinite(x) for x in curve.raw)
        note = (f"{finite} finite losses in {len(curve.lrs)} steps (the first 10 are the start); "
                + ("too few to read a curve from" if curve.lowest is None else
                   f"after them the loss did not fall clearly below its start (lowest at {curve.lowest:.3g})"))
        again = ("with a lower --start-lr if the loss rose from the start, with a higher --end-lr or more --steps if "
                 "it had not yet fallen")
        if within_run:
            raise invalid("lr", "auto", "a number: the LR finder found no suggestion", note=note,
                          hint=f"Pass --lr explicitly, or run imgclf lr-find first: {again}")
        again += f" (the curve: {folder / PNG_FILE})"
        raise invalid("sweep", Described(f"from {start_lr:g} to {end_lr:g} in {steps} steps"), "a range over which "
                      "the loss falls clearly (the suggestion is where its fall ends)", note=note,
                      hint=f"Run it again {again}")
    return result


def head_only(cfg: TrainConfig, model: Any) -> tuple[int, float] | None:
    """(freeze_epochs, backbone_lr_mult) where the sweep measured a pretrained backbone's head alone and the
    backbone will later train at more than a tenth of that rate; None elsewhere: one trained from scratch, or at
    a low --backbone-lr-mult already, has no features the rate could wreck."""
    if cfg.freeze_epochs and getattr(model, "backbone", None) is not None and bool(cfg.pretrained or cfg.weights) \
            and cfg.backbone_lr_mult > 0.1:
        return cfg.freeze_epochs, cfg.backbone_lr_mult
    return None


def _swept_settings(cfg: TrainConfig) -> dict[str, Any]:
    """What the suggestion depends on, so that two sweeps' files can be told apart (lr_find.json held none)."""
    settings = cfg.model_dump(mode="json")
    keys = ("data", "classes", "drop_classes", "per_class_max", "val_split", "test_split", "group_duplicates", "model",
            "model_args", "weights", "img_size", "color", "interpolation", "batch_size", "optimizer", "weight_decay",
            "momentum", "freeze_epochs", "backbone_lr_mult", "augment", "loss", "label_smoothing", "seed")
    return {k: settings[k] for k in keys if k in settings}


def _json_floats(values: list[float]) -> list[float | None]:
    from ..stats import finite_number

    return [finite_number(x) for x in values]  # JSON has no NaN or infinity


def card_info(run_dir: Path) -> LRFindInfo | None:
    """The card's lr_find field from the run's lr_find.json (None when the run's lr was given)."""
    from ..records.base import read_record

    path = Path(run_dir) / JSON_FILE
    if not path.is_file():
        return None
    stored = read_record(path, LRFindRecord, "run", run_dir, "a run directory")
    if stored.suggestion is None:  # a run keeps no failed sweep; a folder of lr-find's may hold one
        return None
    shared = stored.model_dump(include=set(LRFindInfo.model_fields))  # the card quotes the file's fields
    return LRFindInfo(**{**shared, "steps": max(1, stored.steps), "curve": PNG_FILE, "data": JSON_FILE})


# settings of a training run that the sweep has no use for: given to lr-find, refused rather than ignored
SETTINGS_OF_A_TRAINING = {
    "epochs": "the sweep runs --steps optimiser steps", "time_limit": "the sweep runs --steps optimiser steps",
    "early_stopping": "the sweep stops after --steps, or where the loss diverges",
    "min_delta": "the sweep has no early stopping", "restore_best": "the sweep keeps no weights",
    "schedule": "the sweep sets the learning rate itself, step by step",
    "ema": "the sweep averages no weights", "calibrate": "the sweep fits no temperature",
    "unknown_detector": "the sweep fits no unknown detector", "unknown_acceptance": "the sweep sets no threshold",
    "checkpoint_every": "the sweep writes no checkpoints",
    "monitor": "the sweep monitors no validation score", "lr_factor": "the sweep runs without a schedule",
    "lr_patience": "the sweep runs without a schedule", "lr_step": "the sweep runs without a schedule",
    "min_lr": "the sweep starts at --start-lr",
}
# refused the same way, for their own reasons (lr_find's body says why): the command's help leaves them all out
REFUSED = (*SETTINGS_OF_A_TRAINING, "folds", "fold", "logger", "mlflow_uri", "lr", "devices", "num_nodes")


def lr_find(config: TrainConfig | Mapping[str, Any] | None = None, *, recipe: str | None = None,
            config_file: str | os.PathLike | None = None, start_lr: float = DEFAULTS["start_lr"],
            end_lr: float = DEFAULTS["end_lr"], steps: int = DEFAULTS["steps"], overwrite: bool = False,
            **values: Any) -> LRFindResult:
    """Lightning's LR range test on a data folder with a run's settings (recipe, YAML, keyword arguments, as
    `imgclf.fit` takes them), without training a run: lr_find.json and lr_find.png go to `out` (default
    lr-find/<model>-<n>). `imgclf.lr_find(data="data/", recipe="fast-fmnist").suggestion`."""
    from ..models import get_model_info
    from ..train.engine_choice import check_engine
    from ..train.finetune import transfer_model_args
    from .resolve import resolve_config
    from .prepare import data_and_model, input_size

    check_sweep(start_lr, end_lr, steps)
    overwrite = check_switch("overwrite", overwrite)
    # what the caller asked for, in a mapping as in keywords (a recipe's own epochs or schedule are not refused)
    given = dict(config) if isinstance(config, Mapping) else \
        {k: getattr(config, k) for k in config.model_fields_set} if isinstance(config, TrainConfig) else {}
    asked = {**given, **values}
    if asked.get("lr") is not None:
        raise invalid("lr", asked["lr"], "unset for lr-find: it sweeps start_lr..end_lr and suggests one",
                      hint="Set the sweep's range with --start-lr and --end-lr")
    for name, why in (("folds", "the sweep runs once, on the training split"), ("fold", "the sweep runs once"),
                      ("logger", "the sweep writes lr_find.json and lr_find.png, not a tracked run"),
                      ("mlflow_uri", "the sweep logs to no tracker")):
        if asked.get(name):  # accepted before and silently ignored
            raise invalid(name, asked[name], f"unset for lr-find: {why}")
    for name, why in SETTINGS_OF_A_TRAINING.items():  # accepted, recorded nowhere, and changing nothing (schedule:
        if asked.get(name) is not None:  # onecycle's momentum cycling moved the suggestion 25x)
            raise invalid(name, asked[name], f"unset for lr-find: {why}",
                          hint="Give it to imgclf train with the learning rate found")
    for name in ("devices", "num_nodes"):  # --lr auto's reason ("a number on several devices") was no answer here
        if asked.get(name) is not None and str(asked[name]) != "1":
            raise invalid(name, asked[name], "1 for lr-find: the sweep runs in one process",
                          hint="Give the rate it suggests to imgclf train --devices N as --lr")
    if asked.get("sizing") == "probe":  # accepted before and silently ignored
        raise invalid("sizing", "probe", "unset or fixed for lr-find: the sweep trains the width given (no probe "
                      "runs for it)")
    # a width given with `--recipe fast` is the one swept, not refused as a width the probe would choose
    values = {**values, "sizing": "fixed"}
    cfg = resolve_config(config, recipe=recipe, config_file=config_file,
                         keywords=("start_lr", "end_lr", "steps", "overwrite"), **values)
    # the sweep's folder is the caller's --out alone, as tune's is: a run's config.yaml given as --config carries
    # that run's out, and the sweep was refused for it ("holds a training run") or wrote into a folder named so
    cfg = cfg.model_copy(update={"lr": "auto", "out": asked.get("out")})
    from ..train.engine_choice import several_processes

    if several_processes(cfg.devices, cfg.num_nodes, cfg.accelerator):  # a data-parallel run's config.yaml, say
        from ..notices import warn

        warn(f"the sweep runs in one process: the config's devices={cfg.devices}"
             f"{f', num_nodes={cfg.num_nodes}' if cfg.num_nodes > 1 else ''} are left out of it")
        cfg = cfg.model_copy(update={"devices": "1", "num_nodes": 1, "strategy": "auto"})
    check_auto_lr(cfg)
    check_engine(cfg.accelerator, cfg.strategy, cfg.precision)
    info = get_model_info(cfg.model)
    transfer_args = transfer_model_args(cfg, info)
    img_size = input_size(cfg, info)
    folder, made = _out_folder(cfg, overwrite)
    try:
        data, model, resolved = data_and_model(cfg, info, img_size, transfer_args)
        return sweep(resolved, data, model, folder, start_lr, end_lr, steps)
    except BaseException:
        if made is not None:  # an interrupted sweep wrote nothing: the folders it made go
            remove_empty_folders(folder, made)
        raise


def _out_folder(cfg: TrainConfig, overwrite: bool) -> tuple[Path, Path | None]:
    """The sweep's folder, made if it was not there, and the outermost folder made for it (None: none made)."""
    from ..io import next_free_dir, outside_data, writable_folder

    folder = writable_folder("out", Path(cfg.out)) if cfg.out else next_free_dir("lr-find", cfg.model)
    if cfg.data:  # lr_find.png in a class folder is one more training image of that class
        outside_data("out", folder, [cfg.data] if isinstance(cfg.data, (str, os.PathLike)) else cfg.data)
    if (folder / "config.yaml").exists():  # its lr_find.json would pass for the sweep that chose the run's lr
        raise bad_path("out", folder, "a folder that holds no training run", "holds one",
                       hint="Pass another --out; a sweep with the run's settings: imgclf lr-find --config "
                            f"{folder / 'config.yaml'} --out NEW")
    from ..run_markers import holds_runs

    if folder.is_dir() and (holds_runs(folder) or (folder / "folds.json").exists()):
        # a cross-validation's folder (or a runs/ folder): its next --folds run refused the sweep's files in it
        raise bad_path("out", folder, "a folder that holds no training run", "holds runs (a cross-validation, a "
                       "study or a folder of runs)", hint="Pass another --out")
    if (folder / JSON_FILE).exists() and not overwrite:
        raise bad_path("out", folder, "a folder without an earlier lr_find.json", "holds one",
                       hint="Pass --overwrite (Python: overwrite=True) to replace it")
    made = first_missing(folder)  # lr-find/ too, where it made that: a failed sweep left it empty behind
    folder.mkdir(parents=True, exist_ok=True)
    return folder, made
