import pytest

from imgclf.train.callbacks import monitor_improved
from imgclf.train.loaders import BatchIndexSampler


@pytest.mark.parametrize("values, mode, delta, best_index", [
    ([1.0, 0.8, 0.9, 0.7, 0.75], "min", 0.0, 3),
    ([1.0, 0.99, 0.98], "min", 0.05, 0),
    ([0.1, 0.5, 0.4, 0.5], "max", 0.0, 1),
])
def test_monitor_decision_on_scripted_values(values, mode, delta, best_index):
    best, best_i = None, None
    for i, v in enumerate(values):
        if monitor_improved(v, best, mode, delta):
            best, best_i = v, i
    assert best_i == best_index


def test_sampler_is_a_seeded_permutation_per_epoch():
    s = BatchIndexSampler(10, 3, shuffle=True, seed=0)
    s.set_epoch(0)
    first = [b.tolist() for b in s]
    assert sorted(sum(first, [])) == list(range(10)) and len(first) == len(s) == 4
    s.set_epoch(1)
    assert [b.tolist() for b in s] != first
    s.set_epoch(0)
    assert [b.tolist() for b in s] == first


def test_two_ranks_cover_the_epoch_once_with_equal_step_counts():
    ranks = [BatchIndexSampler(100, 8, True, seed=3, rank=r, world_size=2) for r in range(2)]
    batches = [[b.tolist() for b in s] for s in ranks]
    assert len(batches[0]) == len(batches[1]) == len(ranks[0])
    seen = sum(batches[0] + batches[1], [])
    assert set(seen) == set(range(100))


def test_validation_ranks_score_every_image_exactly_once():
    """Wrapped like training's, the ranks scored 600 validation images in 4 batches of 256 (rank 1 took batch 0
    again): history.csv's val_acc 0.175 where the weights scored 0.25 on the split."""
    ranks = [BatchIndexSampler(600, 256, False, rank=r, world_size=2, wrap=False) for r in range(2)]
    batches = [[b.tolist() for b in s] for s in ranks]
    assert [len(b) for b in batches] == [len(s) for s in ranks] == [2, 1]
    seen = sum(batches[0] + batches[1], [])
    assert sorted(seen) == list(range(600))


def test_every_rank_gets_a_validation_batch_whatever_the_split_size():
    """1 validation image on 2 processes made 1 batch: the rank without any stopped ("zero length") and the other
    waited for it. Every rank has a batch, and from as many images as ranks each image is scored once."""
    from imgclf.train.fit import validation_batches

    for world in (1, 2, 3, 4, 8):
        for images in range(1, 40):
            batch, wrap = validation_batches(images, 8, world)
            ranks = [BatchIndexSampler(images, batch, False, rank=r, world_size=world, wrap=wrap) for r in range(world)]
            seen = [i for s in ranks for b in s for i in b.tolist()]
            assert all(len(s) >= 1 for s in ranks), (world, images)
            assert sorted(set(seen)) == list(range(images))
            assert wrap or len(seen) == images, (world, images)


def test_the_epoch_sums_are_no_buffer_ddp_would_copy_from_rank_0():
    """DDP copies a module's buffers from rank 0 to every rank before each forward: as a buffer, the running sums
    of loss and accuracy were rank 0's on both ranks, and the epoch's training scores rank 0's half twice."""
    from imgclf.config import make_config
    from imgclf.models import create_model
    from imgclf.train.module import ImageClassifierModule

    module = ImageClassifierModule(create_model("simple_cnn", 3, in_chans=1, img_size=8, width=4),
                                   make_config(data="d").model_dump(mode="json"), [0.5], [0.25])
    assert "epoch_sums" not in dict(module.named_buffers()) and module.epoch_sums.tolist() == [0.0, 0.0, 0.0]


def test_device_resident_batches_equal_host_batches():
    import numpy as np
    import torch

    from imgclf.train.loaders import CachedImages

    pixels = np.random.default_rng(0).integers(0, 255, (50, 4, 4, 1), dtype=np.uint8)
    rows = np.array([40, 3, 17, 8, 22, 5])
    labels = np.arange(6)
    host = CachedImages(pixels, rows, labels)
    resident = CachedImages(pixels, rows, labels, device=torch.device("cpu"))
    for positions in ([0, 1, 2], [5, 3], [4]):
        hx, hy = host[np.array(positions)]
        dx, dy = resident[np.array(positions)]
        assert torch.equal(hx, dx) and torch.equal(hy, dy)


@pytest.mark.parametrize("patience, first_cut", [(1, 2), (2, 3), (3, 4), (0, 2)])
def test_plateau_patience_counts_as_keras_does(patience, first_cut):
    """lr_patience K reduces the rate after K epochs without improvement, as Keras's ReduceLROnPlateau (the
    reference recipes' meaning); torch's own patience waits one epoch more. Epoch 1 sets the best; every later
    epoch is worse, so the first cut follows epoch 1 + K (0 acts as 1: Keras cuts on the first bad epoch too)."""
    from torch import nn

    from imgclf.train.module import ImageClassifierModule

    module = ImageClassifierModule(nn.Linear(4, 3), {"data": "unused", "schedule": "plateau", "lr": 0.1,
                                                     "lr_patience": patience, "lr_factor": 0.5},
                                   mean=[0.0], std=[1.0])
    scheduler = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    rates = []
    for epoch, val_loss in enumerate([1.0, 2.0, 2.0, 2.0, 2.0], start=1):
        scheduler.step(val_loss)
        rates.append(scheduler.optimizer.param_groups[0]["lr"])
    assert rates.index(0.05) + 1 == first_cut, rates
