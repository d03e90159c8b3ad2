"""What `imgclf evaluate` prints: the per-class table with its averages, and the classes most confused."""

from __future__ import annotations

from typing import Any

from ..data.folder import count_skipped
from .base import multilabel_line, new_console, shown


def print_metrics(m: Any) -> None:
    """The split's accuracy and loss over a per-class table (its averages, what their dashes count), then TTA,
    the unknown share and the skipped files."""
    from rich.table import Table

    from ..evaluation.interpret import dash_notes, predicted_counts, scores_shown

    console = new_console()
    loss = "-" if m.loss is None else f"{m.loss:.4f}"
    multilabel = m.multilabel is not None
    # multi-label: accuracy is the share of images whose whole label set is right, support a label's positives
    # (the average rows' image count would read as their sum)
    accuracy = "subset accuracy" if multilabel else "accuracy"
    # the ONNX export scored (evaluate --backend onnx): said, so its table is not read as the network's
    by = f" (ONNX export, {m.precision})" if getattr(m, "backend", "torch") == "onnx" else ""
    table = Table(title=f"{shown(m.split)}{by}: {accuracy} {m.accuracy:.4f}, loss {loss}, {m.count} images")
    for col in ("label" if multilabel else "class", "precision", "recall", "f1", "support", "auc"):
        table.add_column(col, justify="left" if col in ("class", "label") else "right",
                         overflow="fold" if col in ("class", "label") else "ellipsis")  # cut names read alike
    predicted = predicted_counts(m)
    for name, row in m.per_class.items():
        auc = m.auc.get(name)
        cells = scores_shown(row, predicted.get(name), multilabel)  # a dash where there is nothing to divide by
        scores = ("—" if cells[k] is None else f"{cells[k]:.3f}" for k in ("precision", "recall", "f1"))
        table.add_row(shown(name), *scores, str(row.support), "—" if auc is None else f"{auc:.3f}")
    # no label carried by any image (a set of negatives, to count false alarms): no recall to average, nor a
    # weight; the JSON's 0 is no score (the rows above count the labels predicted)
    none_present = multilabel and not m.classes_present
    for avg in ("macro", "weighted"):
        r = getattr(m, avg)
        recall = "—" if r.recall is None else f"{r.recall:.3f}"
        cells = ("—", recall, "—") if none_present and avg == "weighted" else \
            (f"{r.precision:.3f}", recall, f"{r.f1:.3f}")
        table.add_row(f"{avg} avg", *cells, "" if multilabel else str(m.count), "")
    console.print(table)
    if none_present:
        console.print("no image of this set carries a label: recall is not measured; " + (
            "none was predicted either: no false alarm" if all(n == 0 for n in predicted.values()) else
            "the labels predicted are false alarms (precision and F1 count them)"), soft_wrap=True)
    split = m.split.rsplit(":", 1)[-1]  # "other:all" for a folder given with --data
    # as the report says it; a set where no image carries a label has said so above
    for note in dash_notes(m.per_class, predicted, "evaluated" if split == "all" else split,
                           "label" if multilabel else "class") if not none_present else ():
        console.print(note, soft_wrap=True)
    if m.tta is not None:
        console.print(f"with TTA ({m.tta.transforms}): accuracy {m.tta.accuracy:.4f}")
    if m.unknown is not None and m.unknown.flagged > 0:  # predict and serve answer "unknown" for these
        flagged = round(m.unknown.flagged * m.count)
        kept = "" if m.unknown.accuracy_kept is None else f"; accuracy on the others {m.unknown.accuracy_kept:.4f}"
        console.print(f"unknown: {flagged} of {m.count} images ({100 * m.unknown.flagged:.1f} %) score below the "
                      f"{m.unknown.detector} threshold, which predict and serve label unknown{kept}")
    if m.skipped:
        console.print(f"[yellow]{count_skipped([s.path for s in m.skipped])} skipped:[/yellow]")
        for s in m.skipped[:20]:
            console.print(f"  {shown(s.path)}: {shown(s.reason)}")


def print_most_confused(metrics: Any, top: int = 5) -> None:
    """The `top` most frequent mistakes, one line (multi-label: its own summary line instead)."""
    from ..evaluation.interpret import most_confused

    if metrics.multilabel is not None:  # its confusion is label co-occurrence: no class was mistaken for another
        new_console().print(multilabel_line(metrics))
        return

    pairs = most_confused(metrics, top=top)
    if pairs:
        new_console().print("most confused: " + "; ".join(f"{shown(c.true)} → {shown(c.pred)} ({c.count}, "
                                                        f"{100 * c.rate:.0f} %)"
                                                        for c in pairs))
