"""The model card (`model.json`): everything needed to rebuild, preprocess and label — validated before use."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ImgclfError
from .io import read_json

CARD_VERSION = 1


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="allow")

    format_version: int = Field(CARD_VERSION, ge=1, le=CARD_VERSION)
    architecture: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")
    model_args: dict[str, Any] = Field(default_factory=dict)
    classes: list[str] = Field(min_length=2)
    img_size: int = Field(ge=1, le=4096)
    in_chans: int = Field(ge=1, le=4)
    color: Literal["rgb", "grayscale"]
    mean: list[float]
    std: list[float]
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos", "box"] = "bilinear"
    num_params: int = Field(ge=0)
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    hardware: dict[str, Any] = Field(default_factory=dict)
    created: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> "ModelCard":
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise ValueError(f"mean and std need {self.in_chans} values (one per input channel)")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("class names must be unique")
        return self


def load_card(run_dir: str | Path) -> ModelCard:
    path = Path(run_dir) / "model.json"
    if not path.exists():
        raise ImgclfError(
            f"run must be a run directory containing model.json. Received: run={str(run_dir)!r} "
            f"({'no such folder' if not Path(run_dir).exists() else 'no model.json: training unfinished?'})"
        )
    try:
        return ModelCard.model_validate(read_json(path))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'card'}: {e['msg']}" for e in exc.errors()[:5])
        raise ImgclfError(f"model.json in {run_dir} is not a valid model card: {problems}") from None
    except ValueError as exc:
        raise ImgclfError(f"model.json in {run_dir} is not valid JSON: {exc}") from None
