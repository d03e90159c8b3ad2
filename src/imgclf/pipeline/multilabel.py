"""The multi-label steps of a run: which task the data is, and the per-label thresholds fitted after training."""

from __future__ import annotations


from ..config import TrainConfig
from ..task_settings import check_task_settings
from ..data.prepared import PreparedData
from ..errors import invalid


def resolve_task(cfg: TrainConfig, data: PreparedData) -> str:
    """The task the run trains: the data's (an index file is multi-label), checked against an explicit setting,
    and the settings that belong to the other task refused."""
    if cfg.task not in ("auto", data.task):
        given = "an index file (CSV / JSON lines) of label sets" if data.task == "multilabel" else \
            "a class-per-folder image tree"
        raise invalid("task", cfg.task, f"auto or {data.task} for this data", note=f"the data is {given}")
    check_task_settings(cfg, data.task)
    return data.task


def fit_thresholds(data: PreparedData, model, card, precision: str = "auto") -> dict[str, float]:
    """Each label's max-F1 threshold on the validation split, from the probabilities `Classifier` computes (the
    same sigmoid prediction, evaluation and export use) at `precision` (`prediction_precision.PRECISIONS`)."""
    from ..inference import Classifier, for_prediction
    from ..multilabel import sigmoid, tune_thresholds
    from .trust import split_logits

    split = data.splits["val"]
    clf = Classifier(for_prediction(model), card, precision=precision)
    logits, _ = split_logits(clf, data, split.indices, features=False)
    from ..multilabel import untuned_thresholds

    # they keep DEFAULT_THRESHOLD: no F1 to maximise without a positive, one image's F1 with a few
    untuned = untuned_thresholds(data.classes, split.targets.sum(axis=0), len(split.targets))
    if untuned:
        from ..notices import warn

        warn(f"{untuned}; give the validation split more images with and without them (--val-split, or more "
             "images)")
    return tune_thresholds(split.targets, sigmoid(logits), data.classes)
