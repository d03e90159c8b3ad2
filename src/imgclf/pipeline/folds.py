"""k-fold cross-validation: `imgclf train DATA --folds K` / `imgclf.fit(data=..., folds=K)`.

Each fold is an ordinary run directory, OUT/fold-1 ... OUT/fold-K, made by `train_run` with `fold` set: the data
layer keeps the test split as a plain run draws it and puts every other image in K stratified folds
(`data.dataset.stratified_folds`), fold i validating. OUT/folds.json summarises them: each metric per fold and its
mean ± std. A fold already finished is read, not retrained, so an interrupted cross-validation continues where it
stopped; one interrupted mid-training resumes from its checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RUNTIME_ONLY, TrainConfig
from ..errors import bad_path, invalid
from ..io import next_free_dir, outside_data, writable_folder, write_json
from ..notices import each_once, warn
from ..records import RunDir
from .experiment import experiment_settings
from .folds_summary import FOLDS_FILE, METRICS, fold_dir, read_folds, summarize_folds
from .same_data import data_listing, images_changed, labelled_images, refuse_missing_data
from ..file_names import shell_word

__all__ = ["FOLDS_FILE", "METRICS", "Folds", "fit_folds", "fold_dir", "read_folds", "summarize_folds"]



@dataclass
class Folds:
    """A finished cross-validation: its folder, the fold runs and the content of folds.json."""

    path: Path
    runs: list[Path]
    summary: dict[str, Any]

    def __repr__(self) -> str:
        return f"Folds({str(self.path)!r}, k={len(self.runs)})"

    def __fspath__(self) -> str:
        """The cross-validation's folder, as a `Run` stands for its own: compare(folds) compares the fold runs
        (it was refused as "an object of type Folds")."""
        return str(self.path)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the folder, the fold runs and folds.json's content, as `Run.as_dict` gives a run's."""
        return {"path": str(self.path), "runs": [str(r) for r in self.runs], "summary": self.summary}


def _check_folder(out: Path, k: int, overwrite: bool) -> None:
    """OUT holds nothing but this cross-validation's folds (and folds.json): never train into another run."""
    if not out.exists():
        return
    ours = {FOLDS_FILE, OVERWRITE_MARK} | {fold_dir(out, i).name for i in range(1, 101)}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in ours)
    if foreign:  # --overwrite too: it trained the folds in beside them, and the same command then refused them
        raise bad_path("out", out, "a new folder, or one holding only fold-1 ... fold-K and folds.json",
                       f"holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}",
                       hint="Choose another --out" + (" (--overwrite replaces a cross-validation's folds, not other "
                                                      "files or runs)" if overwrite else ""))
    if RunDir(out).has("config.yaml"):
        raise bad_path("out", out, "a folder for the fold runs", "is itself a run directory")


# Written by a cross-validation run with --overwrite, removed when its last fold is done: the folds begun after it
# are this overwrite's, so the same command run again after an interruption keeps them (it trained them again)
OVERWRITE_MARK = ".overwrite-started"


def _settings_digest(cfg: TrainConfig) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(experiment_settings(cfg), sort_keys=True, default=str).encode()).hexdigest()


def _continues_an_overwrite(out: Path, cfg: TrainConfig) -> bool:
    """Whether `out` holds the mark of an interrupted overwrite with these settings (which the same command, run
    again without --overwrite, finishes); refused where the mark is another overwrite's."""
    mark = out / OVERWRITE_MARK
    if not mark.exists():
        return False
    try:
        if mark.read_text(encoding="utf-8").strip() == _settings_digest(cfg):
            return True
    except (OSError, UnicodeDecodeError):
        pass
    raise bad_path("out", out, "a folder whose folds were trained with these settings",
                   "an --overwrite with other settings was interrupted there: some folds are that overwrite's, the "
                   "others older", hint="Pass --overwrite (Python: overwrite=True) to train every fold again with "
                                        "these settings, or choose another --out")


def _overwrite_since(out: Path, cfg: TrainConfig) -> float:
    """When the overwrite of `out` that this command continues began (its mark's time), or began now. The mark
    holds a digest of the settings: another overwrite's (other settings) starts anew."""
    from ..io import atomic_write_text

    mark = out / OVERWRITE_MARK
    digest = _settings_digest(cfg)
    try:
        if mark.read_text(encoding="utf-8").strip() == digest:
            return mark.stat().st_mtime
    except (OSError, UnicodeDecodeError):
        pass
    (out / FOLDS_FILE).unlink(missing_ok=True)  # the cross-validation it summarised is being replaced
    atomic_write_text(mark, digest + "\n")
    return mark.stat().st_mtime


def _listing_or_none(cfg: TrainConfig) -> Any:
    """`data_listing`, or None where it cannot be made (the first fold's training gives the error, in its words)."""
    try:
        return data_listing(cfg)
    except Exception:
        return None


def _refuse_classes_too_small(listed: Any, k: int, cfg: TrainConfig) -> None:
    """A class that lists one image outside test/, which no number of folds fits, refused before a fold is
    announced ("fold 1/K: training" came first). Only that: the files listed bound those that decode, and a flat
    folder's test images are drawn from them later, so the exact bound on K is the fold's own data's to give."""
    from collections import Counter

    from ..data.dataset import too_many_folds

    counts = Counter(cls for split, files in listed.files.items() if split != "test" for _, cls in files)
    refusal = too_many_folds(k, {c: 1 for c in listed.classes if counts[c] == 1}, cfg.classes, cfg.drop_classes)
    if refusal is not None:
        raise refusal


def _current_images(cfg: TrainConfig, scan: Any = None) -> set[tuple[str, str | None]] | None:
    """Every labelled image the data lists now, of the classes the folds train (`labelled_images`); `scan`: the
    listing where the caller made it already. None where it cannot be listed (the fold's own training gives the
    error, in its words)."""
    try:
        return labelled_images(cfg, scan if scan is not None else data_listing(cfg))
    except Exception:
        return None


def _check_same_images(run: RunDir, images: set[tuple[str, str | None]], capped: bool) -> None:
    """Refuse a fold split from other images than the folder holds now: a cross-validation interrupted, its data
    folder then changed, and run again kept its finished folds and trained the rest on a new partition (test sets
    of 6, 6 and 7 images, validation sets overlapping), while folds.json said one test set."""
    said = images_changed(run, images, capped)
    if said:
        raise bad_path("out", run.path.parent, "a folder whose folds were split from the images the data holds now",
                       f"{run.path.name} was split from other images ({said} since)",
                       hint="Pass --overwrite (Python: overwrite=True) to train every fold again on the images "
                            "there are, or choose another --out")


def _fold_state(run: RunDir, wanted: TrainConfig, overwrite: bool, since: float | None = None,
                images: set[tuple[str, str | None]] | None = None) -> str:
    """new, done, recalibrate (done, its calibration refitted since with other settings than asked), resume (a
    checkpoint to continue from) or restart (begun, nothing to continue from). With
    overwrite, a fold begun before `since` (the overwrite's start) is trained again; one begun after, by this
    overwrite, is judged as any fold. images: the data's files now, which a fold's recorded split must match."""
    if not run.has("config.yaml"):
        return "new" if not run.has("checkpoints/last.ckpt") else "restart"
    if overwrite and (since is None or (run.path / "config.yaml").stat().st_mtime < since):
        return "restart"
    stored_config = run.read_config()
    if stored_config.fold is not None and stored_config.fold != wanted.fold:
        # a fold trained alone (--fold I) into the wrong folder was counted as this fold, its scores twice
        raise bad_path("out", run.path.parent, f"a folder whose {run.path.name} holds fold {wanted.fold}",
                       f"{run.path.name} holds fold {stored_config.fold} (its config.yaml)",
                       hint=f"Move it to fold-{stored_config.fold}, or pass --overwrite (Python: overwrite=True) "
                            "to train every fold again")
    stored, asked = experiment_settings(stored_config), experiment_settings(wanted)
    for unread in ("val_split",):  # each fold validates on its fold, whatever val_split says (training warns)
        stored.pop(unread, None)
        asked.pop(unread, None)
    if wanted.lr == "auto" and stored_config.lr_auto:  # the fold holds the rate the finder found for it
        stored["lr"] = "auto"
    if wanted.sizing == "probe":  # the fold's config.yaml holds what its probe chose, sizing.json what it was asked
        from .sizing_record import as_requested

        stored, asked = as_requested(run.path, stored, asked)
    from .recalibrate import SETTINGS as RECALIBRATED

    changed = sorted(k for k in set(stored) | set(asked) if stored.get(k) != asked.get(k))
    finished = run.has("model.json") and run.has("metrics.json")
    # `imgclf calibrate FOLD` since: a refit, not a refusal ("differs in calibrate")
    refit = bool(changed) and set(changed) <= set(RECALIBRATED) and finished
    if changed and not refit:
        raise bad_path("out", run.path.parent, "a folder whose finished folds were trained with these settings",
                       f"{run.path.name} differs in " + ", ".join(f"{k} ({stored.get(k)!r} there, {asked.get(k)!r} "
                                                                  "asked)" for k in changed[:3])
                       + (f" and {len(changed) - 3} more" if len(changed) > 3 else ""),
                       hint="Pass --overwrite (Python: overwrite=True) to train every fold again, or choose "
                            "another --out")
    if images is not None and run.has("dataset.json"):
        _check_same_images(run, images, capped=bool(wanted.per_class_max))
    if finished:
        return "recalibrate" if refit else "done"
    return "resume" if run.has("checkpoints/last.ckpt") else "restart"


def fit_folds(cfg: TrainConfig, *, overwrite: bool = False, report: bool = True, log=None) -> Folds:
    """Train (or finish) the K folds of `cfg` (cfg.folds = K) and write OUT/folds.json. A warning is said once:
    the folds share one data set and settings, and each fold's run repeated its split warnings (K times)."""
    with each_once():
        return _fit_folds(cfg, overwrite=overwrite, report=report, log=log)


def _fit_folds(cfg: TrainConfig, *, overwrite: bool, report: bool, log: Any) -> Folds:
    from ..data.index_data import refuse_folds
    from ..data.multilabel import is_label_index
    from ..train.engine_choice import several_processes
    from ..train.fit import TrainingInterrupted
    from .resume import resume_run
    from .run import train_run

    k = int(cfg.folds or 0)
    if cfg.task == "multilabel" or (isinstance(cfg.data, str) and is_label_index(cfg.data)):
        refuse_folds(k)  # before a fold is announced, not when its data is read
    if several_processes(cfg.devices, cfg.num_nodes, cfg.accelerator):
        # each process ran the folds' own bookkeeping: the second summarised the folds while the first still
        # evaluated the last one, failed, and both were killed
        raise invalid("devices", cfg.devices, "1 for a whole cross-validation (--folds without --fold)",
                      also={"num_nodes": cfg.num_nodes},
                      hint=f"Train one fold at a time on several devices: --folds {k} --fold I, or all on one")
    if cfg.time_limit:  # warned, not logged: --no-progress silenced it with the fold lines
        warn(f"the time limit ({cfg.time_limit}) is each fold's: {k} folds take up to {k} times it, and folds it "
             "stops may train different numbers of epochs (folds.json gives each fold's)")
    refuse_missing_data(cfg.data)  # before an --overwrite drops the summary and marks the folder as begun
    # a folder the first fold would refuse (one class, no images, a class of fewer images than folds) is refused
    # before a fold is announced, and before the summary goes and the folder is marked as an overwrite begun: the
    # right command then read "an --overwrite with other settings was interrupted there" (an image that fails to
    # decode is still found by the fold itself)
    listed = data_listing(cfg) if overwrite else _listing_or_none(cfg)
    if listed is not None:
        _refuse_classes_too_small(listed, k, cfg)
    out = writable_folder("out", Path(cfg.out) if cfg.out else next_free_dir("runs", f"{cfg.model}-folds"))
    if cfg.data:
        outside_data("out", out, cfg.data)
    _check_folder(out, k, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    if not overwrite and _continues_an_overwrite(out, cfg):
        # without it, the folds the interrupted overwrite had not reached were kept as they were (other data)
        overwrite = True
        warn("an --overwrite of this folder was interrupted: finishing it (the folds it trained are kept, the older "
             "ones trained again)")
    since = _overwrite_since(out, cfg) if overwrite else None
    runs = []
    sized: dict[str, Any] = {}
    images = _current_images(cfg, listed) if any(fold_dir(out, i).is_dir() for i in range(1, k + 1)) else None
    for i in range(1, k + 1):
        path = fold_dir(out, i)
        # With sizing=probe the first fold probes; the others train what it chose, so that the folds' mean and
        # spread are of one model, not of whichever width each probe read.
        wanted = cfg.model_copy(update={"out": str(path), "fold": i, **sized})
        state = _fold_state(RunDir(path), wanted, overwrite, since, images)
        if log is not None:
            log(f"fold {i}/{k}: " + {"new": "training", "done": "finished already, skipped",
                                     "recalibrate": "finished already, calibrated since with other settings: "
                                                    "refitted as asked, without training",
                                     "resume": "resuming from its checkpoint", "restart": "training again"}[state])
        try:
            if state == "recalibrate":
                from .recalibrate import SETTINGS, recalibrate

                recalibrate(path, report=report, **{name: getattr(wanted, name) for name in SETTINGS})
            elif state == "resume":  # how it runs as this re-run asks (--checkpoint-every, --logger to finish it)
                resume_run(path, report=report, **{name: getattr(wanted, name) for name in RUNTIME_ONLY})
            elif state != "done":
                train_run(wanted, overwrite=state == "restart", report=report)
        except TrainingInterrupted as exc:
            # the fold's own hint (imgclf train --resume FOLD) would finish that fold only, and no folds.json
            kept = " (with --overwrite too: the folds this overwrite trained are kept)" if overwrite else ""
            raise TrainingInterrupted(f"{exc.state} (fold {i} of {k}). Continue the cross-validation by running the "
                                      f"same imgclf train --folds command again with --out {shell_word(out)} "
                                      "(Python: the same "
                                      f"imgclf.fit call with out={str(out)!r}): finished folds are kept, this one "
                                      f"resumes{kept}",
                                      state=exc.state, exit_code=exc.exit_code) from None
        except BaseException:
            if not any(out.iterdir()):
                out.rmdir()  # a K refused before any fold trained leaves no empty folder behind
            raise
        runs.append(path)
        if cfg.sizing == "probe" and not sized:
            from .sizing import SIZED_SETTINGS

            sized = {k: v for k, v in RunDir(path).read_config().model_dump().items() if k in SIZED_SETTINGS}
    summary = summarize_folds(out, runs)
    write_json(out / FOLDS_FILE, summary)
    if overwrite or (out / OVERWRITE_MARK).exists():  # an overwrite finished, with --overwrite given or not
        _remove_other_folds(out, k)
        (out / OVERWRITE_MARK).unlink(missing_ok=True)  # a later --overwrite trains every fold again
    return Folds(out, runs, summary)


def _remove_other_folds(out: Path, k: int) -> None:
    """The folds past K of the cross-validation an overwrite replaced (5 folds overwritten with 3 left fold-4 and
    fold-5, which `runs` and `compare` then listed with the new ones): their run files, and their folders when
    nothing else is left in them."""
    from .run_folder import remove_run_files

    for i in range(k + 1, 101):
        path = fold_dir(out, i)
        if path.is_dir():
            remove_run_files(path)
            if not any(path.iterdir()):
                path.rmdir()
