"""What the audited run itself answers for a suspected label error it never trained on (one of its own val or
test images): a second opinion beside the quick model's. That model's per-image probabilities sit at 0 and 1
(a Gaussian per class, calibrated on average only: `gaussians.fit_temperature`), so a test image flagged
"labelled 5 (0.00), looks like 3 (1.00)" that the run reads as 5 at 0.91 showed nothing of the doubt. The run's
training images get no such opinion: it learnt their labels, right or wrong."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

HELD_OUT = ("val", "test")


def run_opinions(classifier: Any, pixels: np.ndarray, splits: Sequence[object],
                 suspects: Sequence[int]) -> dict[int, tuple[str, float]]:
    """{image index: (the run's top class, its calibrated probability)} for the `suspects` in the run's held-out
    splits (`splits`: the run's split of each image). classifier: the run, loaded (`inference.load`)."""
    held = [int(i) for i in suspects if str(splits[i]) in HELD_OUT]
    if not held:
        return {}
    probabilities = classifier.predict_pixels(pixels[held])
    top = probabilities.argmax(axis=1)
    return {i: (classifier.classes[int(t)], float(probabilities[k, t])) for k, (i, t) in enumerate(zip(held, top))}
