"""A search's folder: made for a new search, or found, read and checked for one resumed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import bad_path, invalid

STUDY_FILE, SEARCH_FILE = "study.db", "search.yaml"
STUDY_NAME = "imgclf"
# Settings a resumed search may change: how many trials and how long, not what is searched or on what.
RESUMABLE = ("progress",)


def search_folder(out: str | os.PathLike | None, model: str, resume: bool, data: Any = None) -> Path:
    """The search's folder: an existing search's to resume, else a new or empty one (`out`, or tune/<model>-N),
    outside the image folder `data` (inside, it failed every trial, then was left there as a class folder)."""
    from ..io import next_free_dir, outside_data, writable_folder

    if isinstance(out, str) and not out.strip():  # an unset $OUT: Path('') is the current folder
        raise invalid("out", out, "a folder for the search, or left out for tune/<model>-<n>")
    if resume:
        if out is None:
            raise invalid("resume", True, "given with --out (Python: out=): the folder of the search "
                          "to continue")
        folder = Path(out).absolute()
        missing = [name for name in (STUDY_FILE, SEARCH_FILE) if not (folder / name).is_file()]
        if missing:
            # study.db without search.yaml: a search killed (SIGKILL) while Optuna made its database kept nothing
            raise bad_path("out", folder, f"a search folder with {STUDY_FILE} and {SEARCH_FILE} to resume",
                           "not found" if not folder.exists() else f"no {' and no '.join(missing)}",
                           hint="Delete the folder and run the command without --resume: nothing of the search was "
                                "kept" if missing == [SEARCH_FILE] else None)
        return folder
    if out is not None and data:
        outside_data("out", out, [data] if isinstance(data, (str, os.PathLike)) else data)
    folder = writable_folder("out", Path(out)).absolute() if out is not None else next_free_dir("tune", model)
    if (folder / STUDY_FILE).exists():
        started = (folder / SEARCH_FILE).is_file()  # else killed while Optuna made its database: nothing to resume
        raise bad_path("out", folder, "a folder without a search", f"holds {STUDY_FILE}" + (
                           "" if started else f" without {SEARCH_FILE}: a search stopped before its first trial"),
                       hint="Pass --resume to continue that search, or another --out (Python: resume=True, or another "
                            "out=)" if started else "Delete the folder (nothing of the search was kept), or pass "
                            "another --out")
    if folder.exists() and any(folder.iterdir()):
        raise bad_path("out", folder, "an empty or new folder", "not empty")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def check_resume(folder: Path, stored: dict[str, Any], search: dict[str, Any]) -> None:
    """A resumed search runs the stored settings and space: anything else would mix two searches in one study."""
    for key in ("settings", "space", "seed"):
        if key == "settings":
            old, new = stored["settings"], search["settings"]
            changed = sorted(k for k in set(old) | set(new) if k not in RESUMABLE and old.get(k) != new.get(k))
            if changed:
                name = changed[0]
                raise invalid(name, new.get(name), f"{old.get(name)!r} as in the search being resumed",
                              where=f"--resume {folder}", note=f"changed: {', '.join(changed)}",
                              hint="Resume with the same data, recipe and settings, or start a new search")
        elif stored[key] != search[key]:
            raise invalid(key, search[key], f"{stored[key]!r} as in the search being resumed",
                          where=f"--resume {folder}")
    # searches started before multi-label ones ranked by mAP recorded no objective: theirs was accuracy
    before = stored.get("objective", "val_accuracy")
    if before != search["objective"]:
        raise invalid("resume", True, f"a search that ranks its trials by {search['objective']}, as new ones do",
                      where=f"--out {folder}",
                      note=f"the search being resumed ranked its trials by {before} (started by an earlier release): "
                           "its trials' values and the new ones' would not compare",
                      hint="Start a new search (another --out) on the same settings")


def resumed_request(out: str | os.PathLike | None, config: Any, config_file: Any, recipe: str | None,
                    values: dict[str, Any], space: Any,
                    time_limit: Any) -> tuple[Any, dict[str, Any], Any, Any, dict[str, Any]]:
    """`tune --resume --out S`: what is not given again is what the search started from (config, keyword values,
    space and the whole search's time limit, as `tune` takes them). A time-limited search resumed without
    --time-limit trained its next trials to their full epochs, past the budget it was started with. Last, the
    search.yaml read (`check_same_model` reads it too)."""
    from ..io import read_yaml

    started = read_yaml(search_folder(out, "", True) / SEARCH_FILE)
    if time_limit is None:
        time_limit = started.get("time_limit")
    given = config if isinstance(config, Mapping) else {}
    if config is None and config_file is None and recipe is None:
        # where nothing else says what the trials train, the stored settings are the base: the data given again
        # (`tune DATA --resume`) is compared with theirs, where it was taken with the defaults of every other
        # setting, and refused as a change of the epochs, image size, ... the search had not been given
        config = started.get("settings")
    elif values.get("data") is None and not given.get("data") and not isinstance(config, TrainConfig):
        # it said "data must be given", naming imgclf train: a --config file or recipe given again is compared
        # with the stored settings, on the data they name
        values = {**values, "data": started.get("settings", {}).get("data")}
    if space is None:
        space = started.get("space")  # the model's default space, refused as a change of the one searched
    return config, values, space, time_limit, started


def refuse_changed_data(folder: Path, cfg: Any) -> None:
    """A resumed search whose data folder changed since its trials were split: the new trials drew other train,
    val and test images (36/3/3 then 60/6/6), and the best was picked from validation accuracies of other images."""
    from ..pipeline.same_data import images_changed, labelled_images
    from ..records import RunDir

    trials = sorted((folder / "trials").iterdir()) if (folder / "trials").is_dir() else []
    first = next((RunDir(t) for t in trials if (t / "dataset.json").is_file()), None)
    if first is None:
        return
    try:
        images = labelled_images(cfg)
    except Exception:  # a folder or an index that cannot be read: the next trial's own error says so
        return
    if images is None:  # an index whose labels are chosen (classes, drop_classes): not told apart here
        return
    said = images_changed(first, images, capped=bool(cfg.per_class_max))
    if said:
        raise invalid("data", cfg.data, "the images the search's trials were split from", where=f"--resume {folder}",
                      note=f"{said} since {first.path.name} was split",
                      hint="Start a new search (another --out) on the data as it is now, or put the images back: "
                           "trials split from other images are ranked on other validation images")


def discard_unused(folder: Path, lock_file: str) -> bool:
    """Empty a new search's folder whose every trial was refused before its first epoch (a base setting no run
    accepts): it held nothing to resume, and the corrected command was told to resume it, which refused the
    correction. Not while another search holds its lock (one that won the race for the folder). Whether it was."""
    import shutil

    from ..locks import is_locked
    from ..records.run_dir import saved_an_epoch

    trials = folder / "trials"
    if is_locked(folder / lock_file) or (trials.is_dir() and any(saved_an_epoch(t) for t in trials.iterdir())):
        return False
    for path in folder.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return True


def check_same_model(out: Any, started: Mapping[str, Any], model: str) -> None:
    """A resumed search trains the model it `started` with (its search.yaml; `check_resume` compares every other
    setting later)."""
    folder = Path(out).absolute()
    started = (started.get("settings") or {}).get("model")
    if started is not None and started != model:
        raise invalid("model", model, f"{started!r} as in the search being resumed", where=f"--resume {folder}",
                      hint="Resume with the same model, or start a new search (another --out)")


def file_sets(key: str, config_file: Any) -> bool:
    """Whether the YAML settings file `config_file` (None: no file) sets `key` itself (resolve_config has read it
    already: a file it refused never reaches here)."""
    if config_file is None:
        return False
    from ..io import read_yaml

    try:
        found = read_yaml(config_file)
    except (OSError, ValueError):
        return False
    return isinstance(found, Mapping) and found.get(key) is not None
