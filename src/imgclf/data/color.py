"""Which colour mode images are decoded in: what color=auto finds in the images' headers, and why."""

from __future__ import annotations

import logging
import os
from collections import defaultdict

from .decode import header_sample, probe_image, readable_formats

_GRAY_MODES = {"L", "LA", "I;16", "I;16B", "I;16L", "I", "F", "1"}
_PALETTE_MODES = {"P", "PA"}
log = logging.getLogger(__name__)


def detect_color(paths: list[str], sample: int = 200, per_folder: int = 20) -> str:
    """grayscale when every sampled image has a grayscale mode, else rgb (headers only, no decode). The sample
    holds `sample` images drawn from all and `per_folder` from each folder: colour tends to differ by source,
    which is by class folder, and 20 colour photos among 900 grey scans escaped a sample of 200 drawn from all."""
    if not paths:
        return "rgb"
    folders: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        folders[os.path.dirname(path)].append(path)
    picked = set(header_sample(paths, sample))
    for members in folders.values():
        picked.update(header_sample(members, per_folder))
    for path in (p for p in paths if p in picked):
        try:
            mode = probe_image(path)["mode"]
        except Exception:  # unreadable files are reported by the decode pass, not here
            continue
        if mode not in _GRAY_MODES and not (mode in _PALETTE_MODES and _palette_in_use_is_grey(path)):
            return "rgb"
    return "grayscale"


def _palette_in_use_is_grey(path: str) -> bool:
    """Whether a palette image's colours in use are all grey (a GIF or PNG of greys, which a header calls 'P'):
    such images trained in colour, tripling the cache and the first layer for nothing. Decodes the image: palette
    images are few in a sample, and small."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path, formats=readable_formats()) as img:
            img.load()
            palette = np.asarray(img.getpalette("RGB") or [], dtype=np.uint8).reshape(-1, 3)
            indices = np.asarray(img.getchannel(0) if img.mode == "PA" else img)
    except Exception:  # unreadable: reported by the decode pass; not called grey here
        return False
    used = np.unique(indices)
    if not len(palette) or used.max(initial=0) >= len(palette):
        return False
    colours = palette[used]
    return bool((colours == colours[:, :1]).all())


def resolve_color(color: str, paths: list[str], model_in_chans: int | None = None,
                  new_run: bool = False) -> tuple[str, str]:
    """The colour mode to decode in, and why. color=auto follows the images (grayscale when every sampled one
    is), except that a model built for one channel (a registry entry with default_in_chans=1, such as fer_cnn)
    gets grayscale input: training it on colour would silently give it a 3-channel first layer it was not
    designed with. An explicit color=rgb or grayscale is always kept; grayscale given to a `new_run` for colour
    images (a grey recipe's, such as s3-fer-cnn's, on colour data) is said, as auto's conversion is: two classes
    that differ only in hue trained to chance without a word. A finished run's stored grayscale (calibrate, audit
    --run, a resume) was its training's choice, said then."""
    if new_run and color == "grayscale" and detect_color(paths) == "rgb":
        source = "color=grayscale: colour images converted to grayscale (color=rgb keeps the colour)"
        log.warning(source)
        return color, source
    if color != "auto":
        return color, f"color={color}"
    detected = detect_color(paths)
    if model_in_chans == 1:
        if detected == "rgb":
            source = ("color=auto: colour images converted to grayscale, because the model takes 1 channel "
                      "(color=rgb keeps the colour and widens its first layer)")
            log.warning(source)  # information is dropped: say so where the run's output goes
            return "grayscale", source
        return "grayscale", "color=auto: grayscale images, and the model takes 1 channel"
    found = "every sampled image is grayscale (200 of all, 20 of each folder)" if detected == "grayscale" else \
        "colour images"
    return detected, f"color=auto: {found}"
