"""The small grey thumbnails the duplicate search compares (and the audit's quick model reads): luma, at most
THUMB_SIDE pixels a side."""

from __future__ import annotations

import numpy as np

THUMB_SIDE = 32  # near-duplicates and the quick model see at most 32 x 32 grey pixels
_CHUNK = 8192
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's convert("L")


def grey_thumbnails(pixels: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """(N, S, S, C) uint8 -> (N, T, T) uint8 luma, T = min(S, side); area-averaged when it shrinks. Kept as
    uint8 (rounding costs under half a grey level) so 70,000 thumbnails take 70 MB, not 290."""
    import torch

    n, size = len(pixels), pixels.shape[1]
    target = min(size, side)
    out = np.empty((n, target, target), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        chunk = np.asarray(pixels[start:start + _CHUNK], dtype=np.float32)
        grey = chunk[..., 0] if chunk.shape[-1] == 1 else chunk @ _LUMA
        if target != size:
            t = torch.from_numpy(np.ascontiguousarray(grey))[:, None]
            grey = torch.nn.functional.interpolate(t, size=(target, target), mode="area")[:, 0].numpy()
        out[start:start + len(chunk)] = np.clip(np.rint(grey), 0, 255)
    return out
