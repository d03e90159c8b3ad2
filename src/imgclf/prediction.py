"""What a prediction of one image is (`Prediction`), as `Classifier.predict` and the HTTP service give it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Prediction:
    """One image's prediction. `label` is the most probable class, or "unknown" when `unknown` is True (the
    image scored below the card's threshold: it looks like none of the classes); `best_label` and `probability`
    are then still the closest known class and its probability, and `top` lists the known classes either way.
    `score`: the in-distribution score (higher: more like the training images; model.json `unknown`). An image
    that could not be read has its `error`, and None for label, probability, score and unknown (not judged)."""

    path: str
    label: str | None
    probability: float | None
    top: list[tuple[str, float]]
    error: str | None = None
    score: float | None = None
    unknown: bool | None = False
    best_label: str | None = None
    # multi-label runs: every label whose probability reaches its threshold, most probable first (may be empty);
    # `label` is then those names joined by ";", `top` the most probable labels, carried or not, and `best_label`
    # with `probability` the most probable label, carried or not (as for an unknown single-label image)
    labels: list[tuple[str, float]] | None = None
    multilabel: bool = False  # of a multi-label run, read or not: its JSON has `labels` (null where unread)

    def as_dict(self) -> dict:
        """What `imgclf predict --format json` and the HTTP service give for it (`top` as label/probability
        objects): JSON-ready."""
        from .predict_format import as_json

        return as_json(self)



def multilabel_prediction(name: str, probs: np.ndarray, classes: Sequence[str], top: list[tuple[str, float]],
                          cutoffs: np.ndarray, score: float | None) -> Prediction:
    """A multi-label image's Prediction: every label whose probability reaches its threshold, most probable first
    (`labels`, and `label` their names joined by ';'); `top` the ranking, carried or not. Shared by `predict`
    and the HTTP service."""
    carried = sorted(((c, float(p)) for c, p, t in zip(classes, probs, cutoffs) if p >= t), key=lambda item: -item[1])
    return Prediction(name, ";".join(c for c, _ in carried), top[0][1], top, score=score, best_label=top[0][0],
                      labels=carried, multilabel=True)
