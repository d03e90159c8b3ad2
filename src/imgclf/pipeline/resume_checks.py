"""What a resumed run must keep: the checks `resume_run` makes before anything is written (its images' own,
the same images as before, are `same_data`'s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import invalid
from ..records import RunDir
from ..file_names import shell_word

# What a run's checkpoint and splits were made under, so a resumed run cannot change it: the weights' shapes
# (model, head, input), which images are train, val and test (data, classes, splits, seed), and the state saved
# beside the weights (optimiser with its learning rates, the backbone's too, weight decay and momentum, schedule,
# EMA): the checkpoint's optimiser state would bring the old rate back, while config.yaml said the new one.
# The schedule's own settings too (factor, patience, step, floor, and the metric a plateau watches): Lightning
# restores the scheduler's state over the one built from them, so a resumed step schedule with --lr-step 1 kept
# stepping every 10 epochs, and a plateau on val_loss resumed with --monitor val_acc took a lower accuracy for an
# improvement, while config.yaml and resumes.json said the new values. Changing one is a new run. Nesterov too (the
# optimiser state restored it: config.yaml said true, the epochs trained without), and steps_per_epoch: its epochs
# continue one stream of passes, whose place is counted in epochs of that many batches (3 -> 5 skipped 4 batches).
FIXED_ON_RESUME = ("data", "classes", "drop_classes", "per_class_max", "img_size", "color", "val_split", "test_split",
                   "group_duplicates", "model", "model_args", "head", "pretrained", "weights", "features_only",
                   "task", "normalize", "seed", "folds", "fold", "optimizer", "lr", "backbone_lr_mult", "weight_decay",
                   "momentum", "nesterov", "schedule", "lr_factor", "lr_patience", "lr_step", "min_lr", "monitor",
                   "ema", "steps_per_epoch")


# paths in FIXED_ON_RESUME whose file or folder may have moved since, and config.yaml been edited to follow it: the
# data folder (its images are checked by the data check), and a weights file a features_only resume reads again
# (taken where the file the checkpoint names is gone: moved; another file there still is another backbone)
MOVABLE = ("data", "weights")


def _kept(value: Any) -> str:
    """A stored setting as a refusal names it: "must be None" read as Python's, where the command line says none."""
    return "unset" if value is None else repr(value)


def check_resumable(run: RunDir, cfg: Any, values: dict[str, Any]) -> None:
    """Refuse, before anything is written, what the run's checkpoint cannot continue: fewer epochs than it has
    trained, or another value of a FIXED_ON_RESUME setting. (Refused later, the run's config.yaml would already
    hold the new value, and every later resume of it would fail.)"""
    stored_config = run.read_config()
    stored = stored_config.model_dump(mode="json")
    asked = cfg.model_dump(mode="json")
    # a weights file gone from where the run recorded it may be given at its new place (as config.yaml may be
    # edited to follow it: MOVABLE); a file still there is another backbone
    from ..models.weights import moved_weights_file

    moved = moved_weights_file(stored["weights"])
    changed = [name for name in FIXED_ON_RESUME if values.get(name) is not None and asked[name] != stored[name]
               and not (name == "weights" and moved)]
    if changed:
        name = changed[0]
        # the data folder is train's positional argument; every other setting is a flag of its own name
        given = "DATA" if name == "data" else f"--{name.replace('_', '-')} ..."
        command = f"imgclf train {given} --config {shell_word(run.file('config.yaml'))}" if name == "data" else \
            f"imgclf train --config {shell_word(run.file('config.yaml'))} {given}"
        raise invalid(name, asked[name],
                      f"{_kept(stored[name])} for this run, as it was trained (a resumed run keeps it)",
                      where=f"--resume {run.path}",
                      hint=f"Start a new run from its settings instead: {command} --out NEW (Python: "
                           f"imgclf.fit(config_file={str(run.file('config.yaml'))!r}, {name}=..., out=NEW))")
    trained = len(run.read_history())
    _check_planned_schedule(run, stored, asked, values, trained)
    _check_unfreeze_ahead(run, stored, asked, values, trained)
    _check_nothing_left_to_change(run, stored, asked, values, trained)
    stored_patience = stored_config.early_stopping
    # (with --epochs at the epochs trained it trains none: it finishes a run cut after training)
    if cfg.epochs > trained and run.has("model.json") and run.read_card().training.stopped == "early stopping" \
            and cfg.early_stopping is not None and cfg.early_stopping <= (stored_patience or 0):
        raise invalid("early_stopping", cfg.early_stopping, f"more than {stored_patience}, or none: this run stopped "
                      f"early after epoch {trained}, its {cfg.monitor} not better for {stored_patience} "
                      f"epoch{'s' if stored_patience != 1 else ''}, and "
                      "with that patience it would stop again at once, training none", where=f"--resume {run.path}",
                      # a plain --resume blamed a value the user never gave
                      note=None if values.get("early_stopping") is not None else "the run's own, from its config.yaml",
                      hint=f"Pass --early-stopping K (a larger patience) or none to train on, or --epochs {trained} "
                           "to finish or score it again as it is")
    if cfg.epochs < trained:
        raise invalid("epochs", cfg.epochs, f"at least {trained}, the epochs this run has already trained",
                      where=f"--resume {run.path}")
    _check_not_finished_inside_an_epoch(run, cfg, trained)


def _check_not_finished_inside_an_epoch(run: RunDir, cfg: Any, trained: int) -> None:
    """--epochs at the epochs trained finishes a run without training; where its checkpoint was saved inside the
    next epoch (--checkpoint-every) and the run keeps its last weights (no restore_best), the weights saved were
    that unfinished epoch's, under a card that said epoch `trained`: the end of that epoch is in no file."""
    ckpt = run.file("checkpoints/last.ckpt")
    if cfg.epochs != trained or cfg.restore_best or not ckpt.is_file():
        return
    from ..train.checkpoint_state import batches_into_epoch

    try:
        steps = batches_into_epoch(ckpt)
    except Exception:  # unreadable: the resume itself says so
        return
    if steps:
        held = f"{steps} step{'s' * (steps != 1)}"
        raise invalid("epochs", cfg.epochs, f"at least {trained + 1}: the checkpoint holds {held} of epoch "
                      f"{trained + 1}, and the weights at the end of epoch {trained} are saved nowhere (the run keeps "
                      "its last weights, restore_best false)", where=f"--resume {run.path}",
                      hint=f"Pass --epochs {trained + 1} or more to finish the epoch it is in")


# Schedules whose whole course is fixed at the start, over epochs x batches: the checkpoint's scheduler holds
# that plan, so more epochs ran off its end (onecycle: "Tried to step 48 times") or climbed back up (cosine).
PLANNED_SCHEDULES = ("cosine", "onecycle")


def _check_planned_schedule(run: RunDir, stored: dict[str, Any], asked: dict[str, Any], values: dict[str, Any],
                            trained: int) -> None:
    if stored["schedule"] not in PLANNED_SCHEDULES:
        return
    for name in ("epochs", "batch_size", "steps_per_epoch"):
        if values.get(name) is not None and asked[name] != stored[name] and not (name == "epochs"
                                                                                and asked[name] == trained):
            raise invalid(name, asked[name], f"{_kept(stored[name])}, as this run was trained: its "
                          f"{stored['schedule']} "
                          f"schedule planned the learning rate over {stored['epochs']} epochs of its batches "
                          "from the start, and cannot be stretched", where=f"--resume {run.path}",
                          hint=f"Start a new run with it instead: imgclf train --config "
                               f"{shell_word(run.file('config.yaml'))} --{name.replace('_', '-')} {asked[name]} "
                               "--out NEW")


def _check_unfreeze_ahead(run: RunDir, stored: dict[str, Any], asked: dict[str, Any], values: dict[str, Any],
                          trained: int) -> None:
    """freeze_epochs changes on --resume only while the backbone's unfreeze is ahead, before and after: moved into
    the epochs trained, model.json and the report said "head only for epoch 1, the whole backbone from epoch 2"
    where the backbone had trained frozen through epoch 2, and the plateau and early stopping, which start afresh at
    the unfreeze, never did."""
    old, new = stored["freeze_epochs"], asked["freeze_epochs"]
    if values.get("freeze_epochs") is None or new == old or stored["features_only"] or min(old, new) >= trained:
        return
    allowed = (f"{old}, as this run was trained: its backbone unfroze after epoch {old}" if old < trained else
               f"{old}, as this run was trained, or at least {trained}: its backbone trained frozen through epoch "
               f"{trained}, and cannot have unfrozen earlier")
    raise invalid("freeze_epochs", new, allowed, where=f"--resume {run.path}")


def nothing_left_to_train(run: RunDir, epochs: int) -> str | None:
    """The warning for a finished run resumed with no epoch left (`imgclf train --resume RUN` as is): it trains
    nothing and is scored again, which looked like a resume that had trained; None where epochs are left."""
    trained = len(run.read_history())
    if epochs != trained or not run.has("model.json"):
        return None
    return (f"{run.path} has trained all {trained} of its epochs: none to train, so it is only scored and reported "
            f"again (--epochs {trained + 1} or more trains further)")


def trained_seconds(run: RunDir) -> float:
    """The seconds a run's epochs took so far (history.csv), or its card's training time where that is more: what a
    time limit given on --resume counts as spent."""
    trained = sum(row.seconds or 0.0 for row in run.read_history())
    return max(trained, run.read_card().training.train_seconds if run.has("model.json") else 0.0)


def time_budget_spent(run: RunDir, cfg: Any) -> str | None:
    """The warning for a run resumed under a time limit it has already used up: the budget counts the seconds
    trained before the resume, so it trains nothing and is only scored again, which looked like a resume that had
    trained; None where time is left."""
    if not cfg.time_limit_seconds or not run.has("model.json"):
        return None
    training = run.read_card().training
    # the budget counts a sizing probe's seconds too (the `fast` recipe), which train_seconds leaves out
    spent = trained_seconds(run) + float((training.time_budget or {}).get("before_training_seconds") or 0)
    if spent < cfg.time_limit_seconds:
        return None
    return (f"{run.path} has spent its time limit ({cfg.time_limit}: {spent:.1f} s of training and sizing, which "
            "the limit counts): none left to train, so it is only scored and reported again (a longer --time-limit "
            "trains further)")


def _check_nothing_left_to_change(run: RunDir, stored: dict[str, Any], asked: dict[str, Any],
                                  values: dict[str, Any], trained: int) -> None:
    """A finished run resumed with no epoch left to train: a changed setting would apply to no epoch, yet
    config.yaml and model.json would record it as the run's (`--batch-size 32` on a run trained at 64)."""
    from ..config import RUNTIME_ONLY

    if asked["epochs"] != trained or not run.has("model.json"):
        return
    changed = [name for name, value in values.items() if value is not None and name in asked
               and name not in RUNTIME_ONLY and name not in ("epochs", "out") and asked[name] != stored.get(name)]
    if changed:
        name = changed[0]
        raise invalid(name, asked[name], f"{_kept(stored.get(name))}, as this run was trained: it has trained all "
                      f"{trained} of its epochs, so another value would apply to no epoch, yet be recorded as the "
                      "run's", where=f"--resume {run.path}",
                      hint=f"Pass --epochs {trained + 1} or more to train further with it, or start a new run: "
                           f"imgclf train --config {shell_word(run.file('config.yaml'))} --out NEW")


def penalty_unrecorded(run: RunDir, model: Any) -> str | None:
    """Why a resume compares unlike losses, where it does: epochs recorded before loss and val_loss included the
    model's Keras L2 penalty (their history rows have no l2_penalty) beside the resumed epochs that include it."""
    from ..models.base import keras_l2_penalty

    if keras_l2_penalty(model) is None or not run.has("history.csv"):
        return None
    before = [row.epoch for row in run.read_history() if row.l2_penalty is None]
    if not before:
        return None
    epochs = f"epoch {before[0]}" if len(before) == 1 else f"epochs {before[0]}-{before[-1]}"
    return (f"{epochs} of {run.path} were recorded before loss and val_loss included the model's Keras L2 "
            "penalty, which the resumed epochs' include: the best epoch, early stopping and the plateau schedule "
            "compare unlike values across them; a new run (imgclf train DATA --config "
            f"{shell_word(run.file('config.yaml'))} --out NEW) compares like with like")


def check_config_unedited(run: RunDir, ckpt: Path) -> None:
    """config.yaml changed by hand since the checkpoint was saved, in a setting the checkpoint holds: the edit went
    past every check of the flags (an lr the optimiser's saved state then overrode, a batch size changed inside an
    epoch) and into no record, while model.json then said the edited value for the whole run. A change an earlier
    --resume made and recorded (resumes.json) is its own, while it is the last value recorded."""
    import json

    from ..models.weights import moved_weights_file
    from ..train.checkpoint_state import trained_settings_of
    from .resume_record import stored_resumes

    saved = trained_settings_of(ckpt)
    if saved is None:
        return
    stored = run.read_config().model_dump(mode="json")
    recorded = {}  # each setting's value as the last resume that changed it left it
    for resume in stored_resumes(run.path):
        recorded.update({c.setting: json.dumps(c.after, sort_keys=True) for c in resume.changed})
    for name in (*FIXED_ON_RESUME, "batch_size"):
        moved = name in MOVABLE and (name == "data" or moved_weights_file(saved[name]))
        if moved or name not in saved or saved[name] == stored[name] \
                or recorded.get(name) == json.dumps(stored[name], sort_keys=True):
            continue
        config = run.file("config.yaml")
        then = ("then give the new one as --batch-size with --resume (taken at an epoch's end, and recorded)"
                if name == "batch_size" else "a resumed run keeps it; start a new run from the edited file instead: "
                f"imgclf train --config {shell_word(config)} --out NEW")
        raise invalid(name, stored[name], f"{_kept(saved[name])}, as the run's checkpoint was trained",
                      where=f"--resume {run.path}", note="config.yaml was changed since, and no --resume recorded it",
                      hint=f"Put {name}: {json.dumps(saved[name])} back in {config}; {then}")


def check_batch_size(run: RunDir, ckpt: Path, cfg: Any, values: dict[str, Any]) -> None:
    """Another batch size continues a checkpoint saved at an epoch's end, never one inside an epoch: the loader
    skips the batches already trained by count, and batches of another size would skip other images."""
    from ..train.checkpoint_state import batches_into_epoch

    _check_processes(run, ckpt, cfg)
    stored = run.read_config().batch_size
    if values.get("batch_size") is None or cfg.batch_size == stored:
        return
    if cfg.steps_per_epoch:  # the stream's place is counted in batches across epochs: another size moves it
        raise invalid("batch_size", cfg.batch_size, f"{stored}, as the run was trained: with steps_per_epoch its "
                      "epochs continue one stream of passes, counted in batches of that size",
                      where=f"--resume {run.path}", hint="Resume without --batch-size")
    done = batches_into_epoch(ckpt)
    if done:
        raise invalid("batch_size", cfg.batch_size, f"{stored}, the batch size of the epoch this run's checkpoint "
                      f"stopped inside ({done} batch{'es' if done != 1 else ''} of it trained)",
                      where=f"--resume {run.path}",
                      hint=f"Resume without --batch-size and with --epochs {_epochs_held(run, ckpt) + 1} to "
                           "finish that epoch, then resume again with the new batch size")


def _check_processes(run: RunDir, ckpt: Path, cfg: Any) -> None:
    """Another number of processes continues a checkpoint saved at an epoch's end, never one inside an epoch: each
    rank skips the batches its own share had trained, and one process skipping a rank's count trained the rest of
    the others' again (2,000 training images counted in an epoch of 1,600)."""
    from ..train.checkpoint_state import batches_into_epoch, saved_processes_of
    from ..train.engine_choice import process_count

    stored = run.read_config()
    # the processes that trained the checkpoint (devices auto: as many as that machine had), against those this
    # machine will start: "auto" on either side had let any count continue a checkpoint inside an epoch
    before = saved_processes_of(ckpt) or (None if stored.devices == "auto" else
                                          process_count(stored.devices, stored.num_nodes))
    now = process_count(cfg.devices, cfg.num_nodes, cfg.accelerator)
    if before is None or before == now:
        return
    if cfg.steps_per_epoch:  # the stream's place is shared out among the processes: any change moves it
        why, hint = ("with steps_per_epoch its epochs continue one stream, shared out among the processes",
                     "Resume with the run's devices")
    elif batches_into_epoch(ckpt):
        why = "its checkpoint stopped inside an epoch, whose batches each process counts by its own share"
        hint = (f"Resume with the run's devices and --epochs {_epochs_held(run, ckpt) + 1} to finish that epoch, "
                "then resume again with the new ones")
    else:
        return
    raise invalid("devices", cfg.devices, f"{stored.devices} on {stored.num_nodes} node(s), {before} process"
                  f"{'es' * (before != 1)} in all, as the run was trained: {why}",
                  also={"num_nodes": cfg.num_nodes}, where=f"--resume {run.path}",
                  note=f"{now} process{'es' * (now != 1)} here", hint=hint)


def check_history(run: RunDir, ckpt: Path) -> None:
    """history.csv must hold a row for every epoch the checkpoint saved: without it (deleted, or cut inside its
    header) a resume went on and the earlier epochs' rows were lost, the card counting only the new ones."""
    from ..train.checkpoint_state import saved_epochs_of

    saved = saved_epochs_of(ckpt)
    rows = len(run.read_history()) if run.has("history.csv") else 0
    if saved and rows < saved:
        raise invalid("resume", run.path, "a run directory whose history.csv holds a row for every epoch its "
                      "checkpoint saved", note=f"history.csv holds {rows}, checkpoints/last.ckpt {saved}",
                      hint=f"Put history.csv back from a copy of the run; or train it again from epoch 1: delete "
                           f"{ckpt}")


def checked_checkpoints(run: RunDir) -> Path | None:
    """The run's last.ckpt (None when it has none), after reading it and best.safetensors as training would, before
    any data is decoded: a garbage, truncated or crafted file is reported on one line, and nothing in it runs."""
    from ..train.callbacks import checkpoint_problem, weights_problem

    for name, problem_of in (("checkpoints/last.ckpt", checkpoint_problem),
                             ("checkpoints/best.safetensors", weights_problem)):
        path = run.file(name)
        problem = problem_of(path) if path.is_file() else None
        if problem:
            raise invalid("resume", run.path, f"a run directory whose {name} can be read", note=f"{name} {problem}",
                          hint=f"Delete {path} to resume without it" + (" (from epoch 1)" if name.endswith("ckpt")
                                                                        else ""))
    last = run.file("checkpoints/last.ckpt")
    if not last.is_file():
        _refuse_lost_checkpoint(run)
    return last if last.is_file() else None


def _refuse_lost_checkpoint(run: RunDir) -> None:
    """A run whose last.ckpt was deleted after it had saved one (to free space): resumed, it trained again from
    epoch 1 and replaced the trained model without a word. A run cut in its first epoch, or just after its first
    line of history.csv, never saved one: it starts again, as the interruption's message said it would."""
    trained = len(run.read_history())
    if not run.has("model.json") and trained < 2:
        return
    what = "a finished run" if run.has("model.json") else f"a run that trained {trained} epochs"
    raise invalid("resume", run.path, "a run directory holding checkpoints/last.ckpt, which it saves after every "
                  "epoch", note=f"{what} without it: deleted since? A resume would train again from epoch 1 and "
                  f"replace the {trained} epoch{'s' if trained != 1 else ''} trained",
                  hint=f"Train a new run with its settings: imgclf train --config "
                       f"{shell_word(run.file('config.yaml'))} --out NEW")


def _epochs_held(run: RunDir, ckpt: Path) -> int:
    """The completed epochs the checkpoint holds (history.csv may hold one more: a Ctrl-C just after an epoch's
    line, whose epoch then trains again)."""
    from ..train.checkpoint_state import saved_epochs_of

    try:
        held = saved_epochs_of(ckpt)
    except Exception:  # unreadable: the resume's own check says so
        held = None
    return held if held is not None else len(run.read_history())
