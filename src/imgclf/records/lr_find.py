"""lr_find.json: the learning-rate range test's sweep and what it suggested, in `imgclf lr-find`'s folder and in a
run trained with --lr auto (whose card's `lr_find` quotes it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import Record
from .dataset import SkippedFile

LR_FIND_FILE = "lr_find.json"


class LRFindRecord(Record):
    """lr_find.json: every step's learning rate and loss, the rule that read the suggestion off them, and the
    settings swept (files from before a field was kept lack it)."""

    suggestion: float | None = Field(gt=0, description=(
        "The learning rate the rule read off the sweep; None where it found none (lr-find still writes that "
        "sweep, whose curve is what to look at; a run with --lr auto then fails and keeps no file)."))
    rule: Literal["end_of_fall", "steepest"] = Field("steepest", description=(
        "How the suggestion was read (the card's lr_find.rule; steepest in files from before 2026-12-02)."))
    window: int | None = Field(None, ge=1, description="end_of_fall: steps in the centred mean the rule reads.")
    fall_left: float | None = Field(None, gt=0, lt=1, description=(
        "end_of_fall: the share of the whole fall still left where the suggestion sits."))
    lowest_loss_lr: float | None = Field(None, gt=0, description=(
        "The learning rate at the lowest (smoothed) loss; None where too few losses were finite to read one."))
    min_lr: float = Field(gt=0, description="First learning rate of the sweep.")
    max_lr: float = Field(gt=0, description="Last learning rate the sweep would reach.")
    steps: int = Field(ge=0, description="Training steps swept (fewer than asked when the loss diverged).")
    steps_asked: int | None = Field(None, ge=1, description="Training steps asked for.")
    epochs: float | None = Field(None, ge=0, description="Passes over the training split the steps made.")
    cautions: list[str] = Field(default_factory=list, description=(
        "What to doubt in the suggestion (the loss still falling at the end, a sweep that stopped early, ...)."))
    still_falling: bool = Field(False, description=(
        "The loss was still falling at the sweep's end: the curve was cut before its lowest point (False in files "
        "from before it was kept)."))
    settings: dict[str, Any] | None = Field(None, description=(
        "The run's settings the suggestion depends on (data, model, batch size, optimiser, augmentation, seed, "
        "...), so that two sweeps' files can be told apart."))
    classes: int | None = Field(None, ge=1, description="Classes (labels) of the data swept.")
    train_images: int | None = Field(None, ge=0, description="Images of the training split the sweep drew from.")
    skipped: list[SkippedFile] = Field(default_factory=list, description=(
        "Files of the data that could not be decoded and were left out, with the reason."))
    lr: list[float] = Field(description="Each step's learning rate.")
    loss: list[float | None] = Field(description=(
        "Each step's smoothed loss (None: not finite, which JSON cannot hold)."))
    loss_raw: list[float | None] | None = Field(None, description="Each step's loss as trained, unsmoothed.")
