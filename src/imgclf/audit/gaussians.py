"""One Gaussian per class over whitened features, each covariance shrunk toward the identity: a regularised
quadratic discriminant. The audit's quick model (out-of-fold probabilities) and its outlier distance both use
it. Written out rather than taken from scikit-learn because QuadraticDiscriminantAnalysis changed between the
versions we support (1.9 refuses a class with fewer images than features unless solver="eigen", which 1.4 lacks),
and a class of 20 images in 64 dimensions is exactly what an audit meets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHRINK = 0.2  # covariance = 0.8 x the class's own + 0.2 x identity (the features are whitened: unit variance)
_CHUNK = 8192


@dataclass
class ClassGaussians:
    classes: np.ndarray  # class ids with >= 1 image
    means: np.ndarray  # (C, D)
    inverses: np.ndarray  # (C, D, D)
    log_dets: np.ndarray  # (C,)
    log_priors: np.ndarray  # (C,)

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, shrink: float = SHRINK) -> "ClassGaussians":
        d = features.shape[1]
        classes = np.unique(labels)
        means, inverses, log_dets, priors = [], [], [], []
        for c in classes:
            members = features[labels == c].astype(np.float64)
            mean = members.mean(axis=0)
            own = np.cov(members, rowvar=False).reshape(d, d) if len(members) > 1 else np.zeros((d, d))
            cov = (1 - shrink) * own + shrink * np.eye(d)
            sign, log_det = np.linalg.slogdet(cov)
            means.append(mean)
            inverses.append(np.linalg.inv(cov))
            log_dets.append(log_det)
            priors.append(len(members) / len(features))
        return cls(classes, np.array(means), np.array(inverses), np.array(log_dets), np.log(priors))

    def mahalanobis(self, features: np.ndarray) -> np.ndarray:
        """(N, C) squared Mahalanobis distance of each image to each class."""
        out = np.empty((len(features), len(self.classes)))
        for start in range(0, len(features), _CHUNK):
            x = features[start:start + _CHUNK].astype(np.float64)
            for k, (mean, inverse) in enumerate(zip(self.means, self.inverses)):
                diff = x - mean
                out[start:start + len(x), k] = np.einsum("ij,jk,ik->i", diff, inverse, diff, optimize=True)
        return out

    def log_joint(self, features: np.ndarray, num_classes: int, mahalanobis: np.ndarray | None = None) -> np.ndarray:
        """(N, num_classes) log prior + log density up to a constant; -inf for a class the model has no image
        of. mahalanobis: `self.mahalanobis(features)`, where the caller has it already (the distances are the
        costly part)."""
        if mahalanobis is None:
            mahalanobis = self.mahalanobis(features)
        out = np.full((len(features), num_classes), -np.inf)
        out[:, self.classes] = -0.5 * (mahalanobis + self.log_dets[None, :]) + self.log_priors[None, :]
        return out


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature at which the mean top probability equals the accuracy against `labels` (confidence
    matching accuracy: calibration in the aggregate). A Gaussian per class in 64 dimensions is far too sure of
    itself (probabilities of exactly 0 and 1), which would leave the self-confidence ranking full of ties.

    Not the negative log-likelihood's minimum (Guo et al., 2017), used before: the images the audit looks for,
    labelled as another class than they look, have enormous losses and decide that fit. On the 1,797 digits at
    96 % out-of-fold accuracy it chose T = 64-136 and a median top probability of 0.14, so the per-class
    thresholds fell among the noise: 1 of 4 planted label errors found, among 38 flags. Matched, 3 of 4 among 28;
    on Fashion-MNIST with 2 % of labels flipped the ranking's AUROC rose from 0.970 to 0.973 and the flags found
    73 % of the flips instead of 66 %. The log-likelihood's minimum remains where no temperature matches (a
    model right on every image)."""
    from scipy.optimize import brentq, minimize_scalar

    finite = np.where(np.isfinite(logits), logits, -1e30)
    rows = np.arange(len(labels))
    accuracy = float(np.mean(finite.argmax(axis=1) == labels))

    def confidence_gap(log_t: float) -> float:
        return float(softmax(finite, float(np.exp(log_t))).max(axis=1).mean()) - accuracy

    low, high = -3.0, 8.0
    if confidence_gap(low) > 0 > confidence_gap(high):  # too sure when sharp, too unsure when flat: one crossing
        return float(np.exp(brentq(confidence_gap, low, high, xtol=1e-4)))

    def nll(log_t: float) -> float:
        z = finite / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, labels]))

    return float(np.exp(minimize_scalar(nll, bounds=(low, high), method="bounded").x))
