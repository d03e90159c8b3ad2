"""A training run's folder: claimed (--out, or a new runs/<model>-N), checked against the run it may hold, and
taken back when the run fails before training (its empty folders) or is replaced (its own files, none other)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..config import TrainConfig
from ..errors import bad_path
from ..data.folder import IMAGE_EXTENSIONS, imgclf_output
from ..io import make_free_dir, outside_data, writable_folder
from ..ood import STATS_FILES
from ..records.run_dir import LOCK_FILE, is_run_dir, run_path
from ..run_markers import FINISHING_FILE, holds_runs
from .resume_record import RESUMES_FILE
from ..file_names import shell_word

RUN_FILES = ("config.yaml", "dataset.json", "model.safetensors", *STATS_FILES, "model.json", "history.csv",
             "predictions.csv", "metrics.json", "report.html", "lr_find.json", "lr_find.png", "sizing.json",
             RESUMES_FILE, FINISHING_FILE)
RUN_FOLDERS = ("checkpoints", "plots", "evaluations", "logs", "export")


def refuse_run_file(argument: str, output: str | os.PathLike, run_dir: str | os.PathLike) -> None:
    """Refuse an output file that is one of the run's own files, or lies in one of its folders: `predict RUN -o
    RUN/predictions.csv` replaced the evaluation's predictions with a table the report then refused, and `-o
    RUN/model.safetensors` the weights, which every later command refused as changed since the card was written.
    Another name in the run folder (RUN/new-images.csv) is the user's own file and is let through."""
    run = os.path.realpath(os.path.expanduser(run_dir))
    if not os.path.isfile(os.path.join(run, "model.json")):  # no run there: the run's own error comes first
        return
    inside = os.path.relpath(os.path.realpath(os.path.expanduser(output)), run)
    first = inside.split(os.sep)[0]
    if first in (*RUN_FILES, *RUN_FOLDERS, LOCK_FILE):  # ".." (outside the run) is none of them
        where = f"in the run's {first}/" if first in RUN_FOLDERS else f"the run's {first}"
        raise bad_path(argument, output, "a file that is not one of the run's own files or folders",
                       f"it is {where}", hint="Write it outside the run folder, or under another name")


@contextmanager
def not_while_training(run_dir: str | os.PathLike, command: str) -> Iterator[None]:
    """Hold the run's train.lock while `command` (evaluate, calibrate, report) rewrites its files: a resume running
    at the same time put back its own model.json over calibrate's, which had said it wrote it (config.yaml then
    asked for one acceptance and model.json held another), and the resume waits for none of them. A run folder
    that takes no lock file (read-only) is only checked; a missing one is the command's own error to give."""
    from ..locks import exclusive, is_locked

    folder = run_path(run_dir)  # "~/runs/a" took no lock: its literal text is no folder
    in_use, hint = "in use by another imgclf process now (a training, or an evaluate, calibrate or report of it: " \
        "it holds train.lock)", f"Wait for that process to end, then run imgclf {command} again"
    if not folder.is_dir():
        yield
        return
    if not os.access(folder, os.W_OK):
        if is_locked(folder / LOCK_FILE):
            raise bad_path("run", folder, "a run no other process is using", in_use, hint=hint)
        yield
        return
    with exclusive(folder, LOCK_FILE, "run", "a run no other process is using", in_use, hint):
        if (folder / FINISHING_FILE).exists():  # (no process finishes it now: this one holds the lock)
            # its weights, card and scores were being rewritten one after the other: a report of it showed the
            # earlier epoch's scores beside the new weights, and its Grad-CAM "a damaged copy or disk?"
            raise bad_path("run", folder, "a finished run", "interrupted while it was being finished (its weights, "
                           "card, scores and report are written one after the other)",
                           hint=f"Finish it with: imgclf train --resume {shell_word(folder)}, then run imgclf "
                                f"{command} again")
        yield


def claim_run_dir(cfg: TrainConfig, resume: bool = False) -> tuple[Path, Path | None]:
    """The run's folder (--out, else a new runs/<model>-N), created, and the outermost folder this call created
    for it (the run's own, or a parent such as runs/; None when the run's folder was there already). resume: the
    folder is the run given to --resume, which its errors name (a read-only run was said to be a bad --out)."""
    if cfg.cache_dir and cfg.data:  # the next run's scan read the cache's folders as a class with no image
        outside_data("cache_dir", cfg.cache_dir, cfg.data)
    if not cfg.out:
        if cfg.data:
            outside_data("out", Path("runs").absolute(), cfg.data)
        made = first_missing(Path("runs"))
        run_dir = make_free_dir("runs", cfg.model)
        return run_dir, made or run_dir
    run_dir = writable_folder("resume" if resume else "out", Path(cfg.out))
    if cfg.data:
        outside_data("out", run_dir, cfg.data)
    made = first_missing(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, made


def first_missing(path: Path) -> Path | None:
    """The outermost of `path` and its parents that does not exist yet (what mkdir(parents=True) creates first)."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def remove_empty_folders(run_dir: Path, outermost: Path) -> None:
    """A run that failed on its data or model leaves no empty folder behind (`compare runs/*` tripped on them),
    nor the empty parents (runs/) it made for it: never a folder above `outermost`. (The run folder was absolute
    and `outermost` relative, runs/, so the two never met: a failed train in an empty folder removed that folder
    and every empty one above it.)"""
    run_dir, outermost = Path(os.path.abspath(run_dir)), Path(os.path.abspath(outermost))
    for folder in (run_dir, *run_dir.parents):
        if folder != outermost and outermost not in folder.parents:
            return
        if not folder.is_dir() or any(folder.iterdir()):
            return
        folder.rmdir()
        if folder == outermost:
            return


def check_run_dir(run_dir: Path, overwrite: bool, resume: bool) -> bool:
    """Refuse a folder holding another run (unless overwrite) or other files; True when it holds a run, or a run's
    files (an lr-find's), that this one replaces. The old run is removed only once the new command's data and
    model are built (`remove_run_files`): a mistyped command with --overwrite must not cost the run it was meant to
    replace. Never a folder of runs or a data set, --overwrite or not: the run would wrap the runs (`imgclf runs`
    then listed it alone) or its folders become classes."""
    if resume:
        return False
    if is_run_dir(run_dir):
        if not overwrite:
            # --out NEW first: `--config RUN/config.yaml` repeats a run's settings, its out included, and the
            # advice to --overwrite then replaced the run the user meant to repeat
            raise bad_path("out", run_dir, "a new run directory", "holds another run",
                           hint="Pass --out NEW for a new run (its settings repeated from a config.yaml too), "
                                "--overwrite to replace this one, or --resume to continue it (Python: out=NEW, "
                                "overwrite=True, resume=RUN)")
        return True
    # before "not empty", whose advice (--overwrite) these refuse too
    held = imgclf_output(run_dir) or ("a folder of runs" if holds_runs(run_dir) else None)
    if held is not None:
        raise bad_path("out", run_dir, "an empty or new folder", f"{held}: --overwrite replaces one run, not those",
                       hint="Pass another --out")
    if _holds_class_folders(run_dir):
        raise bad_path("out", run_dir, "an empty or new folder", "it holds folders of images: a data set, not a run",
                       hint="Pass another --out")
    if not overwrite and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        raise bad_path("out", run_dir, "an empty or new folder", "not empty",
                       hint="Pass --overwrite (Python: overwrite=True) to use it anyway")
    return any((run_dir / name).exists() for name in RUN_FILES)


def _holds_class_folders(folder: Path) -> bool:
    """Whether `folder` looks like a data set: a subfolder with image files in it (a class) or in its subfolders
    (a split's classes), past what imgclf writes there itself (plots/, an lr-find's lr_find.png, runs)."""
    for child in _entries(folder):
        try:
            if child.is_dir() and child.name not in RUN_FOLDERS and not is_run_dir(child) and _has_images(child):
                return True
        except OSError:  # what cannot be read is not judged (--out / met /proc/1/cwd: an internal error)
            continue
    return False


def _has_images(child: Path) -> bool:
    """(An OSError is the caller's: what cannot be read is not judged.)"""
    for inner in child.iterdir():
        if inner.is_file() and inner.suffix.lower() in IMAGE_EXTENSIONS:
            return True
        if inner.is_dir() and not is_run_dir(inner) and any(
                p.suffix.lower() in IMAGE_EXTENSIONS for p in inner.iterdir() if p.is_file()):
            return True
    return False


def _entries(folder: Path) -> list[Path]:
    """What `folder` lists, nothing where it cannot be read."""
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def remove_run_files(run_dir: Path) -> None:
    """A run's own files and folders (the sweep's, the probe's, the loggers', the checkpoints, the report's), none
    other: those of a run being replaced, or of one that diverged."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for folder in RUN_FOLDERS:
        shutil.rmtree(run_dir / folder, ignore_errors=True)
