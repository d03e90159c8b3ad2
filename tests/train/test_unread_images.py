"""Streamed images gone while training reads them (a drive unmounted, files replaced since the scan): an epoch
that could read none of its training images stops the run, resumable without training any epoch twice, where it
wrote the epoch before's numbers again into history.csv and went on; a batch that trained nothing is warned of."""

from __future__ import annotations

import csv
import logging

import pytest

import imgclf
import imgclf.train.loaders as loaders
from conftest import make_image_folder
from imgclf.data.decode import DecodeError
from imgclf.errors import ImgclfError
from imgclf.train.callbacks import HistoryWriter


def _history(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _failing_reads(monkeypatch, after_epoch: int, reads: float):
    """open_image of the streamed loader fails for `reads` calls (inf: all) once epoch `after_epoch` has ended."""
    left = {"reads": 0.0}
    read, ended = loaders.open_image, HistoryWriter.on_train_epoch_end

    def open_image(*args, **kwargs):
        if left["reads"] > 0:
            left["reads"] -= 1
            raise DecodeError("empty file (0 bytes)")
        return read(*args, **kwargs)

    def on_train_epoch_end(self, trainer, module):
        ended(self, trainer, module)
        if trainer.current_epoch + 1 == after_epoch:
            left["reads"] = reads

    monkeypatch.setattr(loaders, "open_image", open_image)
    monkeypatch.setattr(HistoryWriter, "on_train_epoch_end", on_train_epoch_end)
    return left


SETTINGS = dict(img_size=16, batch_size=8, model_args={"width": 4}, cache_budget="1KB", num_workers=0,
                progress=False, report=False)


def test_an_epoch_that_reads_no_image_stops_the_run_and_the_resume_trains_no_epoch_twice(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "data", classes=("a", "b", "c"), per_class=10)
    run_dir = tmp_path / "run"
    left = _failing_reads(monkeypatch, after_epoch=1, reads=float("inf"))
    with pytest.raises(ImgclfError, match=rf"^training stopped: not one training image of epoch 2 could be read "
                                          rf"\(3 batches\): the files, .* were removed or changed since the command "
                                          rf"began .*then imgclf train --resume {run_dir} continues from epoch 2 "
                                          rf"\(1 epoch saved\)$"):
        imgclf.fit(data=str(root), epochs=3, out=str(run_dir), **SETTINGS)
    assert [row["epoch"] for row in _history(run_dir)] == ["1"]  # the epoch of nothing left no row

    left["reads"] = 0  # the files are back
    epochs_started = []
    started = HistoryWriter.on_train_epoch_start

    def on_train_epoch_start(self, trainer, module):
        epochs_started.append(trainer.current_epoch + 1)
        started(self, trainer, module)

    monkeypatch.setattr(HistoryWriter, "on_train_epoch_start", on_train_epoch_start)
    run = imgclf.fit(resume=str(run_dir), report=False, progress=False)
    assert epochs_started == [2, 3] and run.epochs_run == 3
    rows = _history(run_dir)
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert len({row["loss"] for row in rows}) == 3  # no epoch repeats another's numbers


def test_a_batch_that_reads_no_image_is_warned_of_and_the_epoch_goes_on(tmp_path, monkeypatch, caplog):
    root = make_image_folder(tmp_path / "data", classes=("a", "b", "c"), per_class=10)
    _failing_reads(monkeypatch, after_epoch=1, reads=8)  # the first batch of epoch 2, 8 images
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        run = imgclf.fit(data=str(root), epochs=2, out=str(tmp_path / "run"), **SETTINGS)
    assert run.epochs_run == 2
    said = " ".join(caplog.text.split())
    assert ("epoch 2: 1 batch trained nothing, not one of its images readable (removed or changed since the command "
            "began); the epoch trained on its other batches") in said, said
    assert "epoch 1:" not in said
    rows = _history(tmp_path / "run")
    assert rows[0]["loss"] != rows[1]["loss"]


def test_images_unreadable_in_a_batch_that_trains_are_named_once_each(tmp_path, monkeypatch, caplog):
    """A batch that lost some of its images trains on the others: it was silent, so an epoch could train on far fewer
    images than the user was told. Each lost file is named once, though it fails again in every epoch."""
    root = make_image_folder(tmp_path / "data", classes=("a", "b", "c"), layout="splits",
                             per_split={"train": 10, "val": 4, "test": 4})
    gone = str(root / "train" / "a" / "a_004.png")
    read = loaders.open_image

    def open_image(path, *args, **kwargs):
        if path == gone:
            raise DecodeError("empty file (0 bytes)")
        return read(path, *args, **kwargs)

    monkeypatch.setattr(loaders, "open_image", open_image)
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        run = imgclf.fit(data=str(root), epochs=3, out=str(tmp_path / "run"), **SETTINGS)
    assert run.epochs_run == 3
    unread = [r.getMessage() for r in caplog.records if "unreadable now" in r.getMessage()]
    assert unread == [f"{gone}: unreadable now (empty file (0 bytes)), left out of its batch: removed or changed "
                      "since the command began"], unread


@pytest.mark.parametrize("processes", [1, 2])
def test_a_batch_that_reads_no_image_trains_nothing_in_any_number_of_processes(processes):
    """One process skips the step (None); under DDP Lightning refuses None ("Skipping the training_step by returning
    None in distributed training is not supported": an internal error), and the other processes wait in the
    gradients' all-reduce: the batch gives a zero loss on every trained weight, whose gradients are all zero."""
    from types import SimpleNamespace

    import torch
    from torch import nn

    from imgclf.train.module import ImageClassifierModule

    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    module = ImageClassifierModule(model, {"data": "unused"}, mean=[0.0], std=[1.0])
    module._trainer = SimpleNamespace(world_size=processes)
    empty = (torch.zeros((0, 8, 8, 1), dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    loss = module.training_step(empty, 0)
    assert module.unread_batches == 1
    if processes == 1:
        assert loss is None
        return
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    loss.backward()
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
