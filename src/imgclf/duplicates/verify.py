"""Whether a candidate pair of grey thumbnails is one picture: steps 2 and 3 of `search.py`'s near-duplicate
search (correlation at the best small shift, with the sharper image blurred to match; then the fine-detail test).
Every function takes (N, T, T) uint8 thumbnails and a (P, 2) array of index pairs, and works on whole chunks of
pairs at once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hashing import gaussian_blur

# Correlation a pair must reach, and its fine detail's. Measured on 70,000 Fashion-MNIST images with 700
# perturbed copies (JPEG quality 60-90, resize +-10 %, brightness +-10 %, 1-2 px shift): the lowest true copies
# sit at 0.973 (JPEG) and 0.981 (resize) matched; their detail correlation's 2nd percentile is 0.93, while
# half the wrong links of copies lie below 0.83 (docs/trust.md has the sweep).
NEAR_THRESHOLD = 0.98
DETAIL_THRESHOLD = 0.93
SAME_PIXELS = 0.995  # unblurred correlation that needs no detail test: a brightened or shifted copy (whose
# cropped border spoils the detail test) reaches >= 0.999
# A pair standing this far above each image's next-best candidate (unblurred correlation) needs only this much
# fine detail: a photo's JPEG copy at 24-32 px keeps its outline but not its detail (detail 0.16-0.93; 14 of 40
# q75 copies of 32 px colour crops failed the detail test), while the wrong pairs the detail test is for sit in
# crowds of one silhouette (plain garments), each image close to several. On the 70,700 Fashion-MNIST images of
# docs/trust.md: near-copy recall 0.986 -> 0.989 at the same precision; 26 -> 37 of those 40 JPEG copies.
DISTINCT_MARGIN = 0.02
DISTINCT_DETAIL = 0.8
# Correlation ignores tone (it is unchanged by b = alpha * a + beta), so one shape drawn in two colour schemes on
# flat backgrounds correlates at 1.0. A copy's tone changes in one of two ways: brightened (mean and spread scale
# alike, by up to TONE_SCALE: Fashion-MNIST holds the same garment photographed 1.3-1.9x brighter, 15 of its
# 1,474 pairs), or softened or cropped (the same mean, within TONE_MEAN of the brighter or TONE_MEAN_FLOOR grey
# levels, and at least TONE_SOFTER of the spread). Of the benchmark's 700 copies (docs/trust.md) the resize
# copies keep 0.69-1.0 of the spread (0.81 at the 1st percentile), the shifted ones move the mean by up to 12 %.
# 5 false groups among 24 generated shapes on flat backgrounds (32 px) fitted neither: spreads 1.6-17x apart at
# one mean, or means 0.6x apart at one spread.
TONE_SCALE = 2.0
TONE_SCALE_AGREEMENT = 0.2  # |ln(mean ratio) - ln(spread ratio)| of a brightened copy
TONE_MEAN = 0.2
TONE_MEAN_FLOOR = 16.0
TONE_SOFTER = 0.65
_MATCH_SIGMAS = (0.5, 0.7, 1.0, 1.5)  # blur widths tried on the sharper image, in pixels of a 28 px thumbnail
_DETAIL_SIGMA = 1.0  # detail = image less its blur of this width
_PAIR_CHUNK = 2048


def sharpness(thumbs: np.ndarray) -> np.ndarray:
    """Laplacian energy over variance per (T, T) thumbnail: which of two copies holds more fine detail."""
    x = np.asarray(thumbs, dtype=np.float32)
    lap = 4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:]
    centred = x - x.mean(axis=(1, 2), keepdims=True)
    return (lap ** 2).sum(axis=(1, 2)) / np.maximum((centred ** 2).sum(axis=(1, 2)), 1e-6)


def _aligned(b, base: np.ndarray, reach: int):
    """b (P, T, T) moved by each pair's integer `base` shift into a (P, T + 2, T + 2) frame with one spare
    pixel each side for the residual search, zero where b has no pixel: frame[p, 1 + y, 1 + x] =
    b[p, y + base_y, x + base_x]. Pairs are grouped by shift, so each group is one slice."""
    import torch

    side, r = b.shape[1], RESIDUAL
    pad = reach + r
    padded = torch.nn.functional.pad(b, (pad, pad, pad, pad))
    frame = torch.empty((len(b), side + 2 * r, side + 2 * r), dtype=b.dtype)
    shifts, group = np.unique(base, axis=0, return_inverse=True)
    for g, (dy, dx) in enumerate(shifts):
        rows = torch.from_numpy(np.flatnonzero(group.ravel() == g))
        frame[rows] = padded[rows, pad + dy - r:pad + dy + side + r, pad + dx - r:pad + dx + side + r]
    return frame


class _Overlaps:
    """Per image, the sum and sum of squares of its zero-mean pixels over the part another image shifted by
    (dy, dx) overlaps: a[y, x] with y in [max(0, -dy), T - max(0, dy)), likewise x. Tabled once per image for
    every shift in [-limit, limit]^2 (the partner's part is its own table at (-dy, -dx)), so a pair costs only
    its cross sums."""

    def __init__(self, thumbs: np.ndarray, limit: int, rows: np.ndarray):
        import torch

        n, side, _ = thumbs.shape
        self.limit = limit
        span = np.arange(-limit, limit + 1)
        dy, dx = np.repeat(span, len(span)), np.tile(span, len(span))
        y0, y1 = np.maximum(0, -dy), side - np.maximum(0, dy)
        x0, x1 = np.maximum(0, -dx), side - np.maximum(0, dx)
        self.means = np.zeros(n, np.float32)
        self.table = np.zeros((n, 2, len(span), len(span)), np.float32)
        for start in range(0, len(rows), _PAIR_CHUNK):
            chunk = rows[start:start + _PAIR_CHUNK]
            x = torch.from_numpy(np.asarray(thumbs[chunk], dtype=np.float32))
            mean = x.mean(dim=(1, 2), keepdim=True)
            x = x - mean
            self.means[chunk] = mean[:, 0, 0].numpy()
            for q, values in enumerate((x, x * x)):
                s = torch.nn.functional.pad(values.cumsum(1).cumsum(2), (1, 0, 1, 0)).numpy()
                box = s[:, y1, x1] - s[:, y0, x1] - s[:, y1, x0] + s[:, y0, x0]  # (chunk, shifts)
                self.table[chunk, q] = box.reshape(len(chunk), len(span), len(span))

    def sums(self, images: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        entry = self.table[images, :, dy + self.limit, dx + self.limit]
        return entry[:, 0], entry[:, 1]

    def zero_mean(self, thumbs: np.ndarray, rows: np.ndarray):
        import torch

        return torch.from_numpy(np.asarray(thumbs[rows], dtype=np.float32) - self.means[rows, None, None])


RESIDUAL = 2  # pixels searched around the centres of mass' difference, which textured backgrounds barely move
_RESIDUALS = [(ry, rx) for ry in range(-RESIDUAL, RESIDUAL + 1) for rx in range(-RESIDUAL, RESIDUAL + 1)]


def _ncc_at(a, window, dy: np.ndarray, dx: np.ndarray, side: int, a_sums: _Overlaps, b_sums: _Overlaps,
            i: np.ndarray, j: np.ndarray, min_overlap: float) -> np.ndarray:
    """Normalised cross-correlation of a (P, T, T, zero-mean) with b's `window` (b moved by (dy, dx), zero
    where it has no pixel) over the pixels both have."""
    cross = (a * window).sum(dim=(1, 2)).numpy()
    n = ((side - np.abs(dy)) * (side - np.abs(dx))).astype(np.float32)
    sum_a, sum_a2 = a_sums.sums(i, dy, dx)
    sum_b, sum_b2 = b_sums.sums(j, -dy, -dx)
    cov = cross - sum_a * sum_b / n
    var = (sum_a2 - sum_a ** 2 / n) * (sum_b2 - sum_b ** 2 / n)
    return np.where(n >= min_overlap * side * side, cov / np.sqrt(np.maximum(var, 1e-6)), -1.0)


def pair_similarity(thumbs: np.ndarray, offsets: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Best normalised cross-correlation of each pair's grey thumbnails over the pixels they share: at the
    integer shifts within one pixel of the difference of their centres of mass (capped at `side / 8`), then, at
    the best of those shifts, with the sharper of the two blurred (a copy that was shrunk and enlarged, or
    JPEG-compressed, is a blurred original; blurring the other one helps no copy)."""
    out = np.zeros(len(pairs), np.float32)
    if len(pairs) == 0:
        return out
    n, side, _ = thumbs.shape
    reach = max(2, side // 8)  # a larger shift leaves too little overlap to judge by
    used = np.unique(pairs)
    blurred = np.zeros_like(thumbs)
    for start in range(0, len(used), _PAIR_CHUNK):
        import torch

        rows = used[start:start + _PAIR_CHUNK]
        x = gaussian_blur(torch.from_numpy(np.asarray(thumbs[rows], dtype=np.float32)), 0.7 * max(side, 28) / 28)
        blurred[rows] = np.clip(np.rint(x.numpy()), 0, 255)
    plain, soft = _Overlaps(thumbs, reach + RESIDUAL, used), _Overlaps(blurred, reach + RESIDUAL, used)
    sharp = np.zeros(n, np.float32)
    sharp[used] = sharpness(thumbs[used])
    import torch

    for start in range(0, len(pairs), _PAIR_CHUNK):
        i, j = pairs[start:start + _PAIR_CHUNK, 0], pairs[start:start + _PAIR_CHUNK, 1]
        base = np.clip(np.rint(offsets[j] - offsets[i]), -reach, reach).astype(np.int64)
        a, b = plain.zero_mean(thumbs, i), plain.zero_mean(thumbs, j)
        best, shift = _best_around(a, b, base, i, j, reach, plain)
        # a picture without a dark background: its centre of mass barely follows a shift, and may point away
        moved = np.flatnonzero(base.any(axis=1))
        if len(moved):
            rows = torch.from_numpy(moved)
            still, still_shift = _best_around(a[rows], b[rows], np.zeros_like(base[moved]), i[moved], j[moved],
                                              reach, plain)
            better = still > best[moved]
            best[moved[better]], shift[moved[better]] = still[better], still_shift[better]
        r = RESIDUAL
        # at that shift, the sharper image blurred; pairs split in two groups so each uses whole tables
        blur_a = sharp[i] > sharp[j]
        for group, a_images, a_table, b_images, b_table in ((blur_a, blurred, soft, thumbs, plain),
                                                            (~blur_a, thumbs, plain, blurred, soft)):
            if not group.any():
                continue
            gi, gj, gshift = i[group], j[group], shift[group]
            window = _aligned(b_table.zero_mean(b_images, gj), gshift, reach + r)[:, r:side + r, r:side + r]
            score = _ncc_at(a_table.zero_mean(a_images, gi), window, gshift[:, 0], gshift[:, 1], side, a_table,
                            b_table, gi, gj, 0.6)
            best[group] = np.maximum(best[group], score)
        out[start:start + len(i)] = best
    return out


def _best_around(a, b, origin: np.ndarray, i: np.ndarray, j: np.ndarray, reach: int,
                 table: _Overlaps) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, the best overlap correlation of zero-mean a and b at the shifts within RESIDUAL of `origin`,
    and that shift."""
    side, r = a.shape[1], RESIDUAL
    frame = _aligned(b, origin, reach)
    scores = np.stack([_ncc_at(a, frame[:, r + ry:r + ry + side, r + rx:r + rx + side], origin[:, 0] + ry,
                               origin[:, 1] + rx, side, table, table, i, j, 0.6) for ry, rx in _RESIDUALS])
    return scores.max(axis=0), origin + np.array(_RESIDUALS)[scores.argmax(axis=0)]


@dataclass
class Detail:
    """Per pair: the unblurred correlation, the correlation with the sharper image blurred to match the other,
    and the correlation of the two images' fine detail at that match (all at the pair's best shift)."""

    plain: np.ndarray
    matched: np.ndarray
    detail: np.ndarray
    tone: np.ndarray  # bool: the two agree in grey mean and spread (`tone_agrees`)

    def accepted(self, threshold: float = NEAR_THRESHOLD, detail: float = DETAIL_THRESHOLD,
                 margin: np.ndarray | None = None) -> np.ndarray:
        """margin: each pair's `distinct_margin`; a pair that far apart from the rest needs DISTINCT_DETAIL only."""
        needed = detail if margin is None else np.where(margin >= DISTINCT_MARGIN, min(detail, DISTINCT_DETAIL),
                                                        detail)
        same_picture = (self.plain >= max(SAME_PIXELS, threshold)) | ((self.matched >= threshold)
                                                                     & (self.detail >= needed))
        return same_picture & self.tone


def tone_agrees(thumbs: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Per pair, whether its two grey thumbnails' mean and spread are those of one picture brightened or
    softened (the constants' comment says how), which correlation cannot see."""
    x = np.asarray(thumbs, dtype=np.float32).reshape(len(thumbs), -1)
    used = np.unique(pairs)
    mean, spread = np.zeros(len(thumbs), np.float32), np.zeros(len(thumbs), np.float32)
    mean[used], spread[used] = x[used].mean(axis=1), x[used].std(axis=1)
    i, j = pairs[:, 0], pairs[:, 1]
    spread_ratio = np.log(np.maximum(spread[i], 1e-3) / np.maximum(spread[j], 1e-3))
    mean_ratio = np.log((mean[i] + 1) / (mean[j] + 1))
    brightened = (np.abs(spread_ratio) <= np.log(TONE_SCALE)) & (np.abs(mean_ratio - spread_ratio)
                                                                 <= TONE_SCALE_AGREEMENT)
    softened = (np.abs(spread_ratio) <= -np.log(TONE_SOFTER)) & (
        np.abs(mean[i] - mean[j]) <= np.maximum(TONE_MEAN_FLOOR, TONE_MEAN * np.maximum(mean[i], mean[j])))
    return brightened | softened


def distinct_margin(pairs: np.ndarray, candidates: np.ndarray, similarity: np.ndarray, n: int,
                    same: np.ndarray | None = None) -> np.ndarray:
    """Per pair (i, j) of `pairs` (a subset of `candidates`, whose correlations are `similarity`): how far its
    correlation lies above the best that i or j reaches with any other candidate (negative: one of them has a
    closer partner). N images. same: (N,) a label shared by byte-identical images (None: all distinct): a partner
    that is a copy of i or j is that picture again, no rival (a byte copy of the source took the JPEG copy's
    margin to 0, and the copy went unfound)."""
    if len(pairs) == 0:
        return np.zeros(0, np.float32)
    label = np.arange(n) if same is None else np.asarray(same)
    a = np.concatenate([candidates[:, 0], candidates[:, 1]])
    b = np.concatenate([candidates[:, 1], candidates[:, 0]])
    s = np.concatenate([similarity, similarity]).astype(np.float32)
    order = np.lexsort((-s, a))  # by image, its best partner first
    a, b, s = a[order], b[order], s[order]
    starts, ends = np.searchsorted(a, np.arange(n)), np.searchsorted(a, np.arange(n), side="right")
    own = {(int(x), int(y)): float(v) for x, y, v in zip(candidates[:, 0], candidates[:, 1], similarity)}
    out = np.empty(len(pairs), np.float32)
    for k, (i, j) in enumerate(pairs.tolist()):
        other = -2.0
        for x, y in ((i, j), (j, i)):
            for t in range(starts[x], ends[x]):  # its best partner that is neither picture of the pair
                if label[b[t]] != label[y] and label[b[t]] != label[x]:
                    other = max(other, float(s[t]))
                    break
        out[k] = own.get((i, j), own.get((j, i), -2.0)) - other
    return out


def _moved(x: np.ndarray, shift: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """x[p] moved by each pair's shift: out[p, y, x] = x[p, y + dy, x + dx], with a mask of where x has a pixel."""
    side = x.shape[1]
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    inside = np.pad(np.ones_like(x), ((0, 0), (pad, pad), (pad, pad)))
    out, mask = np.empty_like(x), np.empty_like(x)
    shifts, group = np.unique(shift, axis=0, return_inverse=True)
    for g, (dy, dx) in enumerate(shifts):
        rows = group.ravel() == g
        window = np.s_[pad + dy:pad + dy + side, pad + dx:pad + dx + side]
        out[rows], mask[rows] = padded[rows][:, window[0], window[1]], inside[rows][:, window[0], window[1]]
    return out, mask


def _masked_ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n = np.maximum(mask.sum(axis=(1, 2)), 1.0)
    a = (a - ((a * mask).sum(axis=(1, 2)) / n)[:, None, None]) * mask
    b = (b - ((b * mask).sum(axis=(1, 2)) / n)[:, None, None]) * mask
    return (a * b).sum(axis=(1, 2)) / np.sqrt(np.maximum((a * a).sum(axis=(1, 2)) * (b * b).sum(axis=(1, 2)), 1e-6))


def pair_detail(thumbs: np.ndarray, offsets: np.ndarray, pairs: np.ndarray) -> Detail:
    """`Detail` of each pair: best shift within one pixel of the centres of mass' difference (as
    `pair_similarity`), the sharper image blurred by whichever of `_MATCH_SIGMAS` (or none) correlates best, then
    the correlation of image less its `_DETAIL_SIGMA` blur, over the pixels both images have."""
    import torch

    plain, matched, detail = (np.zeros(len(pairs), np.float32) for _ in range(3))
    if len(pairs) == 0:
        return Detail(plain, matched, detail, np.zeros(0, bool))
    side = thumbs.shape[1]
    scale = side / 28
    reach = max(2, side // 8)

    def blur(x: np.ndarray, sigma: float) -> np.ndarray:
        return gaussian_blur(torch.from_numpy(np.ascontiguousarray(x)), sigma * scale).numpy()

    sharp = np.zeros(len(thumbs), np.float32)
    used = np.unique(pairs)
    sharp[used] = sharpness(thumbs[used])
    for start in range(0, len(pairs), _PAIR_CHUNK):
        i, j = pairs[start:start + _PAIR_CHUNK, 0], pairs[start:start + _PAIR_CHUNK, 1]
        first = sharp[i] >= sharp[j]  # a: the sharper of the two, the one to blur
        ia, ib = np.where(first, i, j), np.where(first, j, i)
        a, b = thumbs[ia].astype(np.float32), thumbs[ib].astype(np.float32)
        base = np.clip(np.rint(offsets[ib] - offsets[ia]), -reach, reach).astype(np.int64)
        best = np.full(len(i), -2.0, np.float32)
        shift = base.copy()
        for origin in (base, np.zeros_like(base)):  # as `pair_similarity` searches
            for ry, rx in _RESIDUALS:
                window, mask = _moved(b, origin + (ry, rx), reach + RESIDUAL)
                score = _masked_ncc(a, window, mask)
                better = score > best
                best[better], shift[better] = score[better], (origin + (ry, rx))[better]
        window, mask = _moved(b, shift, reach + RESIDUAL)
        blurred = [a] + [blur(a, sigma) for sigma in _MATCH_SIGMAS]
        scores = np.stack([best] + [_masked_ncc(x, window, mask) for x in blurred[1:]])
        pick = scores.argmax(axis=0)
        a_matched = np.stack(blurred)[pick, np.arange(len(i))]
        fine_b, _ = _moved(b - blur(b, _DETAIL_SIGMA), shift, reach + RESIDUAL)
        plain[start:start + len(i)] = best
        matched[start:start + len(i)] = scores.max(axis=0)
        detail[start:start + len(i)] = _masked_ncc(a_matched - blur(a_matched, _DETAIL_SIGMA), fine_b, mask)
    return Detail(plain, matched, detail, tone_agrees(thumbs, pairs))
