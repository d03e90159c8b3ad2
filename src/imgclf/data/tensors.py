"""uint8 (N, H, W, C) pixels, the layout of the decode cache, to the float (N, C, H, W) tensors models take."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import invalid_message


def to_unit_nchw(pixels: np.ndarray | torch.Tensor, device: str | torch.device | None = None) -> torch.Tensor:
    """uint8 NHWC (array or tensor) -> float32 NCHW in [0, 1], on `device` when given."""
    if not isinstance(pixels, torch.Tensor):
        array = np.asarray(pixels)
        if not (array.flags.c_contiguous and array.flags.writeable):
            array = np.array(array, copy=True)  # torch.from_numpy warns on read-only (memory-mapped) buffers
        pixels = torch.from_numpy(array)
    if pixels.dtype != torch.uint8:
        # a caller's bug, not the user's input: a TypeError, in the house style
        raise TypeError(invalid_message("pixels.dtype", pixels.dtype, "uint8, with pixels laid out (N, H, W, C)"))
    if device is not None:
        pixels = pixels.to(device)
    return pixels.permute(0, 3, 1, 2).float().div_(255.0)


def channel_stats(values: Sequence[float], device: str | torch.device | None = None) -> torch.Tensor:
    """Per-channel mean or std as a (1, C, 1, 1) float32 tensor that broadcasts over NCHW batches."""
    return torch.tensor(list(values), dtype=torch.float32, device=device).view(1, -1, 1, 1)
