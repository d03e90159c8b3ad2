"""uint8 NHWC -> float NCHW conversion shared by training, inference, features and Grad-CAM."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from imgclf.data.tensors import channel_stats, to_unit_nchw


def test_to_unit_nchw_scales_and_moves_channels_first(tmp_path):
    pixels = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3) * 7
    x = to_unit_nchw(pixels)
    assert x.shape == (2, 3, 3, 4) and x.dtype == torch.float32
    assert torch.equal(x[1, 2, 0, 3], torch.tensor(pixels[1, 0, 3, 2] / 255.0, dtype=torch.float32))
    assert torch.equal(to_unit_nchw(torch.from_numpy(pixels)), x)

    stored = np.lib.format.open_memmap(tmp_path / "p.npy", mode="w+", dtype=np.uint8, shape=pixels.shape)
    stored[:] = pixels
    read_only = np.load(tmp_path / "p.npy", mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a read-only buffer is copied, not passed to torch with a warning
        assert torch.equal(to_unit_nchw(read_only[::-1]), x.flip(0))
    assert pixels[0, 0, 1, 0] == 21  # the caller's array is never modified in place


def test_to_unit_nchw_refuses_float_input_and_stats_broadcast():
    with pytest.raises(TypeError, match="uint8"):
        to_unit_nchw(torch.zeros(1, 2, 2, 3))
    mean = channel_stats([0.5, 0.25, 0.125])
    assert mean.shape == (1, 3, 1, 1) and mean.dtype == torch.float32
    assert torch.allclose((to_unit_nchw(np.full((1, 2, 2, 3), 255, np.uint8)) - mean)[0, :, 0, 0],
                          torch.tensor([0.5, 0.75, 0.875]))
