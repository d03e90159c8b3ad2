import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from imgclf.data.imbalance import class_weights, imbalance_stats, sampler_weights
from imgclf.errors import ImgclfError
from imgclf.train.loaders import BatchIndexSampler
from imgclf.train.module import focal_loss

# 3 classes with 60 / 30 / 10 training images
LABELS = np.repeat([0, 1, 2], [60, 30, 10])
CLASSES = ["a", "b", "c"]


def test_imbalance_stats_rho_mu_and_flag():
    stats = imbalance_stats({"a": 60, "b": 60, "c": 4, "d": 4})
    assert stats == {"rho": 15.0, "mu": 0.5, "minority": ["c", "d"], "imbalanced": True}
    assert imbalance_stats({"a": 10, "b": 10})["imbalanced"] is False


def test_a_mild_step_imbalance_has_its_minority_classes_and_counting_noise_none():
    """Buda et al.'s mu is the share of the smaller classes of a step: rho 1.5 made by `subset` read mu 0 (minority
    classes gated by the flag's threshold); counts of many sizes near balance still have none."""
    assert imbalance_stats({"a": 12, "b": 12, "c": 18, "d": 18}) == {"rho": 1.5, "mu": 0.5, "minority": ["a", "b"],
                                                                      "imbalanced": False}
    assert imbalance_stats({"a": 178, "b": 182, "c": 177, "d": 183})["minority"] == []


def test_balanced_class_weights_follow_scikit_learn():
    from sklearn.utils.class_weight import compute_class_weight

    ours = class_weights("balanced", LABELS, CLASSES)
    theirs = compute_class_weight("balanced", classes=np.arange(3), y=LABELS)
    assert np.allclose(ours, theirs)
    # every class then carries the same total weight
    totals = np.array(ours) * np.bincount(LABELS)
    assert np.allclose(totals, totals[0])
    assert class_weights("none", LABELS, CLASSES) is None


def test_class_weights_from_a_json_file(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"a": 1.0, "b": 2.0, "c": 6.0}))
    assert class_weights(str(path), LABELS, CLASSES) == [1.0, 2.0, 6.0]
    path.write_text(json.dumps({"a": 1.0}))
    with pytest.raises(ImgclfError, match="class_weight must be a JSON file that maps every class name to a weight. "
                                          "Received: class_weight="):
        class_weights(str(path), LABELS, CLASSES)


def _draws(kind, epochs=40, world=1, rank=0, batch=16):
    weights, items = sampler_weights(kind, LABELS, 3)
    sampler = BatchIndexSampler(len(LABELS), batch, True, seed=3, rank=rank, world_size=world,
                                weights=weights, epoch_items=items)
    out = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        out.append(np.concatenate(list(sampler)))
    return out, items


def test_oversample_draws_every_class_equally_with_an_epoch_of_the_training_size():
    epochs, items = _draws("oversample")
    assert items == len(LABELS)
    assert all(len(e) == len(LABELS) for e in epochs)
    freq = np.bincount(LABELS[np.concatenate(epochs)], minlength=3) / (len(epochs) * len(LABELS))
    assert np.allclose(freq, 1 / 3, atol=0.03), freq  # 4,000 draws: 3 sigma is about 0.022
    assert len(np.unique(np.concatenate(epochs)[LABELS[np.concatenate(epochs)] == 0])) > 50, "majority images still seen"


def test_undersample_epoch_is_classes_times_smallest_class():
    epochs, items = _draws("undersample")
    assert items == 3 * 10
    freq = np.bincount(LABELS[np.concatenate(epochs)], minlength=3) / (len(epochs) * items)
    assert np.allclose(freq, 1 / 3, atol=0.06), freq
    assert sampler_weights("none", LABELS, 3) == (None, None)


@pytest.mark.parametrize("kind", ["none", "oversample"])
def test_two_ranks_together_cover_the_single_process_epoch(kind):
    single, _ = _draws(kind, epochs=3, batch=10)
    rank0, _ = _draws(kind, epochs=3, world=2, rank=0, batch=10)
    rank1, _ = _draws(kind, epochs=3, world=2, rank=1, batch=10)
    for s, r0, r1 in zip(single, rank0, rank1):
        assert len(r0) == len(r1) == len(s) // 2, "equal step counts on every rank"
        assert sorted(np.concatenate([r0, r1]).tolist()) == sorted(s.tolist())
        if kind == "none":
            assert sorted(s.tolist()) == list(range(len(LABELS))), "each image exactly once per epoch"
    if kind == "oversample":  # the class balance survives the split across ranks
        both = np.concatenate(rank0 + rank1)
        assert np.allclose(np.bincount(LABELS[both], minlength=3) / len(both), 1 / 3, atol=0.08)


def test_focal_loss_matches_a_hand_computed_value():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    target = torch.tensor([0, 2])
    # p_t = softmax(logits)[target]: e^2 / (e^2 + 2) and 1 / (e + 2)
    p1 = math.exp(2) / (math.exp(2) + 2)
    p2 = 1 / (math.e + 2)
    gamma = 2.0
    expected = ((1 - p1) ** gamma * -math.log(p1) + (1 - p2) ** gamma * -math.log(p2)) / 2
    assert focal_loss(logits, target, gamma).item() == pytest.approx(expected, rel=1e-6)
    # class-weighted: the weighted mean of the per-sample terms
    w = torch.tensor([1.0, 1.0, 3.0])
    weighted = (1 * (1 - p1) ** gamma * -math.log(p1) + 3 * (1 - p2) ** gamma * -math.log(p2)) / 4
    assert focal_loss(logits, target, gamma, w).item() == pytest.approx(weighted, rel=1e-6)


def test_focal_loss_with_gamma_zero_is_cross_entropy():
    logits = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    target = torch.arange(8) % 4
    assert focal_loss(logits, target, 0.0).item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-6)
    # with class weights and label smoothing too (the smoothing term was unweighted, then divided by the weights)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0])
    for weight, smoothing in ((w, 0.0), (None, 0.1), (w, 0.1)):
        assert focal_loss(logits, target, 0.0, weight, smoothing).item() == pytest.approx(
            F.cross_entropy(logits, target, weight=weight, label_smoothing=smoothing).item(), rel=1e-6)
