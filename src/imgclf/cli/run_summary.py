"""What `imgclf train` prints when a run ends: where it is, its scores, which weights they are of, the files it
skipped and the figures that failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..file_names import shell_word
from .base import multilabel_line, new_console, shown


def _worst_class_text(m: Any) -> str:
    """The worst class, and how many share its recall; nothing when every class does (no class is worst)."""
    from ..evaluation.interpret import lowest_recall_classes

    if m.worst_class is None:
        return ""
    lowest = lowest_recall_classes(m.per_class)
    if len(lowest) == sum(1 for row in m.per_class.values() if row.support > 0):
        return ""
    more = f" (and {len(lowest) - 1} more at it)" if len(lowest) > 1 else ""
    return f"  worst class {m.worst_class.name} recall {m.worst_class.recall:.3f}{more}"


def _train_counts(run_dir: Path) -> dict[str, int] | None:
    """The training split's images per class, from dataset.json (None where it cannot be read)."""
    from ..errors import ImgclfError
    from ..records import RunDir

    try:
        return RunDir(run_dir).read_dataset().counts.get("train")
    except (ImgclfError, OSError):
        return None


def _kept_line(run: Any, history: list) -> str:
    """Which weights the scores below are of, where the epoch lines above do not say it: an earlier epoch's
    (restore-best), or the last after its BatchNorm statistics were recomputed (the epoch line said 0.34, the
    scores read 0.95, and nothing on the terminal said why)."""
    from ..errors import ImgclfError
    from ..evaluation.interpret import best_val_accuracy
    from ..records import RunDir

    try:
        card = RunDir(run.path).read_card()
    except (ImgclfError, OSError):
        return ""
    training = card.training
    parts = []
    best = getattr(run, "best_epoch", None)
    if best is not None and history and best < history[-1].epoch:
        parts.append(f"the weights of epoch {best} kept")
    after, before = training.val_accuracy_after_batch_norm, best_val_accuracy(history, best)
    if after is not None and before is not None and abs(after - before) >= 0.0005:  # the same figure says nothing
        # a multi-label run's is label-wise (decisions at 0.5): beside its subset accuracy it read as overfitting
        kind = "label-wise validation accuracy" if card.task == "multilabel" else "validation accuracy"
        parts.append(f"{kind} {after:.4f} after the BatchNorm statistics were recomputed on "
                     f"training images (the epoch's line: {before:.4f})")
    if card.metrics is not None and card.metrics.val_map is not None:  # multi-label: what a search ranks it by
        parts.append(f"validation mAP {card.metrics.val_map:.4f}")
    return f"  {'; '.join(parts)}" if parts else ""


def _print_run_summary(run: Any) -> None:
    from ..data.folder import count_skipped, skipped_lines
    from ..hardware import launch_rank
    from ..records import RunDir, epochs_text

    if launch_rank() != 0:
        return  # worker processes of a data-parallel run stay quiet; rank 0 reports
    m = run.metrics
    console = new_console()
    history = RunDir(run.path).read_history()
    epochs = epochs_text(history)
    console.print(f"[bold]run[/bold] {shown(run.path)}  ({epochs}, {run.train_seconds:.1f} s, {run.stopped_reason})")
    kept = _kept_line(run, history)
    if kept:
        console.print(kept, soft_wrap=True)
    if m and m.multilabel is not None:
        console.print(f"[bold]{m.split}[/bold] {multilabel_line(m)}")
    elif m:
        worst = _worst_class_text(m)
        console.print(f"[bold]{m.split}[/bold] accuracy {m.accuracy:.4f}  macro F1 {m.macro.f1:.4f}  "
                      f"macro recall {m.macro.recall:.4f}{worst}")
        from ..evaluation.guessing import balancing_of, guessing_advice, no_better_than_guessing

        guess = no_better_than_guessing(m)
        if guess is not None:  # the report said so; the terminal line read like any other run's
            advice = guessing_advice(RunDir(run.path).read_history(), m, _train_counts(run.path),
                                     balancing_of(RunDir(run.path).read_config()))
            console.print(f"[yellow]no better than guessing:[/yellow] macro recall {m.macro.recall:.3f} cannot be told "
                          f"apart from chance ({guess:.3f}, one class in {round(1 / guess)}) on these {m.count:,} "
                          f"{m.split} images. {advice}", soft_wrap=True)
    skipped = run.skipped
    if skipped:
        console.print(f"[yellow]{count_skipped([s.path for s in skipped])} skipped[/yellow] (all listed in "
                      f"{run.path / 'dataset.json'}):")
        for line in skipped_lines([(shown(s.path), shown(s.reason)) for s in skipped], "dataset.json"):
            console.print(line, soft_wrap=True)
    if run.figure_failures:
        console.print(f"[yellow]{len(run.figure_failures)} figure(s) could not be drawn[/yellow] (the report says "
                      "so in their place):")
        for failure in run.figure_failures:
            console.print(f"  {shown(failure)}", soft_wrap=True)
    report = run.path / "report.html"
    if report.exists():
        console.print(f"report: {report}")
    elif m:
        console.print(f"no report (--no-report); write it with: imgclf report {shown(shell_word(run.path))}")


# ---------------------------------------------------------------------------------------------------
