"""The network and head a run's model card describes: the architecture built for its weights, a copy made to
predict (batch norms folded), and the card's temperature and unknown detector as a module. What `Classifier`
loads, and what fitting the temperature and thresholds runs on."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from .errors import bad_path
from .ood import COMBINED, FEATURE_DETECTORS, STATS_FILE, TrustHead, load_stats
from .records import ModelCard, RunDir


def for_prediction(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of a trained network as `Classifier.load` makes it predict: eval mode, batch norms folded. The
    temperature and the thresholds (unknown, multi-label) are fitted on it, so that they hold for prediction to
    the image, not only up to the rounding by which a folded network differs; the trained network is untouched."""
    from .models.fold import fold_batch_norms

    predicting = copy.deepcopy(model).eval()
    fold_batch_norms(predicting)
    return predicting


def build_from_card(card: ModelCard) -> torch.nn.Module:
    from .models import create_model, get_model_info

    info = get_model_info(card.architecture)
    args = dict(card.model_args)
    if info.pretrained:
        args["pretrained"] = False  # the run's own weights follow; never fetch anything here
        args.pop("weights", None)
    # the random initialisation the run's weights then replace must not draw from the caller's generator
    # (torch.manual_seed(0); imgclf.load(run); torch.rand(1) gave another number than without the load)
    with torch.random.fork_rng(devices=[]):
        return create_model(card.architecture, len(card.classes), card.in_chans, card.img_size, **args)


def trust_head(card: ModelCard, run_dir: str | os.PathLike | None) -> TrustHead:
    """The card's temperature and unknown detector as a module. A card from before schema 2 has neither: raw
    softmax, scored by its highest probability, never unknown. A multi-label card: one sigmoid per label."""
    if card.task == "multilabel":
        from .multilabel import SigmoidHead

        return SigmoidHead()
    if card.unknown is None:
        return TrustHead(card.temperature, "msp", None)
    means = precision = standardise = None
    if card.unknown.detector in FEATURE_DETECTORS:
        name = card.unknown.statistics or STATS_FILE
        path = Path(run_dir) / name if run_dir is not None else Path(name)
        if not path.is_file():
            raise bad_path("run", run_dir if run_dir is not None else path, f"a run directory containing {name} "
                           "(the unknown detector's statistics its model.json names)", f"no {name}")
        if run_dir is not None:
            RunDir(run_dir).checked_file(name, card)
        try:
            stats = load_stats(path)
            means, precision = torch.from_numpy(stats["means"]), torch.from_numpy(stats["precision"])
            if card.unknown.detector == COMBINED:
                standardise = torch.from_numpy(stats["standardise"])
        except Exception as exc:  # safetensors raises its own error types for a damaged file
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise bad_path("run", run_dir if run_dir is not None else path, f"a run directory whose {name} "
                           "holds the detector's class means and precision (and, for msp+mahalanobis-l2, its parts' "
                           "standardisation)", reason) from None
    try:
        return TrustHead(card.temperature, card.unknown.detector, card.unknown.threshold, means, precision,
                         features=card.unknown.features, standardise=standardise)
    except (RuntimeError, ValueError) as exc:  # shapes that do not fit, a precision that is not positive definite
        raise bad_path("run", run_dir if run_dir is not None else "model.json", "a run directory whose unknown "
                       "detector statistics fit its model", " ".join(str(exc).split())[:200]) from None
