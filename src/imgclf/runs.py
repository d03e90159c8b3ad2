"""`imgclf runs [FOLDER]`: one row per run directory under a folder, read through `imgclf.records.RunDir`.

A listing is what a user opens after a crash, so it never fails on one bad run: a file that cannot be read
makes that run's row `failed`, with the reason, and the other rows are unaffected. A run with a checkpoint or a
history but no model card or metrics yet is `interrupted` (`imgclf train --resume RUN` continues it), unless
it is a search trial that the search's tune.json says was pruned: then `pruned`, stopped on purpose, or its
training holds the folder's train.lock right now: then `running`.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import bad_path, check_switch, invalid, path_argument
from .io import safetensors_damage
from .records.run_dir import epochs_past_card, find_run_dirs
from .records.tune import INTERRUPTED_TRIAL, trial_of_run
from .run_markers import FINISHING_FILE
from .stats import finite_number
from .file_names import shell_word

STATUSES = ("completed", "running", "pruned", "interrupted", "failed")


@dataclass
class RunRow:
    """One run in a listing; `as_dict()` is what `imgclf runs --json` prints (keys stable across releases)."""

    name: str  # path relative to the listed folder
    path: str  # absolute
    model: str | None
    data: str | None  # the data folder's name (several: joined with ' + ')
    epochs: int | None
    val_accuracy: float | None  # multi-label: label-wise, 1 - Hamming loss (as training's val_acc)
    test_accuracy: float | None  # multi-label: label-wise too, at the labels' tuned thresholds (val: at 0.5)
    macro_f1: float | None  # on the test split
    train_seconds: float | None
    created: str | None  # ISO 8601, UTC
    status: str
    reason: str = ""  # why a run is not completed
    task: str = "single"  # multilabel: its accuracies are label-wise (above)
    val_map: float | None = None  # multi-label: the kept weights' validation mAP (what `imgclf tune` ranks by)
    test_map: float | None = None  # multi-label: the test mAP (macro over labels), beside val_map as compare has it
    data_path: str | None = None  # the data folder's absolute path (several: joined with ' + '): `data` alone
    # named two index.csv of different folders alike

    def __fspath__(self) -> str:  # a listed run goes wherever a run folder's path does (imgclf.load(row))
        return self.path

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SORT_KEYS = ("name", "model", "data", "epochs", "val_accuracy", "test_accuracy", "macro_f1", "train_seconds",
             "created", "status", "val_map", "test_map")
# Sorted best first: a user sorting by a score wants the best run at the top.
_DESCENDING = frozenset({"val_accuracy", "test_accuracy", "macro_f1", "val_map", "test_map"})


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _problem(name: str, exc: BaseException) -> str:
    """`file: what is wrong`, short: RunDir's errors name the run, which the listing's row already does."""
    text = _first_line(exc)
    note = re.search(r" run=.*? \((.*)\)", text)  # RunDir's note on what is wrong with the file
    detail = note.group(1) if note else text
    return detail if detail.startswith(name) else f"{name}: {detail}"


def _data_name(data: Any) -> str:
    folders = data if isinstance(data, list) else [data]
    return " + ".join(Path(str(f)).name or str(f) for f in folders)


def _distinct_data_names(rows: list[RunRow]) -> dict[str, str]:
    """{data_path: what the table shows}: the folder's name, with as many parent folders as tell apart runs of
    different data that share it (ml/index.csv and ml2/index.csv both read index.csv)."""
    paths = {r.data_path for r in rows if r.data_path}
    shown = {}
    for path in paths:
        parts = [Path(p).parts for p in path.split(" + ")]
        for depth in range(1, max(map(len, parts)) + 1):
            name = " + ".join(str(Path(*p[-depth:])) for p in parts)
            others = {" + ".join(str(Path(*Path(q).parts[-depth:])) for q in other.split(" + "))
                      for other in paths - {path}}
            if name not in others:
                break
        shown[path] = name
    return shown


def read_run(path: str | os.PathLike, folder: str | os.PathLike | None = None) -> RunRow:
    """The row of one run directory. Each file is read on its own, so one unreadable file costs only its own
    columns; the row is then `failed`, with that file's problem as the reason."""
    from .records import RunDir

    run = RunDir(path)
    base = Path(folder) if folder is not None else run.path.parent
    try:
        name = str(run.path.resolve().relative_to(base.resolve()))
    except ValueError:
        name = run.path.name
    if name == ".":  # the listed folder is the run itself (imgclf runs runs/s1)
        name = run.path.resolve().name
    problems: list[str] = []

    def read(name: str, reader):
        if name != "history.csv" and not run.has(name):
            return None
        try:
            return reader()
        except Exception as exc:  # any unreadable file: the listing reports it, it never stops
            problems.append(_problem(name, exc))
            return None

    config = read("config.yaml", run.read_config)
    card = read("model.json", run.read_card)
    metrics = read("metrics.json", run.read_metrics)
    dataset = read("dataset.json", run.read_dataset)
    history = read("history.csv", run.read_history) or []
    if card is not None and not run.has("config.yaml"):  # compare would skip it, evaluate refuse it
        problems.append("config.yaml: missing (evaluate, calibrate, compare and --resume refuse the run; predict "
                        "and serve read model.json)")
    if card is not None and not run.has("model.safetensors"):  # a card without its weights: nothing can use it
        problems.append("model.safetensors: missing (predict, serve and export refuse the run)")
    elif card is not None and (damage := safetensors_damage(run.file("model.safetensors"))):
        problems.append(f"model.safetensors: {damage} (predict, serve and export refuse the run)")
    from .records.card import FEATURE_DETECTORS

    # the unknown detector's, where it reads them (an msp run's file only keeps its validation scores for the report)
    statistics = card.unknown.statistics if card is not None and card.unknown is not None \
        and card.unknown.detector in FEATURE_DETECTORS else None
    if statistics and not run.has(statistics):  # load refuses the run without them
        problems.append(f"{statistics}: missing (predict, serve and export refuse the run)")
    elif statistics and (damage := safetensors_damage(run.file(statistics))):
        problems.append(f"{statistics}: {damage} (predict, serve and export refuse the run)")

    from .evaluation.interpret import accuracy_beside_val, best_val_accuracy

    best_epoch = card.training.best_epoch if card else None
    val = card.metrics.val_accuracy if card and card.metrics.val_accuracy is not None else \
        best_val_accuracy(history, best_epoch)
    on_test = metrics is not None and metrics.split == "test"
    seconds = card.training.train_seconds if card and card.training.train_seconds else \
        sum(r.seconds or 0.0 for r in history) or None
    if card and card.created:
        created = card.created
    else:
        stamp = run.file("config.yaml") if run.has("config.yaml") else run.path
        try:
            created = datetime.fromtimestamp(stamp.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
        except OSError:  # removed while being listed
            created = None
    folders = (config.data if isinstance(config.data, list) else [config.data]) if config else \
        (dataset.roots or [dataset.root]) if dataset else None
    data = _data_name(folders) if folders else None
    data_path = " + ".join(os.path.abspath(str(f)) for f in folders) if folders else None
    past = epochs_past_card(history, card)  # (history.csv and model.json as read above)
    if problems:
        status, reason = "failed", problems[0]
    elif run.has(FINISHING_FILE):  # a signal while its weights, card, scores and report were written
        status, reason = ("interrupted", "stopped while it was being finished (weights, card, scores, report): "
                                         f"imgclf train --resume {_command_path(run.path)} finishes it")
    elif past:  # resumed for more epochs: what the card says is the run before its resume
        status, reason = ("interrupted", f"resumed and stopped after epoch {len(history)} (model.json describes epoch "
                                         f"{len(history) - past}): imgclf train --resume {_command_path(run.path)}")
    elif card is not None and metrics is not None:
        status, reason = "completed", ""
    elif card is not None and card.metrics.split == "val":  # a search trial: validated, never tested (tune)
        status, reason = "completed", ""
    elif card is not None:  # stopped while being finished: resuming scores it, fills the card and the report
        stopped_early = card.training.stopped not in ("", "completed")
        more = f" --epochs {card.training.epochs_run}" if stopped_early else ""
        status, reason = ("interrupted", f"not evaluated (no metrics.json): imgclf train --resume "
                                         f"{_command_path(run.path)}{more} finishes it")
    elif run.has("checkpoints/last.ckpt"):
        status, reason = ("interrupted", f"stopped after epoch {_epochs_saved(run, history)}: imgclf train --resume "
                                         f"{_command_path(run.path)}")
    else:
        status, reason = ("interrupted", "stopped before its first checkpoint (no checkpoints/last.ckpt): imgclf "
                                         f"train --resume {_command_path(run.path)} trains it from its first epoch")
    if status in ("interrupted", "completed") and not problems:  # a finished run resumed for more epochs too
        from .locks import is_locked
        from .records.run_dir import LOCK_FILE

        if is_locked(run.path / LOCK_FILE):  # its training holds the folder now: not one to resume
            status, reason = "running", "in use now (another process holds train.lock: its training, or an evaluate, " \
                "calibrate or report of it)"
    trial = trial_of_run(run.path) if status == "interrupted" else None
    if trial is not None and trial.state == "pruned":
        status, reason = "pruned", f"search trial {trial.stopped or 'pruned'}"
    elif trial is not None and trial.state == "fail" and not (trial.stopped or "").startswith("interrupted"):
        # refused or diverged: train --resume would fail again (it diverged again)
        status, reason = "failed", f"search trial {trial.stopped or 'failed'}"
    elif trial is not None and (trial.stopped or "").startswith("interrupted"):  # train --resume would finish it
        # outside its search, which counts it failed
        reason = INTERRUPTED_TRIAL
    elif status == "interrupted" and config is not None and config.folds and config.fold:
        # train --resume FOLD would finish this fold alone and write no folds.json
        from .pipeline.folds import OVERWRITE_MARK

        given = " ".join(_command_path(Path(d)) for d in (config.data if isinstance(config.data, list) else
                                                           [config.data]) if d)
        again = " --overwrite" if (run.path.parent / OVERWRITE_MARK).exists() else ""
        reason = (f"fold {config.fold} of {config.folds}, stopped: run its cross-validation's command again, e.g. "
                  f"imgclf train {given} --folds {config.folds} --out {_command_path(run.path.parent)}{again} with "
                  "the same settings (it resumes this fold)")
    return RunRow(
        name=name, path=str(run.path.resolve()),
        model=config.model if config else card.architecture if card else None,
        data=data, data_path=data_path,
        epochs=(card.training.epochs_run or None) if card else (len(history) or None),
        val_accuracy=finite_number(val),
        test_accuracy=finite_number(accuracy_beside_val(metrics)) if on_test else None,
        macro_f1=finite_number(metrics.macro.f1) if on_test else None,
        train_seconds=finite_number(seconds),
        created=created, status=status, reason=reason, task=config.task if config else "single",
        # an interrupted multi-label run's from its history, as its val accuracy is
        val_map=finite_number(card.metrics.val_map) if card else
        finite_number(best_val_accuracy(history, None, "val_map")) if config and config.task == "multilabel" else None,
        test_map=finite_number(metrics.multilabel.map_macro) if on_test and metrics.multilabel else None)


def sort_rows(rows: list[RunRow], column: str, reverse: bool = False) -> list[RunRow]:
    """Rows by `column` (scores best first, the rest ascending; `reverse` flips); empty cells always last."""
    if column not in SORT_KEYS:
        raise invalid("sort", column, SORT_KEYS)
    descending = (column in _DESCENDING) != reverse
    present = [r for r in rows if getattr(r, column) is not None]
    absent = [r for r in rows if getattr(r, column) is None]
    return sorted(present, key=lambda r: getattr(r, column), reverse=descending) + absent


def list_runs(folder: str | os.PathLike = "runs", sort: str = "created", reverse: bool = False) -> list[RunRow]:
    """Every run directory under `folder` (recursively; fold and study runs included), one `RunRow` each,
    sorted by `sort` (one of SORT_KEYS). Unfinished and unreadable runs are listed with their status."""
    if sort not in SORT_KEYS:
        raise invalid("sort", sort, SORT_KEYS)
    reverse = check_switch("reverse", reverse)
    folder = path_argument("folder", folder)
    if not folder.is_dir():
        # `imgclf runs` right after the demo: its runs are in imgclf-demo/runs, not ./runs
        found = [p for p in (Path("imgclf-demo") / "runs",) if not folder.exists() and p.is_dir()]
        raise bad_path("folder", folder, "a folder of run directories", "a file" if folder.exists() else "not found",
                       hint=f"Give the folder: imgclf runs {found[0] if found else 'FOLDER'}"
                            + (" (where imgclf demo trains)" if found else ""))
    rows = [read_run(p, folder) for p in find_run_dirs(folder)]
    return sort_rows(sorted(rows, key=lambda r: r.name), sort, reverse)


# ------------------------------------------------------------------------------------------- terminal
def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes}m{s:02d}" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}"


def _when(created: str | None, now: datetime | None = None) -> str:
    """Short, as `ls -l` does: the time today, the day this year, else the month (--json has the full time)."""
    if not created:
        return "—"
    try:
        t = datetime.fromisoformat(created).astimezone()
    except ValueError:
        return created[:10]
    now = now or datetime.now().astimezone()
    if t.date() == now.date():
        return t.strftime("%H:%M")
    return t.strftime("%b %d") if t.year == now.year else t.strftime("%Y-%m")


STATUS_STYLE = {"completed": "green", "running": "cyan", "pruned": "blue", "interrupted": "yellow", "failed": "red"}


def render_runs(rows: list[RunRow], console: Any, folder: str | os.PathLike = "runs") -> None:
    """The listing as one Rich table that fits 80 columns (names wrap; numbers never do), then the reasons of
    the runs that did not complete, one line each."""
    from rich import box
    from rich.table import Table

    from .io import console_text

    if not rows:  # an empty table, exit 0: a data folder given by mistake read as "no runs yet" without a word
        demo = Path("imgclf-demo") / "runs"
        elsewhere = f"; imgclf demo's are in {demo}: imgclf runs {shell_word(demo)}" if demo.is_dir() and \
            Path(folder).resolve() != demo.resolve() else ""
        console.print(console_text(f"no run directories in {folder} (a run holds model.json, or config.yaml and "
                                   f"dataset.json while it trains){elsewhere}"), highlight=False)
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True, padding=(0, 1),
                  title=console_text(f"{len(rows)} run{'s' if len(rows) != 1 else ''} in {folder}"),
                  title_justify="left")
    table.add_column("run", overflow="fold")
    table.add_column("model", overflow="fold")
    table.add_column("data", overflow="fold")
    # multi-label rows' validation mAP, what a search ranked them by, and test mAP, where the listing holds any
    with_map = any(r.val_map is not None or r.test_map is not None for r in rows)
    for header in ("ep", "val\nacc %", *(["val\nmAP %"] if with_map else []), "test\nacc %",
                   *(["test\nmAP %"] if with_map else []), "macro\nF1 %", "time", "when"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    shown = lambda v: "—" if v is None else console_text(v)  # noqa: E731
    data_of = _distinct_data_names(rows)
    for r in rows:
        # a multi-label row's accuracies are label-wise, marked: beside a single-label run's, 95.2 and 52.6 read
        # as one measure, and the note under the table named no row
        mark = "*" if r.task == "multilabel" else ""
        table.add_row(shown(r.name), shown(r.model), shown(data_of.get(r.data_path, r.data)),
                      "—" if r.epochs is None else str(r.epochs),
                      _pct(r.val_accuracy) + mark, *([_pct(r.val_map)] if with_map else []),
                      _pct(r.test_accuracy) + mark, *([_pct(r.test_map)] if with_map else []), _pct(r.macro_f1),
                      _duration(r.train_seconds), _when(r.created), f"[{STATUS_STYLE[r.status]}]{r.status}[/]")
    console.print(table)
    if any(r.task == "multilabel" for r in rows):
        from .evaluation.interpret import MULTILABEL_ACCURACY_NOTE

        console.print(f"* {MULTILABEL_ACCURACY_NOTE}", highlight=False, soft_wrap=False)
    for r in rows:
        if r.reason:
            console.print(f"{console_text(r.name)}: {console_text(r.reason)}",
                          style=STATUS_STYLE[r.status], highlight=False, soft_wrap=False)


def _epochs_saved(run: Any, history: list) -> int:
    """The completed epochs its checkpoint holds, where it can be read (history.csv may hold one more: a Ctrl-C
    just after an epoch's line, which a resume trains again)."""
    from .train.checkpoint_state import saved_epochs_of

    try:
        held = saved_epochs_of(run.file("checkpoints/last.ckpt"))
    except Exception:  # unreadable: listed by what history.csv says
        held = None
    return held if held is not None else len(history)


def _command_path(path: Path) -> str:
    """The run's folder as a command to copy names it: relative to the working folder when under it."""
    absolute = Path(path).resolve()
    try:
        shown = str(absolute.relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(absolute)
    return shell_word(shown)
