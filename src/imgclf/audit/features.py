"""Feature vectors for the label-error and outlier checks: a trained run's penultimate layer (`--run`), or,
without a run, the images' own downscaled pixels. Either way they end as whitened principal components (plus,
for pixels, the energy the components leave out, which is where an image unlike the others differs)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

FEATURE_DIMS = 64
_PIXEL_SIDE = {1: 28, 3: 16}  # 784 grey or 768 colour values per image
_CHUNK = 8192


@dataclass
class Features:
    values: np.ndarray  # (N, D) float32, whitened principal components
    residual: np.ndarray  # (N,) float32, squared distance from the principal subspace (0 when D is everything)
    source: str  # "pixels" or "run"
    description: str


def _principal_components(x: np.ndarray, dims: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Projections on the leading `dims` components (fitted on up to 10,000 rows, seeded), each divided by its
    robust spread, and the squared residual outside them."""
    from sklearn.decomposition import PCA

    dims = max(1, min(dims, x.shape[1], len(x) - 1))
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(len(x), min(len(x), 10_000), replace=False))
    pca = PCA(dims, svd_solver="randomized" if dims < min(x.shape) // 2 else "full", random_state=seed)
    with np.errstate(divide="ignore", invalid="ignore"):  # images all alike: the variance ratios (unused) are 0/0,
        pca.fit(x[fit_rows])  # which printed scikit-learn's RuntimeWarning above the audit's summary
    values = np.empty((len(x), dims), np.float32)
    residual = np.empty(len(x), np.float32)
    # Whitened by a robust spread (MAD), not the component's variance: with few images, one image unlike the
    # rest (a noise picture among digits) gets a component of its own whose variance is its own, and would
    # look ordinary on it; against the spread of the others it stands out.
    fitted = (x[fit_rows] - pca.mean_) @ pca.components_.T
    spread = 1.4826 * np.median(np.abs(fitted - np.median(fitted, axis=0)), axis=0)
    variance_scale = np.sqrt(np.maximum(pca.explained_variance_, 1e-12))
    scale = np.where(spread > 1e-3 * variance_scale, spread, variance_scale).astype(np.float32)
    for start in range(0, len(x), _CHUNK):
        centred = x[start:start + _CHUNK] - pca.mean_.astype(np.float32)
        projected = centred @ pca.components_.T.astype(np.float32)
        residual[start:start + len(centred)] = np.maximum(
            (centred ** 2).sum(axis=1) - (projected ** 2).sum(axis=1), 0.0)
        values[start:start + len(centred)] = projected / scale
    if dims >= x.shape[1]:  # the components span everything: what is left is rounding, and must not rank images
        residual[:] = 0.0
    return values, residual


def pixel_features(pixels: np.ndarray, dims: int = FEATURE_DIMS, seed: int = 0) -> Features:
    """(N, S, S, C) uint8 -> whitened principal components of the pixels at 28 x 28 grey or 16 x 16 colour."""
    import torch

    n, size, _, channels = pixels.shape
    side = min(size, _PIXEL_SIDE.get(channels, 16))
    flat = np.empty((n, side * side * channels), np.float32)
    for start in range(0, n, _CHUNK):
        x = torch.from_numpy(np.asarray(pixels[start:start + _CHUNK], dtype=np.float32) / 255.0).permute(0, 3, 1, 2)
        if side != size:
            x = torch.nn.functional.interpolate(x, size=(side, side), mode="area")
        flat[start:start + len(x)] = x.reshape(len(x), -1).numpy()
    values, residual = _principal_components(flat, dims, seed)
    return Features(values, residual, "pixels",
                    f"pixels at {side}x{side}{' grey' if channels == 1 else ' RGB'}, "
                    f"{values.shape[1]} whitened principal components")


def run_features(classifier: Any, pixels: np.ndarray, dims: int = FEATURE_DIMS, seed: int = 0,
                 batch_size: int = 256) -> Features:
    """The run's penultimate-layer features (`forward_head(forward_features(x), pre_logits=True)`, timm's
    interface, which every registered model has) of pixels decoded at the run's size and colour mode, the network
    at the precision prediction runs at here (`Classifier.autocast`). classifier: the run, loaded
    (`inference.load`)."""
    import torch

    model = classifier.model
    chunks = []
    with torch.inference_mode(), classifier.autocast():
        for start in range(0, len(pixels), batch_size):
            x = classifier.network_input(pixels[start:start + batch_size])
            f = model.forward_head(model.forward_features(x), pre_logits=True)
            chunks.append(f.float().flatten(1).cpu().numpy())
    raw = np.concatenate(chunks) if chunks else np.zeros((0, 1), np.float32)
    raw = (raw - raw.mean(axis=0)) / np.maximum(raw.std(axis=0), 1e-6)  # one unit per feature before PCA
    values, residual = _principal_components(raw.astype(np.float32), dims, seed)
    return Features(values, residual, "run",
                    f"penultimate layer of {classifier.card.architecture} ({raw.shape[1]} features) from run "
                    f"{os.path.abspath(classifier)}, {values.shape[1]} whitened principal components")
