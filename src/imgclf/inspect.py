"""`imgclf inspect`: counts per class and split, sizes and modes, unreadable files, mu and rho."""

from __future__ import annotations

import contextlib
import os
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .data.decode import DecodeError, decode_image
from .data.folder import count_skipped, file_identity, skipped_lines
from .data.folder_checks import class_key
from .data.imbalance import imbalance_stats
from .data.merge import scan_folders
from .errors import invalid
from .io import console_text, outside_data, writable_folder
from .file_names import shell_word


def inspect_folder(data: str | os.PathLike | Sequence[str | os.PathLike],
                   plots_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The summary of `data`: one folder or index file, or several folders merged as training merges them."""
    from .data.multilabel import is_label_index

    folders = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    index = [str(f) for f in folders if is_label_index(f)]
    if index and len(folders) == 1:
        from .inspect_multilabel import inspect_index

        if plots_dir is not None:
            plots_dir = writable_folder("plots", plots_dir)  # before the images are read
        return inspect_index(folders[0], plots_dir)
    if index:
        raise invalid("data", [str(f) for f in folders], "image folders when several are given: an index file is "
                      "inspected alone", note=f"{index[0]} names a multi-label index file by its suffix",
                      hint=f"Run imgclf inspect {shell_word(index[0])} on its own")
    if plots_dir is not None:
        plots_dir = writable_folder("plots", plots_dir)  # before the scan, which may take minutes
        outside_data("plots", plots_dir, folders)  # its figures trained as one more class of the data
    # an empty class folder is reported here, not refused
    scan = scan_folders(folders[0] if len(folders) == 1 else folders, allow_empty=True)
    counts: dict[str, dict[str, int]] = {}
    sizes: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    skipped = list(scan.skipped)
    candidates: dict[str, list[str]] = {}
    classes_of: dict[tuple[int, int], set[str]] = {}  # one file (a hard or symbolic link's target): its classes
    nested: list[str] = []  # images in a subfolder of their class folder, which read as that class
    for split, items in scan.files.items():
        per_class: Counter[str] = Counter()
        for path, cls in items:
            try:
                _, meta = decode_image(path, None, "rgb")  # full decode: catches truncation, bombs, bad data
            except DecodeError as exc:
                skipped.append({"path": path, "reason": str(exc)})
                continue
            except Exception as exc:  # probe failures carry Pillow's own reason
                skipped.append({"path": path, "reason": _reason(exc)})
                continue
            per_class[cls] += 1
            if class_key(Path(path).parent.name) != class_key(cls):
                nested.append(path)
            with contextlib.suppress(OSError):
                classes_of.setdefault(file_identity(path), set()).add(cls)
            sizes[f"{meta['width']}x{meta['height']}"] += 1
            modes[str(meta["mode"])] += 1
            candidates.setdefault(cls, []).append(path)
        counts[split] = {c: per_class.get(c, 0) for c in scan.classes}
    rng = random.Random(0)  # one random sample per class, the same on every call
    samples = {cls: rng.choice(paths) for cls, paths in sorted(candidates.items())}
    train_split = "train" if "train" in counts else "all"
    listed = {cls for _, cls in scan.files.get(train_split, [])}  # classes with files there, readable or not
    summary: dict[str, Any] = {
        # several folders: their common parent, as dataset.json's root (empty class folders are named from it)
        "root": str(Path(folders[0]).resolve()) if len(folders) == 1 else str(scan.root),
        "roots": [str(r) for r in scan.roots] or [str(Path(folders[0]).resolve())],  # every folder inspected
        "layout": scan.layout,
        "classes": scan.classes,
        "counts": counts,
        "total": sum(sum(c.values()) for c in counts.values()),
        "sizes": dict(sizes.most_common(10)),
        "distinct_sizes": len(sizes),
        "modes": dict(modes.most_common()),
        # 16-bit images of 12 bits or fewer (X-ray, microscopy) decode near black: what a sample uses, where so
        "unused_bits": _unused_bits(modes, [p for paths in candidates.values() for p in paths]),
        "imbalance": imbalance_stats(counts[train_split]),
        "skipped": skipped,
        "empty_class_folders": [folder for _, folder in scan.empty + scan.empty_elsewhere],
        # those of them in val/ or test/: the class missing there, which training accepts (scoring the others)
        "empty_outside_train": [folder for _, folder in scan.empty_elsewhere],
        # classes with files but not one readable in training's split: training refuses them as it refuses empty
        # class folders, and inspect said nothing of them
        "unreadable_classes": [c for c in scan.classes if not counts[train_split].get(c) and c in listed],
        # a val/ or test/ of which not one image decodes, or holding none: training refuses the data, and the
        # table's column of zeros said only that the split was empty
        "unreadable_splits": [s for s in ("val", "test") if scan.files.get(s) and not sum(counts[s].values())],
        "empty_splits": [s for s in ("val", "test") if s in scan.files and not scan.files[s]],
        # one file linked into several class folders: a multi-label tree, which the counts above take per link
        "in_several_classes": sum(1 for found in classes_of.values() if len(found) > 1),
        "in_subfolders": {"count": len(nested), "example": nested[:1]},
    }
    audit = None if scan.roots else _audit_summary(scan)  # an audit is of one folder
    if audit is not None:
        summary["audit"] = audit
    if plots_dir is not None:
        from .evaluation.plots import plot_class_distribution, plot_class_samples

        from .plotting import warn_of_undrawn_names

        figures = (plot_class_distribution(counts, Path(plots_dir) / "class_distribution.png"),
                   plot_class_samples(samples, Path(plots_dir) / "class_samples.png"))
        summary["plots"] = [str(p) for p in figures]
        warn_of_undrawn_names(scan.classes, "imgclf inspect DATA --plots DIR")
    return summary


def _audit_summary(scan: Any) -> dict[str, Any] | None:
    """The folder's last `imgclf audit`: its counts when still fresh (same files, sizes and times), else only
    that it is stale; None when there is none."""
    from .audit.freshness import FRESH, RUN_CHANGED, latest_audit

    found = latest_audit(scan)
    if found is None:
        return None
    status, path, record = found
    out: dict[str, Any] = {"status": "stale" if status == RUN_CHANGED else status, "path": str(path),
                           "created": record.created, "run": record.settings.run,
                           "run_changed": status == RUN_CHANGED}
    if status == FRESH:
        out.update(counts=record.counts.model_dump(), leakage=record.leakage, features=record.features.source,
                   accuracy=record.features.accuracy, label_errors_checked=record.features.folds > 0,
                   note=record.features.note, splits=record.settings.splits)
    return out


def _unused_bits(modes: Counter[str], readable: list[str]) -> str | None:
    """`data.bit_depth`'s warning where the readable images include 16-bit or 32-bit integer ones, else None."""
    if not any(mode.startswith("I") for mode in modes):
        return None
    from .data.bit_depth import unused_bits

    found = unused_bits(readable)
    return None if found is None else found.message()


def _reason(exc: Exception) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "not a recognised image format"
    return str(exc) or type(exc).__name__


def render_inspection(summary: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    if summary.get("task") == "multilabel":
        from .inspect_multilabel import render_index_inspection

        render_index_inspection(summary, console)
        return
    splits = list(summary["counts"])
    roots = summary["roots"]
    where = console_text(roots[0]) if len(roots) == 1 else \
        f"{len(roots)} folders merged ({', '.join(console_text(r) for r in roots)})"
    table = Table(title=f"{where} ({summary['layout']} layout, {summary['total']} readable images)")
    table.add_column("class", overflow="fold")  # cut with an ellipsis, long names that share a start read alike
    for s in splits:
        table.add_column(s, justify="right")
    for c in summary["classes"]:
        table.add_row(console_text(c), *[str(summary["counts"][s][c]) for s in splits])
    table.add_row("[bold]total[/bold]", *[str(sum(summary["counts"][s].values())) for s in splits])
    console.print(table)
    imb = summary["imbalance"]
    flag = "  [yellow]imbalanced[/yellow]" if imb["imbalanced"] else ""
    rho = "undefined (a class holds no image)" if imb["rho"] is None and summary["total"] else imb["rho"]
    # a folder with no train/: over all its images, of which a run draws its val and test splits first (rho 15
    # here was 24 in the run's training split, whose dataset.json has it)
    over = "" if "train" in summary["counts"] else " over all images (a run's training split, in its dataset.json, " \
        "may differ)"
    console.print(f"imbalance{over}: rho = {rho} (max/min class count), mu = {imb['mu']} "
                  f"(minority classes {console_text(imb['minority'] or 'none')}){flag}")
    from .data.subset import read_manifest

    drawn = read_manifest(roots[0]) if len(roots) == 1 else None
    if drawn is not None and drawn.get("minority") != imb["minority"]:
        # a subset at rho 1 names the classes a study keeps as its minority (subset.json's mu 0.5) in counts that
        # are balanced (the counts' mu 0): the two disagreed without a word
        console.print(f"subset.json: drawn with rho {drawn.get('rho')}, mu {drawn.get('mu')}, minority classes "
                      f"{console_text(', '.join(drawn.get('minority') or []) or 'none')} (the classes the step makes "
                      "the smaller; the line above reads the counts as they are)")
    sizes = ", ".join(f"{k} ({v})" for k, v in summary["sizes"].items())
    console.print(f"image sizes: {sizes}{' ...' if summary['distinct_sizes'] > 10 else ''}")
    console.print("colour modes: " + ", ".join(f"{k} ({v})" for k, v in summary["modes"].items()))
    if summary.get("unused_bits"):
        console.print(f"[yellow]{console_text(summary['unused_bits'])}[/yellow]")
    empty_splits = summary.get("empty_splits", [])
    for split in empty_splits:
        console.print(f"[yellow]{split}/ holds no image in its class folders:[/yellow] training refuses the data; "
                      f"put its images in {split}/<class>/, or remove {split}/"
                      + (" (val is then drawn from train)" if split == "val" else ""))
    for folder in summary["empty_class_folders"]:
        name = Path(folder).name
        if folder in summary.get("empty_outside_train", []):
            split = Path(folder).parent.name
            if split in empty_splits:  # the split as a whole said above: no class of it is scored
                continue
            console.print(f"[yellow]class folder {console_text(repr(folder))} holds no image:[/yellow] the class is "
                          f"missing from {console_text(split)}/, whose other classes training scores (add its "
                          "images there to score it too)")
            continue
        console.print(f"[yellow]class folder {console_text(repr(folder))} holds no image:[/yellow] training refuses "
                      f"it; add its images, remove the folder, or leave the class out with --drop-classes "
                      f"{console_text(name)}")
    for name in summary.get("unreadable_classes", []):
        console.print(f"[yellow]class {console_text(repr(name))} has no readable image:[/yellow] training refuses it "
                      f"(its files are listed below); replace them, or leave the class out with --drop-classes "
                      f"{console_text(name)}")
    from .inspect_multilabel import unreadable_split_line

    for split in summary.get("unreadable_splits", []):
        console.print(unreadable_split_line(split, f"{split}/", f"remove {split}/"))
    if summary.get("in_several_classes"):
        console.print(f"[yellow]{summary['in_several_classes']} image(s) sit in several class folders[/yellow] (links "
                      "to one file): the counts above take each link; a tree of label sets trains with --task "
                      "multilabel, while single-label training reads the copies as one picture under conflicting "
                      "labels")
    nested = summary.get("in_subfolders") or {}
    if nested.get("count"):  # a folder of sorted-out images inside a class is easily forgotten there
        console.print(f"{nested['count']} image(s) sit in subfolders of their class folder (e.g. "
                      f"{console_text(nested['example'][0])}): each counts, and trains, as that class")
    if summary["skipped"]:
        console.print(f"[yellow]{count_skipped([s['path'] for s in summary['skipped']])} cannot be used:[/yellow]")
        for line in skipped_lines([(console_text(s["path"]), console_text(s["reason"])) for s in summary["skipped"]],
                                  "--json"):
            console.print(line)
    audit = summary.get("audit")
    if audit is not None and audit["status"] == "fresh":
        from .audit.summary import count_lines
        from .records import AuditCounts

        judged = f"the features of run {console_text(audit['run'])}" if audit.get("run") else "the images' pixels"
        console.print(f"audit of {audit['created']}, on {judged} ({console_text(audit['path'])}):")
        for line in count_lines(AuditCounts(**audit["counts"]), audit["leakage"], audit["accuracy"],
                                audit["label_errors_checked"], audit["note"], audit["splits"] == "run",
                                summary["layout"] == "flat" and audit["splits"] != "run"):
            console.print(f"  {line}")
    elif audit is not None:
        if audit.get("run_changed") and not os.path.isdir(audit["run"]):
            what = (f"its run {console_text(audit['run'])} is gone (run `imgclf audit` again, with another --run or "
                    "none)")
        else:
            what = (f"run {console_text(audit['run'])} was trained again" if audit.get("run_changed") else
                    "the folder changed") + " since (run `imgclf audit` again)"
        console.print(f"audit of {audit['created']} is stale: {what}")
    for p in summary.get("plots", []):
        console.print(f"figure: {console_text(p)}")
