"""`audit(data, run=None, ...)`: the whole audit of an image folder, from scan to audit.json and audit.html.

Stages, each timed in audit.json's `seconds`: decode (the shared uint8 cache), exact hashes, near-duplicates,
features (the run's penultimate layer, or pixels), label errors (confident learning over out-of-fold
probabilities), outliers and pixel checks, then the record and the page.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..data.several_classes import linked_under_several_classes
from ..duplicates.hashing import content_digests, perceptual_signatures
from ..duplicates.search import NEAR_THRESHOLD, NEIGHBOURS, Duplicates, find_duplicates
from ..duplicates.thumbnails import grey_thumbnails
from ..errors import bad_path, check_switch, invalid, path_argument, whole_number
from ..io import outside_data, writable_folder, write_json
from ..notices import warn
from .features import FEATURE_DIMS, Features, pixel_features, run_features
from .flags import group_flags, leakage_counts
from .images import AuditImages, load_images
from .label_errors import MIN_PER_CLASS, QUICK_MODEL, LabelIssues, find_label_issues_among, near_chance
from .summary import NOT_CHECKED
from .outliers import (OUTLIER_Z, Outliers, PixelStats, class_distance, feature_outliers, pixel_stats,
                       quality_issues)

SPLIT_ORDER = {"train": 0, "val": 1, "test": 2, "all": 3, "unused": 4}


@dataclass
class AuditResult:
    """What `audit` found: the record written to audit.json, where it went, and the arrays behind it (for
    benchmarks and for a group-aware split: `duplicates.group_ids()`, one id per image of `images`)."""

    record: Any  # records.AuditRecord
    folder: Path
    images: AuditImages
    duplicates: Duplicates
    features: Features
    label_issues: LabelIssues | None
    outliers: Outliers
    pixel_stats: PixelStats
    replaced: str | None = None  # `created` of the audit this one overwrote in `folder` (and its folder, if another)

    @property
    def json_path(self) -> Path:
        return self.folder / "audit.json"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: what audit.json holds (the arrays behind it are left out)."""
        return self.record.model_dump(mode="json")

    def __repr__(self) -> str:  # the counts: the record and the arrays behind it are tens of kilobytes
        c = self.record.counts
        return (f"AuditResult(folder={str(self.folder)!r}, images={c.images}, duplicate_groups={c.duplicate_groups}, "
                f"leaked_images={c.leaked_images}, conflicting_label_groups={c.conflicting_label_groups}, "
                f"label_issues={c.label_issues}, outliers={c.outliers}, pixel_issues={c.pixel_issues})")

    @property
    def html_path(self) -> Path:
        return self.folder / "audit.html"


def default_out(data: str | os.PathLike) -> Path:
    """audits/<folder name> in the current folder, as runs go to runs/<name>; audits/<name>-2, -3, ... where that
    holds the audit of another folder of the same name (a/train and b/train), which it would overwrite."""
    name = Path(os.path.abspath(data)).name or "data"
    own = os.path.realpath(data)
    out, n = Path("audits") / name, 1
    while (earlier := earlier_audit(out)) is not None and os.path.realpath(earlier.root) != own:
        n += 1
        out = Path("audits") / f"{name}-{n}"
    return out


def earlier_audit(folder: Path) -> Any:
    """The AuditRecord an earlier audit left in `folder` (what a new one there replaces), or None where it holds
    none that reads as one."""
    from ..errors import ImgclfError
    from ..records import AuditRecord
    from ..records.base import read_record

    path = folder / "audit.json"
    if not path.is_file():
        return None
    try:
        return read_record(path, AuditRecord, "out", folder, "an audit folder")
    except ImgclfError:
        return None


def feature_dims(smallest_class: int) -> int:
    """Principal components the quick model works in: half the smallest class, 8 to 64. Each class gets its
    own covariance; with 30 images a class and 64 dimensions it would be mostly the shrinkage (measured on 512
    digits with 6 planted flips: 64 components found 5 of them among 11 flagged, 16 found all 6 among 7)."""
    return int(np.clip(smallest_class // 2, 8, FEATURE_DIMS))


# Every image is held in memory at the decode size: 70,000 images at 512 x 512 RGB are 55 GB, so larger sizes can
# only exhaust memory; the comparisons read at most 32 x 32 and the quick model 64 x 64 anyway.
MAX_IMG_SIZE = 512


def _check(folds: int, seed: int, near_threshold: float, img_size: int | None,
           run: Any) -> tuple[int, int, int | None]:
    """(folds, seed, img_size) as ints (numpy's taken) once every argument is checked."""
    folds = whole_number("folds", folds, "a whole number >= 2", 2)
    seed = whole_number("seed", seed, "a whole number from 0 to 2**32 - 1", 0, 2**32 - 1)
    if isinstance(near_threshold, bool) or not isinstance(near_threshold, (int, float)) \
            or not 0 < near_threshold <= 1:
        raise invalid("near_threshold", near_threshold, "a correlation in (0, 1]")
    if img_size is not None:
        img_size = whole_number("img_size", img_size, f"a whole number of pixels from 8 to {MAX_IMG_SIZE}", 8,
                                MAX_IMG_SIZE, note="the audit holds every image in memory at this size")
    if run is not None:
        path = path_argument("run", run, "a run directory's path (str or os.PathLike)")
        if not path.is_dir():
            raise bad_path("run", path, "a run directory", "a file" if path.exists() else "no such folder")
        # its features come from its network: refused before the decode and the duplicate search (minutes on a
        # large folder), where loading it first found the weights missing
        if not (path / "model.safetensors").is_file():
            raise bad_path("run", path, "a run directory containing model.safetensors", "no model.safetensors")
    return folds, seed, img_size


def audit(data: str | os.PathLike, run: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
          img_size: int | None = None, folds: int = 5, seed: int = 0, near_threshold: float = NEAR_THRESHOLD,
          workers: int = 2, cache_dir: str | os.PathLike | None = None, page: bool = True) -> AuditResult:
    """Audit the image folder `data` (class folders, or train/ val/ test/ of class folders) and write
    audit.json and audit.html into `out` (default `audits/<folder name>`, see `default_out`).

    run: a run directory whose model gives the features (its size and colour mode decide the decode), and whose
    own split (its dataset.json) leakage is judged on where it holds these images; without it the images' own
    pixels give the features and the folder's split folders the splits. img_size: decode size without a run
    (default: the images' median short side, clipped to 16..64). folds: k of the out-of-fold probabilities.
    near_threshold: correlation a near-duplicate pair must reach.
    """
    data = str(path_argument("data", data, "an image folder's path (str or os.PathLike)"))
    folds, seed, img_size = _check(folds, seed, near_threshold, img_size, run)
    # "x" failed deep in the decode with a bare TypeError; -1 and 2.5 went through
    workers = whole_number("workers", workers, "a whole number of decode workers from 0 to 256, as train's "
                           "--num-workers", 0, 256)
    page = check_switch("page", page)
    out = writable_folder("out", out if out is not None else default_out(data))
    outside_data("out", out, data)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 3)
        clock = now

    card = None
    if run is not None:
        from ..records import RunDir, load_card

        card = load_card(run)
        if card.task == "multilabel":  # its split and features are of label sets; the audit reads one label each
            raise invalid("run", run, "a single-label run: the audit reads class folders, one label per image",
                          note="this run is multi-label", hint="Audit the folder without --run (its duplicates, "
                          "outliers and leaks between split folders); the run's own leak warnings are in its report")
        if img_size is not None and img_size != card.img_size:
            raise invalid("img_size", img_size, f"the run's own size, {card.img_size}, or left out",
                          hint="The run's model takes images of its own size")
        if cache_dir is None:
            cache_dir = RunDir(run).decode_cache_settings().get("cache_dir")
    from ..data.folder import class_key, scan_folder
    from ..data.select import without_empty_classes

    scan = without_empty_classes(scan_folder(data, allow_empty=True), "audited")
    if card is not None and sorted(map(class_key, card.classes)) != sorted(scan.classes):
        shared = len(set(card.classes) & set(scan.classes))
        warn(f"the run was trained on other classes ({len(card.classes)}, {shared} of them among the "
             f"folder's {len(scan.classes)}): its features judge these labels only as well as they separate "
             "classes it never learnt; a run trained on this folder does better")
    images = load_images(data, img_size=card.img_size if card else img_size,
                         color=card.color if card else "auto",
                         interpolation=card.interpolation if card else "bilinear",
                         cache_dir=cache_dir, workers=workers, scan=scan)
    if len(images) == 0:
        raise invalid("data", data, "a folder with at least one readable image",
                      note=f"all {len(images.skipped)} files skipped")
    lap("decode")
    digests = content_digests(images.paths, workers=max(2, workers))
    lap("exact_hashes")
    split_source = _use_run_split(run, images, digests) if run is not None else "folder"
    thumbs = grey_thumbnails(images.comparison if images.comparison is not None else images.pixels)
    signatures = perceptual_signatures(thumbs, seed=seed)
    duplicates = find_duplicates(thumbs, signatures, digests, threshold=near_threshold)
    linked = sum(linked_under_several_classes([images.paths[i] for i in g.members], images.labels[g.members])
                 for g in duplicates.groups)
    if linked:
        warn(f"{linked} picture{'s are' if linked != 1 else ' is'} one file linked into several class folders: a "
             "multi-label layout, which the audit (single-label) lists as conflicting labels; if an image may "
             "carry several labels, train it with --task multilabel, which reads them as label sets")
    lap("near_duplicates")
    counts = np.bincount(images.labels, minlength=len(images.classes))
    present = counts[counts > 0]
    dims = feature_dims(int(present.min()))
    classifier = None
    if run is not None:
        from ..inference import load

        classifier = load(run)  # loaded once: its features, and its own answers to the suspects it never trained on
    features = run_features(classifier, images.pixels, dims=dims, seed=seed) if classifier is not None \
        else pixel_features(images.pixels, dims=dims, seed=seed)
    lap("features")
    issues, note, guessing = None, "", False
    found = find_label_issues_among(features.values, images.labels, len(images.classes), folds, seed,
                                    duplicates.group_ids())
    small = [c for c, n in zip(images.classes, counts) if 0 < n < MIN_PER_CLASS]
    if found is None:
        enough = int((counts >= MIN_PER_CLASS).sum())
        note = (f"{NOT_CHECKED}needs at least 2 classes with {MIN_PER_CLASS} or more images each "
                f"(this data has {enough})")
        distance = class_distance(features.values, images.labels)
    else:
        issues, oof, judged = found
        distance = class_distance(features.values, images.labels) if small else np.zeros(len(images.labels))
        distance[judged] = oof.distance  # held-out distances where there were folds
        if small:
            note = (f"label errors not looked for in {len(small)} class{'es' if len(small) > 1 else ''} with fewer "
                    f"than {MIN_PER_CLASS} images: {', '.join(small[:10])}{' ...' if len(small) > 10 else ''}")
        chance = near_chance(issues.accuracy, images.labels[judged], with_run=features.source == "run")
        guessing = bool(chance)
        if chance:
            note = f"{note}; {chance}" if note else chance
    opinions = {}
    if issues is not None and split_source == "run":  # held out from the run's training: its answer counts
        from .run_opinion import run_opinions

        opinions = run_opinions(classifier, images.pixels, images.splits, issues.ranking)
    lap("label_errors")
    outliers = feature_outliers(distance, features.residual)
    # at the files' own size where they were enlarged to decode (the comparison pixels): an enlarged static is
    # smooth, and the noise check would miss it (28 px noise audited with a run at 32 px: none of 4 flagged)
    stats = pixel_stats(images.comparison if images.comparison is not None else images.pixels)
    lap("outliers")

    from .._version import __version__
    from ..records import AuditRecord
    from .freshness import data_fingerprint, remember, run_fingerprint

    record = AuditRecord.model_validate({
        "root": str(Path(data).resolve()),
        "layout": scan.layout,
        "classes": images.classes,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "imgclf_version": __version__,
        "fingerprint": {**data_fingerprint(scan), "run": run_fingerprint(run) if run is not None else None},
        "settings": {"img_size": images.img_size, "color": images.color, "interpolation": images.interpolation,
                     "run": str(Path(run).resolve()) if run is not None else None, "splits": split_source,
                     "folds": folds, "seed": seed,
                     "near_threshold": near_threshold, "neighbours": NEIGHBOURS, "outlier_z": OUTLIER_Z},
        "features": {"source": features.source, "description": features.description,
                     "model": QUICK_MODEL,
                     "folds": issues.folds if issues else 0, "accuracy": issues.accuracy if issues else None,
                     "near_chance": guessing, "note": note},
        **_findings(images, duplicates, digests, issues, outliers, stats, opinions),
        "skipped": images.skipped,
        "seconds": seconds,
    })
    earlier = earlier_audit(out)
    replaced = None
    if earlier is not None:
        # of another folder, named: an explicit --out took another data set's audit without a word of whose
        other = os.path.realpath(earlier.root) != os.path.realpath(record.root)
        replaced = f"{earlier.created}, of {earlier.root}" if other else earlier.created
    result = AuditResult(record, out, images, duplicates, features, issues, outliers, stats, replaced=replaced)
    if page:
        from .report import write_audit_page

        write_audit_page(result)
    lap("write")
    record.seconds.update(seconds)
    record.seconds["total"] = round(sum(seconds.values()), 3)
    write_json(result.json_path, record.model_dump(mode="json"))
    remember(data, result.json_path)
    return result


def _use_run_split(run: str | os.PathLike, images: AuditImages, digests: list[str]) -> str:
    """Put the run's own split in `images.splits` where its dataset.json holds these images, by path or else by
    content ("run"), else keep the folder's and say why ("folder")."""
    from .run_split import NOT_IN_RUN, run_split

    found = run_split(run, images.paths, digests, images.scan.root)
    if found.splits is None:
        warn(f"leakage is judged on the folder's own split, not the run's: {found.why_not}")
        return "folder"
    if found.by_content:
        warn(f"{found.matched:,} of the {len(images):,} images are copies of the run's files (the same place in "
             "the folder, the same bytes: a copy of the folder it trained on): their splits are the run's")
    images.splits = found.splits
    if found.matched < len(images):
        outside = len(images) - found.matched
        warn(f"{outside:,} of the {len(images):,} images {'is' if outside == 1 else 'are'} not in the run's split "
             f"(added since it trained, or left out of it): shown as {NOT_IN_RUN!r}, and no copy of them counts as "
             "leakage")
    return "run"


def _image(images: AuditImages, i: int) -> dict[str, str]:
    return {"path": images.relative(i), "split": str(images.splits[i]), "label": images.classes[images.labels[i]]}


def _leaks(split: str, group_splits: list[str]) -> bool:
    """Whether an image of `split` is leaked by a group spanning `group_splits`: a copy in a split before its own
    (train for val; train or val for test), as training counts its leaks. The val image of a val-test pair is not
    leaked; the test image is."""
    before = {"val": {"train"}, "test": {"train", "val"}}.get(split, set())
    return bool(before & set(group_splits))


def _identical(members: list[int], digests: list[str]) -> int:
    """Members whose bytes another member of the group has too (a near group may hold exact copies as well)."""
    seen = Counter(digests[m] for m in members if digests[m])
    return sum(1 for m in members if digests[m] and seen[digests[m]] > 1)


def stored_similarity(kind: str, value: float) -> float:
    """A group's weakest link as audit.json keeps it: a near group's cut to 6 decimals, not rounded (0.999998 was
    stored as 1.0 and the page then showed the 1.0000 of an exact copy); an exact group's is 1."""
    return math.floor(value * 1e6) / 1e6 if kind == "near" else round(value, 6)


def _findings(images: AuditImages, duplicates: Duplicates, digests: list[str], issues: LabelIssues | None,
              outliers: Outliers, stats: PixelStats,
              opinions: dict[int, tuple[str, float]] | None = None) -> dict[str, Any]:
    classes = images.classes
    groups = []
    for g in duplicates.groups:
        members = sorted(g.members, key=lambda i: (SPLIT_ORDER.get(str(images.splits[i]), 9), images.paths[i]))
        groups.append({"kind": g.kind, "similarity": stored_similarity(g.kind, g.similarity),
                       "identical": _identical(members, digests),
                       "flags": group_flags(members, images.splits, images.labels),
                       "classes": sorted({classes[images.labels[i]] for i in members}),
                       "splits": sorted({str(images.splits[i]) for i in members}, key=lambda s: SPLIT_ORDER.get(s, 9)),
                       "members": [_image(images, i) for i in members]})
    # the most telling first: leakage, then conflicting labels, then plain copies; larger groups first
    rank = {"leakage": 0, "conflicting_labels": 1, "same_class": 2}
    groups.sort(key=lambda g: (min(rank[f] for f in g["flags"]), -len(g["members"])))
    leaked = 0
    for g in groups:
        if "leakage" in g["flags"]:
            leaked += sum(1 for m in g["members"] if _leaks(m["split"], g["splits"]))
    label_issues = []
    pixel_issues = quality_issues(stats)
    # a near-empty, flat or noise-like image looks like no class: it is listed as that, not as "looks like 5 (1.00)";
    # so is an image far from every class (an outlier), which a run's features called "checks (1.00)" first
    junk = {i for i, _ in pixel_issues}
    far = set(outliers.ranking.tolist()) - junk
    if issues is not None:
        for i in issues.ranking:
            if i in junk or i in far:
                continue
            s = int(issues.suggested[i])
            run_says = (opinions or {}).get(int(i))
            label_issues.append({**_image(images, i), "suggested": classes[s],
                                 "self_confidence": round(float(issues.self_confidence[i]), 6),
                                 "suggested_probability": round(float(issues.probabilities[i, s]), 6),
                                 **({"run_label": run_says[0], "run_probability": round(run_says[1], 6)}
                                    if run_says else {})})
    # a black or near-empty image is listed once, under what is wrong with its pixels: counted in both lists, 4
    # distinct images read as 3 outliers and 3 near-empty ones
    outlier_list = [{**_image(images, i), "score": round(float(outliers.score[i]), 3)} for i in outliers.ranking
                    if i not in junk]
    pixel_list = [{**_image(images, i), "issues": reasons, "mean": round(float(stats.mean[i]), 2),
                   "std": round(float(stats.std[i]), 2)} for i, reasons in pixel_issues]
    counts = {
        "images": len(images), "skipped": len(images.skipped),
        "duplicate_groups": len(groups),
        "exact_groups": sum(g["kind"] == "exact" for g in groups),
        "near_groups": sum(g["kind"] == "near" for g in groups),
        "identical_images": sum(g["identical"] for g in groups),
        "redundant_images": sum(len(g["members"]) - 1 for g in groups),
        "conflicting_label_groups": sum("conflicting_labels" in g["flags"] for g in groups),
        "leakage_groups": sum("leakage" in g["flags"] for g in groups),
        "leaked_images": leaked,
        "label_issues": len(label_issues), "outliers": len(outlier_list), "pixel_issues": len(pixel_list),
    }
    return {"counts": counts, "leakage": leakage_counts(duplicates.group_of, images.splits),
            "duplicate_groups": groups, "label_issues": label_issues, "outliers": outlier_list,
            "pixel_issues": pixel_list}
