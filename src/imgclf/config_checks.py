"""The checks of the training settings (`TrainConfig`'s validators): each names the setting, the value received and
what is allowed. `TrainConfig` inherits them; they live here so that config.py holds the settings themselves."""

from __future__ import annotations

import math
import os
import re
from functools import cache
from types import UnionType
from typing import Any, Literal, get_args

from pydantic import BaseModel, field_validator, model_validator

from ._version import newer_layout
from .config_text import is_none_word, parse_bytes, parse_mapping, parse_seconds, precision_name
from .errors import Described, ImgclfError, invalid
from .task_settings import check_task_settings

Tracker = Literal["csv", "tensorboard", "mlflow"]
MAX_LR = 10.0  # the largest learning rate a run takes (a search's range stops there too)
MONITORS = ("val_loss", "val_acc", "val_map")  # val_map: multi-label runs (`task_settings`)
# the tracking-store schemes MLflow opens (mlflow.store.tracking: file, database dialects, REST, Databricks)
MLFLOW_SCHEMES = ("file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")
SPLITS = ("train", "val", "test")
MIN_PROBED_SECONDS = 5.0  # the shortest budget the sizing probe takes (its own timing takes 2-3 s)
L2_KEYS = ("conv", "dense")
BLANK_FOLDER_ALLOWED = {"out": "a folder for the run, or left out for runs/<model>-<n>",
                        "cache_dir": "a folder, or left out for $IMGCLF_CACHE (else ~/.cache/imgclf)"}


def _takes_a_number_not_a_bool(annotation: Any) -> bool:
    """int or float among the annotation's alternatives (Optional, unions), bool not; a mapping's values aside."""
    from typing import Union, get_origin

    kinds = set(get_args(annotation)) if get_origin(annotation) in (Union, UnionType) else {annotation}
    return bool(kinds & {int, float}) and bool not in kinds


@cache
def nullable_settings(config_class: type[BaseModel]) -> frozenset[str]:
    """The settings that can be unset (their type admits None): what config_text.NONE_WORDS apply to."""
    return frozenset(name for name, field in config_class.model_fields.items()
                     if type(None) in get_args(field.annotation))


class SettingChecks(BaseModel):
    """The validators `TrainConfig` runs, in this order (its fields are declared there: `check_fields=False`)."""

    @field_validator("data", mode="before", check_fields=False)
    @classmethod
    def _one_or_more_folders(cls, value: Any) -> Any:
        """A list of folders; one folder is kept as a plain string (what config.yaml has always held)."""
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, (list, tuple)):
            if value is not None and not isinstance(value, str):  # else pydantic says it twice, once per type
                raise invalid("data", value, "one image folder (a path) or a non-empty list of folders")
            if isinstance(value, str) and not value.strip():  # DATA "$D" with D unset read the current folder
                raise invalid("data", value, "one image folder (a path) or a non-empty list of folders")
            return value
        folders = [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
        if not folders or not all(isinstance(f, str) and f.strip() for f in folders):
            raise invalid("data", value, "one image folder or a non-empty list of folders")
        return folders[0] if len(folders) == 1 else folders

    @field_validator("lr", mode="before", check_fields=False)
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

    @field_validator("logger", mode="before", check_fields=False)
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

    @field_validator("mlflow_uri", check_fields=False)
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

    @field_validator("classes", "drop_classes", mode="before", check_fields=False)
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

    @field_validator("out", "cache_dir", mode="before", check_fields=False)
    @classmethod
    def _folder_named(cls, value: Any, info: Any) -> Any:
        # --out "$OUT" with OUT unset trained into runs/<model>-<n> here, --cache-dir "$DIR" cached under the default
        if isinstance(value, str) and not value.strip():
            raise invalid(info.field_name, value, BLANK_FOLDER_ALLOWED[info.field_name])
        return value

    @field_validator("per_class_max", mode="before", check_fields=False)
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
    def _store_for_a_tracker(self) -> Any:
        if self.mlflow_uri is not None and "mlflow" not in self.logger:  # it was ignored without a word
            raise invalid("mlflow_uri", self.mlflow_uri, "given with --logger mlflow, whose store it names",
                          also={"logger": ",".join(self.logger) or "none"})
        return self

    @model_validator(mode="after")
    def _keep_or_drop(self) -> Any:
        if self.classes and self.drop_classes:
            raise invalid("drop_classes", self.drop_classes, "unset when classes is set: classes already names "
                          "every class kept", also={"classes": self.classes})
        return self

    @field_validator("model_args", "l2", mode="before", check_fields=False)
    @classmethod
    def _mapping_from_text(cls, value: Any, info: Any) -> Any:
        return parse_mapping(info.field_name, value) if isinstance(value, str) else value

    @field_validator("monitor", check_fields=False)
    @classmethod
    def _known_monitor(cls, value: str) -> str:
        if value not in MONITORS:
            raise invalid("monitor", value, MONITORS)
        return value

    @field_validator("class_weight", check_fields=False)
    @classmethod
    def _valid_class_weight(cls, value: str) -> str:
        if value in ("none", "balanced") or value.endswith(".json"):
            return value
        raise invalid("class_weight", value, "none, balanced, or a path to a .json file mapping class names to weights")

    @model_validator(mode="after")
    def _task_settings(self) -> Any:
        # with task=auto these are checked again once the data has said which task it is (pipeline.run)
        check_task_settings(self, self.task)
        return self

    @field_validator("augment", mode="before", check_fields=False)
    @classmethod
    def _augment_items(cls, value: Any) -> Any:
        """A list of transforms (`augment=["hflip", "rotate=10"]` from Python) is the command line's comma list."""
        if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            return ",".join(value)
        return value

    @field_validator("augment", "head", "cache_budget", check_fields=False)
    @classmethod
    def _read_by_its_parser(cls, value: Any, info: Any) -> Any:
        """Read by the parser that uses it later, so that a bad value is refused here, naming the setting (the
        parsers of the transforms and the head bring torch: imported when asked)."""
        if info.field_name == "augment":
            from .data.augment import parse_augment as parse
        elif info.field_name == "head":
            from .models.heads import parse_head as parse
        else:
            parse = parse_bytes
        parse(value)
        return value

    @field_validator("unfreeze", check_fields=False)
    @classmethod
    def _valid_unfreeze(cls, value: str) -> str:
        if not re.fullmatch(r"all|last:[1-9][0-9]*", value.strip()):
            raise invalid("unfreeze", value, "all or last:K with K >= 1 (e.g. last:2)")
        return value.strip()

    @model_validator(mode="after")
    def _features_only_trains_the_head(self) -> Any:
        from .data.augment import parse_augment

        if self.features_only and not parse_augment(self.augment).empty:  # "none" too, as everywhere else
            raise invalid("augment", self.augment, "none with features_only: features are computed once per image, "
                          "without augmentation", also={"features_only": True})
        if self.features_only and 0 < self.freeze_epochs < self.epochs:  # S1's frozen-forever 100000 says as much
            raise invalid("freeze_epochs", self.freeze_epochs, f"0, or at least epochs ({self.epochs}), with "
                          "features_only: the backbone never trains there", also={"features_only": True})
        return self

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
            if value is False and name in nullable_settings(cls):  # YAML reads an unquoted `ema: off` as false
                data[name] = None
                continue
            raise invalid(name, value, f"a number{' or none' if name in nullable_settings(cls) else ''}, not true or "
                          "false")
        return data

    @model_validator(mode="before")
    @classmethod
    def _none_words_unset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {k: None if k in nullable_settings(cls) and is_none_word(v) else v for k, v in data.items()}

    @field_validator("precision", mode="before", check_fields=False)
    @classmethod
    def _precision_spelt_as_imgclf_names_it(cls, value: Any) -> Any:
        return precision_name(value)

    @field_validator("time_limit", mode="before", check_fields=False)
    @classmethod
    def _seconds_as_a_duration(cls, value: Any) -> Any:
        """A number is seconds, as on the command line (`time_limit=30` from Python was refused as no string)."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not value > 0 or value == float("inf"):
                raise invalid("time_limit", value,
                              "a duration > 0 such as 90s, 10m, 1.5h or 1h30m, or a number of seconds")
            text = str(value) if isinstance(value, int) else f"{value:.12f}".rstrip("0").rstrip(".")
            return f"{text}s"  # 1e6 -> 1000000s, not 1e+06s, which the duration's own check refused
        return value

    @field_validator("time_limit", check_fields=False)
    @classmethod
    def _valid_time(cls, value: str | None) -> str | None:
        try:
            parse_seconds(value)
        except ImgclfError:
            raise invalid("time_limit", value,
                          "a duration such as 90s, 10m, 1.5h or 1h30m, or none (no budget)") from None
        return value

    @field_validator("time_limit", check_fields=False)
    @classmethod
    def _time_left(cls, value: str | None) -> str | None:
        seconds = parse_seconds(value)
        if seconds is not None and seconds <= 0:
            raise invalid("time_limit", value, "a duration > 0 such as 90s, 10m, 1.5h or 1h30m")
        return value

    @field_validator("time_limit", check_fields=False)
    @classmethod
    def _time_with_its_unit(cls, value: str | None) -> str | None:
        """Kept as the records and messages show it: '1 M' as 1m, a bare '90' with its unit ("time limit (90)"),
        once the checks above have echoed it as given."""
        if value is None:
            return None
        text = re.sub(r"\s+", "", str(value)).lower()
        return text if text[-1:] in ("h", "m", "s") else f"{text}s"

    @field_validator("devices", mode="before", check_fields=False)
    @classmethod
    def _valid_devices(cls, value: Any) -> str:
        """'auto' or a count >= 1 (YAML's `devices: 2` is an int); Lightning would divide by 0 or call int('abc')."""
        text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
        if text != "auto" and not (text.isdigit() and int(text) >= 1):
            raise invalid("devices", value, "'auto' or a number of devices >= 1")
        return text

    @field_validator("l2", mode="before", check_fields=False)
    @classmethod
    def _bool_penalty(cls, value: Any) -> Any:  # pydantic turns true into 1.0 before the check below sees it
        for key, penalty in (value.items() if isinstance(value, dict) else ()):
            if isinstance(penalty, bool):
                raise invalid(f"l2 {key}", penalty, "a finite number >= 0 (a penalty)")
        return value

    @field_validator("l2", check_fields=False)
    @classmethod
    def _valid_l2(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - set(L2_KEYS))
        if unknown:
            raise invalid("l2 key", unknown[0], L2_KEYS)
        for key, penalty in value.items():
            # nan or inf trained to a NaN loss blamed on the learning rate; true was read as 1.0
            if not math.isfinite(penalty) or penalty < 0:
                raise invalid(f"l2 {key}", penalty, "a finite number >= 0 (a penalty)")
        return value

    @model_validator(mode="after")
    def _fold_of_folds(self) -> Any:
        if self.fold is not None and (self.folds is None or self.fold > self.folds):
            raise invalid("fold", self.fold, f"between 1 and folds ({self.folds})" if self.folds else
                          "unset without folds (--folds K)", also={"folds": self.folds})
        cap = self.per_class_max
        if self.folds and isinstance(cap, dict) and "val" in cap:
            raise invalid("per_class_max val", cap["val"], "unset with folds: every non-test image is in one "
                          "fold's validation split (train=N caps the images folded)", also={"folds": self.folds})
        return self

    @model_validator(mode="after")
    def _budget_needs_time_limit(self) -> Any:
        if self.schedule == "budget" and self.sizing == "probe" and not self.time_limit:
            # both at once: one refused after the other sent `--recipe fast --time-limit none` round twice
            raise invalid("time_limit", self.time_limit, "set when schedule=budget and sizing=probe (the fast "
                          "recipe's): both are fitted to --time-limit", also={"schedule": "budget", "sizing": "probe"},
                          hint="Give --time-limit 10m, or train without a budget: --sizing fixed --schedule onecycle "
                               "--epochs N")
        if self.schedule == "budget" and not self.time_limit:
            raise invalid("time_limit", self.time_limit, "set when schedule=budget: it fits the learning rate to "
                          "--time-limit", also={"schedule": self.schedule}, hint="Give --time-limit 10m, or train "
                          "without a budget under another schedule: --schedule onecycle --epochs N")
        if self.sizing == "probe" and not self.time_limit:
            raise invalid("time_limit", self.time_limit, "set when sizing=probe: the model is sized for the budget "
                          "(e.g. --time-limit 10m)", also={"sizing": self.sizing},
                          hint="Give --time-limit 10m, or train without a budget: --sizing fixed")
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
    def _splits_leave_training_data(self) -> Any:
        if self.val_split + self.test_split >= 0.9:
            raise invalid("val_split + test_split", Described(f"val_split={self.val_split!r}, "
                                                               f"test_split={self.test_split!r}"),
                          "< 0.9 to leave training data")
        return self
