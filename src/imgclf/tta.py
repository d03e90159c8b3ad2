"""Test-time augmentation: the views of an image that a run's training augmentation also made.

A view the model never saw in training measures another image, not the same one more robustly: a mirrored
digit is not the digit (a mirrored 2 is no 2 the model knows). So the views follow the run's training
augmentation, read from its model card (`training.augment`, the same string as config.yaml's `augment`):

  the image itself         always
  its horizontal mirror    if training used hflip
  its vertical mirror      if training used vflip
  two shifts (right-down, left-up) by 1/16 of the side, capped at the largest translation training made
                           (shift / width_shift / height_shift / crop), if that is at least one pixel; the
                           uncovered pixels are filled as training filled them (its `fill`)

Rotation, zoom, shear and the photometric operations add no view: at their centre value they are the image
itself. A run whose training made none of these views gets no TTA: asking for it is refused, and the automatic
evaluation after training skips it (`available`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .data.augment import parse_augment
from .errors import invalid

_FILL_WORDS = {"nearest": "edge pixels repeated", "constant": "zero fill", "reflect": "mirrored fill"}


# what a multi-label run answers to --tta (predict and evaluate alike): its views were never measured to help
MULTILABEL_TTA = "False for a multi-label run (test-time augmentation is single-label only)"


@dataclass(frozen=True)
class TTAViews:
    """Which test-time views a run may use; calling it on a batch (N, C, H, W) returns the views, image first."""

    augment: str = ""
    hflip: bool = False
    vflip: bool = False
    shift: int = 0  # whole pixels, both axes; 0 = no shifted views
    fill: str = "nearest"

    @classmethod
    def for_training(cls, augment: str, img_size: int) -> "TTAViews":
        spec = parse_augment(augment)
        wanted = max(1, img_size // 16)
        # training translates by up to (fraction x side + crop) pixels per axis; a view past that was never seen
        reach = min(spec.width_shift, spec.height_shift) * img_size + int(spec.crop)  # whole pixels, as trained
        shift = min(wanted, math.floor(reach + 1e-9))
        return cls(augment=augment, hflip=spec.hflip, vflip=spec.vflip, shift=shift, fill=spec.fill)

    @property
    def available(self) -> bool:
        return self.hflip or self.vflip or self.shift > 0

    def describe(self) -> str:
        """The views, in words, for metrics.json's `tta.transforms` and the report."""
        names = ["identity"]
        if self.hflip:
            names.append("horizontal flip")
        if self.vflip:
            names.append("vertical flip")
        if self.shift:
            names.append(f"shifts by {self.shift} px right-down and left-up ({_FILL_WORDS[self.fill]}, as in "
                         f"training)")
        return ", ".join(names)

    def require(self) -> "TTAViews":
        """Self, or the refusal when training made no view but the image itself."""
        if not self.available:
            trained = f"augment={self.augment!r}" if self.augment.strip() else "no augmentation"
            raise invalid("tta", True, "False for a run whose training used no hflip, vflip, shift or crop: test-time "
                          "views are only those the model saw in training, and this run saw none but the image itself",
                          note=f"run trained with {trained}",
                          hint="Leave TTA off (no --tta; Python: tta=False), or retrain with a translation such as "
                               "--augment crop=2 (add hflip only where a mirrored image keeps its class) to use it")
        return self

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        views = [x]
        if self.hflip:
            views.append(x.flip(-1))
        if self.vflip:
            views.append(x.flip(-2))
        if self.shift:
            views += [shifted(x, self.shift, self.shift, self.fill), shifted(x, -self.shift, -self.shift, self.fill)]
        return views


def shifted(x: torch.Tensor, dy: int, dx: int, fill: str) -> torch.Tensor:
    """x (..., H, W) moved down by dy and right by dx whole pixels, the uncovered pixels filled as training's
    grid_sample fills them (`data.augment`): nearest = border, constant = zeros, reflect = reflection about the
    outer edge (d c b a | a b c d). Index gathers, so exact in any dtype (the ONNX path shifts uint8 values)."""
    h, w = x.shape[-2:]
    rows = torch.arange(h, device=x.device) - dy
    cols = torch.arange(w, device=x.device) - dx
    if fill == "reflect":
        rows, cols = _reflect(rows, h), _reflect(cols, w)
    out = x.index_select(-2, rows.clamp(0, h - 1)).index_select(-1, cols.clamp(0, w - 1))
    if fill == "constant":
        inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
        out = out * inside.to(out.dtype)
    return out


def _reflect(index: torch.Tensor, n: int) -> torch.Tensor:
    # one reflection suffices: shifts are at most a sixteenth of the side
    index = torch.where(index < 0, -index - 1, index)
    return torch.where(index >= n, 2 * n - 1 - index, index)
