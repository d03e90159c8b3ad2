"""Augmentation spec -> one batched, per-sample random transform run on the training device.

Meanings follow Keras' ImageDataGenerator / preprocessing layers, so recipes port one to one:

  hflip, vflip      flip with probability 0.5
  rotate=D          rotation by a uniform angle in [-D, D] degrees
  shift=F           width and height shift, uniform in [-F, F] x side (also width_shift=, height_shift=)
  shear=D           shear angle uniform in [-D, D] DEGREES (Keras' shear_range is in degrees)
  zoom=F            scale uniform in [1-F, 1+F], drawn per axis (ImageDataGenerator's zoom_range draws zx and
                    zy independently)
  keep_aspect       with zoom: one scale for both axes (Keras' RandomZoom layer, whose width_factor=None
                    means "same as height"; albumentations' keep_ratio)
  brightness=F      add a uniform delta in [-F, F] (images in [0, 1]; Keras RandomBrightness)
  contrast=F        (x - mean) * c + mean, c uniform in [1-F, 1+F] per image (Keras RandomContrast)
  noise=S           add Gaussian noise with standard deviation S
  crop=P            random translation by up to P whole pixels (pad-and-crop; fill=constant pads with zeros)
  erase=P           random erasing with probability P (a rectangle of 2-33 % of the area set to 0)
  fill=nearest|constant|reflect   how pixels outside the image are filled (ImageDataGenerator's default is
                    nearest; the RandomRotation / RandomZoom layers' is reflect: "d c b a | a b c d", mirrored
                    about the image's outer edge, the edge pixel repeated once)

The two Keras APIs differ in zoom and fill defaults, so a recipe ports the one its reference used:
ImageDataGenerator -> zoom=F (fill nearest); preprocessing layers -> zoom=F,keep_aspect,fill=reflect.

All geometric operations (flips included) are folded into one affine matrix per image and applied with a
single grid_sample; random parameters come from a torch.Generator so a run is reproducible per epoch.
We measured kornia's RandomAffine at about 2/3 of this path's throughput (see docs/performance.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from ..errors import Described, invalid

_FLAGS = {"hflip", "vflip", "keep_aspect"}
_RANGES = {
    "rotate": (0.0, 180.0),
    "shift": (0.0, 1.0),
    "width_shift": (0.0, 1.0),
    "height_shift": (0.0, 1.0),
    "shear": (0.0, 89.0),
    "zoom": (0.0, 0.95),
    "brightness": (0.0, 1.0),
    "contrast": (0.0, 1.0),
    "noise": (0.0, 1.0),
    "crop": (0.0, 256.0),
    "erase": (0.0, 1.0),
}
# what a value means where it is not a fraction (of the side, the range of pixel values, the images), and an example
_UNITS = {"rotate": (" degrees", 10), "shear": (" degrees", 10), "crop": (" pixels", 4)}
_FILLS = {"nearest": "border", "constant": "zeros", "reflect": "reflection"}
ALLOWED = sorted(_FLAGS | set(_RANGES) | {"fill"})


@dataclass(frozen=True)
class AugmentSpec:
    hflip: bool = False
    vflip: bool = False
    rotate: float = 0.0
    width_shift: float = 0.0
    height_shift: float = 0.0
    shear: float = 0.0
    zoom: float = 0.0
    keep_aspect: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    noise: float = 0.0
    crop: float = 0.0
    erase: float = 0.0
    fill: str = "nearest"

    @property
    def geometric(self) -> bool:
        return self.moves

    @property
    def moves(self) -> bool:
        """Whether anything moves the image (and so leaves an edge for `fill` to fill)."""
        return bool(self.rotate or self.width_shift or self.height_shift or self.shear or self.zoom or self.crop)

    @property
    def empty(self) -> bool:
        return self == AugmentSpec(fill=self.fill)

    def to_string(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "fill":
                continue
            if value is True:
                parts.append(f.name)
            elif value and value is not False:
                parts.append(f"{f.name}={value:g}")
        if self.moves and self.fill != "nearest":  # a fill with nothing that moves: it fills nothing
            parts.append(f"fill={self.fill}")
        return ",".join(parts)


def parse_augment(spec: str | None) -> AugmentSpec:
    """Parse 'hflip,rotate=30,shift=0.1' into an AugmentSpec, with errors naming what is allowed."""
    values: dict[str, object] = {}
    for raw in (spec or "").split(","):
        item = raw.strip()
        if not item or item.lower() == "none":
            continue
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if name in _FLAGS:
            if value:
                raise invalid(f"augment {name}", value, "given without a value: it is a flag")
            values[name] = True
        elif name == "fill":
            if value.strip().lower() not in _FILLS:  # read as the names are (fill= Constant)
                raise invalid("augment fill", value, _FILLS)
            values["fill"] = value.strip().lower()
        elif name in _RANGES:
            lo, hi = _RANGES[name]
            unit, example = _UNITS.get(name, ("", 0.1))
            try:
                number = float(value)
            except ValueError:
                raise invalid(f"augment {name}", value, f"a number from {lo:g} to {hi:g}{unit}, e.g. "
                              f"{name}={example}") from None
            if not lo <= number <= hi:
                # as typed: -5, not the -5.0 it was read as
                raise invalid(f"augment {name}", Described(f"augment {name}={value.strip()}"),
                              f"between {lo:g} and {hi:g}{unit}")
            if name == "shift":
                values["width_shift"] = values["height_shift"] = number
            else:
                values[name] = number
        else:
            raise invalid("augment item", name, ALLOWED,
                          hint="Write augment as a comma-separated list of these items, e.g. hflip,rotate=30")
    if values.get("keep_aspect") and not values.get("zoom"):
        # alone it would change nothing: say so rather than accept a setting that does nothing
        raise invalid("augment", spec, "a list that gives zoom=F wherever it gives keep_aspect (keep_aspect makes "
                      "both axes share zoom's scale)")
    return AugmentSpec(**values)  # type: ignore[arg-type]


def refuse_what_does_nothing(spec: str | None) -> None:
    """Refused where a user gives it (`pipeline.resolve`), while a stored run's config.yaml written with one still
    reads (and trains as it did): a fill with nothing that moves the image, which fills nothing (flips leave no
    edge to fill), and a crop that is not a whole number of pixels, which was cut to one (0.9 shifted nothing)."""
    parsed = parse_augment(spec)
    if "fill=" in (spec or "").replace(" ", "").lower() and not parsed.moves:
        raise invalid("augment", spec, "a list that gives a rotate, shift, shear, zoom or crop wherever it gives "
                      "fill= (fill says what the image's moved edge shows)")
    if not float(parsed.crop).is_integer():
        raise invalid("augment crop", Described(f"augment crop={parsed.crop:g}"),
                      "a whole number of pixels from 0 to 256, e.g. crop=4 (pad-and-crop moves by whole pixels)")


def refuse_repeated_items(spec: str | None) -> None:
    """A spec naming an item twice is refused where a user gives it (`pipeline.resolve`): parsed, the last one
    wins (rotate=30,rotate=10 trained rotate=10 and recorded both). Not in `parse_augment`, which also reads the
    config.yaml of runs trained before this check."""
    seen: dict[str, str] = {}  # what an item sets -> the item that set it
    for raw in (spec or "").split(","):
        name = raw.strip().partition("=")[0].strip().lower()
        if not name or name == "none":
            continue
        for key in ({"width_shift", "height_shift"} if name == "shift" else {name}):
            if key in seen:
                note = f"{name} is given twice" if seen[key] == name else f"{seen[key]} and {name} overlap"
                raise invalid("augment", spec, "a list naming each item once (shift sets width_shift and "
                              "height_shift)", note=note)
            seen[key] = name


def _uniform(n: int, half_width: float, gen: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=gen, device=device) * 2 - 1) * half_width


class BatchAugment(torch.nn.Module):
    """Applies an AugmentSpec to a float batch (N, C, H, W) in [0, 1], each image with its own parameters."""

    def __init__(self, spec: AugmentSpec):
        super().__init__()
        self.spec = spec

    def sample_matrices(self, n: int, h: int, w: int, gen: torch.Generator | None, device: torch.device) -> torch.Tensor:
        """Per-image 2x3 affine matrices mapping output to input coordinates (normalised [-1, 1])."""
        s = self.spec
        one = torch.ones(n, device=device)
        sx, sy = one.clone(), one.clone()
        if s.zoom:
            sx = 1 + _uniform(n, s.zoom, gen, device)
            sy = sx.clone() if s.keep_aspect else 1 + _uniform(n, s.zoom, gen, device)
        if s.hflip:
            sx = sx * torch.where(torch.rand(n, generator=gen, device=device) < 0.5, -1.0, 1.0)
        if s.vflip:
            sy = sy * torch.where(torch.rand(n, generator=gen, device=device) < 0.5, -1.0, 1.0)
        angle = _uniform(n, math.radians(s.rotate), gen, device) if s.rotate else torch.zeros(n, device=device)
        shear = _uniform(n, math.radians(s.shear), gen, device) if s.shear else torch.zeros(n, device=device)
        tx = _uniform(n, 2 * s.width_shift, gen, device) if s.width_shift else torch.zeros(n, device=device)
        ty = _uniform(n, 2 * s.height_shift, gen, device) if s.height_shift else torch.zeros(n, device=device)
        if s.rotate and (s.width_shift or s.height_shift):
            # Keras composes rotation @ shift @ shear @ zoom: the shift turns with the image (in pixels, then
            # back to the normalised units, which differ per axis on a non-square image)
            cos0, sin0 = torch.cos(angle), torch.sin(angle)
            px, py = tx * w / 2, ty * h / 2
            tx, ty = (cos0 * px - sin0 * py) * 2 / w, (sin0 * px + cos0 * py) * 2 / h
        if s.crop:
            px = torch.randint(-int(s.crop), int(s.crop) + 1, (2, n), generator=gen, device=device).float()
            tx = tx + px[0] * 2 / w
            ty = ty + px[1] * 2 / h
        cos, sin = torch.cos(angle), torch.sin(angle)
        sh_sin, sh_cos = torch.sin(shear), torch.cos(shear)
        # rotation @ (shift) @ shear @ zoom, composed as Keras' apply_affine_transform does; crop's whole-pixel
        # shift is torchvision's pad-and-crop, outside that composition.
        a = cos * sx
        b = (-cos * sh_sin - sin * sh_cos) * sy
        c = sin * sx
        d = (-sin * sh_sin + cos * sh_cos) * sy
        theta = torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1)], 1)
        # aspect correction so rotation is a rotation on non-square images
        if h != w:
            theta[:, 0, 1] *= h / w
            theta[:, 1, 0] *= w / h
        return theta

    def forward(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        s = self.spec
        n, _, h, w = x.shape
        if s.geometric:
            theta = self.sample_matrices(n, h, w, gen, x.device).to(x.dtype)
            grid = affine_grid(theta, h, w)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode=_FILLS[s.fill], align_corners=False)
        elif s.hflip or s.vflip:
            if s.hflip:
                flip = torch.rand(n, generator=gen, device=x.device) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
            if s.vflip:
                flip = torch.rand(n, generator=gen, device=x.device) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(2), x)
        if s.brightness:
            x = x + _uniform(n, s.brightness, gen, x.device).to(x.dtype)[:, None, None, None]
        if s.contrast:
            factor = (1 + _uniform(n, s.contrast, gen, x.device)).to(x.dtype)[:, None, None, None]
            mean = x.mean(dim=(2, 3), keepdim=True)
            x = (x - mean) * factor + mean
        if s.noise:
            x = x + torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype) * s.noise
        if s.erase:
            x = _random_erase(x, s.erase, gen)
        if s.brightness or s.contrast or s.noise:
            x = x.clamp(0.0, 1.0)
        return x


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """F.affine_grid(theta, (N, C, h, w), align_corners=False) as broadcast multiply-adds.

    affine_grid runs a batched (h*w, 3) x (3, 2) matmul, which on CPU measured 10x slower than these six
    multiply-adds (48x48, batch 64, one thread: 16,300 vs 167,000 images/s) and was most of the augmentation's
    time; grid_sample itself ran at ~75,000 images/s.
    """
    xs = (torch.arange(w, device=theta.device, dtype=theta.dtype) * 2 + 1) / w - 1
    ys = (torch.arange(h, device=theta.device, dtype=theta.dtype) * 2 + 1) / h - 1
    t = theta.reshape(-1, 2, 3, 1, 1)
    grid = t[:, :, 0] * xs.view(1, 1, 1, w) + t[:, :, 1] * ys.view(1, 1, h, 1) + t[:, :, 2]
    return grid.permute(0, 2, 3, 1)


def _random_erase(x: torch.Tensor, p: float, gen: torch.Generator | None) -> torch.Tensor:
    n, _, h, w = x.shape
    dev = x.device
    apply = torch.rand(n, generator=gen, device=dev) < p
    area = (0.02 + torch.rand(n, generator=gen, device=dev) * 0.31) * h * w
    log_ratio = (torch.rand(n, generator=gen, device=dev) * 2 - 1) * math.log(3.3)
    ratio = torch.exp(log_ratio)
    eh = torch.sqrt(area * ratio).clamp(1, h)
    ew = torch.sqrt(area / ratio).clamp(1, w)
    y0 = torch.rand(n, generator=gen, device=dev) * (h - eh)
    x0 = torch.rand(n, generator=gen, device=dev) * (w - ew)
    ys = torch.arange(h, device=dev)[None, :]
    xs = torch.arange(w, device=dev)[None, :]
    in_y = (ys >= y0[:, None]) & (ys < (y0 + eh)[:, None])
    in_x = (xs >= x0[:, None]) & (xs < (x0 + ew)[:, None])
    mask = (in_y[:, :, None] & in_x[:, None, :]) & apply[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)
