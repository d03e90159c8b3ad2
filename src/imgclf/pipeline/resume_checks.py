"""What a resumed run must keep: the checks `resume_run` makes before anything is written, and the one training
makes once the images are read (`check_same_images`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import bad_path, invalid
from ..io import relative_path
from ..records import RunDir

# What a run's checkpoint and splits were made under, so a resumed run cannot change it: the weights' shapes
# (model, head, input), which images are train, val and test (data, classes, splits, seed), and the state saved
# beside the weights (optimiser with its learning rates, the backbone's too, weight decay and momentum, schedule,
# EMA): the checkpoint's optimiser state would bring the old rate back, while config.yaml said the new one.
# The schedule's own settings too (factor, patience, step, floor, and the metric a plateau watches): Lightning
# restores the scheduler's state over the one built from them, so a resumed step schedule with --lr-step 1 kept
# stepping every 10 epochs, and a plateau on val_loss resumed with --monitor val_acc took a lower accuracy for an
# improvement, while config.yaml and resumes.json said the new values. Changing one is a new run.
FIXED_ON_RESUME = ("data", "classes", "drop_classes", "per_class_max", "img_size", "color", "val_split", "test_split",
                   "group_duplicates", "model", "model_args", "head", "pretrained", "weights", "features_only",
                   "task", "normalize", "seed", "folds", "fold", "optimizer", "lr", "backbone_lr_mult", "weight_decay",
                   "momentum", "schedule", "lr_factor", "lr_patience", "lr_step", "min_lr", "monitor", "ema")


def refuse_missing_data(data: str | list[str] | None) -> None:
    """A DATA that is not there (a typo), refused before anything is written: with --overwrite the folds' summary
    was removed and the folder marked as an overwrite begun, so the right command then read as "an --overwrite
    with other settings was interrupted there" though no fold had trained."""
    for given in [data] if isinstance(data, (str, os.PathLike)) else list(data or []):
        if not os.path.exists(given):
            raise bad_path("data", given, "an existing folder or index file", "no such path")


def data_listing(cfg: Any) -> Any:
    """The data folders as a run of `cfg` lists them (layout, classes chosen), without decoding an image."""
    from ..data.merge import scan_folders
    from ..data.select import Selection, select_classes

    return select_classes(scan_folders(cfg.data, allow_empty=True),
                          Selection(cfg.classes, cfg.drop_classes, None, cfg.seed))


def labelled_images(cfg: Any, scan: Any = None) -> set[tuple[str, str | None]] | None:
    """(real path, label) of every image the data lists now, one pair per label an image carries ((path, None) for
    an image of an index that carries none): real paths, as data given through a link, or a subset's tree of
    links, is the same images; labels too, as a link added under another class is a new labelled image. scan: the
    folder listing where the caller made it (`data_listing`). None where it cannot be told without reading the
    run's way (an index whose labels are chosen with classes or drop_classes)."""
    from ..data.multilabel import is_label_index, read_label_index

    if scan is None and is_label_index(cfg.data):
        if cfg.classes or cfg.drop_classes:
            return None
        index = read_label_index(cfg.data)
        items: set[tuple[str, str | None]] = set()
        for path, row in zip(index.files, index.targets):
            real = os.path.realpath(path)
            items |= {(real, index.classes[j]) for j in row.nonzero()[0]} or {(real, None)}
        return items
    scan = scan if scan is not None else data_listing(cfg)
    return {(os.path.realpath(p), label) for items in scan.files.values() for p, label in items}


def images_changed(run: RunDir, images: set[tuple[str, str | None]], capped: bool) -> str | None:
    """How the labelled images a finished run was split from differ from `images` (`labelled_images`): "3 added,
    1 relabelled, 1 gone", None where they do not: the runs of a cross-validation or a search are compared on their
    splits, which other images redraw. capped: per_class_max, under which the run lists what its caps kept, so
    images added are not counted."""
    record = run.read_dataset()
    root = Path(record.root)
    recorded: set[tuple[str, str | None]] = set()
    for split in record.splits.values():
        sets = split.label_sets if split.label_sets is not None else [[label] for label in split.labels]
        for file, ids in zip(split.files, sets):
            real = os.path.realpath(root / file)
            recorded |= {(real, record.classes[j]) for j in ids} or {(real, None)}
    unreadable = {os.path.realpath(s.path) for s in record.skipped}  # listed by the folder, in no split
    gone = {path for path, _ in recorded - images}
    added = set() if capped else {path for path, _ in images - recorded if path not in unreadable}
    relabelled = gone & added
    counts = ((len(added - relabelled), "added"), (len(relabelled), "relabelled"), (len(gone - relabelled), "gone"))
    said = ", ".join(f"{n} {word}" for n, word in counts if n)
    return said or None


def check_data_in_place(run: RunDir, cfg: Any, argument: str, command: str) -> None:
    """The data the run trained on (config.yaml's data: folders, or a multi-label index file) still where it was:
    else a command that reads it again (a resume, calibrate) said "data must be an existing folder", naming a
    setting the user never gave it."""
    datas = [cfg.data] if isinstance(cfg.data, (str, os.PathLike)) else list(cfg.data or [])
    gone = [d for d in datas if not os.path.exists(d)]
    if gone:
        raise invalid(argument, run.path, "a run whose data is where it was trained (config.yaml's data)",
                      note=f"{gone[0]} is no longer there",
                      hint=f"Put it back at {gone[0]}; {command} reads the run's own images again")


def check_resumable(run: RunDir, cfg: Any, values: dict[str, Any]) -> None:
    """Refuse, before anything is written, what the run's checkpoint cannot continue: fewer epochs than it has
    trained, or another value of a FIXED_ON_RESUME setting. (Refused later, the run's config.yaml would already
    hold the new value, and every later resume of it would fail.)"""
    stored_config = run.read_config()
    stored = stored_config.model_dump(mode="json")
    asked = cfg.model_dump(mode="json")
    changed = [name for name in FIXED_ON_RESUME if values.get(name) is not None and asked[name] != stored[name]]
    if changed:
        name = changed[0]
        # the data folder is train's positional argument; every other setting is a flag of its own name
        given = "DATA" if name == "data" else f"--{name.replace('_', '-')} ..."
        command = f"imgclf train {given} --config {run.file('config.yaml')}" if name == "data" else \
            f"imgclf train --config {run.file('config.yaml')} {given}"
        kept = "unset" if stored[name] is None else repr(stored[name])  # "must be None" read as Python's
        raise invalid(name, asked[name], f"{kept} for this run, as it was trained (a resumed run keeps it)",
                      where=f"--resume {run.path}",
                      hint=f"Start a new run from its settings instead: {command} --out NEW (Python: "
                           f"imgclf.fit(config_file={str(run.file('config.yaml'))!r}, {name}=..., out=NEW))")
    trained = len(run.read_history())
    _check_planned_schedule(run, stored, asked, values, trained)
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
        raise invalid("epochs", cfg.epochs, f"at least {trained + 1}: the checkpoint holds {steps} steps of epoch "
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
            raise invalid(name, asked[name], f"{stored[name]!r}, as this run was trained: its {stored['schedule']} "
                          f"schedule planned the learning rate over {stored['epochs']} epochs of its batches "
                          "from the start, and cannot be stretched", where=f"--resume {run.path}",
                          hint=f"Start a new run with it instead: imgclf train --config "
                               f"{run.file('config.yaml')} --{name.replace('_', '-')} {asked[name]} --out NEW")


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
        raise invalid(name, asked[name], f"{stored.get(name)!r}, as this run was trained: it has trained all "
                      f"{trained} of its epochs, so another value would apply to no epoch, yet be recorded as the "
                      "run's", where=f"--resume {run.path}",
                      hint=f"Pass --epochs {trained + 1} or more to train further with it, or start a new run: "
                           f"imgclf train --config {run.file('config.yaml')} --out NEW")


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
            f"{run.file('config.yaml')} --out NEW) compares like with like")


def check_same_images(run: RunDir, now: Any, cfg: Any) -> None:
    """Refuse to resume on images other than the run's: a file added to or gone from the data folder draws other
    splits, and the resumed epochs would train on images the earlier ones held out (`now`: the resumed run's
    DatasetRecord, before anything is written)."""
    stored = run.read_dataset()
    changes = []
    for split in sorted(set(stored.splits) | set(now.splits), key=["train", "val", "test"].index):
        old = set(zip(*_files(stored, split)))
        new = set(zip(*_files(now, split)))
        if old != new:
            changes.append(f"{split}: {len(new - old)} added, {len(old - new)} gone")
    if stored.streamed != now.streamed:
        # near-duplicate groups draw a split only from a cached decode, and streamed images' mean and std are
        # measured on fewer of them: the resumed epochs would see other inputs than the earlier ones
        was, now_is = ("cached", "streamed") if now.streamed else ("streamed", "cached")
        why = (f"the split drawn otherwise ({'; '.join(changes)})" if changes else
               "their mean and std measured on another sample of the training images")
        raise invalid("cache_budget", cfg.cache_budget, f"a budget that keeps its images {was}, as when it was "
                      "trained", where=f"--resume {run.path}", note=f"they would be {now_is}, and {why}",
                      hint="Resume with the --cache-budget the run was trained with")
    if changes:
        raise invalid("data", cfg.data, "the images this run was trained on, as its dataset.json lists them",
                      where=f"--resume {run.path}", note=_folder_changes(stored, now, changes),
                      hint=f"Put the folder back as it was (if it is, an older release drew this run's split), or "
                           f"train a new run on it: imgclf train DATA --config {run.file('config.yaml')} --out NEW")


def _folder_changes(stored: Any, now: Any, by_split: list[str]) -> str:
    """What changed in the folder, then what that did to the splits: 104 images deleted from one class read as
    "train: 220 added, 304 gone; val: ..." (the split is drawn again from what is left)."""
    splits = ("train", "val", "test")
    old = {f for split in splits for f in zip(*_files(stored, split))}
    new = {f for split in splits for f in zip(*_files(now, split))}
    gone, added = sorted(old - new), sorted(new - old)
    # a listed image that is still there but no longer decodes is not "gone": say what is wrong with it
    unreadable = {relative_path(s.path, now.root): s.reason for s in now.skipped}
    broken = [f for f, _ in gone if f in unreadable]
    gone = [g for g in gone if g[0] not in unreadable]
    said = []
    if broken:
        said.append(f"{len(broken):,} of the images dataset.json lists cannot be read now (e.g. {broken[0]}: "
                    f"{unreadable[broken[0]]})")
    if gone:
        said.append(f"{len(gone):,} of the images dataset.json lists {'is' if len(gone) == 1 else 'are'} gone or "
                    f"relabelled (e.g. {gone[0][0]})")
    if added:
        said.append(f"{len(added):,} image{' is' if len(added) == 1 else 's are'} new (e.g. {added[0][0]})")
    if not said:
        return "the same images, split otherwise (" + "; ".join(by_split) + ")"
    return ", ".join(said) + "; the splits drawn from the folder now differ (" + "; ".join(by_split) + ")"


def _files(record: Any, split: str) -> tuple[list[str], list[Any]]:
    """A split's files and labels (label sets for multi-label data) from a DatasetRecord; empty when absent."""
    if split not in record.splits:
        return [], []
    files = record.splits[split]
    return files.files, [tuple(s) for s in files.label_sets] if files.label_sets is not None else files.labels


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


def _processes(cfg: Any) -> int:
    return int(cfg.devices) * cfg.num_nodes


def _check_processes(run: RunDir, ckpt: Path, cfg: Any) -> None:
    """Another number of processes continues a checkpoint saved at an epoch's end, never one inside an epoch: each
    rank skips the batches its own share had trained, and one process skipping a rank's count trained the rest of
    the others' again (2,000 training images counted in an epoch of 1,600)."""
    from ..train.checkpoint_state import batches_into_epoch

    stored = run.read_config()
    if "auto" in (cfg.devices, stored.devices) or _processes(cfg) == _processes(stored):
        return  # auto: as many as the machine has, which the settings cannot tell
    if cfg.steps_per_epoch:  # the stream's place is shared out among the processes: any change moves it
        why, hint = ("with steps_per_epoch its epochs continue one stream, shared out among the processes",
                     "Resume with the run's devices")
    elif batches_into_epoch(ckpt):
        why = "its checkpoint stopped inside an epoch, whose batches each process counts by its own share"
        hint = (f"Resume with the run's devices and --epochs {_epochs_held(run, ckpt) + 1} to finish that epoch, "
                "then resume again with the new ones")
    else:
        return
    raise invalid("devices", cfg.devices, f"{stored.devices} on {stored.num_nodes} node(s), as the run was trained: "
                  f"{why}", also={"num_nodes": cfg.num_nodes}, where=f"--resume {run.path}", hint=hint)


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
    return last if last.is_file() else None


def _epochs_held(run: RunDir, ckpt: Path) -> int:
    """The completed epochs the checkpoint holds (history.csv may hold one more: a Ctrl-C just after an epoch's
    line, whose epoch then trains again)."""
    from ..train.checkpoint_state import saved_epochs_of

    try:
        held = saved_epochs_of(ckpt)
    except Exception:  # unreadable: the resume's own check says so
        held = None
    return held if held is not None else len(run.read_history())
