"""What a search may change: parameters (a config field, or one of the model builder's arguments as
`model_args.NAME`) with a range or a list of choices, from a `--space` YAML file or a model family's default.

    lr: {low: 1e-4, high: 1e-1, log: true}     # a float range (log: sampled uniformly in log space)
    epochs: {low: 2, high: 8}                  # an int range: the field is an int
    batch_size: [32, 64, 128]                  # choices
    augment: {choices: ["hflip", ""]}          # choices, as search.yaml and tune.json record them
    model_args.dropout: {low: 0.0, high: 0.5}  # an argument of the model's builder

Every end of a range and every choice is checked against `TrainConfig` (with the search's other settings)
before any trial runs, so a bad space fails in a second, on one line, not in trial 7.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import TrainConfig, make_config
from ..config_checks import MAX_LR
from ..errors import ImgclfError, bad_path, invalid

# Fields a search never changes: where things are, what the run is, how it is launched or reported.
FIXED = ("schema_version", "data", "out", "recipe", "lr_auto", "folds", "fold", "cache_dir", "cache_budget",
         "num_workers", "progress", "logger", "mlflow_uri", "accelerator", "devices", "strategy", "num_nodes",
         "classes", "drop_classes", "per_class_max", "checkpoint_every", "model_args", "l2")
# Fields that draw the split: trials are compared on their validation scores, so every trial must be scored on the
# same validation images (searched, val_split 0.02 won on 4 images, and each seed's test images trained others)
SAME_SPLIT = ("seed", "val_split", "test_split", "group_duplicates")
# Fields that decide what a trial is scored by: a multi-label trial's label-wise accuracy (0.67 for predicting no
# label on 3 labels) was ranked against single-label accuracies, and chosen
SAME_OBJECTIVE = ("task",)
RANGE_KEYS = ("low", "high", "log", "step")
NUMERIC = (int, float)


@dataclass(frozen=True)
class Param:
    """One searched setting: `choices`, or a numeric range [low, high] (`log`: log-uniform; `step`: a grid)."""

    name: str  # a TrainConfig field, or model_args.NAME
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False
    choices: tuple[Any, ...] | None = None

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial draws for this parameter."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


def searchable_fields() -> list[str]:
    return [name for name in TrainConfig.model_fields
            if name not in FIXED + SAME_SPLIT + SAME_OBJECTIVE + ("time_limit",)] + \
        ["model_args.NAME"]


def apply(values: dict[str, Any], sampled: dict[str, Any]) -> dict[str, Any]:
    """Settings with a trial's sampled values put in (model_args.NAME into the model_args mapping)."""
    out = dict(values)
    for name, value in sampled.items():
        if name.startswith("model_args."):
            out["model_args"] = {**(out.get("model_args") or {}), name.split(".", 1)[1]: value}
        else:
            out[name] = value
    return out


def _number(name: str, key: str, value: Any, spec: Any) -> float:
    """YAML reads 1e-4 (no dot) as text: such text is a number here too."""
    if isinstance(value, bool):
        raise invalid(f"space {name}", spec, f"a range whose {key} is a number")
    if isinstance(value, NUMERIC):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise invalid(f"space {name}", spec, f"a range whose {key} is a number") from None


def _field_type(name: str) -> type | None:
    """int or float for a numeric field (lr: its number part), None for anything else."""
    if name.startswith("model_args."):
        return float
    annotation = TrainConfig.model_fields[name].annotation
    if annotation in NUMERIC:
        return annotation
    import typing

    numbers = [a for a in typing.get_args(annotation) if a in NUMERIC]
    return numbers[0] if numbers else None


def parse_param(name: str, spec: Any) -> Param:
    """One entry of a space: a list of choices or a {low, high[, log][, step]} range, its field checked."""
    if name in SAME_SPLIT:
        raise invalid("space field", name, "a setting other than those that draw the split "
                      f"({', '.join(SAME_SPLIT)})", note="every trial must be scored on the same validation images, "
                      "or the search compares splits, not settings", hint=f"Give {name} as a setting of the search "
                      "(--seed, --val-split, ...; Python: seed=, val_split=), the same for every trial")
    if name in SAME_OBJECTIVE:
        raise invalid("space field", name, f"a setting other than {', '.join(SAME_OBJECTIVE)}",
                      note="it decides what trials are scored by (accuracy, or a multi-label run's mAP), so trials "
                      "would be ranked on different scores", hint=f"Give {name} as a setting of the search (--{name}; "
                      f"Python: {name}=), the same for every trial")
    if name == "time_limit":
        raise invalid("space field", name, "a setting other than time_limit", note="a trial's time limit is its "
                      "share of the search's --time-limit, or the time limit of the settings searched",
                      hint="Search epochs instead, or give the search a --time-limit to share among its trials")
    if not isinstance(name, str) or not (name in TrainConfig.model_fields and name not in FIXED + SAME_SPLIT
                                         + SAME_OBJECTIVE
                                         or re.fullmatch(r"model_args\.[A-Za-z_][A-Za-z0-9_]*", name)):
        raise invalid("space field", name, searchable_fields())
    if isinstance(spec, dict) and set(map(str, spec)) == {"choices"}:
        spec = spec["choices"]  # the form search.yaml and tune.json record a space in
        if not isinstance(spec, (list, tuple)):
            raise invalid(f"space {name} choices", spec, "a non-empty list of distinct choices")
    if isinstance(spec, (list, tuple)):
        if spec and not all(c is None or isinstance(c, (str, int, float, bool)) for c in spec):
            raise invalid(f"space {name}", spec, "a list of plain values (numbers, text, true/false)")
        # by value, true apart from 1: [1, 1.0] drew the same setting under two choices
        if not spec or len({(isinstance(c, bool), c) for c in spec}) != len(spec):
            raise invalid(f"space {name}", spec, "a non-empty list of distinct choices")
        return Param(name, choices=tuple(spec))
    if not isinstance(spec, dict):
        raise invalid(f"space {name}", spec, "a list of choices ([a, b] or {choices: [a, b]}) or a range "
                      "{low: ..., high: ...[, log: true][, step: ...]}")
    unknown = sorted(set(map(str, spec)) - set(RANGE_KEYS))
    if unknown:
        raise invalid(f"space {name} key", unknown[0], RANGE_KEYS, also={f"space {name}": spec},
                      hint="Choices go alone: {choices: [a, b]}, or the list [a, b]" if "choices" in spec else None)
    if "low" not in spec or "high" not in spec:
        raise invalid(f"space {name}", spec, "a range with both low and high")
    kind = _field_type(name)
    if kind is None:
        raise invalid(f"space {name}", spec, "a list of choices: the field is not a number")
    low, high = _number(name, "low", spec["low"], spec), _number(name, "high", spec["high"], spec)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise invalid(f"space {name}", spec, "a range whose log is true or false")
    step = None if spec.get("step") is None else _number(name, "step", spec["step"], spec)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise invalid(f"space {name}", spec, "a range with finite low < high")
    if log and low <= 0:
        raise invalid(f"space {name}", spec, "a range with low > 0 when log is true")
    if step is not None and (step <= 0 or log):
        raise invalid(f"space {name}", spec, "a range with step > 0, and no step when log is true")
    integer = kind is int
    if integer and not all(float(v).is_integer() for v in (low, high, step or 1)):
        raise invalid(f"space {name}", spec, "a range of whole numbers: the field is an integer")
    return Param(name, float(low), float(high), log, None if step is None else float(step), integer)


def typed_for_model(params: list[Param], model: str) -> list[Param]:
    """A model_args range takes the type of the builder's default: an integer argument (fast_resnet's width)
    drew 8.0 .. 32.0 and every trial failed "must be an integer"; whole-number ends then draw whole numbers."""
    import dataclasses
    import inspect

    from ..models import get_model_info

    info = get_model_info(model)
    defaults = {k: v.default for k, v in inspect.signature(info.builder).parameters.items()}
    typed = []
    for p in params:
        name = p.name.split(".", 1)[1] if p.name.startswith("model_args.") else None
        default = defaults.get(name) if name else None
        whole = p.choices is None and all(float(v).is_integer() for v in (p.low, p.high, p.step or 1))
        if isinstance(default, int) and not isinstance(default, bool) and whole:
            p = dataclasses.replace(p, integer=True)
        typed.append(p)
    return typed


def check_against(params: list[Param], base: dict[str, Any]) -> None:
    """Every end of every range and every choice, tried in a config with the search's other settings, with each
    model the search may draw: a value TrainConfig refuses (lr above 10, an unknown optimiser) is reported for the
    space, with TrainConfig's reason; a model_args.NAME the model's builder does not take, or a transfer setting
    (features_only, weights, freeze_epochs, ...) for a model without a timm backbone, too (every trial that drew
    the pair failed on it, and failed trials are redrawn: ten of them before the search gave up). The search's own
    settings are tried first, where the model is not searched: their error names their own argument."""
    from ..models import get_model_info
    from ..train.finetune import refuse_transfer_settings

    if base.get("task", "auto") == "auto" and base.get("data"):
        # the data's task, as each trial resolves it: a setting only the other task takes (loss asl, focal on
        # multi-label data, label smoothing) is refused by the task's checks, which `auto` leaves to the trials
        from ..data.multilabel import is_label_index

        base = {**base, "task": "multilabel" if is_label_index(base["data"]) else "single"}
    searched = next((p for p in params if p.name == "model" and p.choices is not None), None)
    if searched is None:
        fixed = make_config(**base)
        refuse_transfer_settings(fixed, get_model_info(fixed.model))
    models = list(searched.choices) if searched is not None else [base.get("model")]
    for p in params:
        for model in models if p.name != "model" else [None]:
            settings = base if model is None else dict(base, model=model)
            _check_param(p, settings, with_model=f" with model {model}" if searched is not None and model else "")
    _check_read(params, base)


def _check_param(p: Param, base: dict[str, Any], with_model: str) -> None:
    from ..models import get_model_info
    from ..train.finetune import refuse_transfer_settings

    if p.name.startswith("model_args.") and base.get("model"):
        info = get_model_info(base["model"])
        if not info.pretrained and p.name.split(".", 1)[1] not in info.arg_names:
            raise invalid("space field", p.name, [f"model_args.{n}" for n in info.arg_names] or
                          f"left out: {base['model']} takes no model_args", where=f"model {base['model']}")
    values = p.choices if p.choices is not None else (p.low, p.high)
    for value in values:
        if p.integer and p.choices is None:
            value = int(value)
        try:
            cfg = make_config(**apply(base, {p.name: value}))
            info = get_model_info(cfg.model)  # TrainConfig takes any name: the registry knows the models
            refuse_transfer_settings(cfg, info)
            # a size drawn below the model's least, refused by each trial that drew it (the search's own size is
            # the trials' to refuse, in its own name)
            if p.name == "img_size" and cfg.img_size < info.min_img_size:
                raise invalid("img_size", cfg.img_size, f"at least {info.min_img_size}", where=f"model {cfg.model}")
            if p.name.startswith("model_args.") and base.get("model"):
                _build_with(base, p.name.split(".", 1)[1], value)
            elif p.name == "model":  # each model drawn with the search's own model_args
                _build_with(dict(base, model=value), None, None)
        except ImgclfError as exc:
            raise invalid(f"space {p.name}", p.describe(), "values the setting accepts",
                          note=f"{value!r}{with_model}: {str(exc).splitlines()[0]}") from None


def _build_with(base: dict[str, Any], name: str | None, value: Any) -> None:
    """One of our own models built with model_args NAME=value (and the search's other model_args): its builder's
    types and ranges (model_args.width 2.5, dropout 1.5) refused every trial that drew them, one by one, after the
    search had begun. A pretrained (timm) backbone is not built here: seconds each, and its arguments are timm's."""
    from ..models import create_model, get_model_info

    info = get_model_info(base["model"])
    if info.pretrained:
        return
    args = {**(base.get("model_args") or {}), **({name: value} if name is not None else {})}
    create_model(base["model"], num_classes=2, img_size=base.get("img_size") or info.default_img_size, **args)


def _check_read(params: list[Param], base: dict[str, Any]) -> None:
    """A searched setting that no trial reads (momentum beside Adam, lr_patience without the plateau schedule) is
    refused: every trial trained the same model whatever it drew, and a "best" was tested and reported."""
    from ..unused_settings import READ_ONLY_WITH

    searched = {p.name: p for p in params}
    dependent = [p for p in params if p.name in READ_ONLY_WITH]
    fixed = make_config(**base) if dependent else None  # the settings every trial shares
    for p in dependent:
        decider, readers = READ_ONLY_WITH[p.name]
        drawn = searched[decider].choices if decider in searched else None
        values = drawn if drawn is not None else (getattr(fixed, decider),)
        if not any(v in readers for v in values):
            raise invalid("space field", p.name, f"a setting the trials read: {p.name} is read with {decider} "
                          f"{' or '.join(map(str, readers))}", note=f"the trials train with {decider} "
                          f"{' or '.join(map(str, values))}", hint=f"Search {decider} too, or set it (--"
                          f"{decider.replace('_', '-')} {readers[0]})")


def read_space(path: str | os.PathLike) -> list[Param]:
    """A --space YAML file: a mapping of field -> range or choices."""
    from ..io import read_yaml

    path = Path(path)
    if not path.is_file():
        raise bad_path("space", path, "a YAML file of field: range entries", "a folder" if path.is_dir() else
                       "not found")
    try:
        doc = read_yaml(path)
    except Exception as exc:  # a YAML syntax error: the file and the parser's first line
        raise invalid("space", str(path), "a YAML mapping of field: range entries",
                      note=str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    if not isinstance(doc, dict) or not doc:
        raise invalid("space", str(path), "a YAML mapping of field: range entries, at least one",
                      note=f"the file holds {type(doc).__name__}")
    return [parse_param(name, spec) for name, spec in doc.items()]


def default_space(base: TrainConfig, lr_given: bool = False) -> list[Param]:
    """The search a model family gets without --space, around the settings it starts from (recipe or defaults):

    - lr, log-uniform: a decade either side of the rate given (`lr_given`: --lr, say lr-find's suggestion,
      which the search otherwise dropped without a word); else Adam/AdamW 1e-4..1e-2, SGD 1e-3..0.5 (SGD with
      momentum trains at ~10x Adam's rates), a pretrained backbone a decade lower (fine-tuning keeps what it
      knows);
    - weight_decay, log-uniform 1e-6..1e-2; label_smoothing 0..0.2 (single-label data only);
    - batch_size: half, the same and double the starting one;
    - augmentation on or off: the start's own spec, or a mild one without flips (flips change digits and
      text) when it has none; never for features_only (no augmentation there);
    - dropout where the model builder has it (model_args.dropout 0..0.5)."""
    from ..models import get_model_info

    info = get_model_info(base.model)
    sgd = base.optimizer == "sgd"
    low, high = (1e-3, 0.5) if sgd else (1e-4, 1e-2)
    if info.pretrained:
        low, high = low / 10, high / 10
    if lr_given and isinstance(base.lr, (int, float)):
        low, high = base.lr / 10, min(base.lr * 10, MAX_LR)  # --lr 2 asked a range to 20, which lr refuses
    from ..data.multilabel import is_label_index

    multilabel = base.task == "multilabel" or (base.task == "auto" and is_label_index(base.data))
    params = [Param("lr", low, high, log=True), Param("weight_decay", 1e-6, 1e-2, log=True),
              # a single-label setting: every multi-label trial was refused for it, and the search with them
              *([] if multilabel else [Param("label_smoothing", 0.0, 0.2)]),
              Param("batch_size", choices=tuple(sorted({max(8, base.batch_size // 2), base.batch_size,
                                                        base.batch_size * 2})))]
    if not base.features_only:
        params.append(Param("augment", choices=(base.augment.strip() or "shift=0.1,zoom=0.1", "")))
    if "dropout" in info.arg_names:
        params.append(Param("model_args.dropout", 0.0, 0.5))
    return params
