"""Batches of uint8 images straight from the memory-mapped cache, or decoded on the fly when streaming.

A sampler yields whole index batches, so a batch costs one fancy index into the cache instead of
`batch_size` Python calls and a collate. The order is a pure function of (seed, epoch, rank): runs are
reproducible and `--resume` replays the same batches. With N processes each rank takes every N-th batch
of one shared permutation, so data-parallel training sees each image once per epoch.

With `steps` (Keras' steps_per_epoch) an epoch is that many batches of an endless stream of passes over the
data, each pass a fresh permutation; the next epoch continues the stream where the last one stopped, as a
repeating Keras generator does. (Lightning's limit_train_batches instead makes a new iterator every epoch, so
it trains the start of the pass again: the same batches without shuffling, an overlapping draw with it.)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from ..data.decode import DecodeError, open_image


class BatchIndexSampler(Sampler[np.ndarray]):
    def __init__(self, num_items: int, batch_size: int, shuffle: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1, weights: np.ndarray | None = None, drop_last: bool = False,
                 epoch_items: int | None = None, steps: int | None = None, subset: np.ndarray | None = None,
                 wrap: bool = True):
        self.num_items = num_items
        # wrap: every rank yields as many batches, the last ones taking the first batches again (training: DDP
        # needs equal step counts). Without it (validation) each batch goes to one rank, so no image is scored
        # twice: ranks then differ by a batch, which evaluation, with no collective per batch, allows
        self.wrap = wrap
        # positions of the dataset this sampler draws from (all when None): a fixed sample for --val-steps
        self.subset = None if subset is None else np.asarray(subset, dtype=np.int64)
        self.steps = steps
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64) / np.sum(weights)
        self.drop_last = drop_last
        self.epoch_items = epoch_items or (num_items if subset is None else len(self.subset))
        self.epoch = 0
        self.skip = 0  # batches of the coming epoch already trained before a mid-epoch resume

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def start_epoch(self, epoch: int) -> None:
        """The whole of `epoch`'s batches next, whatever this process iterated or resumed before."""
        self.set_epoch(epoch)
        self.skip = 0

    def _order(self, pass_index: int) -> np.ndarray:
        """The items of one pass over the data, in order (a pass is an epoch unless `steps` is set)."""
        rng = np.random.default_rng([self.seed, pass_index])
        if self.weights is not None:
            return rng.choice(self.num_items, size=self.epoch_items, replace=True, p=self.weights)
        n = self.num_items if self.subset is None else len(self.subset)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        return order if self.subset is None else self.subset[order]

    def _num_batches_total(self) -> int:
        n = self.epoch_items
        return max(1, n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size))

    def __len__(self) -> int:
        if self.steps:
            return self.steps
        if not self.wrap:
            return len(range(self.rank, self._num_batches_total(), self.world_size))
        return math.ceil(self._num_batches_total() / self.world_size)

    def __iter__(self):
        start, self.skip = self.skip, 0
        if self.steps:
            yield from self._stream(start)
            return
        order = self._order(self.epoch)
        total = self._num_batches_total()
        # Every rank yields the same number of batches (DDP needs equal step counts); the last ranks
        # wrap around to the first batches when the count does not divide evenly.
        for k in range(start, len(self)):
            b = (self.rank + k * self.world_size) % total
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            if len(batch):
                yield batch

    def _stream(self, start: int):
        """Batches `start`..`steps` of this epoch's stretch of the endless stream: global batch g is batch
        g % (batches per pass) of pass g // (batches per pass); ranks take turns, as within an epoch."""
        per_pass = self._num_batches_total()
        pass_index, order = -1, np.empty(0, dtype=np.int64)
        for k in range(start, self.steps):
            g = (self.epoch * self.steps + k) * self.world_size + self.rank
            p, b = divmod(g, per_pass)
            if p != pass_index:
                pass_index, order = p, self._order(p)
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            if len(batch):
                yield batch


def label_dtype(labels) -> torch.dtype:
    """int64 class ids, or float32 multi-hot rows (what BCEWithLogits takes) for multi-label targets."""
    return torch.float32 if np.ndim(labels) == 2 else torch.long


class CachedImages(Dataset):
    """Indexable by an array of positions; returns (uint8 NHWC tensor, int64 labels), or float32 (N, K) multi-hot
    targets when `labels` is 2-D (multi-label data).

    With `device` set (a GPU with room for it), the split's uint8 pixels are copied there once and batches
    are gathered on the device: no per-step host-to-device copy, and augmentation runs where the data is.
    """

    def __init__(self, pixels: np.ndarray, rows: np.ndarray, labels: np.ndarray, device: torch.device | None = None):
        self.rows = np.asarray(rows)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=label_dtype(labels))
        self.device = device
        if device is not None:
            self.pixels = torch.from_numpy(np.ascontiguousarray(pixels[np.sort(self.rows)] if len(self.rows) != len(pixels)
                                                                else pixels)).to(device)
            order = np.argsort(np.argsort(self.rows)) if len(self.rows) != len(pixels) else self.rows
            self.rows = np.asarray(order)
            self.labels = self.labels.to(device)
        else:
            self.pixels = pixels

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        positions = np.sort(np.asarray(positions))
        if self.device is not None:
            index = torch.from_numpy(positions).to(self.device, non_blocking=True)
            rows = torch.from_numpy(self.rows[positions]).to(self.device, non_blocking=True)
            return self.pixels.index_select(0, rows), self.labels.index_select(0, index)
        x = torch.from_numpy(np.ascontiguousarray(self.pixels[self.rows[positions]]))
        return x, self.labels[positions]


class StreamedImages(Dataset):
    """Decodes each image when asked (for data larger than the cache budget). Files that fail to decode
    here (changed since the validation pass) are dropped from the batch, never crash the epoch, and are named in a
    warning, once per file and process (a decode worker's warning prints from that worker)."""

    def __init__(self, paths: list[str], labels: np.ndarray, size: int, color: str, interpolation: str):
        self.paths = paths
        self.labels = np.asarray(labels)
        self.size, self.color, self.interpolation = size, color, interpolation
        # the caller's, carried to decode workers: a spawned one (macOS, Windows) starts with Pillow's default and
        # dropped every image the check pass had accepted under a raised limit
        self.pixel_limit = Image.MAX_IMAGE_PIXELS
        self.said_unread: set[int] = set()  # positions already warned of in this process

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        Image.MAX_IMAGE_PIXELS = self.pixel_limit
        images, labels = [], []
        for p in np.asarray(positions):
            try:
                images.append(open_image(self.paths[p], self.size, self.color, self.interpolation))
                labels.append(self.labels[p])
            except DecodeError as exc:
                self._say_unread(int(p), exc)
        if not images:
            channels = 1 if self.color == "grayscale" else 3
            dtype = label_dtype(self.labels)
            return (torch.zeros((0, self.size, self.size, channels), dtype=torch.uint8),
                    torch.zeros((0, *self.labels.shape[1:]), dtype=dtype))
        return torch.from_numpy(np.stack(images)), torch.as_tensor(np.array(labels), dtype=label_dtype(self.labels))


    def _say_unread(self, position: int, exc: DecodeError) -> None:
        if position in self.said_unread:
            return
        self.said_unread.add(position)
        from ..notices import warn

        warn(f"{self.paths[position]}: unreadable now ({exc}), left out of its batch: removed or changed since the "
             "command began")


class ResumableLoader(DataLoader):
    """A loader Lightning can resume inside an epoch (its `_Stateful` interface): the state is how many batches of
    the epoch were trained, set by the checkpoint that is being written; loading it makes the sampler skip them.
    The batch order itself is a function of (seed, epoch), so nothing else needs saving."""

    batches_done = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.sampler.epoch), "batches_done": int(self.batches_done)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        # the epoch too: with decode workers the order is drawn when the iterator is made, before Lightning
        # sets the sampler's epoch
        self.sampler.set_epoch(int(state.get("epoch", self.sampler.epoch)))
        self.sampler.skip = int(state.get("batches_done", 0))


def make_loader(dataset: Dataset, sampler: BatchIndexSampler, workers: int = 0) -> DataLoader:
    # batch_size=None: the sampler already yields whole batches, so no per-item collate.
    on_device = getattr(dataset, "device", None) is not None
    return ResumableLoader(dataset, sampler=sampler, batch_size=None, num_workers=0 if on_device else workers,
                      persistent_workers=workers > 0 and not on_device,
                      pin_memory=torch.cuda.is_available() and not on_device)
