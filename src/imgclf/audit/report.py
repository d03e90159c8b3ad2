"""audit.html: the audit as a self-contained page in the run report's look (imgclf.pages' environment and
base.html). Each duplicate group is a strip of thumbnails, each suspect a card; thumbnails are the decoded
cache pixels as PNG data URIs, so the page needs no file beside it."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..duplicates.verify import DETAIL_THRESHOLD, DISTINCT_DETAIL, DISTINCT_MARGIN, SAME_PIXELS
from ..io import atomic_write_text
from ..pages import render

SHOWN_GROUPS = 60
SHOWN_MEMBERS = 12
SHOWN_SUSPECTS = 48
SHOWN_OUTLIERS = 24
FLAG_TEXT = {"leakage": "leakage", "conflicting_labels": "conflicting labels", "same_class": "same class"}
PIXEL_TEXT = {"dark": "dark", "bright": "bright", "low_variance": "low variance", "near_empty": "near-empty",
              "noise_like": "noise-like"}


def png_uri(pixels: np.ndarray) -> str:
    """(H, W, C) uint8 -> PNG data URI."""
    from PIL import Image

    array = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _findings(record: Any) -> list[str]:
    c = record.counts
    out = []
    if c.leakage_groups:
        pairs = ", ".join(f"{k} {v}" for k, v in record.leakage.items() if v)
        whose = " of the run's split (its dataset.json)" if record.settings.splits == "run" else ""
        out.append(f"{c.leaked_images} validation/test image(s){whose} have a copy or near-copy in an earlier split "
                   f"({pairs} groups): scores on those splits are inflated until the copies are removed or moved.")
    if c.conflicting_label_groups:
        out.append(f"{c.conflicting_label_groups} group(s) hold the same picture under different classes: "
                   f"at most one of the labels is right.")
    if c.label_issues and record.features.near_chance:  # the list of a model that learnt nothing is no finding
        advice = "the run's features do not tell these classes apart" if record.features.source == "run" else \
            "imgclf audit --run RUN judges on a trained network's features"
        out.append(f"{c.label_issues} image(s) are listed as likely label errors, but the quick model that judged "
                   f"them scored near chance ({100 * (record.features.accuracy or 0):.1f} % out of fold): the list "
                   f"says little; {advice}.")
    elif c.label_issues:
        out.append(f"{c.label_issues} image(s) look like another class than their label (confident learning); "
                   f"the most suspicious are shown first.")
    if not record.features.folds:
        note = record.features.note or "label errors not checked"
        out.append(f"{note[0].upper()}{note[1:]}.")
    if c.outliers or c.pixel_issues:
        out.append(f"{c.outliers} image(s) are far from every class, {c.pixel_issues} nearly empty, dark, noise-like, "
                   f"bright or flat.")
    if c.redundant_images and not out:  # copies within one class, in one split: harmless to scores
        out.append(f"{c.duplicate_groups} duplicate group(s) within a class ({c.redundant_images} redundant "
                   f"images): they only weigh their picture more in training. No leakage, conflicting labels, "
                   f"likely label errors or outliers found.")
    if not out:
        out.append("No duplicates, leakage, likely label errors or outliers found.")
    return out


def similarity_text(value: float) -> str:
    """A near group's weakest link, cut (not rounded) to 4 decimals: 0.99996 reads 0.9999, never the 1.000 of an
    exact copy."""
    return f"{math.floor(value * 10_000) / 10_000:.4f}"


def write_audit_page(result: Any) -> Path:
    record, images = result.record, result.images
    index = {images.relative(i): i for i in range(len(images))}
    small = images.img_size < 48  # tiny images are enlarged without smoothing

    def thumb(path: str) -> str:
        return png_uri(np.asarray(images.pixels[index[path]]))

    groups = []
    for g in record.duplicate_groups[:SHOWN_GROUPS]:
        groups.append({"group": g, "flags": [FLAG_TEXT[f] for f in g.flags],
                       "similarity": similarity_text(g.similarity),
                       "members": [{"m": m, "src": thumb(m.path)} for m in shown_members(g.members)],
                       "more": max(0, len(g.members) - SHOWN_MEMBERS)})
    suspects = [{"s": s, "src": thumb(s.path)} for s in record.label_issues[:SHOWN_SUSPECTS]]
    outliers = [{"o": o, "src": thumb(o.path)} for o in record.outliers[:SHOWN_OUTLIERS]]
    pixel_issues = [{"p": p, "src": thumb(p.path), "issues": [PIXEL_TEXT[i] for i in p.issues]}
                    for p in record.pixel_issues[:SHOWN_OUTLIERS]]
    html = render("audit.html", record=record, c=record.counts, findings=_findings(record), groups=groups,
                  suspects=suspects, outliers=outliers, pixel_issues=pixel_issues, pixelated=small,
                  name=Path(record.root).name, shown={"groups": SHOWN_GROUPS, "members": SHOWN_MEMBERS,
                                                      "suspects": SHOWN_SUSPECTS, "outliers": SHOWN_OUTLIERS},
                  detail_threshold=DETAIL_THRESHOLD, same_pixels=SAME_PIXELS, distinct_detail=DISTINCT_DETAIL,
                  distinct_margin=DISTINCT_MARGIN,
                  # a flat folder's one split, "all", says nothing beside each image; a run's split does
                  splits=record.layout != "flat" or record.settings.splits == "run")
    path = result.html_path
    atomic_write_text(path, html)
    return path


def shown_members(members: list, limit: int | None = None) -> list:
    """The members a group's strip shows: one of every split and class it spans first (in the group's order), then
    the rest up to `limit`: 13 train copies and one each in val and test showed 12 train thumbnails, and not the
    two that made the group a leak."""
    limit = SHOWN_MEMBERS if limit is None else limit
    seen, first, rest = set(), [], []
    for m in members:
        (rest if (m.split, m.label) in seen else first).append(m)
        seen.add((m.split, m.label))
    chosen = set(map(id, (first + rest)[:limit]))
    return [m for m in members if id(m) in chosen]
