"""Images that do not belong: far from every class in feature space, or with (almost) nothing in them.

Feature-space outliers: each class is a Gaussian over the whitened features (covariance shrunk toward the
identity, as the quick model's, fitted out of fold so an outlier does not widen its own class); an image's
distance is its smallest squared Mahalanobis distance to any class, per feature dimension. Alongside it, the energy the principal components leave out (an image unlike all others
is badly described by components fitted to the others). Each is turned into a robust z-score on the log scale
(median and MAD over the data set, so the outliers themselves do not widen the yardstick), and the larger of
the two is the image's score; at `OUTLIER_Z` or above it is listed.

Pixel checks, on the decoded grey levels (0-255): dark (99 % of the pixels below `DARK`), bright (99 % above
`BRIGHT`), low variance (standard deviation under `LOW_STD`: a flat picture), near-empty (`EMPTY_SHARE` of
the pixels within `EMPTY_BAND` levels of the median: a blank with a speck) and noise-like: static or a corrupt
decode, no picture at all. That is a pixel correlating with none of its 4 neighbour directions (horizontal,
vertical, both diagonals: the largest absolute correlation under `NOISE_CORRELATION`) at a spread of at least
`NOISE_MIN_STD` grey levels. Measured at 28 x 28: Fashion-MNIST's 60,000 training images' largest correlation
0.27-1.0, uniform noise at most 0.13; 1-px diagonal line art correlates 1.0 along its lines and a dot grid 0.33;
a flat frame with sensor noise (std 6) is under the spread. Noise scored only 3.9-4.2 on the feature-space z
(under `OUTLIER_Z`), so no check listed it before. The checks read files smaller than the decode size at their
own size (the audit's comparison pixels), since enlarging smooths static; static much larger than the decode size
is smoothed by the shrinking (128 px static decoded at 28: 0.27) and not caught.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gaussians import ClassGaussians

OUTLIER_Z = 5.0
DARK, BRIGHT = 40, 215
LOW_STD = 4.0
EMPTY_SHARE, EMPTY_BAND = 0.985, 12
NOISE_CORRELATION = 0.15
NOISE_MIN_STD = 20.0
_CHUNK = 8192
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def robust_z(values: np.ndarray) -> np.ndarray:
    median = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - median))
    return (values - median) / max(mad, 1e-6)


def class_distance(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Smallest squared Mahalanobis distance to a class Gaussian fitted on every image, per dimension. The
    out-of-fold distance (`label_errors.out_of_fold`) is better, since an outlier widens its own class's
    Gaussian here; this is for data sets too small for folds."""
    return ClassGaussians.fit(features, labels).mahalanobis(features).min(axis=1) / features.shape[1]


@dataclass
class Outliers:
    score: np.ndarray  # (N,) robust z, larger = stranger
    distance_z: np.ndarray
    residual_z: np.ndarray
    flagged: np.ndarray  # (N,) bool
    ranking: np.ndarray  # flagged indices, strangest first


def feature_outliers(distance: np.ndarray, residual: np.ndarray | None, threshold: float = OUTLIER_Z) -> Outliers:
    """distance: each image's smallest class distance (`class_distance`, or out of fold); residual: its
    energy outside the principal components (None or zeros: not used)."""
    distance_z = robust_z(np.log(distance + 1e-6))
    has_residual = residual is not None and float(np.max(residual, initial=0.0)) > 0
    residual_z = robust_z(np.log(residual + 1e-6)) if has_residual else np.zeros(len(distance))
    score = np.maximum(distance_z, residual_z)
    flagged = score >= threshold
    ranking = np.flatnonzero(flagged)
    return Outliers(score, distance_z, residual_z, flagged, ranking[np.argsort(-score[ranking], kind="stable")])


@dataclass
class PixelStats:
    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray  # 1st percentile
    high: np.ndarray  # 99th percentile
    empty_share: np.ndarray  # share of pixels within EMPTY_BAND of the median
    neighbour_correlation: np.ndarray  # largest absolute lag-1 correlation of the grey levels over 4 directions


def pixel_stats(pixels: np.ndarray) -> PixelStats:
    n = len(pixels)
    out = {k: np.empty(n, np.float32) for k in ("mean", "std", "low", "high", "empty_share",
                                                "neighbour_correlation")}
    for start in range(0, n, _CHUNK):
        x = np.asarray(pixels[start:start + _CHUNK], dtype=np.float32)
        grey = (x[..., 0] if x.shape[-1] == 1 else x @ _LUMA).reshape(len(x), -1)
        rows = slice(start, start + len(x))
        out["mean"][rows] = grey.mean(axis=1)
        out["std"][rows] = grey.std(axis=1)
        low, median, high = np.percentile(grey, [1, 50, 99], axis=1)
        out["low"][rows], out["high"][rows] = low, high
        out["empty_share"][rows] = (np.abs(grey - median[:, None]) <= EMPTY_BAND).mean(axis=1)
        out["neighbour_correlation"][rows] = _neighbour_correlation(grey.reshape(x.shape[:3]))
    return PixelStats(**out)


def _neighbour_correlation(grey: np.ndarray) -> np.ndarray:
    """(N, H, W) grey levels -> each image's largest absolute correlation of a pixel with its neighbour in one of
    4 directions (right, down, down-right, down-left); a flat image: 1, it holds no noise."""
    centred = grey - grey.mean(axis=(1, 2), keepdims=True)
    variance = np.maximum((centred * centred).mean(axis=(1, 2)), 1e-6)
    pairs = ((centred[:, :, 1:], centred[:, :, :-1]), (centred[:, 1:, :], centred[:, :-1, :]),
             (centred[:, 1:, 1:], centred[:, :-1, :-1]), (centred[:, 1:, :-1], centred[:, :-1, 1:]))
    largest = np.max([np.abs((a * b).mean(axis=(1, 2))) for a, b in pairs], axis=0) / variance
    return np.where(variance > 1e-6, largest, 1.0)


def quality_issues(stats: PixelStats) -> list[tuple[int, list[str]]]:
    """(image index, reasons) for every image a pixel check flags, in index order."""
    checks = {
        "dark": stats.high < DARK,
        "bright": stats.low > BRIGHT,
        "low_variance": stats.std < LOW_STD,
        "near_empty": stats.empty_share >= EMPTY_SHARE,
        "noise_like": (stats.neighbour_correlation < NOISE_CORRELATION) & (stats.std >= NOISE_MIN_STD),
    }
    any_flag = np.zeros(len(stats.mean), bool)
    for mask in checks.values():
        any_flag |= mask
    return [(int(i), [name for name, mask in checks.items() if mask[i]]) for i in np.flatnonzero(any_flag)]
