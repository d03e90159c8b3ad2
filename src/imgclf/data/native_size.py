"""The side the fast family trains small images at: their own, read from file headers without decoding."""

from __future__ import annotations

NATIVE_SIZE_CAP = 64  # the fast family is built for small images; larger ones are downscaled to this
UPSCALE_WARNED = 4.0  # an input side this many times the images' own: pixels invented, memory and time spent


def native_img_size(data: str | list[str], min_size: int) -> int:
    """The input side the images have (median of their longer side over up to 200 headers, no decode), within
    [min_size, NATIVE_SIZE_CAP]. data: class folders, or a multi-label index file."""
    from .decode import median_side

    side = median_side(_paths(data), longer=True) or NATIVE_SIZE_CAP
    return min(NATIVE_SIZE_CAP, max(min_size, side))


def upscale_warning(data: str | list[str], img_size: int, model_size: int) -> str | None:
    """A warning when `img_size` is UPSCALE_WARNED times the images' median longer side or more (headers only) and
    above `model_size`, the model's own input size (a pretrained network at its 224 on small images is the usual
    transfer recipe): `--img-size 4096` on 32-pixel images made a 1.1 GB cache of 21 images and no epoch in 90 s,
    without a word."""
    if img_size <= model_size:
        return None
    from ..config_text import byte_text
    from .decode import median_side

    side = median_side(_paths(data), longer=True)
    if not side or img_size < UPSCALE_WARNED * side:
        return None
    size = img_size * img_size * 3  # bytes of an RGB image (a third of it grey)
    decoded = byte_text(size)
    return (f"img_size {img_size} is {img_size / side:.0f}x the images' own side ({side} px, the median): each is "
            f"upscaled, inventing pixels, to {decoded} decoded (RGB), and training is that much slower; pass an "
            "--img-size near the images' side, or leave it out for the model's default")


def _paths(data: str | list[str]) -> list[str]:
    from .merge import scan_folders
    from .multilabel import is_label_index, read_label_index

    if is_label_index(data):
        return read_label_index(data).files
    return [p for items in scan_folders(data).files.values() for p, _ in items]
