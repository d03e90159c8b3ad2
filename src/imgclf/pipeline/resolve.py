"""The one place a training config is resolved: defaults → recipe → YAML file → explicit values.

The CLI, the Python API, studies, the demo and the benchmarks all call `resolve_config`, so a recipe or a
setting means the same thing everywhere. What it returns is what `config.yaml` stores, with the paths made
absolute so that `imgclf train --config runs/x/config.yaml --out runs/y` repeats the run from any folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import TrainConfig, make_config
from ..config_text import load_config_file
from ..config_text import is_none_word, parse_mapping
from ..errors import Described, bad_path, invalid, path_argument
from ..io import terminal_safe
from ..run_markers import WEIGHTS_FILE
from ..recipes import load_recipe

# Settings that name files or folders: stored absolute, so a saved config works from another working directory.
PATH_SETTINGS = ("data", "out", "cache_dir")
# Single-label settings a recipe may carry, and what they become on multi-label data unless the user gave them
# (as a value or in a --config file): recipes are written for one label per image (label smoothing has no one
# class to smooth towards), and a recipe such as `fast` should train an index file as it is; a value the user
# gives is still refused there.
MULTILABEL_RECIPE_VALUES = {"label_smoothing": 0.0, "sampler": "none"}
# Settings that are mappings: a layer adds to or replaces the keys of the one below instead of the whole mapping, so
# `--recipe fast-fmnist --model-args stem=stride` keeps the recipe's width (the whole mapping replaced, it trained
# the builder's default width 32 at a third of the speed). Not across models, nor under a stored config.yaml.
MAPPING_SETTINGS = ("model_args", "l2")


def _given(values: TrainConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    if values is None:
        return {}
    if isinstance(values, TrainConfig):
        return values.model_dump(exclude_unset=True)  # what its maker chose, not pydantic's defaults
    if not isinstance(values, Mapping):
        raise invalid("config", Described(f"an object of type {type(values).__name__}"),  # "a int" read as a slip
                      "a TrainConfig, a mapping of settings or None")
    return dict(values)


def _absolute(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for key in PATH_SETTINGS:
        # os.fspath, not str: a Run given as a folder is path-like, and its str is its repr
        # (a blank path is left for the config's own refusal: made absolute, '  ' named a folder of two spaces)
        if isinstance(out.get(key), (str, os.PathLike)) and os.fspath(out[key]).strip():
            out[key] = os.path.abspath(os.path.expanduser(os.fspath(out[key])))
        elif key == "data" and isinstance(out.get(key), (list, tuple)):  # several data folders
            out[key] = [os.path.abspath(os.path.expanduser(os.fspath(v)))
                        if isinstance(v, (str, os.PathLike)) and os.fspath(v) else v for v in out[key]]
    for key in ("weights", "class_weight"):  # files when they exist; package names and keywords stay as given
        value = out.get(key)
        if isinstance(value, str) and value and (Path(value).expanduser().is_file() or (
                key == "weights" and (Path(value).expanduser() / WEIGHTS_FILE).is_file())):
            # an earlier run's folder too: kept relative, --config from elsewhere read another run's backbone
            out[key] = os.path.abspath(os.path.expanduser(value))
    return out


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML file of settings, as a mapping (validated later, with everything else). Errors name the Python
    API's keyword, `config_file` (the command line adds its flag, --config)."""
    if not path_argument("config_file", path, "a YAML file's path (str or os.PathLike)").is_file():
        raise bad_path("config_file", path, "an existing YAML file", "a folder" if Path(path).is_dir() else "not found")
    return load_config_file(path)


def _file_settings(config_file: str | os.PathLike | None) -> dict[str, Any]:
    """A --config file's settings. Without lr_auto: a run's config.yaml repeated (--config RUN/config.yaml)
    trains at the rate that run's finder found, which no finder of the new run chose (its card said one had, with
    no sweep to show)."""
    values = read_config_file(config_file) if config_file is not None else {}
    return {k: v for k, v in values.items() if k != "lr_auto"}


def recipe_and_file(recipe: str | None, config_file: str | os.PathLike | None) -> dict[str, Any]:
    """The two lower layers: the recipe's settings, then the YAML file's. The recipe is `recipe`, else the one
    the file names; the result's `recipe` key says which was used."""
    file_values = _file_settings(config_file)
    stored = file_values.get("recipe")
    if recipe and "schema_version" in file_values and recipe != stored:
        # a run's config.yaml holds every setting and replaces the recipe's (`layer_settings`): trained as before,
        # the run recorded the recipe given, and compare took the two for different experiments
        raise invalid("recipe", recipe, f"{f'its own ({stored})' if stored else 'none'} with a run's config.yaml, "
                      "whose settings replace every setting of a recipe",
                      also={"config_file": str(config_file)},
                      hint="Train the recipe on its own (--recipe alone), or change settings of the run on the "
                           "command line")
    name = recipe or stored
    layered = layer_settings(load_recipe(name) if name else {}, file_values)
    if name:
        layered["recipe"] = name
    return layered


def refuse_unknown_keywords(values: Mapping[str, Any], keywords: tuple[str, ...] = ()) -> None:
    """A keyword that is neither a setting nor one of `keywords` (the calling function's own), refused with both
    offered: pydantic would offer the settings alone (`lr_find(stepz=20)` was told of lr_step, not steps)."""
    for name, value in values.items():
        if name not in TrainConfig.model_fields:
            raise invalid("setting", name, sorted({*TrainConfig.model_fields, "config_file", *keywords}),
                          also={name: value})


def resolve_config(values: TrainConfig | Mapping[str, Any] | None = None, *, recipe: str | None = None,
                   config_file: str | os.PathLike | None = None, keywords: tuple[str, ...] = (),
                   **explicit: Any) -> TrainConfig:
    """Layer the settings: TrainConfig's defaults, then the recipe's, then the YAML file's, then `values` and
    `explicit` (keyword arguments win over `values`). The recipe is named by `recipe`, else by a `recipe` key in
    the explicit values or the file. `None` values are "not given". `keywords`: the calling function's own
    keyword arguments, offered beside the settings when a keyword is neither (`lr_find(stepz=20)`)."""
    refuse_unknown_keywords(explicit, keywords)
    if isinstance(values, Mapping):  # fit({"data": ..., "report": False}): the generic list of 70 settings said why
        for name in (*keywords, "config_file"):
            if name in values and name not in TrainConfig.model_fields:
                raise invalid("setting", name, "a setting (a TrainConfig field) in the mapping of settings",
                              also={name: values[name]}, note=f"{name} is a keyword of the function, not a setting",
                              hint=f"Pass it as a keyword argument beside the mapping: (settings, {name}=...)")
    given = {k: v for k, v in {**_given(values), **explicit}.items() if v is not None}
    if isinstance(given.get("augment"), (list, tuple)) and all(isinstance(a, str) for a in given["augment"]):
        given["augment"] = ",".join(given["augment"])  # the checks below read the command line's comma list
    if given.get("lr_auto") and not isinstance(values, TrainConfig):
        raise invalid("lr_auto", given["lr_auto"], "left out: it records that --lr auto chose the learning rate",
                      hint="Pass lr='auto' (--lr auto) to have the LR finder choose it")
    file_values = _file_settings(config_file)
    chosen = {**file_values, **given}  # the user's own
    if isinstance(chosen.get("augment"), str):
        from ..data.augment import refuse_repeated_items, refuse_what_does_nothing

        refuse_repeated_items(chosen["augment"])
        # a run's own config.yaml repeated (--config RUN/config.yaml) trains as that run did: the fast recipe wrote
        # "hflip,fill=constant" where it dropped its crop
        users = given if "schema_version" in file_values else chosen
        if isinstance(users.get("augment"), str):
            refuse_what_does_nothing(users["augment"])
    layered = layer_settings(recipe_and_file(recipe or given.get("recipe"), config_file), given)
    if layered.get("recipe"):
        layered["recipe"] = recipe or given.get("recipe") or layered["recipe"]
    if "data" not in layered:
        raise invalid("data", Described("no data setting"), "given: the image folder to train on "
                      "(imgclf train DATA, or imgclf.fit(data=...))")
    if _multilabel(layered):
        layered.update({k: v for k, v in MULTILABEL_RECIPE_VALUES.items() if k not in chosen and k in layered})
    if layered.get("sizing") == "probe":
        # a TrainConfig handed in was resolved already: its width is the recipe's as much as its maker's
        own = {k: v for k, v in explicit.items() if v is not None}
        if isinstance(values, Mapping):
            own = {**{k: v for k, v in values.items() if v is not None}, **own}
        _refuse_what_the_probe_sets(layer_settings(file_values, own), layered, "schema_version" in file_values)
    from_file = {name: terminal_safe(os.fspath(config_file)) for name in file_values if name not in given}
    return make_config(from_file, **_absolute(layered))


def _refuse_what_the_probe_sets(own: Mapping[str, Any], layered: Mapping[str, Any], stored: bool) -> None:
    """sizing=probe chooses the width, the random erasing and the EMA for the budget: the same settings given by
    the user (`own`: values or a --config file) would be replaced without a word, so they are refused, with the
    way to train them as given. `stored`: the file is a run's config.yaml, which holds an earlier probe's choice."""
    width = layered.get("model_args")
    width = _mapping("model_args", width).get("width") if isinstance(width, (str, Mapping)) \
        and not is_none_word(width) else None
    as_given = "Add --sizing fixed to train it as given (the other settings stay"
    if stored:
        as_given = as_width = ("A run's config.yaml holds the settings it trained (a sized run's: its probe's "
                               "choice): --config without --sizing probe repeats them, --recipe fast probes afresh")
    else:
        as_width = as_given + ")"
        as_given += f"; width {width} unless --model-args width=N)" if width is not None else ")"
    model_args = own.get("model_args")
    if isinstance(model_args, (str, Mapping)) and not is_none_word(model_args) \
            and "width" in _mapping("model_args", model_args):
        raise invalid("model_args.width", _mapping("model_args", model_args)["width"], "left to the probe with "
                      "sizing=probe: it times widths of the fast family on this machine and trains the widest "
                      "the --time-limit affords", hint=as_width)
    augment = own.get("augment")
    erase = [item.strip() for item in augment.split(",")
             if item.partition("=")[0].strip().lower() == "erase"] if isinstance(augment, str) else []
    if erase:
        raise invalid("augment", augment, "without erase= with sizing=probe: the probe sets random erasing for "
                      "the epochs it predicts (0, 0.25 or 0.5), over the rest of the augmentation given",
                      note=f"{erase[0]} given", hint=as_given)
    if own.get("ema") is not None:  # `none` too: the probe may still set one
        raise invalid("ema", own["ema"], "left to the probe with sizing=probe: it sets an EMA of the weights for "
                      "the epochs it predicts", hint=as_given)


def layer_settings(lower: Mapping[str, Any], upper: Mapping[str, Any]) -> dict[str, Any]:
    """`upper`'s settings over `lower`'s; the mapping settings merged key by key (text such as "width=16" is
    parsed first, so a bad mapping gets the setting's own error). Two exceptions: a stored config.yaml (it has
    `schema_version`) is a whole run's settings and replaces; and where `upper` names another model than `lower`,
    `lower`'s model_args were that model's and are dropped."""
    out = {**lower, **upper}
    if "schema_version" in upper:
        return out
    keys = list(MAPPING_SETTINGS)
    # a lower layer without a model leaves it to the layers above: its model_args are for whichever they name
    if lower.get("model") is not None and upper.get("model") not in (None, lower["model"]) and "model_args" in lower:
        out["model_args"] = upper.get("model_args", {})
        keys.remove("model_args")
    for key in keys:
        below, above = lower.get(key), upper.get(key)
        if is_none_word(below) or is_none_word(above):  # unset (l2: none): nothing to merge
            continue
        if isinstance(below, (str, Mapping)) and isinstance(above, (str, Mapping)):
            out[key] = {**_mapping(key, below), **_mapping(key, above)}
    # caps per split merge as well: `--recipe s3-fer-cnn-small --per-class-max train=6` dropped the recipe's
    # test: 599 (S3's balanced test split); a single number caps every split and replaces
    below, above = lower.get("per_class_max"), upper.get("per_class_max")
    if _split_caps(below) and _split_caps(above):
        out["per_class_max"] = {**_mapping("per_class_max", below), **_mapping("per_class_max", above)}
    return out


def _split_caps(value: Any) -> bool:
    """per_class_max given split by split ({train: 2999} or 'train=2999'), not as one number for every split."""
    return isinstance(value, Mapping) or (isinstance(value, str) and "=" in value)


def _mapping(key: str, value: str | Mapping[str, Any]) -> dict[str, Any]:
    return parse_mapping(key, value) if isinstance(value, str) else dict(value)


def _multilabel(layered: Mapping[str, Any]) -> bool:
    """Whether the run trains multi-label data: an index file, or task: multilabel set by the user or file."""
    from ..data.multilabel import is_label_index

    return layered.get("task") == "multilabel" or is_label_index(layered.get("data"))


def resume_config(run_dir: str | os.PathLike, **overrides: Any) -> TrainConfig:
    """A stored run's config.yaml with `overrides` on top (e.g. more epochs); `out` stays the run."""
    from ..records import RunDir

    run = RunDir(run_dir)
    if not run.has("config.yaml"):
        folds = run.path.is_dir() and (run.has("folds.json") or (run.path / "fold-1" / "config.yaml").is_file())
        raise bad_path("resume", run_dir, "a run directory with config.yaml",
                       "no config.yaml" if run.path.exists() else "no such folder",
                       hint="It holds a cross-validation: run the same imgclf train DATA --folds K --out "
                            f"{run.path} command again (finished folds are kept, an interrupted one resumes)"
                       if folds else None)
    stored = run.read_config().model_dump()
    stored.update({k: v for k, v in overrides.items() if v is not None})
    stored["out"] = str(run.path)
    return make_config(**_absolute(stored))
