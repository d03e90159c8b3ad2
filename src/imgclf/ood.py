"""Scores for images of no known class ("unknown" inputs), and the one module that turns a network's outputs into
what leaves the program: calibrated probabilities, an in-distribution score and the unknown flag.

Every score is "higher = more like the training data"; an image scoring below the threshold stored in the model
card is reported as unknown. Detectors:

- msp: the maximum (calibrated) softmax probability (Hendrycks and Gimpel, 2017).
- energy: logsumexp of the logits, i.e. minus the free energy at T = 1 (Liu et al., 2020).
- mahalanobis: minus the smallest squared Mahalanobis distance of the features (below) to a class mean, with
  one covariance shared by all classes (Lee et al., 2018), fitted on training images. The covariance is
  scikit-learn's Ledoit-Wolf estimate: ReLU features often have dead units, whose plain covariance is singular.
- mahalanobis-l2: the same on features scaled to unit length first (Mahalanobis++, Mueller and Hein, 2025): the
  feature norm varies a lot within a class and misleads the Gaussian fit. On Fashion-MNIST (8 classes kept, a
  fast_resnet at 88 % accuracy) it raised the AUROC against digits from 0.960 to 0.982 and against noise and
  photos to 0.999 and 0.997, and lowered it against the 2 held-out classes from 0.927 to 0.864: the only one of
  the detectors above 0.98 on every far set and 0.85 on the near one, hence the default.
- msp+mahalanobis-l2: the log-odds of the top calibrated probability plus mahalanobis-l2, each less its mean and
  divided by its standard deviation on validation. Trained without label smoothing, a network's logits see a
  look-alike class (a shirt among t-shirts) better than its features do, and the features see what is no garment
  at all. On models trained with the logitnorm loss it kept mahalanobis-l2's far AUROC (0.993 or more) and
  gained 0.04-0.06 on the hardest held-out pair; on the recipes' label-smoothed cross-entropy models it lost on
  the easier pair and on the far sets (docs/trust.md), so it is not the default.

The feature detectors read, where the network's head pools its last feature map to one vector per image, that
map's per-channel mean and maximum side by side (`map-mean-max`), else what the last linear layer reads
(`pre-logits`). On 8 fast_resnet runs of the unknowns benchmark (2 held-out pairs, 2 seeds, with and without label
smoothing; AVX-512 bf16), mahalanobis-l2 on the mean and max of the map kept all 24 far AUROCs at 0.988 or more,
where the max-pooled vector the head reads gave 0.969-0.978 on three of them (digits, noise), at the same near
AUROC within 0.01; a third seed, trained after the choice, read 0.993 or more (docs/trust.md). The mean says how
much of the image looks like a class, the max only where it looks most so.

pytorch-ood (Apache-2.0) implements these detectors, but not as modules that can sit inside an exported graph,
and the ONNX export must give the same scores as the torch path; so `TrustHead` implements the formulas once,
and both paths run it. tests/test_unknown.py checks the scores against pytorch-ood's where it is installed.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import Described, invalid
from .records.card import FEATURE_DETECTORS

DETECTORS = ("msp", "energy", "mahalanobis", "mahalanobis-l2", "msp+mahalanobis-l2")
UNIT_LENGTH_DETECTORS = ("mahalanobis-l2", "msp+mahalanobis-l2")  # fitted and scored on unit-length features
COMBINED = "msp+mahalanobis-l2"
FEATURE_SOURCES = ("pre-logits", "map-mean-max")
STATS_FILE = "unknown.safetensors"  # beside model.safetensors: class means, precision, validation scores
# a refit (`imgclf calibrate`) writes the name its card does not use yet, then the card, then drops the old file:
# an interruption leaves a card whose statistics match it
STATS_FILES = (STATS_FILE, "unknown-refit.safetensors")
UNKNOWN_LABEL = "unknown"


class TrustHead(nn.Module):
    """logits (N, K) [+ features (N, D), of the kind `features` names] -> (probabilities (N, K), score (N,),
    unknown (N,) bool).

    probabilities = softmax(logits / temperature); score by `detector` (higher: more like the training data);
    unknown = score < threshold (never, without a threshold). Shared by `Classifier` and the exported graph, so
    both give the same numbers."""

    def __init__(self, temperature: float = 1.0, detector: str = "msp", threshold: float | None = None,
                 means: torch.Tensor | None = None, precision: torch.Tensor | None = None,
                 features: str = "pre-logits", standardise: torch.Tensor | None = None):
        super().__init__()
        if detector not in DETECTORS:
            raise invalid("detector", detector, DETECTORS)
        if features not in FEATURE_SOURCES:
            raise invalid("features", features, FEATURE_SOURCES)
        self.detector = detector
        self.features = features  # which feature vector the network must hand over (`logits_and_features`)
        self.temperature = float(temperature)
        self.threshold = threshold
        self.register_buffer("inv_temperature", torch.tensor(1.0 / float(temperature), dtype=torch.float32))
        self.register_buffer("cutoff", torch.tensor(-math.inf if threshold is None else threshold,
                                                    dtype=torch.float32))
        if detector in FEATURE_DETECTORS:
            if means is None or precision is None:
                raise invalid("detector", detector, "msp or energy without the class means and precision "
                              f"({STATS_FILE})")
            # d(f, m_k) = (f - m_k) P (f - m_k)^T = ||f L - m_k L||^2 with P = L L^T (Cholesky), expanded as
            # ||fL||^2 - 2 fL.(m_k L) + ||m_k L||^2: (N, K) memory rather than (N, K, D). The expansion cancels
            # large terms, so it runs in float64 (in float32 the torch and ONNX scores differed by 1e-3 relative).
            chol = torch.linalg.cholesky(precision.to(torch.float64))
            projected = means.to(torch.float64) @ chol
            self.register_buffer("whiten", chol)
            self.register_buffer("projected_means", projected.T.contiguous())
            self.register_buffer("means_norm", (projected ** 2).sum(1))
        if detector == COMBINED:
            if standardise is None or standardise.numel() != 4:
                raise invalid("standardise", None if standardise is None else tuple(standardise.shape),
                              "4 values for msp+mahalanobis-l2: the mean and spread of each part on validation")
            centre_scale = standardise.to(torch.float64).reshape(2, 2)
            self.register_buffer("part_centre", centre_scale[:, 0].contiguous())
            self.register_buffer("part_scale", centre_scale[:, 1].contiguous())

    @property
    def needs_features(self) -> bool:
        return self.detector in FEATURE_DETECTORS

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float() * self.inv_temperature, dim=1)

    def forward(self, logits: torch.Tensor, features: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = logits.float()
        probs = self.probabilities(logits)
        if self.detector == "msp":
            score = probs.max(dim=1).values
        elif self.detector == "energy":
            score = torch.logsumexp(logits, dim=1)
        elif self.detector == COMBINED:
            parts = torch.stack([self.top_log_odds(logits), self.mahalanobis_score(features)], dim=1)
            score = ((parts - self.part_centre) / self.part_scale).sum(1).to(torch.float32)
        else:
            score = self.mahalanobis_score(features).to(torch.float32)
        return probs, score, ~(score >= self.cutoff)  # a NaN score (NaN logits) is unknown: never let through

    def top_log_odds(self, logits: torch.Tensor) -> torch.Tensor:
        """log(p / (1 - p)) of the top calibrated probability p, from the logits, in float64: MSP on a scale that
        spreads the confident images it crowds just below 1 (and that float32 rounds to 1.0 beyond log-odds of
        about 17, where they would tie)."""
        z = logits.to(torch.float64) * self.inv_temperature.to(torch.float64)
        top = z.max(dim=1, keepdim=True).values
        first_top = torch.arange(z.shape[1], device=z.device) == z.argmax(dim=1, keepdim=True)
        rest = torch.logsumexp((z - top).masked_fill(first_top, -math.inf), dim=1)
        return -rest

    def mahalanobis_score(self, features: torch.Tensor) -> torch.Tensor:
        """Minus the smallest squared distance to a class mean (float64)."""
        f = features.flatten(1).to(torch.float64)
        if self.detector in UNIT_LENGTH_DETECTORS:
            f = normalised(f)
        g = f @ self.whiten
        distance = (g * g).sum(1, keepdim=True) - 2.0 * (g @ self.projected_means) + self.means_norm
        return -distance.min(dim=1).values


def normalised(features: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length (what mahalanobis-l2 fits and scores); a zero row stays zero."""
    return features / features.norm(dim=1, keepdim=True).clamp_min(1e-12)


def pools_map(mapped: torch.Tensor, pre: torch.Tensor) -> bool:
    """Whether the head reads a global pooling of a (N, C, H, W) map: one value per channel of it."""
    return mapped.dim() == 4 and pre.dim() == 2 and pre.shape[1] == mapped.shape[1]


def _float32_layer(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """The classifier layer in float32 under autocast. bf16 logits keep 8 bits of mantissa, so the softmax and
    energy scores of different images tie (a 3-class model's lowest 16 validation scores held 3 distinct values),
    and a threshold set at 95 % acceptance kept whatever share the tie gave; the layer is one small matmul."""
    with torch.autocast(x.device.type, enabled=False):
        return layer(x.float())


def logits_and_features(model: nn.Module, x: torch.Tensor, features: bool = True, source: str = "pre-logits"
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The logits and, if asked, the features in one pass, through the interface every registered model has
    (timm's forward_features / forward_head(pre_logits)). source: "pre-logits", what the last linear layer reads;
    "map-mean-max", the last feature map's per-channel mean and max, concatenated (N, 2C), for a network whose
    head pools that map (`pools_map`; see the module's docstring)."""
    autocast = torch.is_autocast_enabled(x.device.type)
    if not features and not (autocast and hasattr(model, "forward_features")):
        return model(x), None
    if source not in FEATURE_SOURCES:
        raise invalid("source", source, FEATURE_SOURCES)
    mapped = model.forward_features(x)
    pre = model.forward_head(mapped, pre_logits=True)
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(classifier, nn.Linear) and pre.dim() == 2 and pre.shape[1] == classifier.in_features:
        logits = _float32_layer(classifier, pre) if autocast else classifier(pre)
    else:
        logits = model.forward_head(mapped)
    if not features:
        return logits, None
    if source == "pre-logits":
        return logits, pre.flatten(1)
    if not pools_map(mapped, pre):
        raise invalid("source", source, "pre-logits for a network whose head does not pool a (N, C, H, W) map "
                      f"to its (N, C) features (here {tuple(mapped.shape)} -> {tuple(pre.shape)})")
    return logits, torch.cat([mapped.mean(dim=(2, 3)), mapped.amax(dim=(2, 3))], dim=1)


@torch.inference_mode()
def feature_source(model: nn.Module, x: torch.Tensor) -> str:
    """The features a feature detector of `model` should read: map-mean-max where its head's features are the
    per-channel mean or max of its last (N, C, H, W) map, checked on the values (a head that normalises or
    projects the pooled map, or a channels-last map, keeps pre-logits); decided on the network input `x`."""
    mapped = model.forward_features(x)
    pre = model.forward_head(mapped, pre_logits=True)
    if not pools_map(mapped, pre):
        return "pre-logits"
    pre, mapped = pre.float(), mapped.float()
    pooled = any(torch.allclose(pre, p, rtol=1e-3, atol=1e-4)
                 for p in (mapped.mean(dim=(2, 3)), mapped.amax(dim=(2, 3))))
    return "map-mean-max" if pooled else "pre-logits"


def fit_mahalanobis(features: np.ndarray, labels: np.ndarray, num_classes: int,
                    unit_length: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Class means (K, D) and the precision (D, D) of the covariance shared by all classes (features centred on
    their class mean; Ledoit-Wolf shrinkage), in float64. unit_length: fit on features scaled to unit length
    (mahalanobis-l2)."""
    from sklearn.covariance import LedoitWolf

    z = np.asarray(features, dtype=np.float64)
    if unit_length:
        z = normalised(torch.from_numpy(z)).numpy()
    y = np.asarray(labels, dtype=np.int64)
    missing = sorted(set(range(num_classes)) - set(y.tolist()))
    if missing:
        raise invalid("labels", Described(f"no row of class(es) {missing[:10]}"), "at least one row per class")
    means = np.stack([z[y == k].mean(0) for k in range(num_classes)])
    centred = z - means[y]
    if not np.any(centred):  # one row per class (or alike rows): no spread to fit, and the precision is singular
        raise invalid("features", Described(f"{len(z)} rows of {num_classes} classes, each equal to its class's mean"),
                      "rows that vary within at least one class")
    covariance = LedoitWolf(assume_centered=True).fit(centred).covariance_
    return means, _stored_precision(covariance)


def _stored_precision(covariance: np.ndarray) -> np.ndarray:
    """The covariance's inverse, symmetric and positive definite once stored in float32 (the detector's Cholesky
    factor is taken of the stored matrix): features with next to no spread in some direction gave a precision
    that float32 rounding left indefinite, and the run failed after its last epoch with an internal error. Such a
    covariance gets the smallest ridge (a share of its mean variance) that keeps it so."""
    scale = max(float(np.trace(covariance)) / len(covariance), np.finfo(np.float64).tiny)
    for ridge in (0.0, 1e-8, 1e-6, 1e-4, 1e-2, 1e-1):
        precision = np.linalg.inv(covariance + ridge * scale * np.eye(len(covariance)))
        precision = (precision + precision.T) / 2
        try:
            np.linalg.cholesky(precision.astype(np.float32).astype(np.float64))
            return precision
        except np.linalg.LinAlgError:
            continue
    return np.eye(len(covariance)) / scale  # no shape left to the spread: Euclidean distance, scaled


def fit_standardise(parts: np.ndarray) -> np.ndarray:
    """msp+mahalanobis-l2's 4 numbers from its two parts' validation scores (N, 2): each part's mean and standard
    deviation, so that each moves the sum alike whatever its units. (Median and interquartile range, tried on 5
    runs, weighted the log-odds more and scored lower on 4 of them: docs/trust.md.) A part with no spread (one
    validation image among them) is left unscaled: refusing it failed a run after its last epoch, and its resume."""
    parts = np.asarray(parts, dtype=np.float64)
    if parts.ndim != 2 or parts.shape[1] != 2 or len(parts) < 1:
        raise invalid("parts", Described(f"shape {parts.shape}"), "(N, 2) validation scores, N >= 1")
    spread = parts.std(axis=0)
    return np.stack([parts.mean(axis=0), np.where(spread > 0, spread, 1.0)], axis=1).reshape(-1)


def threshold_at(scores: np.ndarray, acceptance: float) -> float:
    """A threshold that keeps at least `acceptance` of these (validation) scores at or above it: midway between
    the lowest score kept and the highest left out. Set on the lowest kept score itself, the threshold lay exactly
    on one validation image, which any other arithmetic (the ONNX graph, another batch size: 1e-7 apart) moved
    below it: the export then kept 8 of 9 validation images where the card said 9."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    if len(s) == 0:
        return -math.inf
    lowest_kept = len(s) - kept_count(len(s), acceptance)
    if lowest_kept == 0:  # every score kept: a margin below the lowest, far wider than arithmetic noise
        return float(s[0] - max(abs(s[0]), 1.0) * 1e-4)
    return float((s[lowest_kept - 1] + s[lowest_kept]) / 2)


def kept_count(images: int, acceptance: float) -> int:
    """How many of `images` validation scores `threshold_at` keeps: at least `acceptance` of them, and one."""
    return max(math.ceil(round(acceptance * images, 9)), 1)  # rounded first: (1 - 0.8) * 20 is 3.9999999999999996


def rejection_range(images: int, acceptance: float, level: float = 0.9) -> tuple[float, float]:
    """The central `level` range of the share of new images, drawn as the `images` validation images were, that a
    threshold from `threshold_at` rejects. The threshold lies between the r-th and the (r + 1)-th lowest of the
    scores (r of them below it), and the share of new scores below the k-th lowest of n exchangeable ones is
    Beta(k, n + 1 - k): an order statistic's coverage, whatever the scores' distribution as long as they do not
    tie. The range runs from the r-th's low end to the (r + 1)-th's high end, so it holds the share below any
    threshold between them (cautious by about one image's worth; tied scores keep more, and cautious too)."""
    from scipy.stats import beta

    if images < 1:
        raise invalid("images", images, ">= 1 validation score")
    below = images - kept_count(images, acceptance)
    tail = (1 - level) / 2
    low = float(beta.ppf(tail, below, images + 1 - below)) if below else 0.0
    high = float(beta.ppf(1 - tail, below + 1, images - below))
    return low, high


def too_few_images_note(images: int, acceptance: float,
                        more: str = "a larger --val-split, or more files in val/") -> str:
    """What to say where a threshold set on `images` validation images may reject more than twice the share asked
    (the top of `rejection_range`); else "". `more`: how to give validation more images."""
    low, high = rejection_range(images, acceptance)
    if high <= 2 * (1 - acceptance):
        return ""
    return (f"the unknown threshold was set on {images} validation image{'s' if images != 1 else ''}: asked to reject "
            f"{100 * (1 - acceptance):.3g} % of such images, it may reject anywhere from {100 * low:.1f} % to "
            f"{100 * high:.1f} % of new ones (90 % range); more validation images ({more}) narrow that")


def save_stats(path: str | os.PathLike, tensors: dict[str, np.ndarray]) -> None:
    """Detector statistics as safetensors (never pickle), written atomically."""
    from safetensors.numpy import save

    from .io import atomic_write_bytes

    atomic_write_bytes(path, save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}))


def load_stats(path: str | os.PathLike) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(Path(path)))
