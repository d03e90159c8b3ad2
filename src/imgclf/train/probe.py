"""Training throughput of a model on this machine, measured in seconds: what the `fast` recipe's sizing reads.

One probe times forward, backward and optimiser step on a batch of the run's own images, at the run's batch size,
memory format (channels-last) and precision (bf16 autocast where `precision auto` chose it), so the figure is the
same kind of work an epoch does, without its data loading, augmentation and validation.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch


def probe_batch(pixels: np.ndarray | None, indices: np.ndarray, batch_size: int, channels: int,
                img_size: int) -> torch.Tensor:
    """A float batch (N, C, H, W) in 0..1 from the run's uint8 cache; random pixels where the data streams
    (the speed of a step does not depend on what the pixels show)."""
    if pixels is not None and len(indices):
        take = np.resize(np.asarray(indices), batch_size)  # repeats the split when it is smaller than a batch
        batch = torch.from_numpy(np.ascontiguousarray(pixels[np.sort(take)]))
        if batch.ndim == 3:
            batch = batch[..., None]
        return batch.permute(0, 3, 1, 2).float().div_(255)
    return torch.rand(batch_size, channels, img_size, img_size)


def images_per_second(model: torch.nn.Module, batch: torch.Tensor, num_classes: int, precision: str,
                      channels_last: bool, seconds: float, device: torch.device = torch.device("cpu"),
                      min_steps: int = 1) -> float:
    """Images per second of training steps of `model` on `batch`, after one untimed warm-up step; steps are
    timed until `seconds` have passed and at least `min_steps` ran. The model's weights change (it is a
    throw-away copy)."""
    model = model.to(device)
    x = batch.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.arange(len(x), device=device) % num_classes
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    model.train()

    def step() -> None:
        autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with autocast:
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()
    sync()
    steps, start = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < seconds:
        step()
        steps += 1
        sync()
    return steps * len(x) / (time.perf_counter() - start)
