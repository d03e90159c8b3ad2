"""Evaluate a run directory on its held-out test split (or another folder): predictions.csv + metrics.json."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..card import load_card
from ..data.cache import decode_all
from ..data.folder import scan_folder
from ..errors import ImgclfError
from ..inference import Classifier
from ..io import read_json, write_csv, write_json
from .metrics import compute_metrics


def _files_from_run(run_dir: Path, split: str) -> tuple[list[str], list[int], str]:
    dataset = read_json(run_dir / "dataset.json")
    splits = dataset["splits"]
    if split not in splits:
        if split == "test" and "val" in splits:
            split = "val"  # no test split: say so in metrics.json rather than fail
        else:
            raise ImgclfError(f"split must be one of {{{', '.join(splits)}}}. Received: split={split!r}")
    root = Path(dataset["root"])
    files = [str(root / f) for f in splits[split]["files"]]
    return files, list(splits[split]["labels"]), split


def _files_from_folder(data: str | os.PathLike, classes: list[str]) -> tuple[list[str], list[int], str, list[dict]]:
    scan = scan_folder(data)
    unknown = sorted(set(scan.classes) - set(classes))
    if unknown:
        raise ImgclfError(
            f"data classes must be among the model's classes {classes}. Received: data={str(data)!r} with {unknown}"
        )
    if scan.layout == "splits":
        split = "test" if "test" in scan.files else "val" if "val" in scan.files else "train"
        items = scan.files[split]
    else:
        split, items = "all", scan.files["all"]
    index = {c: i for i, c in enumerate(classes)}
    return [p for p, _ in items], [index[c] for _, c in items], f"{Path(data)}:{split}", scan.skipped


def evaluate_run(run_dir: str | os.PathLike, data: str | os.PathLike | None = None, split: str = "test",
                 tta: bool = False, batch_size: int = 256, cache_dir: str | None = None,
                 workers: int = 2, budget_bytes: int = 4 * 10**9) -> dict[str, object]:
    """Predict every image of the split, write predictions.csv and metrics.json, return the metrics."""
    run_dir = Path(run_dir)
    card = load_card(run_dir)
    clf = Classifier.load(run_dir)
    skipped: list[dict] = []
    if data is None:
        files, labels, split_name = _files_from_run(run_dir, split)
    else:
        files, labels, split_name, skipped = _files_from_folder(data, card.classes)
    decoded = decode_all(files, card.img_size, card.color, card.interpolation, cache_dir, budget_bytes, workers)
    ok = decoded.ok_indices
    skipped += [{"path": files[i], "reason": r} for i, r in sorted(decoded.failures.items())]
    if decoded.pixels is not None:
        pixels = decoded.pixels
        probs = clf.predict_pixels(_rows(pixels, ok), batch_size) if len(ok) else np.zeros((0, len(card.classes)))
        tta_probs = clf.predict_pixels(_rows(pixels, ok), batch_size, tta=True) if tta and len(ok) else None
    else:
        from ..data.decode import open_image

        plain, with_tta = [], []
        for start in range(0, len(ok), batch_size):  # decode each image once for both predictions
            chunk = np.stack([open_image(files[i], card.img_size, card.color, card.interpolation)
                              for i in ok[start:start + batch_size]])
            plain.append(clf.predict_pixels(chunk, batch_size))
            if tta:
                with_tta.append(clf.predict_pixels(chunk, batch_size, tta=True))
        empty = np.zeros((0, len(card.classes)))
        probs = np.concatenate(plain) if plain else empty
        tta_probs = (np.concatenate(with_tta) if with_tta else empty) if tta else None
    y_true = np.asarray(labels, dtype=np.int64)[ok]
    if len(y_true) == 0:
        raise ImgclfError(f"evaluation needs at least one readable image. Received: {len(files)} file(s), all skipped")
    metrics = compute_metrics(y_true, probs, card.classes)
    metrics["split"] = split_name
    metrics["skipped"] = skipped
    if tta_probs is not None:
        tta_metrics = compute_metrics(y_true, tta_probs, card.classes)
        metrics["tta"] = {k: tta_metrics[k] for k in ("accuracy", "loss", "macro", "worst_class", "macro_auc")}
        from ..inference import TTA_TRANSFORMS

        metrics["tta"]["transforms"] = TTA_TRANSFORMS
    _write_predictions(run_dir / "predictions.csv", [files[i] for i in ok], y_true, probs, card.classes, skipped)
    write_json(run_dir / "metrics.json", metrics)
    return metrics


def _rows(pixels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return pixels[rows] if len(rows) != len(pixels) else pixels


def _write_predictions(path: Path, files: list[str], y_true: np.ndarray, probs: np.ndarray, classes: list[str],
                       skipped: list[dict]) -> None:
    header = ["path", "true", "pred", "prob", "loss", "error"] + [f"p_{c}" for c in classes]
    rows = []
    pred = probs.argmax(1)
    for f, t, p, pr in zip(files, y_true, pred, probs):
        loss = -np.log(max(pr[t], 1e-12))
        rows.append([f, classes[t], classes[p], f"{pr[p]:.6f}", f"{loss:.6f}", ""] + [f"{v:.6f}" for v in pr])
    for s in skipped:
        rows.append([s["path"], "", "", "", "", s["reason"]] + [""] * len(classes))
    write_csv(path, header, rows)
