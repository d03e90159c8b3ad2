"""`imgclf inspect INDEX.csv`: a multi-label index's label cardinality, per-label counts and co-occurrence."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from .data.decode import DecodeError, decode_image
from .data.folder import count_skipped
from .data.multilabel import label_stats, read_label_index, warn_comma_labels


def inspect_index(index: str | os.PathLike, plots_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Every listed image decoded once (unreadable ones listed), then the label statistics of the readable.
    plots_dir: also the images per label and one example of each, as `inspect_folder` draws them per class."""
    labelled = read_label_index(index)
    warn_comma_labels(labelled)
    sizes: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    skipped, ok = [], []
    for row, path in enumerate(labelled.files):
        try:
            _, meta = decode_image(path, None, "rgb")
        except DecodeError as exc:
            skipped.append({"path": path, "reason": str(exc)})
            continue
        ok.append(row)
        sizes[f"{meta['width']}x{meta['height']}"] += 1
        modes[str(meta["mode"])] += 1
    stats = label_stats(labelled.targets[ok], labelled.classes)
    summary = {"root": str(labelled.path.resolve()), "layout": "index", "task": "multilabel",
               "classes": labelled.classes, "total": len(ok), **stats,
               "sizes": dict(sizes.most_common(10)), "distinct_sizes": len(sizes), "modes": dict(modes.most_common()),
               "skipped": skipped}
    if labelled.splits is not None:  # the index's split column: training keeps it, so each split's labels count
        summary["splits"] = {}
        present = {labelled.splits[r] for r in ok}
        for name in [s for s in ("train", "val", "test") if s in present]:
            rows = [r for r in ok if labelled.splits[r] == name]
            summary["splits"][name] = {"images": len(rows),
                                       "counts": label_stats(labelled.targets[rows], labelled.classes)["counts"]}
        # the val or test rows of which not one image decodes: training refuses the index
        summary["unreadable_splits"] = [s for s in ("val", "test") if s in labelled.splits and s not in present]
    if plots_dir is not None:
        from .evaluation.plots import plot_class_distribution, plot_class_samples

        # each label's image carrying the fewest other labels: the first carrying it was one image carrying all
        # four, shown four times, which said nothing of what any one label looks like
        examples = {c: labelled.files[min((r for r in ok if labelled.targets[r, i]),
                                          key=lambda r: int(labelled.targets[r].sum()))]
                    for i, c in enumerate(labelled.classes) if stats["counts"][c]}
        figures = (plot_class_distribution({"images": stats["counts"]}, Path(plots_dir) / "label_distribution.png",
                                           per="label"),
                   plot_class_samples(examples, Path(plots_dir) / "label_samples.png", per="label"))
        summary["plots"] = [str(p) for p in figures]
        from .plotting import warn_of_undrawn_names

        warn_of_undrawn_names(labelled.classes, "imgclf inspect INDEX --plots DIR")
    return summary


def unreadable_split_line(split: str, where: str, removed: str) -> str:
    """What inspect says of a split of which not one image is readable: training refuses such data (a vanished
    split would have been drawn from train, or the test score left out, with no word)."""
    instead = " (val is then drawn from train)" if split == "val" else ""
    return (f"[yellow]not one image in {where} can be read:[/yellow] training refuses the data until those images "
            f"are mended or replaced (they are listed below), or you {removed}{instead}")


def render_index_inspection(summary: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    from .io import console_text

    classes = summary["classes"]
    console.print(f"{console_text(summary['root'])}: multi-label index, {summary['total']} readable images, "
                  f"{len(classes)} labels")
    console.print(f"label cardinality {summary['cardinality']:.3f} labels per image; "
                  f"{summary['no_label']} image(s) carry no label")
    table = Table(title="co-occurrence: images carrying both labels (diagonal: the label's count)",
                  title_justify="left")
    table.add_column("label", overflow="fold")
    table.add_column("images", justify="right")
    table.add_column("share", justify="right")
    for c in classes:
        table.add_column(console_text(c), justify="right")
    total = max(1, summary["total"])
    for i, c in enumerate(classes):
        table.add_row(console_text(c), str(summary["counts"][c]), f"{summary['counts'][c] / total:.1%}",
                      *[str(v) for v in summary["cooccurrence"][i]])
    console.print(table)
    splits = summary.get("splits")
    if splits:
        _render_splits(splits, classes, console)
    else:  # a label only unreadable images carry is one training refuses: said here, before a run is tried
        _say_missing_labels("readable", [c for c in classes if not summary["counts"][c]],
                            "training refuses a label no training image carries", console)
    for split in summary.get("unreadable_splits", []):
        console.print(unreadable_split_line(split, f"the index's {console_text(split)} rows", f"remove the {split} rows"))
    if summary["skipped"]:
        console.print(f"[yellow]{count_skipped([s['path'] for s in summary['skipped']])} cannot be used:[/yellow]")
        for s in summary["skipped"]:
            console.print(f"  {console_text(s['path'])}: {console_text(s['reason'])}")
    for p in summary.get("plots", []):
        console.print(f"figure: {console_text(p)}")


def _render_splits(splits: dict[str, Any], classes: list[str], console: Any) -> None:
    """Images carrying each label in each split of the index, and the labels a split lacks: a label no
    validation image carries keeps an untuned threshold, one no test image carries has no test score."""
    from rich.table import Table

    from .io import console_text

    table = Table(title="images carrying each label, per split (the index's split column)", title_justify="left")
    table.add_column("label", overflow="fold")
    for name in splits:
        table.add_column(console_text(name), justify="right")
    for c in classes:
        table.add_row(console_text(c), *[str(s["counts"][c]) if s["counts"][c] else "[yellow]0[/yellow]"
                                         for s in splits.values()])
    table.add_row("[bold]images[/bold]", *[str(s["images"]) for s in splits.values()])
    console.print(table)
    from .multilabel import untuned_thresholds

    for name, split in splits.items():
        if name == "val":  # what training will say of them (it tunes on 5 positives and 5 negatives or more)
            untuned = untuned_thresholds(classes, [split["counts"][c] for c in classes], split["images"])
            if untuned:
                console.print(f"[yellow]{console_text(untuned)}[/yellow]")
            continue
        missing = [c for c in classes if not split["counts"][c]]
        why = {"test": f"{'it has' if len(missing) == 1 else 'they have'} no test score",
               "train": "training refuses a label no training image carries"}.get(name)
        _say_missing_labels(console_text(name), missing, why, console)


def _say_missing_labels(where: str, missing: list[str], why: str | None, console: Any) -> None:
    """'no train image carries 2 labels ('a', 'b'): why', or nothing when no label is missing."""
    from .io import console_text

    if missing:
        one = len(missing) == 1
        names = ", ".join(console_text(repr(c)) for c in missing[:10]) + (" ..." if len(missing) > 10 else "")
        console.print(f"[yellow]no {where} image carries {len(missing)} label{'' if one else 's'}[/yellow] "
                      f"({names}){': ' + why if why else ''}")
