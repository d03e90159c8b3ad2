"""After training: fit the temperature and the unknown detector on images training never fitted on, for the card.

The temperature and the unknown threshold come from the validation split; the Mahalanobis detector's class means
and covariance from (a sample of) the training split, seen without augmentation. The validation scores are
computed by the same `TrustHead` that prediction, serving and the ONNX export run, from the statistics as stored
(float32), so the stated acceptance rate holds for what users get.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..calibration import fit_temperature, nll
from ..config import TrainConfig
from ..data.prepared import PreparedData
from ..data.cache import pixel_blocks
from ..errors import ImgclfError
from ..evaluation.metrics import expected_calibration_error
from ..inference import Classifier, for_prediction
from ..ood import (COMBINED, FEATURE_DETECTORS, STATS_FILE, STATS_FILES, UNIT_LENGTH_DETECTORS, TrustHead,
                   feature_source, fit_mahalanobis, fit_standardise, rejection_range, save_stats,
                   threshold_at, too_few_images_note)
from ..notices import warn
from ..records import CalibrationInfo, ModelCard, UnknownInfo
from .split_warnings import more_validation_images
from ..file_names import shell_word

# Training images the Mahalanobis statistics are fitted on, at most: means and a D x D covariance for
# D <= 2048 are well estimated long before this, and the pass over them costs a fraction of one epoch.
TRAIN_SAMPLE = 10_000
# the kind of the warning that the unknown threshold was set on too few images (`notices.hold_back` takes it)
FEW_THRESHOLD_IMAGES_WARNING = "unknown threshold on few images"
QUANTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)


def split_logits(clf: Classifier, data: PreparedData, rows: np.ndarray,
                 features: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The trained model's logits for the prepared images `rows` (and, with `features`, its feature vectors),
    streamed a block at a time."""
    logits, feats = [], []
    for block in pixel_blocks(data.decoded, rows, data.img_size, data.color, data.interpolation, 1024):
        lo, fe = clf.embed_pixels(block, features=features)
        logits.append(lo)
        if fe is not None:
            feats.append(fe)
    return np.concatenate(logits), (np.concatenate(feats) if feats else None)


def _train_sample(data: PreparedData, seed: int, limit: int = TRAIN_SAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """Rows and labels of a seeded, class-proportional sample of the training split (every class kept)."""
    split = data.splits["train"]
    if len(split) <= limit:
        return split.indices, split.labels
    rng = np.random.default_rng([seed, len(split)])
    keep = []
    for k in np.unique(split.labels):
        where = np.flatnonzero(split.labels == k)
        n = max(1, int(round(limit * len(where) / len(split))))
        keep.append(rng.choice(where, min(n, len(where)), replace=False))
    chosen = np.sort(np.concatenate(keep))
    return split.indices[chosen], split.labels[chosen]


def _scores(head: TrustHead, logits: np.ndarray, features: np.ndarray | None) -> np.ndarray:
    with torch.inference_mode():
        _, scores, _ = head(torch.from_numpy(logits), None if features is None else torch.from_numpy(features))
    return scores.numpy().astype(np.float64)


def _probs(logits: np.ndarray, temperature: float) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits).double() / temperature, dim=1).numpy()


def _fit_features(clf: Classifier, data: PreparedData, seed: int, detector: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The sampled training rows, class means and precision of a feature detector; None, with a warning, where
    the training split cannot give them (no class with two different training images: no spread to measure, or
    a class without a training image)."""
    rows, labels = _train_sample(data, seed)
    counts = np.bincount(labels, minlength=len(data.classes))
    _, features = split_logits(clf, data, rows, True)
    try:
        means, precision = fit_mahalanobis(features, labels, len(data.classes),
                                           unit_length=detector in UNIT_LENGTH_DETECTORS)
    except ImgclfError as exc:
        cause = (f"{int((counts < 2).sum())} of the {len(counts)} classes have fewer than 2 training images "
                 f"(fewest: {int(counts.min())})" if counts.min() < 2 else f"the fit failed: {exc}")
        warn(f"the unknown detector {detector} cannot be fitted: it measures how features vary within a class, and "
             f"{cause}; unknown inputs are scored by msp (the top probability) instead")
        return None
    return rows, means, precision


def free_stats_name(run: Any) -> str:
    """The one of `STATS_FILES` the run's current card does not name (STATS_FILE where it has no card or no
    detector): fitted into it, the statistics leave the card's own file whole until the new card names the new one
    (a reader between the two read the card's digest against rewritten statistics, and called them damaged)."""
    try:
        current = run.read_card().unknown if run.has("model.json") else None
    except Exception:  # an unreadable card names nothing worth keeping
        current = None
    used = (current.statistics or STATS_FILE) if current is not None else None
    return STATS_FILES[1] if used == STATS_FILES[0] else STATS_FILES[0]


def fit_trust_after_training(cfg: TrainConfig, data: PreparedData, model: torch.nn.Module, card: ModelCard,
                             run_dir: Path, precision: str = "auto", stats_name: str = STATS_FILE
                             ) -> tuple[CalibrationInfo, UnknownInfo]:
    """`fit_trust` after a training's last epoch, where a streamed image changed since the scan is answered with
    how to finish the run: every epoch is in its checkpoint."""
    from ..data.cache import ImageChangedError, changed_image_error

    try:
        return fit_trust(cfg, data, model, card, run_dir, precision=precision, stats_name=stats_name)
    except ImageChangedError as exc:
        raise changed_image_error(exc.path, exc.reason, f"imgclf train --resume {shell_word(run_dir)} finishes the "
                                                        "run (its epochs are saved)") from None


def fit_trust(cfg: TrainConfig, data: PreparedData, model: torch.nn.Module, card: ModelCard,
              run_dir: Path, features: str | None = None, stats_name: str = STATS_FILE, precision: str = "auto"
              ) -> tuple[CalibrationInfo, UnknownInfo]:
    """Fit both on the trained `model`; writes RUN/`stats_name` (unknown.safetensors); returns the card's two
    blocks.
    features: what a feature detector reads (`imgclf.ood.FEATURE_SOURCES`); default: the map's mean and max where
    the network's head pools its last map, else the pre-logits.
    precision: what the network runs at (`prediction_precision.PRECISIONS`); the pipeline passes the run's
    `prediction_precision.fitting_precision` and records it in the card, so that prediction runs as the fit did."""
    device = next(model.parameters()).device
    model = for_prediction(model)
    detector = cfg.unknown_detector
    val = data.splits["val"]
    source = features
    if source is None:
        plain = Classifier(model, card, device, head=TrustHead(), precision=precision)
        first = next(pixel_blocks(data.decoded, val.indices[:1], data.img_size, data.color, data.interpolation, 1))
        source = feature_source(model, plain.network_input(first)) if detector in FEATURE_DETECTORS else "pre-logits"
    clf = Classifier(model, card, device, head=TrustHead(features=source), precision=precision)
    logits, val_features = split_logits(clf, data, val.indices, detector in FEATURE_DETECTORS)
    labels = val.labels

    if cfg.calibrate == "temperature":
        fit = fit_temperature(logits, labels)
        temperature, skipped = fit.temperature, fit.skipped
    else:
        temperature, skipped = 1.0, ""
    ece_before, _ = expected_calibration_error(_probs(logits, 1.0), labels)
    ece_after, _ = expected_calibration_error(_probs(logits, temperature), labels)
    if temperature != 1.0 and ece_after > ece_before:
        # NLL is what the fit minimises; a model whose ranking is poor (one class for everything) can lower it by
        # sharpening while its confidence drifts further from its accuracy: such a temperature is not calibration
        skipped = (f"the fitted T = {temperature:.3g} lowered the validation NLL but raised its ECE "
                   f"({ece_before:.3f} → {ece_after:.3f}), so probabilities stay the raw softmax")
        temperature, ece_after = 1.0, ece_before
    if skipped and cfg.calibrate == "temperature":  # any cause: all of validation right said nothing
        warn(f"no temperature: {skipped} (model.json's calibration records it)")
    calibration = CalibrationInfo(
        method="temperature" if cfg.calibrate == "temperature" and not skipped else "none",
        temperature=temperature, split="val", images=len(labels), ece_before=ece_before, ece_after=ece_after,
        nll_before=nll(logits, labels, 1.0), nll_after=nll(logits, labels, temperature), skipped=skipped)

    stats: dict[str, np.ndarray] = {}
    fitted_on, feature_dim = "", None
    fitted = _fit_features(clf, data, cfg.seed, detector) if detector in FEATURE_DETECTORS else None
    if detector in FEATURE_DETECTORS and fitted is None:
        detector, source, val_features = "msp", "pre-logits", None
    if fitted is not None:
        rows, means, precision = fitted
        # the stored (float32) statistics are the ones every later score uses
        stats = {"means": means.astype(np.float32), "precision": precision.astype(np.float32)}
        fitted_on = f"{len(rows)} training images, without augmentation"
        feature_dim = int(means.shape[1])
    tensors = {k: torch.from_numpy(v) for k, v in stats.items()}
    if detector == COMBINED:
        parts_head = TrustHead(temperature, "mahalanobis-l2", None, tensors["means"], tensors["precision"], source)
        with torch.inference_mode():
            parts = torch.stack([parts_head.top_log_odds(torch.from_numpy(logits)),
                                 parts_head.mahalanobis_score(torch.from_numpy(val_features))], dim=1)
        stats["standardise"] = fit_standardise(parts.numpy()).astype(np.float32)
        tensors["standardise"] = torch.from_numpy(stats["standardise"])
    head = TrustHead(temperature, detector, None, tensors.get("means"), tensors.get("precision"), source,
                     tensors.get("standardise"))
    scores = _scores(head, logits, val_features)
    threshold = threshold_at(scores, cfg.unknown_acceptance)
    if clf.precision != "32":
        # the ONNX graph (and a machine without native bf16) scores in fp32, where an image lying on a threshold
        # set in bf16 may fall below it (one of 179 validation images: 94.97 % kept of the 95 % stated): the lower
        # of the two thresholds keeps the share at both precisions
        exact = Classifier(model, card, device, head=TrustHead(features=source), precision="32")
        logits32, features32 = split_logits(exact, data, val.indices, detector in FEATURE_DETECTORS)
        threshold = min(threshold, threshold_at(_scores(head, logits32, features32), cfg.unknown_acceptance))
    rejected = rejection_range(len(scores), cfg.unknown_acceptance)
    if note := too_few_images_note(len(scores), cfg.unknown_acceptance, more_validation_images(cfg)):
        warn(note, key=f"{FEW_THRESHOLD_IMAGES_WARNING}: {note}")
    stats["val_scores"] = np.sort(scores).astype(np.float32)
    save_stats(run_dir / stats_name, stats)
    unknown = UnknownInfo(
        detector=detector, acceptance=cfg.unknown_acceptance, threshold=threshold, split="val", images=len(scores),
        accepted=float(np.mean(scores >= np.float32(threshold))), rejection_range=[round(r, 6) for r in rejected],
        score_quantiles={f"p{q}": float(np.percentile(scores, q)) for q in QUANTILES},
        statistics=stats_name, fitted_on=fitted_on, feature_dim=feature_dim, features=source)
    return calibration, unknown


def drop_unused_statistics(run_dir: Path, card: ModelCard) -> None:
    """Remove the detector statistics files the written card does not name (the other of `STATS_FILES`, left by
    a refit before a resume, say); call after the card is written."""
    used = card.unknown.statistics if card.unknown is not None else None
    for name in STATS_FILES:
        if name != used:
            (Path(run_dir) / name).unlink(missing_ok=True)

