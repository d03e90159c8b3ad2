"""Whether an audit still describes a folder, and where the last audit of a folder was written.

An audit records the folder's fingerprint: a hash of the relative path, size and modification time of every
file the scan finds (images and skipped files alike). It is fresh while a new scan gives the same fingerprint;
adding, removing, moving or editing any file makes it stale. An audit judged with --run also records its
run's weights and split (`run_fingerprint`): a run trained again since makes it stale too. Reading sizes and
times costs a stat per file, no decoding, so `imgclf inspect` can check it every time.

`imgclf audit` may write anywhere (--out), so it leaves a pointer in the cache folder keyed by the folder's
real path (symbolic links resolved, as the audit records the folder, so that a link and its target agree): `$IMGCLF_CACHE/audits/<hash>.json` -> the audit.json it wrote last.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ..data.cache import default_cache_dir
from ..data.folder import FolderScan
from ..io import write_json
from ..data.cache_records import AuditPointer

FRESH, STALE, RUN_CHANGED = "fresh", "stale", "run changed"

# what an audit with --run read of the run: its network (features) and its split (leakage)
RUN_FILES = ("model.safetensors", "dataset.json")  # (model.json: the weights' digest it records)


def data_fingerprint(scan: FolderScan) -> dict[str, Any]:
    """{"files": count, "digest": hex}: see the module docstring."""
    root = os.path.abspath(scan.root)
    entries = sorted([(split, cls, path) for split, items in scan.files.items() for path, cls in items]
                     + [("skipped", "", s["path"]) for s in scan.skipped])
    digest = hashlib.sha256(f"{scan.layout}|{len(entries)}".encode())
    for split, cls, path in entries:
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        relative = os.path.relpath(os.path.abspath(path), root)
        digest.update(f"\n{split}|{cls}|{relative}|{stamp}".encode("utf-8", "surrogateescape"))
    return {"files": len(entries), "digest": digest.hexdigest()[:32]}


def run_fingerprint(run_dir: str | os.PathLike) -> str:
    """A hash of what the audit reads of its run: the weights (their digest as model.json records it at training,
    else their size and time) and the split (dataset.json's bytes); "missing" for a file gone. Not the times of
    model.json: evaluate and calibrate rewrite it, and an audit that named the run 'trained again since' after an
    evaluate sent the user to audit again for nothing."""
    digest = hashlib.sha256()
    folder = Path(run_dir)
    recorded = _recorded_weights_digest(folder)
    for name in RUN_FILES:
        path = folder / name
        try:
            if name == "model.safetensors" and recorded is not None:
                digest.update(f"{name}|{recorded}\n".encode())
            elif name == "dataset.json":
                digest.update(f"{name}|{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
            else:
                st = os.stat(path)
                digest.update(f"{name}|{st.st_size}:{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{name}|missing\n".encode())
    return digest.hexdigest()[:32]


def _recorded_weights_digest(folder: Path) -> str | None:
    """model.safetensors' sha256 as model.json records it (written with the weights), None where it does not."""
    from ..records import RunDir

    try:
        return (RunDir(folder).read_card().file_sha256 or {}).get("model.safetensors")
    except Exception:  # unreadable or missing card: the weights' own size and time stand for them
        return None


def pointer_path(root: str | os.PathLike) -> Path:
    key = hashlib.sha256(os.path.realpath(root).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return default_cache_dir() / "audits" / f"{key}.json"


def remember(root: str | os.PathLike, audit_json: str | os.PathLike) -> None:
    """Point the folder's cache entry at `audit_json`. Best effort: an unwritable cache only costs inspect
    the counts."""
    try:
        pointer = AuditPointer(root=os.path.realpath(root), audit=os.path.abspath(audit_json))
        write_json(pointer_path(root), pointer.model_dump())
    except OSError:
        pass


def latest_audit(scan: FolderScan) -> tuple[str, Path, Any] | None:
    """(FRESH, STALE or RUN_CHANGED, path of audit.json, its AuditRecord) of the folder's last audit; None when it
    has none, or when that file is gone or no longer reads as an audit."""
    from ..errors import ImgclfError
    from ..records import AuditRecord
    from ..records.base import read_record

    try:
        path = Path(AuditPointer.read(pointer_path(scan.root)).audit)
        record = read_record(path, AuditRecord, "data", scan.root, "a folder whose last audit")
    except (OSError, ValueError, ImgclfError):  # gone, or no longer an audit: as if none
        return None
    if os.path.realpath(record.root) != os.path.realpath(scan.root):
        return None
    stored = record.fingerprint
    if {"files": stored.files, "digest": stored.digest} != data_fingerprint(scan):
        return STALE, path, record
    if stored.run is not None and record.settings.run and stored.run != run_fingerprint(record.settings.run):
        return RUN_CHANGED, path, record  # trained again since: its features, split and leakage are others
    return FRESH, path, record
