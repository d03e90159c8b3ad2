"""Likely label errors by confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 2021), written here from the paper (cleanlab implements it too, but is
AGPL-3.0 and we are MIT).

1. Out-of-fold predicted probabilities: k-fold over the images, a quick model fitted on the other folds
   predicts each fold, so no image is judged by a model that saw its label; one temperature fitted on all the
   out-of-fold predictions keeps the probabilities off exactly 0 and 1.
2. Per-class thresholds: t_j = the mean predicted probability of class j over the images labelled j (the
   class's self-confidence).
3. An image labelled i is a likely error when some class j != i reaches its threshold and is the most
   probable of the classes that do (the off-diagonal of the paper's confident joint).
4. Flagged images are ranked by self-confidence, the probability of their given label, lowest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gaussians import SHRINK, ClassGaussians, fit_temperature, softmax

QUICK_MODEL = (f"regularised quadratic discriminant (a Gaussian per class, covariance shrunk {SHRINK} toward "
               f"identity), temperature-scaled")
MIN_PER_CLASS = 3  # every training fold keeps >= 2 images of each class


@dataclass
class OutOfFold:
    """What the k-fold pass gives for each image, from the model fitted on the other folds."""

    probabilities: np.ndarray  # (N, K), temperature-scaled
    distance: np.ndarray  # (N,) smallest squared Mahalanobis distance to a class, per dimension
    folds: int
    temperature: float


@dataclass
class LabelIssues:
    probabilities: np.ndarray  # (N, K) out-of-fold
    thresholds: np.ndarray  # (K,) per-class self-confidence thresholds (NaN for a class with no image)
    suggested: np.ndarray  # (N,) class the confident joint puts the image in, -1 when no class is confident
    flagged: np.ndarray  # (N,) bool: suggested is another class than the given label
    self_confidence: np.ndarray  # (N,) probability of the given label
    ranking: np.ndarray  # indices of flagged images, most suspicious first
    folds: int
    accuracy: float  # out-of-fold accuracy against the given labels


def out_of_fold(features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int = 5,
                seed: int = 0, groups: np.ndarray | None = None) -> OutOfFold:
    """k-fold over the images (stratified, seeded; fewer folds than asked when the smallest class is smaller):
    each fold is judged by class Gaussians fitted on the others. groups: one id per image, shared by duplicates
    (`Duplicates.group_ids`); those under several classes are held out together: a copy under another class in
    the fitted folds handed the held-out original its label, and the correctly labelled image was listed as the
    likely error."""
    from sklearn.model_selection import StratifiedKFold

    _, counts = np.unique(labels, return_counts=True)
    folds = int(min(folds, counts.min()))
    logits = np.full((len(labels), num_classes), -np.inf)
    distance = np.zeros(len(labels))
    assignment = np.empty(len(labels), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(features, labels)):
        assignment[held_out] = fold
    if groups is not None:
        # a group under several classes joins its first member's fold; the folds stay as drawn for every other
        # image (a group-aware splitter redrew them all, and which borderline flips were caught moved with the
        # draw), and a group within one class stays spread: a class made of one large group held out whole had
        # no image left to fit its Gaussian on
        order = np.argsort(np.asarray(groups), kind="stable")
        _, starts, sizes = np.unique(np.asarray(groups)[order], return_index=True, return_counts=True)
        for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
            members = order[start:start + size]
            if len(np.unique(labels[members])) > 1:
                assignment[members] = assignment[members[0]]
    for fold in range(folds):
        train, held_out = np.flatnonzero(assignment != fold), np.flatnonzero(assignment == fold)
        if not len(held_out) or not len(train):  # emptied, or made the whole set, by large groups
            continue
        model = ClassGaussians.fit(features[train], labels[train])
        mahalanobis = model.mahalanobis(features[held_out])
        logits[held_out] = model.log_joint(features[held_out], num_classes, mahalanobis)
        distance[held_out] = mahalanobis.min(axis=1) / features.shape[1]
    temperature = fit_temperature(logits, labels)
    return OutOfFold(softmax(np.where(np.isfinite(logits), logits, -1e30), temperature), distance, folds,
                     temperature)


def confident_learning(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, suggested, flagged) for out-of-fold `probabilities` and given `labels` (steps 2 and 3)."""
    n, k = probabilities.shape
    thresholds = np.full(k, np.nan)
    for j in range(k):
        rows = labels == j
        if rows.any():
            thresholds[j] = probabilities[rows, j].mean()
    # a class with no labelled image has no threshold and is never suggested
    above = probabilities >= np.where(np.isnan(thresholds), np.inf, thresholds)[None, :]
    masked = np.where(above, probabilities, -1.0)
    suggested = np.where(above.any(axis=1), masked.argmax(axis=1), -1)
    flagged = (suggested >= 0) & (suggested != labels)
    return thresholds, suggested, flagged


def find_label_issues(oof: OutOfFold, labels: np.ndarray) -> LabelIssues:
    probabilities = oof.probabilities
    thresholds, suggested, flagged = confident_learning(probabilities, labels)
    rows = np.arange(len(labels))
    self_confidence = probabilities[rows, labels]
    candidates = np.flatnonzero(flagged)
    ranking = candidates[np.argsort(self_confidence[candidates], kind="stable")]
    accuracy = float((probabilities.argmax(axis=1) == labels).mean()) if len(labels) else float("nan")
    return LabelIssues(probabilities, thresholds, suggested, flagged, self_confidence, ranking, oof.folds, accuracy)


def checkable_classes(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(K,) bool: the classes with enough images for out-of-fold judgement (MIN_PER_CLASS)."""
    return np.bincount(labels, minlength=num_classes) >= MIN_PER_CLASS


def find_label_issues_among(features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int,
                            seed: int, groups: np.ndarray | None = None
                            ) -> tuple[LabelIssues, OutOfFold, np.ndarray] | None:
    """Confident learning over the images of the checkable classes, with the results laid out for all N images
    (an image of a class too small to judge: never flagged, NaN probabilities); also the out-of-fold pass and the
    indices it covered. None when fewer than 2 classes are checkable. A class of 1 or 2 images used to leave
    the whole data set unchecked. groups: as `out_of_fold` takes them, one per image."""
    checkable = checkable_classes(labels, num_classes)
    if checkable.sum() < 2:
        return None
    keep = np.flatnonzero(checkable[labels])
    oof = out_of_fold(features[keep], labels[keep], num_classes, folds, seed,
                      None if groups is None else np.asarray(groups)[keep])
    part = find_label_issues(oof, labels[keep])
    if len(keep) == len(labels):
        return part, oof, keep
    n = len(labels)
    probabilities = np.full((n, num_classes), np.nan)
    probabilities[keep] = part.probabilities
    suggested, flagged, confidence = np.full(n, -1), np.zeros(n, dtype=bool), np.full(n, np.nan)
    suggested[keep], flagged[keep], confidence[keep] = part.suggested, part.flagged, part.self_confidence
    whole = LabelIssues(probabilities, part.thresholds, suggested, flagged, confidence, keep[part.ranking],
                        part.folds, part.accuracy)
    return whole, oof, keep


# out-of-fold accuracy within this of the majority class's share: the quick model learnt next to nothing
NEAR_CHANCE_MARGIN = 0.1


def near_chance(accuracy: float, labels: np.ndarray, with_run: bool = False) -> str:
    """A caution for the label-error list where the model that judged the labels scored near chance (at most the
    largest class's share plus NEAR_CHANCE_MARGIN): its suspects are then mostly noise (2 of 10 listed at 50 %
    on two classes). Empty otherwise."""
    if not len(labels) or not np.isfinite(accuracy):
        return ""
    majority = float(np.bincount(labels).max() / len(labels))
    if accuracy > majority + NEAR_CHANCE_MARGIN:
        return ""
    # with_run: the features were a trained run's already, and "--run RUN" was advice given to one who gave it
    advice = ("the run's features do not tell these classes apart (a run trained on this data may)" if with_run
              else "--run RUN judges on a trained network's features")
    return (f"the quick model's out-of-fold accuracy, {100 * accuracy:.1f} %, is near chance (the largest class is "
            f"{100 * majority:.1f} % of the images): its list says little; {advice}")
