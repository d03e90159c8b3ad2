"""The side the fast family trains small images at: their own, read from file headers without decoding."""

from __future__ import annotations

NATIVE_SIZE_CAP = 64  # the fast family is built for small images; larger ones are downscaled to this


def native_img_size(data: str | list[str], min_size: int) -> int:
    """The input side the images have (median of their longer side over up to 200 headers, no decode), within
    [min_size, NATIVE_SIZE_CAP]. data: class folders, or a multi-label index file."""
    from .decode import median_side
    from .merge import scan_folders
    from .multilabel import is_label_index, read_label_index

    if is_label_index(data):
        paths = read_label_index(data).files
    else:
        paths = [p for items in scan_folders(data).files.values() for p, _ in items]
    side = median_side(paths, longer=True) or NATIVE_SIZE_CAP
    return min(NATIVE_SIZE_CAP, max(min_size, side))
