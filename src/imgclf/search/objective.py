"""What a search ranks its trials by: validation accuracy, or, for multi-label data, validation mAP.

Label-wise accuracy at 0.5 (a multi-label run's val_acc) rewards a network that predicts no rare label at all: on
data where each label sits on a tenth of the images, predicting none is right 90 % of the time. mAP ranks each
label's images by probability, before any threshold, as the thresholds tuned after training then use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Objective:
    name: str  # tune.json's `objective`, and the card's metrics field the trial's value is read from
    monitor: str  # the metric logged each epoch (history.csv's column) that the pruner reads
    words: str  # as pages and messages say it
    short: str  # a trial's terminal line


ACCURACY = Objective("val_accuracy", "val_acc", "validation accuracy", "val acc")
MEAN_AP = Objective("val_map", "val_map", "validation mAP", "val mAP")
OBJECTIVES = {o.name: o for o in (ACCURACY, MEAN_AP)}


def objective_for(settings: Mapping[str, Any]) -> Objective:
    """The objective of a search over these run settings (a TrainConfig's values): mAP where the data is
    multi-label (an index file, or --task multilabel)."""
    from ..data.multilabel import is_label_index

    multilabel = settings.get("task") == "multilabel" or is_label_index(settings.get("data"))
    return MEAN_AP if multilabel else ACCURACY
