"""msp+mahalanobis-l2: the top probability's log-odds and mahalanobis-l2, each scaled by its spread on
validation, summed (docs/trust.md: on the held-out pairs it keeps mahalanobis-l2's far AUROC and gains on the near
set, where the logits see what the features miss)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imgclf.errors import ImgclfError
from imgclf.ood import COMBINED, TrustHead, fit_mahalanobis, fit_standardise


def _fitted(seed: int = 0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(300, 5)) + np.repeat(np.eye(5)[:3] * 4, 100, axis=0)
    y = np.repeat(np.arange(3), 100)
    means, precision = fit_mahalanobis(features, y, 3, unit_length=True)
    return torch.from_numpy(means), torch.from_numpy(precision), rng


def test_top_log_odds_is_log_p_over_one_minus_p_and_does_not_saturate():
    head = TrustHead(2.0, "msp")
    logits = torch.tensor([[2.0, 1.0, -1.0], [0.0, 0.0, 0.0], [3.0, 3.0, 0.0]])
    p = torch.softmax(logits.double() / 2.0, dim=1).max(1).values
    assert torch.allclose(head.top_log_odds(logits), torch.log(p / (1 - p)), atol=1e-9)
    # top probabilities that all round to 1.0 in float32 (MSP ties them) keep their order in log-odds
    confident = torch.tensor([[40.0, 0.0, 0.0], [60.0, 0.0, 0.0], [80.0, 0.0, 0.0]])
    assert (head(confident)[1] == 1.0).all()
    odds = head.top_log_odds(confident)
    assert torch.isfinite(odds).all() and (odds.diff() > 0).all()
    assert odds[0].item() == pytest.approx(20.0 - np.log(2.0), abs=1e-9)


def test_the_combined_score_is_the_sum_of_the_two_standardised_parts():
    means, precision, rng = _fitted()
    standardise = torch.tensor([1.5, 2.0, -3.0, 4.0])
    combined = TrustHead(0.7, COMBINED, None, means, precision, standardise=standardise)
    plain = TrustHead(0.7, "mahalanobis-l2", None, means, precision)
    logits = torch.from_numpy(rng.normal(size=(20, 3)) * 3).float()
    features = torch.from_numpy(rng.normal(size=(20, 5)) + 2.0).float()
    expected = ((plain.top_log_odds(logits) - 1.5) / 2.0 + (plain(logits, features)[1].double() + 3.0) / 4.0)
    assert torch.allclose(combined(logits, features)[1].double(), expected, atol=1e-5)
    # each part moves it: the same features with more confident logits score higher, and the reverse
    assert (combined(3 * logits, features)[1] > combined(logits, features)[1]).all()
    assert (combined(logits, features * 0 + means[0].float())[1] > combined(logits, -features)[1]).all()


def test_fit_standardise_takes_each_part_s_mean_and_standard_deviation():
    parts = np.stack([np.arange(101.0), 10.0 * np.arange(101.0) - 7.0], axis=1)
    expected = [50.0, np.arange(101.0).std(), 493.0, 10.0 * np.arange(101.0).std()]
    assert np.allclose(fit_standardise(parts), expected)
    assert np.allclose(fit_standardise(np.ones((4, 2))), [1.0, 1.0, 1.0, 1.0])  # no spread: left unscaled
    # one validation image: its own scores are the centre, unscaled (refused, it failed the run after training)
    assert np.allclose(fit_standardise(np.array([[2.0, -30.0]])), [2.0, 1.0, -30.0, 1.0])
    with pytest.raises(ImgclfError, match="parts"):
        fit_standardise(np.ones((5, 3)))


def test_the_combined_detector_needs_its_standardisation():
    means, precision, _ = _fitted()
    with pytest.raises(ImgclfError, match="standardise"):
        TrustHead(1.0, COMBINED, None, means, precision)


def test_the_config_the_card_and_the_head_offer_the_same_detectors():
    # three lists (the config's choices, the card's record, the head's formulas): a detector added to one only
    # would be accepted by one layer and refused, or silently unscored, by another
    from typing import get_args

    from imgclf.config import UnknownDetector
    from imgclf.ood import DETECTORS
    from imgclf.records import UnknownInfo

    assert get_args(UnknownDetector) == DETECTORS == get_args(UnknownInfo.model_fields["detector"].annotation)


def test_a_covariance_whose_inverse_float32_leaves_indefinite_gets_the_least_ridge_that_keeps_it_definite():
    """Features that barely varied across some direction (a backbone with a constant stem): the precision,
    rounded to float32 as it is stored, was not positive definite, and the run failed after its last epoch on the
    detector's Cholesky factor ("internal error: linalg.cholesky ... not positive-definite")."""
    import torch

    from imgclf.ood import _stored_precision

    near = 1 - 1e-9  # two features that move together, all but exactly
    covariance = np.array([[1.0, near, 0.0], [near, 1.0, 0.0], [0.0, 0.0, 2.0]])
    with pytest.raises(RuntimeError):  # the plain inverse, stored in float32, as the detector took it
        torch.linalg.cholesky(torch.from_numpy(np.linalg.inv(covariance).astype(np.float32)).double())
    precision = _stored_precision(covariance)
    stored = torch.from_numpy(precision.astype(np.float32))
    head = TrustHead(1.0, "mahalanobis", None, torch.zeros(2, 3), stored, "pre-logits")
    assert torch.isfinite(head.whiten).all()
    # a ridge, not the Euclidean fallback: the two features' tie still shapes the distance
    assert precision[0, 1] < -100 and precision[2, 2] == pytest.approx(0.5, rel=1e-3)
    # a well-conditioned covariance is inverted as it is, no ridge
    plain = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert np.allclose(_stored_precision(plain), np.linalg.inv(plain))
