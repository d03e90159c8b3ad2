"""FER-2013 from the Kaggle-style CSV (emotion, pixels, Usage): a local file or archive, else a --url download.

The data set has no public address that works without a login, and no checksum is published, so a
download needs `url` and is checked only against an `md5` the user supplies.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ...errors import bad_path, invalid
from .archive import ARCHIVE_ERRORS, is_archive, iter_members, unreadable
from .download import check_md5, default_download_dir, download, file_md5
from .tree import write_tree

log = logging.getLogger(__name__)

FER_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
CSV_NAME = "fer2013.csv"
SIDE = 48
SHOWN = 5  # skipped rows described one by one in the warning; the rest are counted


def parse_rows(lines: Iterable[str], name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: ((N, 48, 48) uint8, (N,) labels)}; rows that are broken are skipped and reported, not fatal."""
    reader = csv.DictReader(lines)
    # One Kaggle variant writes " Usage", " pixels"; some editors add a byte-order mark.
    columns = {c.strip().lstrip("\ufeff"): c for c in reader.fieldnames or []}
    if not {"emotion", "pixels", "Usage"} <= set(columns):
        raise bad_path("source", name, "a CSV with columns emotion, pixels, Usage", f"columns {sorted(columns)}",
                       where="fer2013")
    rows: dict[str, tuple[list[np.ndarray], list[int]]] = {split: ([], []) for split in USAGE.values()}
    skipped: list[str] = []
    total = 0
    for total, row in enumerate(reader, start=1):
        problem, split, label, pixels = _parse_row(row, columns)
        if problem:
            skipped.append(f"row {total + 1}: {problem}")  # +1: the header is line 1
            continue
        rows[split][0].append(pixels)
        rows[split][1].append(label)
    if skipped:
        more = f"; and {len(skipped) - SHOWN} more" if len(skipped) > SHOWN else ""
        log.warning("fer2013: skipped %d of %d rows of %s (%s%s)", len(skipped), total, name,
                    "; ".join(skipped[:SHOWN]), more)
    if total == len(skipped):
        broken = f", all broken: {skipped[0]}, ..." if skipped else ""
        raise bad_path("source", name, "a CSV with at least one valid row",
                       f"no valid row among {total} data rows{broken}", where="fer2013")
    return {split: (np.stack(images), np.asarray(labels, dtype=np.int64))
            for split, (images, labels) in rows.items() if images}


def _parse_row(row: dict, columns: dict[str, str]) -> tuple[str | None, str, int, np.ndarray | None]:
    """(problem or None, split, label, 48x48 pixels)."""
    usage = (row.get(columns["Usage"]) or "").strip()
    if usage not in USAGE:
        return f"Usage {usage!r} is not one of {', '.join(USAGE)}", "", 0, None
    emotion = (row.get(columns["emotion"]) or "").strip()
    if not (emotion.isascii() and emotion.isdigit()) or int(emotion) >= len(FER_CLASSES):
        return f"emotion {emotion!r} is not in 0..{len(FER_CLASSES) - 1}", "", 0, None
    values = (row.get(columns["pixels"]) or "").split()
    if len(values) != SIDE * SIDE:
        return f"{len(values)} pixel values, expected {SIDE * SIDE}", "", 0, None
    try:
        pixels = np.array(values, dtype=np.int32)
    except (ValueError, OverflowError):
        return "pixels are not all integers", "", 0, None
    if pixels.min() < 0 or pixels.max() > 255:
        return "pixels outside 0..255", "", 0, None
    return None, USAGE[usage], int(emotion), pixels.astype(np.uint8).reshape(SIDE, SIDE)


def load_fer2013(source: str | os.PathLike | None = None, url: str | None = None, md5: str | None = None,
                 cache_dir: str | os.PathLike | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read fer2013.csv from `source` (.csv, .csv.gz, or a .tar[.gz] / .zip holding it), else download `url`."""
    downloaded = source is None
    if source is None:
        if not url:
            raise invalid("source", source, "given (fer2013.csv, or the Kaggle archive holding it), or else url",
                          where="fer2013", also={"url": url},
                          hint="The data set has no public address that works without a login")
        # One folder per address: no checksum is published, so two different files must never share a name.
        key = hashlib.sha256(url.encode()).hexdigest()[:12]
        source = download(url, Path(cache_dir or default_download_dir()) / "fer2013" / key, md5)
    source = Path(source)
    if not source.is_file():
        raise bad_path("source", source, f"fer2013.csv, .csv.gz, or a .tar.gz / .zip holding {CSV_NAME}", "not a file",
                       where="fer2013")
    if not downloaded and check_md5(md5) and (digest := file_md5(source)) != md5.lower():
        raise bad_path("source", source, f"the file whose md5 is {md5.lower()}",
                       f"does not match md5: its md5 is {digest}", where="fer2013")
    try:
        if is_archive(source):
            for _, stream in iter_members(source, {CSV_NAME}):
                # Decoded line by line: io.TextIOWrapper fails on tarfile's forward-only ("r|") member streams.
                return parse_rows((line.decode("utf-8") for line in stream), f"{source}:{CSV_NAME}")
            raise bad_path("source", source, f"{CSV_NAME} or an archive that holds {CSV_NAME}",
                           f"an archive without {CSV_NAME}", where="fer2013")
        with open(source, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        with (gzip.open if gzipped else open)(source, "rt", encoding="utf-8-sig", newline="") as text:
            return parse_rows(text, str(source))
    except ARCHIVE_ERRORS as exc:
        raise unreadable(source, exc) from None
    except csv.Error as exc:
        raise bad_path("source", source, "a CSV file", str(exc), where="fer2013") from None
    except UnicodeDecodeError:
        raise bad_path("source", source, "a UTF-8 text CSV", "not text", where="fer2013") from None


def export_fer2013(out: str | os.PathLike, source: str | os.PathLike | None = None, url: str | None = None,
                   md5: str | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """FER-2013 as out/{train,val,test}/<emotion>/*.png (Usage Training, PublicTest, PrivateTest)."""
    out = Path(out)
    splits = load_fer2013(source, url, md5, cache_dir)
    seen = {int(y) for _, labels in splits.values() for y in labels}
    if absent := [name for label, name in enumerate(FER_CLASSES) if label not in seen]:
        # six-class variants of FER (disgust merged into anger, or dropped) are common
        log.warning("fer2013: no row of %s, so no folder for %s", ", ".join(absent),
                    "it" if len(absent) == 1 else "them")
    for split, (images, labels) in splits.items():
        write_tree(out, split, images, labels, FER_CLASSES, present=seen)
    return out
