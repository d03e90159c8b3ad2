"""Evaluate a run directory on its held-out test split (or another folder): predictions.csv + metrics.json."""

from __future__ import annotations

import hashlib
from collections import Counter
import os
import re
from pathlib import Path
from typing import Literal

import numpy as np

from ..data.cache import decode_all, readable_blocks
from ..data.folder import FolderScan, scan_folder
from ..data.merge import each_file_once
from ..errors import ImgclfError, invalid, path_argument
from ..io import terminal_safe
from ..notices import warn
from .own_split import check_on_disk
from ..backends import check_backend, load_classifier
from ..progress import StepProgress
from ..tta import MULTILABEL_TTA
from ..calibration import uncalibrated
from ..records import (CalibrationScores, MetricsRecord, ModelCard, PredictionRow, RunDir, SkippedFile, TTAScores,
                       UnknownScores)
from .metrics import compute_metrics, expected_calibration_error
from .seen import seen_by_run
from .unknown_classes import refusal_of_unknown_classes


def _files_from_run(run: RunDir, split: str, own_only: str | None = None) -> tuple[list[str], list[int], str]:
    dataset = run.read_dataset()
    if split not in dataset.splits:
        if split == "test" and "val" in dataset.splits:
            split = "val"  # no test split: say so in metrics.json rather than fail
        else:
            raise invalid("split", split, dataset.splits)
    files, labels = dataset.split_paths(split)
    check_on_disk(run, dataset, files, split, own_only)
    return files, labels, split


def check_own_split(run: RunDir, split: str = "test", own_only: str | None = None) -> None:
    """Refuse, as evaluating would, a run whose scored split (test, else val) is no longer on disk: a command that
    rewrites the run before it evaluates (calibrate) checks first, and writes nothing. own_only: why that command
    needs the run's own split (`check_on_disk`)."""
    _files_from_run(run, split, own_only)


def left_out_as_in_training(run: RunDir, folder_classes: list[str]) -> list[str]:
    """The class folders of an evaluated folder that the run's training left out by its own choice (config.yaml
    classes / drop_classes): they are left out of its evaluation too, not refused as classes the model lacks."""
    if not run.file("config.yaml").exists():  # runs written before config.yaml
        return []
    config = run.read_config()
    return sorted(c for c in folder_classes
                  if (config.drop_classes and c in config.drop_classes) or (config.classes and c not in config.classes))


def _files_from_folder(data: str | os.PathLike, classes: list[str], run: RunDir,
                       split: str = "test") -> tuple[list[str], list[int], str, list[dict], dict[str, int]]:
    """The images of `data` to evaluate on: its `split` folder where it has split folders (test/ alone will do;
    without test/, the default, val/ then train/), or all of a folder of class folders; and the images of each
    class folder left out as the run's training left it out."""
    scan = _named_as(scan_folder(data, min_classes=1, allow_empty=True, without_train=True), classes)
    scan.skipped += each_file_once(scan.files)  # a file linked twice is scored once, as training reads it
    left_out = set(left_out_as_in_training(run, scan.classes))
    skipped = scan.skipped
    if scan.layout == "splits":
        if split != "test" and split not in scan.files:
            raise invalid("split", split, f"one of the split folders of {data}: {', '.join(sorted(scan.files))}")
        if split == "test":  # the default: test/, else the first of val/, train/ with images
            split = next((s for s in ("test", "val", "train") if scan.files.get(s)),
                         "test" if "test" in scan.files else next(iter(scan.files)))
        items = scan.files[split]
        # what was skipped elsewhere (a notes.txt in train/) is not part of this evaluation, as the unreadable
        # images of the other splits, which are never decoded here, are not either
        folder = _top_folder(items[0][0], scan.root) if items else None
        skipped = [s for s in skipped if _top_folder(s["path"], scan.root) == folder]
    else:
        if split != "test":
            raise invalid("split", split, f"test, the default: {data} has no split folders (train/, val/, test/), "
                          "so all of its images are evaluated")
        split, items = "all", scan.files["all"]
    dropped = dict(sorted(Counter(c for _, c in items if c in left_out).items()))
    items = [(p, c) for p, c in items if c not in left_out]
    # only the classes of the images evaluated: a train/triangle/ beside the test/ evaluated refused the folder
    unknown = sorted({c for _, c in items} - set(classes))
    if unknown:
        raise refusal_of_unknown_classes(data, split, unknown, classes)
    index = {c: i for i, c in enumerate(classes)}
    # absolute, as the run's own predictions.csv: `--data d` from another folder wrote rows that pointed nowhere
    # once read from anywhere else
    # absolute, and a folder keeps its trailing separator (abspath drops it), which is how a folder is told apart
    skipped = [{**s, "path": os.path.abspath(s["path"]) + (os.sep if s["path"].endswith(os.sep) else "")}
               for s in skipped]
    # the folder as an absolute path, as the evaluation's own folder is named: "." or "same/../same" said nothing
    # once metrics.json was read from elsewhere
    return [os.path.abspath(p) for p, _ in items], [index[c] for _, c in items], f"{os.path.abspath(data)}:{split}", \
        skipped, dropped


def _named_as(scan: FolderScan, classes: list[str]) -> FolderScan:
    """The scan with each class named as the run's card names it where the two differ only in Unicode normal form
    (a run trained on NFD folder names before folders were read by their NFC names): "the model does not know
    café" of two names printed alike."""
    from dataclasses import replace

    from ..data.folder import class_key

    named = {class_key(c): c for c in classes}
    return replace(scan, classes=[named.get(c, c) for c in scan.classes],
                   files={split: [(p, named.get(c, c)) for p, c in items] for split, items in scan.files.items()})


def _top_folder(path: str, root: Path) -> str | None:
    """The folder directly under `root` that `path` lies in (its split folder), None for a file of root itself."""
    parts = Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).parts
    return parts[0] if len(parts) > 1 else None


def results_dir(run_dir: str | os.PathLike, data: str | os.PathLike | None = None, split: str = "test",
                backend: str = "torch") -> Path:
    """Where an evaluation writes predictions.csv and metrics.json: the run directory itself for its own test
    split (what training's evaluation writes), `evaluations/<split>/` for another split of its data and
    `evaluations/<folder>-<hash of its path>/` for another folder, so that the run's own results (which the
    report and `compare` read) are never overwritten by other scores. The ONNX export's scores (backend onnx) go
    to the same name prefixed `onnx-`, its own test split's to `evaluations/onnx-test/`; an int8 export's
    `onnx-int8-` (`evaluations/onnx-int8-test/`), so that its scores and the fp32 export's stand side by side (the
    fp32 export's replaced the int8 export's without a word)."""
    prefix = (f"onnx-{'int8-' if _export_quantization(run_dir) == 'int8' else ''}" if backend == "onnx" else "")
    if data is None:
        own = split == "test" and not prefix
        return Path(run_dir) if own else Path(run_dir) / "evaluations" / f"{prefix}{split}"
    resolved = os.path.abspath(data)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(resolved).name or "data")[:60]
    other = "" if split == "test" else f"-{split}"  # another split folder of it: beside, not over, its test scores
    return Path(run_dir) / "evaluations" / (f"{prefix}{slug}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"
                                            f"{other}")


def _export_quantization(run_dir: str | os.PathLike) -> str | None:
    """The run's ONNX export's quantization ("none", "int8"), from the card beside it; None without a readable one."""
    try:
        card = RunDir(run_dir).read_export_card()
    except ImgclfError:  # no export, or an unreadable card: the evaluation's own load says which
        return None
    return card.export.quantization if card.export is not None else None


def evaluate_run(run_dir: str | os.PathLike, data: str | os.PathLike | None = None, split: str = "test",
                 tta: bool | Literal["auto"] = False, batch_size: int = 256, cache_dir: str | None = None,
                 workers: int = 2, budget_bytes: int = 4 * 10**9, progress: bool = True,
                 precision: str = "auto", backend: str = "torch") -> MetricsRecord:
    """Predict every image of the split (or of `data`), write predictions.csv and metrics.json into
    `results_dir(run_dir, data)`, return the metrics. progress: a bar (terminal) or a few lines (redirected)
    for the cache build and the predictions when they take more than a second.

    tta: also score test-time augmentation over the views the run's training made (`tta.TTAViews`); True is
    refused for a run whose training made none, "auto" (what training's own evaluation asks) then skips it.
    precision: what the network runs at (`prediction_precision.PRECISIONS`; auto: bf16 where the CPU has it
    natively), recorded in metrics.json. backend: torch (the run's network) or onnx (its export/model.onnx, as
    `predict --backend onnx` runs it; written to `results_dir(..., backend="onnx")`)."""
    check_backend("backend", backend)
    if tta not in (True, False, "auto"):
        raise invalid("tta", tta, (True, False, "auto"))
    if data is not None:
        data = str(path_argument("data", data, "an image folder's path, or a multi-label index file's (str or "
                                 "os.PathLike)"))
    run = RunDir(run_dir)
    card = run.read_card()
    if card.task == "multilabel":
        from .multilabel import evaluate_multilabel

        if tta is True:
            raise invalid("tta", tta, MULTILABEL_TTA)
        return evaluate_multilabel(run.path, results_dir(run.path, data, split, backend), data, split, batch_size,
                                   cache_dir, workers, budget_bytes, progress, precision, backend)
    clf = load_classifier(run.path, backend, precision=precision)
    views = clf.tta_views
    if tta is True:
        views.require()  # before any image is decoded
    tta = bool(tta) and views.available
    skipped: list[dict] = []
    left_out: dict[str, int] = {}
    if data is None:
        files, labels, split_name = _files_from_run(run, split)
    else:
        files, labels, split_name, skipped, left_out = _files_from_folder(data, card.classes, run, split)
    if left_out:  # said by the evaluation, not only the command: a Python caller was told nothing
        folders = ", ".join(f"{terminal_safe(c)} ({n} image{'s' if n > 1 else ''})" for c, n in left_out.items())
        warn(f"left out class folder(s) {folders} of the evaluated data, as the run's training did (its classes / "
             "drop_classes); metrics.json lists them under left_out")
    decoded = decode_all(files, card.img_size, card.color, card.interpolation, cache_dir, budget_bytes, workers,
                         progress=progress)
    ok = decoded.ok_indices
    skipped += [{"path": files[i], "reason": r} for i, r in sorted(decoded.failures.items())]
    plain, scores, flagged, with_tta = [], [], [], []
    what = f"evaluating on {split_name}" + (" (with TTA)" if tta else "")
    with StepProgress(what, len(ok), enabled=progress) as bar:
        # streaming: each image decoded once for both
        for chunk in readable_blocks(decoded, card.img_size, card.color, card.interpolation, batch_size):
            out = clf.infer_pixels(chunk, batch_size)
            plain.append(out.probabilities)
            scores.append(out.scores)
            flagged.append(out.unknown)
            if tta:
                with_tta.append(clf.predict_pixels(chunk, batch_size, tta=True))
            bar.update(len(chunk))
    empty = np.zeros((0, len(card.classes)))
    probs = np.concatenate(plain) if plain else empty
    tta_probs = (np.concatenate(with_tta) if with_tta else empty) if tta else None
    y_true = np.asarray(labels, dtype=np.int64)[ok]
    if len(y_true) == 0:
        # with the first reasons: predict and explain print each file's, evaluate gave none
        reasons = "; ".join(f"{Path(d['path']).name}: {d['reason']}" for d in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        # the files the scan passed over count too: "2 file(s)" had been followed by 3 reasons
        unreadable = f"{max(len(files), len(skipped))} file(s), none readable" + (f" ({reasons}{more})" if reasons
                                                                                 else "")
        if data is not None:
            raise invalid("data", data, "a folder with at least one readable image", note=unreadable)
        raise invalid("run", run_dir, f"a run whose {split_name} split holds at least one readable image",
                      note=unreadable)
    _refuse_non_finite(run_dir, probs, [files[i] for i in ok], clf.precision)
    if tta_probs is not None:
        _refuse_non_finite(run_dir, tta_probs, [files[i] for i in ok], clf.precision, "with TTA")
    metrics = compute_metrics(y_true, probs, card.classes, split_name)
    metrics.skipped = [SkippedFile.model_validate(s) for s in skipped]
    metrics.left_out = left_out
    metrics.precision, metrics.backend = clf.precision, backend
    score = np.concatenate(scores) if scores else np.zeros(0)
    unknown = np.concatenate(flagged) if flagged else np.zeros(0, dtype=bool)
    metrics.calibration, metrics.unknown = _trust_scores(card, y_true, probs, score, unknown)
    metrics.seen = seen_by_run(run, [files[i] for i in ok], data is not None, split_name)
    if tta_probs is not None:
        t = compute_metrics(y_true, tta_probs, card.classes)
        metrics.tta = TTAScores(accuracy=t.accuracy, loss=t.loss, macro=t.macro, worst_class=t.worst_class,
                                macro_auc=t.macro_auc, transforms=views.describe())
    out = RunDir(results_dir(run.path, data, split, backend))
    # an unreadable image's class is known from its folder (or index row): its row says it, as the others' do
    truths = {files[i]: card.classes[labels[i]] for i in decoded.failures}
    out.write_predictions(_prediction_rows([files[i] for i in ok], y_true, probs, card.classes, metrics.skipped,
                                           score, unknown, truths), card.classes)
    out.write_metrics(metrics)
    return metrics


def _refuse_non_finite(run_dir: str | os.PathLike, probs: np.ndarray, files: list[str], precision: str,
                       how: str = "") -> None:
    """Scores need finite probabilities: a NaN one ended the evaluation in scikit-learn's bare "Input contains
    NaN" (and ECE left such rows out of its bins while still counting them)."""
    bad = np.flatnonzero(~np.isfinite(probs).all(axis=1))
    if len(bad):
        raise invalid("run", run_dir, "a model whose outputs are finite numbers",
                      note=f"{len(bad)} of {len(probs)} images got non-finite probabilities"
                           f"{' ' + how if how else ''} at precision {precision}, the first {files[bad[0]]}",
                      hint="Evaluate again with --precision 32 (a reduced precision can overflow); if they stay, "
                           "the weights themselves hold non-finite values or the run diverged")


def _trust_scores(card: ModelCard, y_true: np.ndarray, probs: np.ndarray, score: np.ndarray,
                  unknown: np.ndarray) -> tuple[CalibrationScores | None, UnknownScores | None]:
    """The split before and after the card's temperature (the report's reliability before / after), and how many
    images its unknown threshold flags. None for a card without the block (before schema 2)."""
    calibration = unknown_scores = None
    if card.calibration is not None:
        raw = uncalibrated(probs, card.temperature)
        ece_before, _ = expected_calibration_error(raw, y_true)
        loss = float(np.mean(-np.log(np.clip(raw[np.arange(len(y_true)), y_true], 1e-12, 1.0))))
        calibration = CalibrationScores(temperature=card.temperature, ece_before=ece_before, loss_before=loss)
    if card.unknown is not None:
        kept = ~unknown
        correct = probs.argmax(1) == y_true
        unknown_scores = UnknownScores(detector=card.unknown.detector, threshold=card.unknown.threshold,
                                       flagged=float(unknown.mean()),
                                       accuracy_kept=float(correct[kept].mean()) if kept.any() else None)
    return calibration, unknown_scores


def _prediction_rows(files: list[str], y_true: np.ndarray, probs: np.ndarray, classes: list[str],
                     skipped: list[SkippedFile], scores: np.ndarray, unknown: np.ndarray,
                     truths: dict[str, str] | None = None) -> list[PredictionRow]:
    """One row per image scored, then one per file skipped with its reason (and its class where `truths` has
    it: the unreadable images, whose folder or index row names it)."""
    rows = []
    for f, t, pr, s, u in zip(files, y_true, probs, scores, unknown):
        p = int(pr.argmax())
        rows.append(PredictionRow(path=f, true=classes[t], pred=classes[p], prob=float(pr[p]),
                                  loss=float(-np.log(max(pr[t], 1e-12))), score=float(s), unknown=bool(u),
                                  probs=[float(v) for v in pr]))
    rows += [PredictionRow(path=s.path, true=(truths or {}).get(s.path, ""), error=s.reason) for s in skipped]
    return rows


def warn_of_earlier_evaluations(run_dir: str | os.PathLike, why: str) -> None:
    """Warn that the run's evaluations/* (other splits and folders, which only the user knows to score again)
    were scored before `why` (the weights changed, or the temperature and unknown threshold)."""
    earlier = sorted(p.parent.relative_to(run_dir).as_posix() for p in Path(run_dir).glob("evaluations/*/metrics.json"))
    if earlier:
        from ..notices import warn

        many = len(earlier) > 1
        # the export's scores (evaluate --backend onnx) need the export made again first: it is refused as stale
        onnx = any(Path(e).name.startswith("onnx-") for e in earlier)
        warn(f"{len(earlier)} evaluation{'s' if many else ''} of this run ({', '.join(earlier)}) "
             f"{'were' if many else 'was'} scored {why}: run imgclf evaluate again to update "
             f"{'them' if many else 'it'}" + ("; for evaluations/onnx-*, imgclf export RUN first, then imgclf "
                                             "evaluate RUN --backend onnx" if onnx else ""))
