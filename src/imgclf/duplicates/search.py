"""Exact and near-duplicate groups of images: which images are copies of one another. What a group means for a
data set (copies within a class, conflicting labels, leakage between splits) is the audit's (`audit/flags.py`);
the group-aware split (`data/groups.py`) uses the groups alone.

Near-duplicates are found in two steps, so that the cost stays N x N x 32 multiply-adds plus a fixed amount per
image rather than a Python loop over pairs:

1. candidates: each image's `NEIGHBOURS` nearest signatures (`hashing.perceptual_signatures`, cosine); among
   70,700 Fashion-MNIST images with 700 perturbed copies, 3 neighbours hold as many copies (99.1 %) as 10;
2. verification: the normalised cross-correlation of the two grey thumbnails as they are (not aligned), at
   the integer shifts within one pixel of the shift their centres of mass suggest, and at the best of them with
   the sharper image slightly blurred (a copy that was shrunk and enlarged again, or JPEG-compressed, is a
   blurred original);
3. detail: a pair that the correlation alone does not settle (below `SAME_PIXELS`) must also agree in its fine
   detail. Plain garments of one shape correlate at 0.985-0.997 once the sharper is blurred, because the
   silhouette dominates the correlation; a true copy keeps the original's folds, seams and print. At the best
   shift, the sharper image is blurred to match the other (the Gaussian width of `_MATCH_SIGMAS` that
   correlates best), and the correlation of both images less their own blur (`_DETAIL_SIGMA`) must reach
   `DETAIL_THRESHOLD`. Measured on 70,700 Fashion-MNIST images with 700 perturbed copies, this took the resize
   copies' precision from 0.72 to 0.95 and the near-copies' from 0.90 to 0.98 at recall 0.986
   (docs/trust.md).
   A pair far above each image's other candidates (`DISTINCT_MARGIN`) passes on less detail (`DISTINCT_DETAIL`):
   a small photo's JPEG copy loses its fine detail, and such a pair is no member of a crowd of one silhouette.
A pair is a near-duplicate when its matched correlation reaches `NEAR_THRESHOLD`, it passes the detail test,
and its two images agree in grey mean and spread (`tone_agrees`: correlation is blind to tone, so one shape drawn
in two colour schemes on flat backgrounds would otherwise be one picture).
Steps 2 and 3, with their constants (`SAME_PIXELS`, `_MATCH_SIGMAS`, `_DETAIL_SIGMA`, `DETAIL_THRESHOLD`,
`NEAR_THRESHOLD`), are `verify.py`'s; this module finds the candidates and groups what passes.

Groups are the connected components of the duplicate pairs (union-find), so A~B and B~C put A, B and C together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .hashing import Signatures
from .verify import NEAR_THRESHOLD, distinct_margin, pair_detail, pair_similarity

NEIGHBOURS = 4
_PREFILTER = 0.01  # pairs more than this below NEAR_THRESHOLD skip the detail stage
MIN_CANDIDATE_COSINE = 0.8  # below this the signatures are too different for any verified pair (measured: >= 0.9)
_BRUTE_FORCE = 8192  # images compared all against all; more go through the inverted file
_CELL = 256  # images per inverted-file cell
_PROBES = 2  # cells each image joins


@dataclass
class DuplicateGroup:
    members: list[int]  # image indices, sorted
    kind: str  # "exact" when every member is byte-identical, else "near"
    similarity: float  # the weakest verified link inside the group (1.0 for exact copies)


@dataclass
class Duplicates:
    groups: list[DuplicateGroup]
    group_of: np.ndarray  # (N,) index into groups, -1 for an image with no duplicate
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # verified pairs (i < j)
    similarity: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    candidates: int = 0  # pairs verified

    def group_ids(self) -> np.ndarray:
        """One id per image, equal within a duplicate group and unique otherwise: what a group-aware split
        (sklearn's GroupShuffleSplit / StratifiedGroupKFold) takes to keep every group in one split."""
        ids = np.arange(len(self.group_of)) + len(self.groups)
        inside = self.group_of >= 0
        ids[inside] = self.group_of[inside]
        return ids


# ------------------------------------------------------------------------------------------- candidates
def _top_pairs(v, rows, k: int, min_cosine: float):
    """(i, j, cosine) for each of `rows` (indices into v) and its k most similar other rows of `rows`."""
    import torch

    sub = v[rows]
    sim = sub @ sub.T
    sim.fill_diagonal_(-2.0)  # not its own neighbour
    values, index = torch.topk(sim, min(k, len(rows) - 1), dim=1)
    keep = values >= min_cosine
    local = torch.arange(len(rows))[:, None].expand_as(index)
    return rows[local[keep]], rows[index[keep]], values[keep]


def candidate_pairs(vectors: np.ndarray, neighbours: int = NEIGHBOURS, min_cosine: float = MIN_CANDIDATE_COSINE,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) where j is among i's `neighbours` most similar signatures or i among j's, with their
    cosine. Up to `_BRUTE_FORCE` images every pair is compared; above, an inverted file (as FAISS's IVF): the
    signatures are clustered into cells of ~`_CELL` images, each image joins its `_PROBES` nearest cells, and
    neighbours are searched within cells, which costs N x (cells + _PROBES x _CELL) instead of N x N."""
    import torch

    n = len(vectors)
    if n < 2 or neighbours < 1:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    v = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    found = []
    if n <= _BRUTE_FORCE:
        found.append(_top_pairs(v, torch.arange(n), neighbours, min_cosine))
    else:
        for members in _cells(vectors, seed):
            if len(members) > 1:
                found.append(_top_pairs(v, torch.from_numpy(members), neighbours, min_cosine))
    i = np.concatenate([f[0].numpy() for f in found])
    j = np.concatenate([f[1].numpy() for f in found])
    s = np.concatenate([f[2].numpy() for f in found])
    pairs = np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1).astype(np.int64)
    pairs, first = np.unique(pairs, axis=0, return_index=True)
    return pairs, s[first].astype(np.float32)


def _cells(vectors: np.ndarray, seed: int) -> list[np.ndarray]:
    """Member lists of the inverted file's cells (k-means on a seeded sample; each image in its _PROBES
    nearest cells)."""
    from sklearn.cluster import KMeans

    n = len(vectors)
    cells = max(2, n // _CELL)
    rng = np.random.default_rng(seed)
    sample = vectors[rng.choice(n, min(n, 20 * cells), replace=False)]
    centres = KMeans(cells, n_init=1, max_iter=20, random_state=seed).fit(sample).cluster_centers_
    centres = centres.astype(np.float32)
    nearest = np.empty((n, _PROBES), np.int64)
    for start in range(0, n, 16384):
        sim = vectors[start:start + 16384] @ centres.T
        nearest[start:start + len(sim)] = np.argpartition(-sim, _PROBES - 1, axis=1)[:, :_PROBES]
    order = np.argsort(nearest.ravel(), kind="stable")
    owner = np.repeat(np.arange(n), _PROBES)[order]
    bounds = np.searchsorted(nearest.ravel()[order], np.arange(cells + 1))
    return [owner[bounds[c]:bounds[c + 1]] for c in range(cells)]


# ------------------------------------------------------------------------------------------- grouping
def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _exact_pairs(digests: list[str] | None) -> np.ndarray:
    """Each byte-identical file linked to the first file with its digest."""
    if not digests:
        return np.zeros((0, 2), np.int64)
    first: dict[str, int] = {}
    pairs = []
    for i, d in enumerate(digests):
        if not d:
            continue
        j = first.setdefault(d, i)
        if j != i:
            pairs.append((j, i))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def find_duplicates(thumbs: np.ndarray, signatures: Signatures, digests: list[str] | None = None,
                    threshold: float = NEAR_THRESHOLD, neighbours: int = NEIGHBOURS) -> Duplicates:
    """Exact (same digest) and near (verified pair) duplicate groups of N images, given their (N, T, T)
    uint8 grey thumbnails, perceptual signatures and, optionally, file digests."""
    n = len(thumbs)
    exact = _exact_pairs(digests)
    candidates, _ = candidate_pairs(signatures.vectors, neighbours)
    if len(exact) and len(candidates):  # byte-identical pairs need no pixel check
        known = set(map(tuple, np.sort(exact, axis=1).tolist()))
        candidates = candidates[[tuple(p) not in known for p in candidates.tolist()]]
    similarity = pair_similarity(thumbs, signatures.offsets, candidates)
    near_enough = similarity >= threshold - _PREFILTER
    close = candidates[near_enough]
    detail = pair_detail(thumbs, signatures.offsets, close)
    same = _components(n, exact) if len(exact) else None  # byte-identical images: one picture
    keep = detail.accepted(threshold, margin=distinct_margin(close, candidates, similarity, n, same))
    near = close[keep]
    near_similarity = detail.matched[keep]  # >= plain: no blur is one of the widths tried
    pairs = np.concatenate([exact, near]).astype(np.int64)
    scores = np.concatenate([np.ones(len(exact), np.float32), near_similarity])
    group_of = np.full(n, -1, np.int64)
    groups: list[DuplicateGroup] = []
    if len(pairs):
        component = _components(n, pairs)
        sizes = np.bincount(component, minlength=n)
        weakest = np.ones(n, np.float32)
        np.minimum.at(weakest, component[pairs[:, 0]], scores)
        by_component = np.argsort(component, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        for c in np.flatnonzero(sizes >= 2):
            members = np.sort(by_component[bounds[c]:bounds[c + 1]])
            same_bytes = bool(digests) and len({digests[m] for m in members}) == 1 and digests[members[0]] != ""
            group_of[members] = len(groups)
            groups.append(DuplicateGroup(members.tolist(), "exact" if same_bytes else "near", float(weakest[c])))
    order = sorted(range(len(groups)), key=lambda g: (-len(groups[g].members), groups[g].members[0]))
    remap = np.full(len(groups) + 1, -1, np.int64)
    remap[np.array(order, dtype=np.int64)] = np.arange(len(order))
    group_of = np.where(group_of >= 0, remap[group_of], -1)
    return Duplicates([groups[g] for g in order], group_of, pairs, scores, candidates=len(candidates))
