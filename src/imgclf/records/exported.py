"""The card an export carries (model.onnx.json, model.pt2.json, and the ONNX metadata): the run's model card plus
how the file was made."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import OMITTED_AT_DEFAULT
from .card import ModelCard


class QuantizationCheck(BaseModel):
    """How closely an int8 graph answers as the fp32 graph it was made from, on validation images it was not
    calibrated on (the whole validation split only when it is too small to keep the two apart)."""

    model_config = ConfigDict(extra="forbid")
    calibration_images: int = Field(ge=1, description="Validation images whose activations set the int8 ranges.")
    checked_images: int = Field(ge=1, description="Validation images both graphs answered.")
    overlap: bool = Field(False, description="True when the checked images include the calibration ones (too "
                          "few readable validation images to keep apart).")
    unreadable_images: int = Field(0, ge=0, description="Validation images drawn that could not be read (moved or "
                                   "deleted since training), passed over.")
    top1_agreement: float = Field(ge=0, le=1, description="Share of checked images given the same top-1 class "
                                  "(the highest probability).")
    unknown_agreement: float = Field(ge=0, le=1, description="Share of checked images given the same unknown flag.")
    labels_agreement: float | None = Field(None, ge=0, le=1, description="Multi-label runs: share of checked images "
                                           "given the same labels at the run's thresholds.")
    max_probability_change: float = Field(ge=0, le=1, description="Largest change of any calibrated probability.")
    images: str | None = Field(None, description="Where the calibration and checked images came from: null for "
                               "the run's validation split, else the name of the folder given (`--calibration`), "
                               "not its path: the card travels inside the model file.",
                               json_schema_extra=OMITTED_AT_DEFAULT)


class ExportInfo(BaseModel):
    """How an exported model file was made (the `export` block of its embedded card and of model.onnx.json)."""

    model_config = ConfigDict(extra="forbid")
    format: str
    file: str
    input: str
    output: str
    outputs: list[str] = Field(default_factory=list, description="Every output, in order (exports before card "
                               "schema 2 had `output` only).")
    input_layout: str
    torch: str
    quantization: Literal["none", "int8"] = Field("none", description="int8: the convolutions run on 8-bit "
                                                  "integers (static, per-channel weights), the rest in fp32.",
                                                  json_schema_extra=OMITTED_AT_DEFAULT)
    quantization_check: QuantizationCheck | None = Field(None, description="int8 against fp32 on validation "
                                                         "images, measured when the graph was made.",
                                                         json_schema_extra=OMITTED_AT_DEFAULT)


class ExportedCard(ModelCard):
    """The model card an export carries: the run's card plus how the file was exported."""

    export: ExportInfo
