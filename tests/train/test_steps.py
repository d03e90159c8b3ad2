"""--steps-per-epoch / --val-steps (S1: 25 steps per epoch, 25 validation steps), with Keras' semantics: an epoch
is N batches of an endless stream of reshuffled passes, and the next epoch continues where the last one stopped.
Counted from the batches training actually received, not from the config."""

from __future__ import annotations

import hashlib

import lightning as L
import pytest

import imgclf
import imgclf.train.fit as fit_module
from conftest import make_image_folder
from imgclf.records import RunDir
from imgclf.train.loaders import BatchIndexSampler

BATCH, STEPS, EPOCHS = 4, 3, 4


class BatchRecorder(L.Callback):
    """Every batch training and validation received: (epoch, image fingerprints)."""

    def __init__(self):
        self.train: list[tuple[int, list[str]]] = []
        self.val: list[tuple[int, list[str]]] = []

    @staticmethod
    def _prints(batch) -> list[str]:
        return [hashlib.sha1(image.numpy().tobytes()).hexdigest() for image in batch[0].cpu()]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.train.append((trainer.current_epoch, self._prints(batch)))

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.val.append((trainer.current_epoch, self._prints(batch)))

    def epoch(self, which: str, epoch: int) -> list[list[str]]:
        return [images for e, images in getattr(self, which) if e == epoch]


@pytest.fixture()
def recorder(monkeypatch):
    rec = BatchRecorder()
    original = fit_module._extra_callbacks
    monkeypatch.setattr(fit_module, "_extra_callbacks", lambda cfg, model: [*original(cfg, model), rec])
    return rec


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("steps"), per_class=16)


def _fit(data, out, **settings):
    return imgclf.fit({"data": str(data), "out": str(out), "img_size": 16, "batch_size": BATCH, "epochs": EPOCHS,
                       "progress": False, "model_args": {"width": 4}, "val_split": 0.25, "test_split": 0.2,
                       "seed": 3, **settings}, report=False)


def test_an_epoch_is_n_batches_and_the_next_continues_the_stream(data, tmp_path, recorder):
    run = _fit(data, tmp_path / "run", steps_per_epoch=STEPS, val_steps=2)
    train_images = RunDir(run.path).read_dataset().sizes["train"]
    per_pass = -(-train_images // BATCH)
    assert per_pass > STEPS + 1, "the data must be larger than an epoch for this test to mean something"

    epochs = [recorder.epoch("train", e) for e in range(EPOCHS)]
    assert [len(batches) for batches in epochs] == [STEPS] * EPOCHS  # exactly N batches each epoch
    assert [r.epoch for r in RunDir(run.path).read_history()] == [1, 2, 3, 4]
    seen = [{image for batch in batches for image in batch} for batches in epochs]
    # Within one pass no image comes twice: epochs 1 and 2 (6 of the pass's batches) share no image. Lightning's
    # limit_train_batches would train the start of a pass again each epoch.
    assert seen[0].isdisjoint(seen[1])
    # The stream goes on through the pass (its last batch partial), then into a fresh one: the first
    # `train_images` images of the stream are every training image once.
    stream = [image for batches in epochs for batch in batches for image in batch]
    assert len(stream) > train_images and len(set(stream[:train_images])) == train_images

    # validation: the images of 2 batches of batch_size (batched as the whole split is, each image scored once
    # however many processes share them), the same images every epoch
    val = [recorder.epoch("val", e) for e in range(EPOCHS)]
    assert all(sum(map(len, b)) == 2 * BATCH and len({i for batch in b for i in batch}) == 2 * BATCH for b in val)
    assert all({i for batch in b for i in batch} == {i for batch in val[0] for i in batch} for b in val)


def test_without_steps_an_epoch_is_one_pass(data, tmp_path, recorder):
    run = _fit(data, tmp_path / "run", epochs=1)
    train_images = RunDir(run.path).read_dataset().sizes["train"]
    batches = recorder.epoch("train", 0)
    assert len(batches) == -(-train_images // BATCH)
    assert len({i for b in batches for i in b}) == train_images
    val_images = RunDir(run.path).read_dataset().sizes["val"]
    assert sum(len(b) for b in recorder.epoch("val", 0)) == val_images  # the whole val split


def test_val_steps_never_shows_an_image_twice_when_the_split_is_smaller(data, tmp_path, recorder):
    run = _fit(data, tmp_path / "run", epochs=1, val_steps=1000)
    val = [i for batch in recorder.epoch("val", 0) for i in batch]
    assert len(val) == len(set(val)) == RunDir(run.path).read_dataset().sizes["val"]


def test_the_stream_is_a_pure_function_of_seed_and_epoch():
    """What --resume relies on: a fresh sampler set to epoch e yields the same batches as one that got there."""
    def epoch(sampler, e):
        sampler.set_epoch(e)
        return [b.tolist() for b in sampler]

    walked = BatchIndexSampler(10, 3, True, seed=5, steps=3)
    history = [epoch(walked, e) for e in range(5)]
    assert [epoch(BatchIndexSampler(10, 3, True, seed=5, steps=3), e) for e in range(5)] == history
    flat = [i for batches in history for batch in batches for i in batch]
    # passes of 4 batches (3, 3, 3, 1 items): each pass is a permutation of the 10 items
    passes, pos = [], 0
    for _ in range(3):
        passes.append(flat[pos: pos + 10])
        pos += 10
    assert all(sorted(p) == list(range(10)) for p in passes) and passes[0] != passes[1]
    ranks = [BatchIndexSampler(10, 2, True, seed=5, rank=r, world_size=2, steps=2) for r in range(2)]
    together = sorted(i for s in ranks for batch in s for i in batch.tolist())
    assert len(together) == 8 and len(set(together)) == 8  # two ranks, 2 steps each: 4 distinct batches


def test_the_val_steps_sample_is_scored_once_by_two_ranks(data, tmp_path):
    """--val-steps 3 of batch 4 under two processes: its 12 images were batched as training's are, 3 batches on 2
    ranks, and rank 1 took batch 0 again (val_acc 0.75 where one process scored the same weights 0.667)."""
    from imgclf.config import make_config
    from imgclf.models import get_model_info
    from imgclf.pipeline.prepare import run_images
    from imgclf.train.fit import training_loaders

    cfg = make_config(data=str(data), img_size=16, batch_size=4, val_steps=3, val_split=0.4, test_split=0.2,
                      progress=False, cache_dir=str(tmp_path / "cache"))
    prepared = run_images(cfg, get_model_info(cfg.model), 16)
    assert len(prepared.splits["val"]) > 12  # a sample of the split, not all of it
    ranks = [training_loaders(cfg, prepared, rank, 2, None, None)[1].sampler for rank in (0, 1)]
    scored = [i for sampler in ranks for batch in sampler for i in batch.tolist()]
    one = [i for batch in training_loaders(cfg, prepared, 0, 1, None, None)[1].sampler for i in batch.tolist()]
    assert len(one) == 12 and sorted(scored) == sorted(one)  # the same 12 images, each once
