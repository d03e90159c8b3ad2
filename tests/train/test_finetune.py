"""Freeze / unfreeze (requires_grad, optimiser groups, BatchNorm statistics) and feature-extraction runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import imgclf
from imgclf.errors import ImgclfError
from imgclf.io import read_csv, read_json
from imgclf.models.transfer import build_transfer_model
from imgclf.train.finetune import FreezeSchedule, apply_phase, backbone_blocks

TINY = "test_efficientnet"


def _bn_layers(model):
    return [m for m in model.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _trainable_blocks(model):
    blocks = backbone_blocks(model.backbone)
    params = dict(model.backbone.named_parameters())
    return [all(params[n].requires_grad for n in b) for b in blocks]


def test_freeze_phases_set_requires_grad_and_batchnorm_modes():
    model = build_transfer_model(TINY, num_classes=3, img_size=32, pretrained=False).train()
    blocks = backbone_blocks(model.backbone)
    assert len(blocks) >= 4  # stem, stages..., head conv: timm's coarse grouping

    apply_phase(model.backbone, frozen=True, training=model.training)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    assert not any(bn.training for bn in _bn_layers(model))

    apply_phase(model.backbone, frozen=False, unfreeze="last:2", training=model.training)
    assert _trainable_blocks(model) == [False] * (len(blocks) - 2) + [True, True]
    trained_bn = [bn.training for bn in _bn_layers(model)]
    assert any(trained_bn) and not all(trained_bn)  # BN of the frozen blocks stays in eval mode

    apply_phase(model.backbone, frozen=False, unfreeze="all", training=model.training)
    assert all(p.requires_grad for p in model.parameters()) and all(bn.training for bn in _bn_layers(model))

    apply_phase(model.backbone, frozen=False, unfreeze="all", freeze_bn=True, training=model.training)
    assert all(p.requires_grad for p in model.parameters()) and not any(bn.training for bn in _bn_layers(model))

    with pytest.raises(ImgclfError, match=f"K <= {len(blocks)}"):
        apply_phase(model.backbone, frozen=False, unfreeze=f"last:{len(blocks) + 1}", training=model.training)
    with pytest.raises(ImgclfError, match="ddp_find_unused_parameters_true"):
        FreezeSchedule(nn.Linear(1, 1), 2, "all", strategy="ddp")


def test_optimizer_holds_every_parameter_and_frozen_ones_do_not_move():
    torch.manual_seed(0)
    model = build_transfer_model(TINY, num_classes=3, img_size=32, pretrained=False, head="avg,dense:8").train()
    groups = model.param_groups(lr=1e-2, backbone_lr_mult=0.1)
    assert [g["name"] for g in groups] == ["backbone", "head"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-2])
    ids = [{id(p) for p in g["params"]} for g in groups]
    assert ids[0] == {id(p) for p in model.backbone.parameters()}
    assert ids[1] == {id(p) for p in model.head.parameters()}
    optimizer = torch.optim.AdamW(groups, weight_decay=0.1)

    apply_phase(model.backbone, frozen=True, training=model.training)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = model.head[0].weight.clone()
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.rand(4, 3, 32, 32)).logsumexp(1).mean().backward()
        optimizer.step()
    for key, value in model.backbone.state_dict().items():  # weights and BatchNorm running statistics
        assert torch.equal(value, before[key]), key
    assert not torch.equal(model.head[0].weight, head_before)

    apply_phase(model.backbone, frozen=False, unfreeze="all", training=model.training)
    optimizer.zero_grad()
    model(torch.rand(4, 3, 32, 32)).logsumexp(1).mean().backward()
    optimizer.step()
    assert not torch.equal(model.backbone.conv_stem.weight, before["conv_stem.weight"])


@pytest.fixture(autouse=True)
def _no_report(monkeypatch):
    # The HTML report (plots, Grad-CAM) takes longer than these tiny fits; it is tested with the report.
    monkeypatch.setattr("imgclf.evaluation.report.write_report", lambda run_dir, **kwargs: None)


def _fit(folder, out, **extra):
    settings = {"data": str(folder), "model": TINY, "pretrained": False, "img_size": 32, "epochs": 2,
                "batch_size": 16, "lr": 3e-3, "out": str(out), "progress": False, "seed": 0, "val_split": 0.2,
                "test_split": 0.2}
    settings.update(extra)
    return imgclf.fit(settings)


@pytest.mark.parametrize("progress", [False, True])  # with progress, the console's tuning line reads it first
def test_unfreeze_beyond_the_backbone_is_refused_before_any_epoch_and_leaves_no_run(tmp_path, image_folder, progress):
    """It was checked only at the unfreeze epoch: the whole frozen phase trained, then the error, and an
    interrupted run stayed behind that every resume refused again."""
    blocks = len(backbone_blocks(build_transfer_model(TINY, num_classes=3, img_size=32, pretrained=False).backbone))
    out = tmp_path / "unf"
    for frozen in (1, 0):
        with pytest.raises(ImgclfError, match=f"K <= {blocks}"):
            _fit(image_folder, out, freeze_epochs=frozen, unfreeze=f"last:{blocks + 1}", progress=progress)
        assert not out.exists()


def test_early_stopping_waits_its_patience_after_the_backbone_unfreezes(tmp_path, image_folder):
    """As Keras' second model.fit with its own EarlyStopping: a head that levels off (min_delta 10: no epoch
    improves on the one before) used to stop the run before the backbone trained. Now the frozen epochs never stop
    it and early stopping starts afresh at the first unfrozen epoch (4), whose score is its first best: patience 2
    then runs out at epoch 6, not at 5 (the head's best kept) nor at 3 (no hold)."""
    run = _fit(image_folder, tmp_path / "es", freeze_epochs=3, epochs=10, early_stopping=2, min_delta=10.0)
    assert [r["frozen"] for r in read_csv(run.path / "history.csv")] == ["1", "1", "1", "0", "0", "0"]
    assert run.stopped_reason == "early stopping"


def test_reduce_lr_on_plateau_starts_afresh_when_the_backbone_unfreezes(tmp_path, image_folder):
    """As early stopping: the head's best validation loss was kept as the one to beat, so each unfrozen epoch
    counted as one without improvement and the rate was cut again at every epoch. With a rate too small to move
    the loss (and BatchNorm in eval mode, so its statistics do not move it either), no epoch improves: cut after
    epoch 2 (patience 1); epoch 3, the first unfrozen one, is the new best (no cut); cut again after epoch 4."""
    run = _fit(image_folder, tmp_path / "plateau", freeze_epochs=2, epochs=5, lr=1e-6, schedule="plateau",
               lr_patience=1, lr_factor=0.5, min_lr=0.0, freeze_bn=True)
    rows = read_csv(run.path / "history.csv")
    assert [r["frozen"] for r in rows] == ["1", "1", "0", "0", "0"]
    assert [float(r["lr"]) / 1e-6 for r in rows] == pytest.approx([1, 1, 0.5, 0.5, 0.25])


def test_fully_frozen_fit_keeps_backbone_weights_and_batchnorm_statistics(tmp_path, image_folder):
    run = _fit(image_folder, tmp_path / "frozen", freeze_epochs=2, head="avg,dense:16,bn,dropout:0.2")
    torch.manual_seed(0)  # fit seeds the same way right before building the model
    initial = build_transfer_model(TINY, num_classes=3, img_size=32, pretrained=False, head="avg,dense:16,bn,dropout:0.2")
    trained = imgclf.load(run.path).model
    for key, value in initial.backbone.state_dict().items():
        assert torch.equal(trained.backbone.state_dict()[key], value), key
    assert not torch.equal(trained.head[0].weight, initial.head[0].weight)
    assert [r["frozen"] for r in read_csv(run.path / "history.csv")] == ["1", "1"]
    card = read_json(run.path / "model.json")
    assert card["model_args"]["head"] == "avg,dense:16,bn,dropout:0.2"
    assert card["interpolation"] == "bicubic" and card["mean"] == pytest.approx([0.485, 0.456, 0.406])


def test_unfreezing_fit_records_the_phases(tmp_path, image_folder):
    run = _fit(image_folder, tmp_path / "thaw", freeze_epochs=1, unfreeze="last:2", backbone_lr_mult=0.1)
    assert [r["frozen"] for r in read_csv(run.path / "history.csv")] == ["1", "0"]
    torch.manual_seed(0)
    initial = build_transfer_model(TINY, num_classes=3, img_size=32, pretrained=False)
    trained = imgclf.load(run.path).model.backbone.state_dict()
    changed = {k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("blocks") else "")
               for k, v in initial.backbone.state_dict().items() if not torch.equal(v, trained[k])}
    assert "conv_stem" not in changed and "blocks.0" not in changed  # early blocks stayed frozen
    assert "conv_head" in changed or "bn2" in changed  # the last block trained
    # the card says so, with the parameters that trained in each phase, counted here from the weights that moved
    final = dict(imgclf.load(run.path, fold_batch_norm=False).model.named_parameters())
    head = sum(p.numel() for p in initial.head.parameters())
    moved = head + sum(p.numel() for name, p in initial.named_parameters()
                       if name.startswith("backbone.") and not torch.equal(p, final[name]))
    total = sum(p.numel() for p in initial.parameters())
    blocks = len(backbone_blocks(initial.backbone))
    assert read_json(run.path / "model.json")["training"]["fine_tuning"] == (
        f"head only for epoch 1 ({head:,} of {total:,} parameters), then head and the last 2 of {blocks} backbone "
        f"blocks from epoch 2 ({moved:,}), at 0.1 x lr")


def test_freeze_bn_keeps_pretrained_statistics_while_the_backbone_trains(tmp_path, image_folder):
    run = _fit(image_folder, tmp_path / "bn", freeze_epochs=1, freeze_bn=True)
    torch.manual_seed(0)
    initial = build_transfer_model(TINY, num_classes=3, img_size=32, pretrained=False).backbone.state_dict()
    trained = imgclf.load(run.path).model.backbone.state_dict()
    statistics = [k for k in initial if k.endswith(("running_mean", "running_var"))]
    assert statistics and all(torch.equal(initial[k], trained[k]) for k in statistics)
    assert not torch.equal(initial["conv_stem.weight"], trained["conv_stem.weight"])  # the backbone did train
    assert any(not torch.equal(initial[k], trained[k]) for k in initial if k.endswith("bn1.weight"))
    assert yaml.safe_load((run.path / "config.yaml").read_text())["freeze_bn"] is True


def test_a_frozen_random_backbone_is_warned_and_nothing_else():
    from imgclf.config import TrainConfig
    from imgclf.train.finetune import transfer_warnings

    def said(**settings) -> list[str]:
        return transfer_warnings(TrainConfig(data=".", model=TINY, **settings))

    assert said(pretrained=False, freeze_epochs=2) and "set it to 0" in said(pretrained=False, freeze_epochs=2)[0]
    assert said(pretrained=False) == [] and said(freeze_epochs=2) == [] and said(features_only=True) == []
    # the S2 recipe keeps BatchNorm frozen for pretrained weights; from scratch that is no normalisation at all
    assert len(said(pretrained=False, freeze_bn=True)) == 1 and "--no-freeze-bn" in said(pretrained=False,
                                                                                          freeze_bn=True)[0]
    assert said(freeze_bn=True) == [] and len(said(pretrained=False, freeze_bn=True, freeze_epochs=2)) == 2


def test_transfer_settings_are_refused_for_registered_models(tmp_path):
    with pytest.raises(ImgclfError, match="head needs a timm backbone"):
        imgclf.fit({"data": str(tmp_path / "nowhere"), "model": "simple_cnn", "head": "avg,dense:8"})
    with pytest.raises(ImgclfError, match="features_only needs a timm backbone"):
        imgclf.fit({"data": str(tmp_path / "nowhere"), "model": "simple_cnn", "features_only": True})


def test_features_only_run_is_a_joined_model_with_the_same_logits(tmp_path, image_folder, capsys):
    from imgclf.data.cache import decode_all
    from imgclf.train.features import compute_features

    head = "flatten,dense:16,bn,dropout:0.5"
    run = _fit(image_folder, tmp_path / "feat", features_only=True, head=head, epochs=3)
    # it runs (a random-features baseline), but says what it is: a frozen backbone that never trained
    assert "warning features_only (--features-only) without pretrained weights" in capsys.readouterr().err
    for name in ("model.safetensors", "model.json", "predictions.csv", "metrics.json", "history.csv"):
        assert (run.path / name).exists(), name
    assert [r["frozen"] for r in read_csv(run.path / "history.csv")] == ["1", "1", "1"]
    card = read_json(run.path / "model.json")
    assert card["model_args"]["features_only"] is True and card["model_args"]["head"] == head

    clf = imgclf.load(run.path)  # the joined model, rebuilt from the card like any other run
    joined = clf.model.to(memory_format=torch.contiguous_format).eval()
    torch.manual_seed(0)
    initial = build_transfer_model(TINY, num_classes=3, img_size=32, pretrained=False, head=head)
    for key, value in initial.backbone.state_dict().items():  # the backbone never trained
        assert torch.equal(joined.backbone.state_dict()[key], value), key

    dataset = read_json(run.path / "dataset.json")
    from pathlib import Path

    root = Path(dataset["root"])
    files = [str(root / f) for split in ("train", "val", "test") for f in dataset["splits"][split]["files"]]

    class Data:  # the parts of PreparedData that compute_features reads
        decoded = decode_all(sorted(files), 32, "rgb", "bicubic")
        img_size, color, interpolation = 32, "rgb", "bicubic"

    stored = compute_features(joined, Data, card["mean"], card["std"])
    pixels = torch.from_numpy(np.array(Data.decoded.pixels)).permute(0, 3, 1, 2).float() / 255
    x = (pixels - torch.tensor(card["mean"]).view(1, 3, 1, 1)) / torch.tensor(card["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        from_features = joined.head(torch.from_numpy(np.array(stored)))
        end_to_end = joined(x)
    assert torch.allclose(from_features, end_to_end, atol=1e-4)
    assert float(read_json(run.path / "metrics.json")["accuracy"]) > 0.0
    # the head's BatchNorm statistics recomputed on the stored training features, as an image run's are (skipped,
    # they held its first steps' average: test 0.33 where the same run on images read 1.0)
    train_rows = [sorted(files).index(str(root / f)) for f in dataset["splits"]["train"]["files"]]
    assert card["training"]["batch_norm_images"] == len(train_rows)
    norm = next(m for m in joined.head if isinstance(m, nn.modules.batchnorm._BatchNorm))
    dense = joined.head[: list(joined.head).index(norm)]
    with torch.no_grad():
        before_norm = dense(torch.from_numpy(np.array(stored)[train_rows]))
    assert torch.allclose(norm.running_mean, before_norm.mean(0), atol=1e-4)
    # a killed build's reserved array is removed by the next build (it stayed for ever); a young one, another
    # process's build in progress, is left alone
    import os
    import time

    from imgclf.io import STALE_SECONDS
    from imgclf.train.features import feature_key

    folder = tmp_path / "fc" / "features"
    folder.mkdir(parents=True)
    key = feature_key(Data.decoded.key, joined, 32, card["mean"], card["std"])
    killed, running = folder / f".{key}.a1b2.npy", folder / f".{key}.c3d4.npy"
    for leftover in (killed, running):
        leftover.write_bytes(b"\0" * 100)
    os.utime(killed, (time.time() - STALE_SECONDS - 60,) * 2)
    compute_features(joined, Data, card["mean"], card["std"], cache_dir=tmp_path / "fc")
    assert not killed.exists() and running.exists()
    # `imgclf cache list` shows the entry, and opening it again counts as a use for `clear --older-than`
    from imgclf.data.cache_admin import cache_contents, entries_unused_for

    record = folder / f"{key}.json"
    os.utime(record, (time.time() - 40 * 86400,) * 2)
    for path in (folder / f"{key}.npy", running):
        os.utime(path, (time.time() - 40 * 86400,) * 2)
    [entry] = [e for e in cache_contents(tmp_path / "fc").entries if e.kind == "features"]
    assert entry.key == key and entry.what.endswith(f"features, {len(files):,} x {stored.shape[1]}")
    assert [e.key for e in entries_unused_for(cache_contents(tmp_path / "fc"), 30 * 86400)] == [key]
    compute_features(joined, Data, card["mean"], card["std"], cache_dir=tmp_path / "fc")
    assert key not in [e.key for e in entries_unused_for(cache_contents(tmp_path / "fc"), 30 * 86400)]


def test_the_fine_tuning_plan_is_none_only_for_a_network_trained_whole_at_one_rate():
    from imgclf.config import TrainConfig
    from imgclf.train.finetune import fine_tuning_plan

    model = build_transfer_model(TINY, num_classes=3, img_size=32, pretrained=False)
    total = sum(p.numel() for p in model.parameters())
    head = sum(p.numel() for p in model.head.parameters())

    def plan(**settings):
        return fine_tuning_plan(TrainConfig(data="x", epochs=3, **settings), model)

    assert plan() is None and fine_tuning_plan(TrainConfig(data="x"), nn.Linear(2, 2)) is None
    assert plan(freeze_epochs=3) == f"head only, every epoch ({head:,} of {total:,} parameters)"
    assert plan(features_only=True) == f"head only, on the frozen backbone's features ({head:,} of {total:,} parameters)"
    assert plan(backbone_lr_mult=0.5) == f"head and the whole backbone ({total:,} of {total:,} parameters), at 0.5 x lr"
    assert plan(freeze_bn=True).endswith("; backbone BatchNorm statistics kept (freeze_bn)")
    assert plan(freeze_epochs=2).startswith(f"head only for epochs 1-2 ({head:,} of {total:,} parameters), then head "
                                            f"and the whole backbone from epoch 3 ({total:,})")
    # a run cut before the unfreeze (a time limit) says so: the plan alone read as if the backbone had trained
    cut = fine_tuning_plan(TrainConfig(data="x", epochs=3, freeze_epochs=2), model, epochs_run=2)
    assert cut.endswith("; the run ended at epoch 2, before the backbone unfroze")
    assert "before the backbone unfroze" not in fine_tuning_plan(TrainConfig(data="x", epochs=3, freeze_epochs=2),
                                                                 model, epochs_run=3)
