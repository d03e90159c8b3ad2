"""`--ema DECAY`: an exponential moving average of the weights, whose decay warms up.

Lightning's `EMAWeightAveraging` averages with a fixed decay from the first step: after n steps the initial
weights keep decay^n of the average, 0.99^72 = 0.48. A fast run on 400 digits whose probe predicted 1,000 epochs
(2,000 steps) trained 99 (198 steps: a loaded machine) with EMA 0.99 chosen for the 1,000: it validated near chance
for its first 36 epochs (72 steps) and tested at 62.5 % where the same recipe without the average tested 90 %.
The decay here is min(decay, (1 + n) / (10 + n)) after n updates, as TensorFlow's ExponentialMovingAverage takes
`num_updates`: the initial weights keep under 1e-5 of the average after 20 steps, and a long run averages as
before (the cap is reached after 9 / (1 - decay) steps).
"""

from __future__ import annotations

from typing import Callable

import torch
from lightning.pytorch.callbacks import WeightAveraging


def warmed_decay_average(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """AveragedModel's `multi_avg_fn`: (averages, currents, updates the averages hold) -> the averages moved in
    place, once per step and dtype group. The decay is worked out once there, from the update count read on the
    host (AveragedModel reads it there every step already), and each tensor moves by one lerp_. An update of
    fast_resnet width 16 (50 tensors) took 0.7-0.9 ms, against 1.6-2.3 ms for Lightning's fixed decay applied
    tensor by tensor (300 updates, 3 interleaved repeats, 2 cores, AVX-512 bf16)."""
    def average(averaged: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
        n = float(updates)
        warm = min(decay, (1.0 + n) / (10.0 + n))
        for a, c in zip(averaged, current):
            if a.is_floating_point():
                a.lerp_(c, 1.0 - warm)
            else:  # integer buffers (BatchNorm's batch count), as torch's own EMA treats them
                a.copy_(a * warm + c * (1.0 - warm))

    return average


class WarmedEMA(WeightAveraging):
    """Updated after every optimizer step and at no epoch's end (an update at the epoch's end, after validation,
    moved the weights a run without restore_best kept past the ones its last epoch was validated with)."""

    def __init__(self, decay: float):
        super().__init__(use_buffers=True, multi_avg_fn=warmed_decay_average(decay))
        self.decay = decay

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None

    def __repr__(self) -> str:
        return f"WarmedEMA(decay={self.decay})"
