"""What a cell of an imbalance study trains with: its configuration ('+'-joined tokens) and the protocol that
splits its subset.

Configurations are '+'-joined tokens (S4's three are none, reg, reg+bn):
  none        no regularisation: no weight decay, no augmentation, dropout 0, no batch norm, no L2 penalty
              (what the model has no argument for, it keeps: `built_in_regularisation`)
  reg         weight decay 5e-4 + augmentation (rotate=20, hflip, crop=3 px, zero fill) + dropout 0.5
  bn          batch normalisation layers (the model's `batch_norm` argument)
  weighted    class-weighted loss (class_weight=balanced)
  oversample  class-balanced sampler (sampler=oversample), undersample likewise
  focal       focal loss (loss=focal, focal_gamma from the overrides, default 2)

Protocols (how each cell's subset is split):
  standard    the run's own train / validation / test split (val_split, test_split); curves on validation
  s4          S4's: 70 % train / 30 % test, no validation split; the test split is scored after every epoch
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import invalid

S4_RHOS = (1.0, 3.0, 7.0, 15.0)
S4_CONFIGS = ("none", "reg", "reg+bn")
# S4: rotation +-20 degrees, left-right flip, translation +-3 px; MATLAB's imageDataAugmenter fills what they
# uncover with 0 (FillValue), not with the nearest edge pixel
REG_AUGMENT = "rotate=20,hflip,crop=3,fill=constant"
REG_WEIGHT_DECAY = 5e-4  # S4's SGD weight decay

# Everything a configuration decides starts "off"; tokens switch parts on.
_BASE_TRAIN: dict[str, Any] = {"weight_decay": 0.0, "augment": "", "class_weight": "none", "sampler": "none",
                               "loss": "ce"}
# The Keras-style L2 penalties some reference models declare (model_s, fer_cnn) are regularisation too: off in
# every configuration, which regularises through weight decay alone ('none' on model_s trained with its L2)
_BASE_MODEL: dict[str, Any] = {"dropout": 0.0, "batch_norm": False, "conv_l2": 0.0, "dense_l2": 0.0, "l2": 0.0}
TOKENS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "none": ({}, {}),
    "reg": ({"weight_decay": REG_WEIGHT_DECAY, "augment": REG_AUGMENT}, {"dropout": 0.5}),
    "bn": ({}, {"batch_norm": True}),
    "weighted": ({"class_weight": "balanced"}, {}),
    "oversample": ({"sampler": "oversample"}, {}),
    "undersample": ({"sampler": "undersample"}, {}),
    "focal": ({"loss": "focal"}, {}),
}
# Which images and classes a cell trains on is the study's subset (per_class, rho, mu, minority): a class filter
# crashed the summary on a class the cells no longer had, per_class_max levelled the imbalance away (rho 4 trained
# at 1.25), and folds wrote fold folders the summary never read
SUBSET_DECIDED = ("classes", "drop_classes", "per_class_max", "folds", "fold")
CONTROLLED = tuple(_BASE_TRAIN) + ("data", "out", "seed", "model", "resume") + SUBSET_DECIDED
STUDY_MODEL_ARGS = tuple(_BASE_MODEL)

PROTOCOLS = {
    "standard": "each run's own train / validation / test split (val_split, test_split); curves on validation",
    "s4": "S4's 70/30 train/test split without a validation split; the test split is scored after every epoch",
}
# S4's protocol as run settings. The run's one held-out split (its `val` split: 30 %, stratified, seeded by the
# cell's seed) is S4's test split: Lightning scores it after every epoch, which gives S4's test curves, and the
# run's evaluation scores it at the end (a run without a test split is evaluated on its val split). Nothing the
# study reads is chosen on it: the last epoch's weights are kept, there is no early stopping, and no temperature
# is fitted (it would be fitted on the split its ECE is then measured on). The unknown threshold still is, which
# no figure of the study reads (they count the top class): the study says so once, in place of each run's
# advice to enlarge a val split the protocol fixes.
S4_SPLIT = {"val_split": 0.3, "test_split": 0.0, "restore_best": False, "early_stopping": None,
            "calibrate": "none"}


def controlled(protocol: str = "standard") -> tuple[str, ...]:
    """The settings a study decides itself under `protocol` (a cell cannot take them from the overrides)."""
    return CONTROLLED + (tuple(S4_SPLIT) if protocol == "s4" else ())


def held_out(protocol: str) -> str:
    """What the curves' held-out split is called in the study's records: 'test' under S4's protocol."""
    return "test" if protocol == "s4" else "val"


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise invalid("protocol", protocol, PROTOCOLS)
    return protocol


def configuration_settings(name: str, model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A configuration name -> (training settings, model_args) for `model`.

    Model arguments a token needs (dropout for reg, batch_norm for bn) must exist on the model; the "off"
    defaults are passed only where the model has the argument (a model without dropout has none to switch off).
    """
    from ..models import get_model_info

    tokens = [t.strip() for t in name.split("+")]
    for t in tokens:
        if t not in TOKENS:
            raise invalid("configs", t, TOKENS)
    if len(set(tokens)) != len(tokens) or ("none" in tokens and len(tokens) > 1):
        raise invalid("configs entry", name, "'none' or distinct '+'-joined tokens such as reg+bn")
    if {"oversample", "undersample"} <= set(tokens):
        raise invalid("configs entry", name, "a configuration with one sampler: oversample or undersample, not both")
    train, wanted = dict(_BASE_TRAIN), {}
    for t in tokens:
        train.update(TOKENS[t][0])
        wanted.update(TOKENS[t][1])
    args = get_model_info(model).arg_names
    missing = sorted(k for k in wanted if k not in args)
    if missing:
        raise invalid("model", model, f"a model with the argument(s) {missing}, which configs entry {name!r} "
                                      "switches", note=f"its arguments are {args or 'none'}",
                      hint="Use caltech_cnn (S4's CNN) or drop the entry")
    model_args = {k: v for k, v in {**_BASE_MODEL, **wanted}.items() if k in args}
    return train, model_args


def built_in_regularisation(model: str, model_args: dict[str, Any] | None = None) -> list[str]:
    """What `model` regularises with in every configuration, having no argument to switch it off: dropout
    layers where it has no `dropout` argument, batch norm where it has no `batch_norm` one (model_s has both
    built in, so its 'none' is not free of regularisation). Empty for S4's caltech_cnn."""
    from torch import nn

    from ..models import create_model, get_model_info

    info = get_model_info(model)
    args = info.arg_names
    if ("dropout" in args and "batch_norm" in args) or info.pretrained:  # (a transfer model would load weights)
        return []
    # with the study's other model arguments: a bad one (width=0) is refused here, before the study says anything
    built = create_model(model, 2, **{**(model_args or {}), **{k: v for k, v in _BASE_MODEL.items() if k in args}})
    kept = []
    rates = sorted({m.p for m in built.modules() if isinstance(m, nn.Dropout) and m.p > 0})
    if "dropout" not in args and rates:
        layers = sum(1 for m in built.modules() if isinstance(m, nn.Dropout) and m.p > 0)
        kept.append(f"dropout {'/'.join(f'{r:g}' for r in rates)} ({layers} layer{'s' if layers > 1 else ''})")
    norms = sum(1 for m in built.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    if "batch_norm" not in args and norms:
        kept.append(f"batch norm ({norms} layer{'s' if norms > 1 else ''})")
    return kept


def check_overrides(overrides: dict[str, Any], protocol: str = "standard") -> None:
    """A study's overrides may not set what its configurations, protocol or grid decide."""
    clash = sorted(k for k in overrides if k in CONTROLLED)
    if clash:
        switched_by = {k: [t for t, (train, _) in TOKENS.items() if k in train] for k in clash}
        tokens = "; ".join(f"{k}: --configs {' or '.join(ts)}" for k, ts in switched_by.items() if ts)
        raise invalid("overrides", {k: overrides[k] for k in clash}, "free of the study's own settings: the study "
                      f"sets {', '.join(CONTROLLED)} itself",
                      hint="Choose them with --configs, --model, --seeds, --out, and the images each cell "
                           "trains on with --per-class, --rhos, --mu, --minority" + (f" ({tokens})" if tokens else ""))
    if protocol == "s4":
        clash = sorted(k for k in overrides if k in S4_SPLIT)
        if clash:
            fixed = ", ".join(f"{k}={v}" for k, v in S4_SPLIT.items())
            raise invalid("overrides", {k: overrides[k] for k in clash}, f"free of {', '.join(S4_SPLIT)} under "
                          f"protocol s4: it sets {fixed} (a 70/30 train/test split, nothing chosen on the test split)",
                          hint="Use protocol standard to choose the splits, early stopping and best weights")
        if overrides.get("schedule") == "plateau":
            raise invalid("schedule", "plateau", "a schedule that does not watch the held-out split under protocol "
                          "s4, where that split is the test split: none, step, cosine, onecycle or budget",
                          also={"protocol": "s4"}, hint="S4's own schedule is step; plateau needs protocol standard")
    extra_args = (overrides.get("model_args") or {})
    clash = sorted(k for k in extra_args if k in STUDY_MODEL_ARGS)
    if clash:
        raise invalid("model_args", extra_args, f"free of {clash} in a study: the configurations decide them")


def refuse_respelled(configs: Sequence[str], earlier: Sequence[str] = ()) -> None:
    """Two spellings of one configuration (weighted+focal and focal+weighted) trained every cell twice and showed
    two configurations with the same scores; against a study's `earlier` configurations, its cells again."""
    def tokens(name: str) -> frozenset[str]:
        return frozenset(t.strip() for t in name.split("+"))

    seen = {tokens(c): c for c in earlier}
    for c in configs:
        first = seen.setdefault(tokens(c), c)
        if first != c:
            where = "the study's own" if first in earlier else "another entry,"
            raise invalid("configs entry", c, "a configuration not given already in another order",
                          note=f"the same tokens as {where} {first!r}",
                          hint=f"Name it {first!r}" + (" (its cells are trained already)" if first in earlier else
                                                       ", once"))


def say_s4_threshold(log: Callable[[str], None]) -> None:
    """Once, in place of each run's warnings that its val split is small and how to enlarge it: under S4's
    protocol that split is the test split, whose size the protocol fixes (--val-split is refused)."""
    from ..notices import hold_back
    from ..pipeline.split_warnings import FEW_VALIDATION_WARNING
    from ..pipeline.trust import FEW_THRESHOLD_IMAGES_WARNING

    hold_back(FEW_VALIDATION_WARNING, FEW_THRESHOLD_IMAGES_WARNING)
    log("note: protocol s4: each run still sets its unknown threshold on its 30 % split, S4's test split, so the "
        "unknown column of its predictions.csv (5 % of those images by default) is no test measurement; the study's "
        "scores count the top class, which nothing chose on that split")
