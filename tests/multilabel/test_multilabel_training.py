"""Multi-label data through the training machinery single-label runs use: resume (no epoch trained twice),
data-parallel processes, a timm backbone with a custom head under a freeze schedule, the asymmetric loss, and
the time budget. (What freezing does to the weights is tested on its own in tests/train/test_finetune.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from ml_fixtures import SHAPES, make_mosaics
from safetensors.torch import load_file

import imgclf
from imgclf.io import read_csv
from imgclf.records import RunDir
from imgclf.train.callbacks import HistoryWriter
from imgclf.train.fit import TrainingInterrupted

BASE = {"img_size": 32, "epochs": 4, "batch_size": 16, "progress": False, "model_args": {"width": 4},
        "val_split": 0.2, "test_split": 0.2, "seed": 1}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return str(make_mosaics(tmp_path_factory.mktemp("mosaics"), count=80)[0])


def test_a_multilabel_run_resumes_without_repeating_an_epoch(index, tmp_path, steps, monkeypatch):
    settings = {**BASE, "data": index}
    full = imgclf.fit(settings, out=str(tmp_path / "full"), report=False)
    per_epoch = len(steps) // full.epochs_run
    original = HistoryWriter.on_train_epoch_start

    def interrupt(self, trainer, pl_module):
        if trainer.current_epoch == 2:
            raise KeyboardInterrupt
        original(self, trainer, pl_module)

    steps.clear()
    with monkeypatch.context() as m:
        m.setattr(HistoryWriter, "on_train_epoch_start", interrupt)
        with pytest.raises(TrainingInterrupted, match="epochs 1-2 are saved"):
            imgclf.fit(settings, out=str(tmp_path / "cut"), report=False)
    steps.clear()
    resumed = imgclf.fit(resume=str(tmp_path / "cut"), report=False)
    assert len(steps) == 2 * per_epoch, "a resumed run retrained saved epochs"
    a, b = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("full", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    card = RunDir(resumed.path).read_card()
    assert card.task == "multilabel" and card.thresholds == RunDir(full.path).read_card().thresholds


def test_a_timm_backbone_with_a_head_a_freeze_schedule_and_the_asymmetric_loss(index, tmp_path):
    run = imgclf.fit({**BASE, "data": index, "model": "test_efficientnet", "pretrained": False, "model_args": {},
                      "head": "avg,dense:8", "freeze_epochs": 1, "epochs": 3, "loss": "asl"},
                     out=str(tmp_path / "run"), report=False)
    card = RunDir(run.path).read_card()
    assert card.task == "multilabel" and card.training.loss == "asl" and len(card.thresholds) == 3
    assert [r.frozen for r in RunDir(run.path).read_history()] == [1, 0, 0]
    assert run.metrics.multilabel is not None and 0 <= run.metrics.multilabel.map_macro <= 1
    # the page says what trained when, as a single-label transfer run's does (it said nothing of the freeze)
    page = " ".join(imgclf.report(run.path, explain=False).read_text().split())
    assert f"Fine-tuning: {card.training.fine_tuning}" in page and "head only for epoch 1" in page


def test_the_time_budget_stops_a_multilabel_run(index, tmp_path):
    run = imgclf.fit({**BASE, "data": index, "epochs": 10_000, "time_limit": "4s", "schedule": "budget"},
                     out=str(tmp_path / "run"), report=False)
    assert run.stopped_reason == "time limit (4s)" and 1 <= run.epochs_run < 10_000
    assert RunDir(run.path).read_card().task == "multilabel"


def test_two_process_ddp_trains_a_multilabel_run_like_one_process(index, tmp_path, monkeypatch):
    cli = [sys.executable, "-m", "imgclf.cli", "train", index, "--img-size", "32", "--epochs", "3", "--no-progress",
           "--accelerator", "cpu", "--model-args", "width=4", "--seed", "0"]
    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path / "cache")}
    monkeypatch.setenv("IMGCLF_CACHE", env["IMGCLF_CACHE"])
    # the one process runs here, through the API with the same settings: only the launch needs the CLI
    imgclf.fit({"data": index, "img_size": 32, "epochs": 3, "progress": False, "accelerator": "cpu",
                "model_args": {"width": 4}, "seed": 0, "batch_size": 16}, out=str(tmp_path / "one"), report=False)
    two = subprocess.run(cli + ["--batch-size", "8", "--devices", "2", "--strategy", "ddp", "--no-report", "--out",
                                str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("test mAP") == 1, "only rank 0 reports"
    h1, h2 = read_csv(tmp_path / "one" / "history.csv"), read_csv(tmp_path / "two" / "history.csv")
    assert len(h1) == len(h2) == 3
    # the same tolerance as the single-label check: only per-rank BatchNorm statistics differ
    assert abs(float(h1[-1]["val_loss"]) - float(h2[-1]["val_loss"])) <= 0.15
    # the validation mAP ranks every process's images together (gather_rows), so it is logged under DDP too
    assert all(row["val_map"] for row in h2) and abs(float(h1[-1]["val_map"]) - float(h2[-1]["val_map"])) <= 0.15
    cards = [RunDir(tmp_path / name).read_card() for name in ("one", "two")]
    assert all(c.task == "multilabel" for c in cards) and set(cards[0].thresholds) == set(cards[1].thresholds)
    counts = [RunDir(tmp_path / name).read_metrics().count for name in ("one", "two")]
    assert counts[0] == counts[1] > 0, "rank 0 evaluates the whole test split, not its shard"


def test_gather_rows_joins_every_processs_rows_whatever_their_counts():
    """Under DDP each process holds its shard of the validation rows; all_gather needs equal shapes, so the rows are
    padded to the largest shard and cut back: the mAP must rank the union, each row once."""
    import torch

    from imgclf.train.module import gather_rows

    mine = [(torch.tensor([[0.9, 0.1]]), torch.tensor([[1.0, 0.0]])),
            (torch.tensor([[0.2, 0.8]]), torch.tensor([[0.0, 1.0]]))]  # 2 rows here
    other = [torch.tensor([[0.3, 0.6]]), torch.tensor([[1.0, 1.0]])]  # its 1 row: probabilities, targets

    class Fake:
        device = torch.device("cpu")
        trainer = type("T", (), {"world_size": 2})()
        calls = 0

        def all_gather(self, local):
            if local.dim() == 1:  # the shapes first
                return torch.stack([local, torch.tensor([1, 2])])
            theirs = torch.zeros_like(local)  # padded to this process's 2 rows, as its own would be
            theirs[:1] = other[Fake.calls]
            Fake.calls += 1
            return torch.stack([local, theirs])

    probs, targets = gather_rows(Fake(), mine)
    assert probs.flatten().tolist() == pytest.approx([0.9, 0.1, 0.2, 0.8, 0.3, 0.6])
    assert targets.tolist() == [[1, 0], [0, 1], [1, 1]]
    one = type("One", (), {"trainer": type("T", (), {"world_size": 1})()})()
    assert gather_rows(one, mine)[0].shape == (2, 2) and gather_rows(one, [])[0].shape == (0, 0)


def test_a_features_only_run_trains_its_head_on_label_sets(tmp_path):
    """--features-only on multi-label data fed the head each image's primary label instead of its label set:
    the loss refused the (N,) targets against (N, K) logits ("internal error")."""
    import imgclf
    from imgclf.records import RunDir

    index, _ = make_mosaics(tmp_path, count=40)
    run = imgclf.fit(data=str(index), model="test_efficientnet", pretrained=False, features_only=True, img_size=32,
                     epochs=2, batch_size=16, out=str(tmp_path / "run"), progress=False, report=False, seed=0)
    card = RunDir(run.path).read_card()
    assert card.task == "multilabel" and set(card.thresholds) == set(SHAPES)
    assert [r.frozen for r in RunDir(run.path).read_history()] == [1, 1]


def test_monitor_val_map_keeps_the_epoch_of_the_best_validation_map(index, tmp_path):
    """--monitor val_map was refused ("Did you mean: val_acc?", the score docs/multilabel.md advises against):
    early stopping and the kept epoch could not watch the multi-label score tune ranks by. Single-label data
    refuses it."""
    from imgclf.errors import ImgclfError
    from conftest import make_image_folder

    run = imgclf.fit({**BASE, "data": index, "epochs": 5, "monitor": "val_map", "restore_best": True,
                      "lr": 0.01}, out=str(tmp_path / "run"), report=False)
    history = RunDir(run.path).read_history()
    maps = [r.val_map for r in history]
    assert all(m is not None for m in maps)
    assert run.best_epoch == 1 + maps.index(max(maps)), (run.best_epoch, maps)
    assert RunDir(run.path).read_card().training.best_epoch == run.best_epoch
    single = make_image_folder(tmp_path / "single", per_class=6)
    with pytest.raises(ImgclfError, match=r"monitor must be val_loss or val_acc for single-label data \(val_map, "
                                          r"the validation mAP, is a multi-label score\)"):
        imgclf.fit({**BASE, "data": str(single), "monitor": "val_map"}, out=str(tmp_path / "s"))
