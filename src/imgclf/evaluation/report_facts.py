"""The report's blocks of facts, each drawn from one record of the run (the card, its sizing, calibration and
unknown blocks, the LR finder's record, config.yaml) or from the recipe the run named: what report.html shows
beside its findings, which `report` gathers."""

from __future__ import annotations

from typing import Any

from ..records import LRFindInfo, MetricsRecord, ModelCard, RunDir


def tta_unavailable(card: ModelCard) -> str | None:
    """Why a run has no TTA scores when its training made no view to average over; None when it did."""
    from ..tta import TTAViews

    if TTAViews.for_training(card.training.augment, card.img_size).available:
        return None
    trained = f"augment {card.training.augment}" if card.training.augment.strip() else "no augmentation"
    return (f"training used {trained}: no mirror image or shift, so the model saw no view of an image but the "
            "image itself, and test-time augmentation averages only over views seen in training.")


def ema_decay(run: RunDir) -> float | None:
    """The run's --ema decay, from its config.yaml (None: no averaging, or no readable config)."""
    from ..errors import ImgclfError

    try:
        return run.read_config().ema if run.has("config.yaml") else None
    except ImgclfError:
        return None


def recipe_summary(name: str | None, changes: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """What the run's recipe says of itself (description, the reference it reproduces with that reference's
    figures, the stand-in data), so that a reader can hold the run against it, and the settings the run changed
    (the card's `recipe_changes`); None without a recipe, or for one this release no longer ships."""
    if not name:
        return None
    from ..errors import ImgclfError
    from ..recipes import recipe_document

    try:
        doc = recipe_document(name)
    except ImgclfError:
        return None
    return {"name": name, "description": str(doc.get("description", "")).strip(),
            "reference": str(doc.get("reference", "")).strip(), "stand_in": str(doc.get("stand_in", "")).strip(),
            "reproduces": {str(k): v for k, v in (doc.get("reproduces") or {}).items()}, "changes": changes or {}}


def sizing_table(sizing: Any, epochs_run: float | None = None) -> dict[str, Any] | None:
    """The card's `sizing` (sizing=probe) as the page shows it: one row per timed candidate, the chosen marked;
    then what the chosen model trained at (batch, learning rate), the epochs predicted there and those it ran."""
    if sizing is None:
        return None
    trained = []
    if sizing.train_batch_size is not None:
        trained.append(f"batch {sizing.train_batch_size}"
                       + (f", learning rate {sizing.lr:.3g}" if sizing.lr is not None else ", learning rate from the "
                          "LR finder"))
    if sizing.train_epochs is not None:
        trained.append(f"{sizing.train_epochs:.1f} epochs predicted at {sizing.train_images_per_s:,.0f} img/s")
    if epochs_run:
        trained.append(f"{epochs_run:.1f} trained" if epochs_run != int(epochs_run) else f"{epochs_run:.0f} trained")
    if sizing.resumed_with:
        changed = ", ".join(f"{name.replace('_', ' ')} {'none' if value is None else value}"
                            for name, value in sizing.resumed_with.items())
        trained.append(f"resumed with {changed}: its later epochs trained at these, not at what the probe chose "
                       "and sized for")
    rows = [{"args": ", ".join(f"{k} {v}" for k, v in c.model_args.items()), "params": c.num_params,
             "images_per_s": c.images_per_s, "epochs": c.predicted_epochs, "chosen": i == sizing.chosen,
             "readings": " · ".join(f"{r:,.0f}" for r in c.readings) if len(c.readings) > 1 else ""}
            for i, c in enumerate(sizing.candidates)]
    return {"rows": rows, "probe_seconds": sizing.probe_seconds, "budget_seconds": sizing.budget_seconds,
            "precision": sizing.precision, "min_epochs": sizing.min_epochs, "min_steps": sizing.min_steps,
            "batch_size": sizing.batch_size,
            "reason": sizing.reason, "trained": "; ".join(trained)}


def calibration_facts(card: ModelCard, metrics: MetricsRecord | None) -> dict[str, Any]:
    """The temperature and what it did (the card's validation numbers, metrics.json's test ECE before)."""
    c = card.calibration
    if c is None:
        return {"method": None}
    from ..calibration import bound_reached

    before = metrics.calibration.ece_before if metrics is not None and metrics.calibration is not None else None
    return {"method": c.method, "temperature": c.temperature, "skipped": c.skipped, "val_images": c.images,
            "bound": bound_reached(c.temperature) if c.method == "temperature" else None,
            "val_ece_before": c.ece_before, "val_ece_after": c.ece_after, "val_nll_before": c.nll_before,
            "val_nll_after": c.nll_after, "ece_before": before}


def unknown_facts(card: ModelCard, metrics: MetricsRecord | None) -> dict[str, Any] | None:
    u = card.unknown
    if u is None:
        return None
    scored = metrics.unknown if metrics is not None else None
    features = None
    if u.feature_dim:  # the Mahalanobis detectors: say what they read
        read = ("the last feature map's per-channel mean and max" if u.features == "map-mean-max"
                else "the layer the classifier reads")
        features = f"{read} ({u.feature_dim} values per image)"
    return {"detector": u.detector, "threshold": u.threshold, "acceptance": u.acceptance, "val_images": u.images,
            "val_accepted": u.accepted, "fitted_on": u.fitted_on, "features": features,
            "rejection_range": u.rejection_range,
            "flagged": scored.flagged if scored is not None else None,
            "accuracy_kept": scored.accuracy_kept if scored is not None else None}


def lr_find_caption(lr_find: LRFindInfo) -> str:
    """What the finder's figure shows and which rule chose the rate training used."""
    curve, rule = ((f"mean of {lr_find.window} steps", f"where the loss's fall ends, within "
                    f"{lr_find.fall_left * 100:g} % of the whole fall of its lowest point")
                   if lr_find.rule == "end_of_fall" else
                   ("running mean", "the steepest fall of the running mean (the rule before 2026-12-02)"))
    return (f"Training loss ({curve}) while the learning rate grew from {lr_find.min_lr:g} to {lr_find.max_lr:g} "
            f"over {lr_find.steps} steps, from the initial weights. Training used the suggestion, "
            f"{lr_find.suggestion:.3g}: {rule} (--lr auto)."
            + ("" if lr_find.lowest_loss_lr is None or lr_find.still_falling else
               f" The loss was lowest at {lr_find.lowest_loss_lr:.3g}; a tenth of that, "
               f"{lr_find.tenth_of_lowest:.3g}, is the other usual pick (Smith's rule).")
            + "".join(f" Caution: {text}." for text in lr_find.cautions))


def config_or_none(run: RunDir) -> Any:
    """The run's settings where config.yaml reads; None where it is missing or unreadable (a page is still drawn)."""
    from ..errors import ImgclfError

    try:
        return run.read_config() if run.has("config.yaml") else None
    except ImgclfError:
        return None


def config_problem(run: RunDir) -> str | None:
    """What the page says in place of "repeats the run" where config.yaml is missing or does not read as settings."""
    if not run.has("config.yaml"):
        return f"config.yaml is missing from {run.path}: the settings this run was trained with are not on this page."
    from ..errors import ImgclfError

    try:
        run.read_config()
    except ImgclfError as exc:
        return f"config.yaml does not read as settings, so it cannot repeat the run: {exc}"
    return None
