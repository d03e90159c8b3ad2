"""`imgclf compare RUN RUN ...`: a side-by-side table and overlaid validation curves for several runs.

Runs whose resolved config.yaml is the same but for the seed (and settings that cannot change the result, such
as the output folder) are one group, reported as mean ± std over its seeds, as airbench reports "94.01 mean
accuracy (n=200 trials)" rather than one lucky run. Only like is ranked with like: groups are ranked ("best" per
column) within an evaluation set, the exact images their metrics.json was scored on, never across data sets.
Each group gets a letter (A, B, ...) that the tables and the curves' legend share, so a long label is written
out once, in the key, and never clipped. This module reads the runs and groups them (`compare_runs` ->
`Comparison`); `compare_render` shows the result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RUNTIME_ONLY
from ..errors import Described, ImgclfError, bad_path, invalid
from ..records import HistoryRow, RunDir
from ..records.run_dir import find_run_dirs, is_run_dir, run_path
from ..run_markers import FINISHING_FILE
from ..stats import MeanStd, finite_number, mean_std
from .compare_sets import EvaluationSet, Section, digest, evaluation_set, resumed_note, sectioned, short_value
from .interpret import accuracy_beside_val, best_val_accuracy, kept_val_accuracy, kept_val_map, mean_recall
from ..file_names import shell_word

# Config keys that say where or how verbosely a run was made (or in which file layout), not what was trained:
# the runtime settings (where it was also logged, how often it saved: the same weights), the seed and the out.
# `fold`: the K runs of a cross-validation are one group, reported as mean ± std over the folds.
NOT_THE_EXPERIMENT = RUNTIME_ONLY | {"seed", "out", "schema_version", "fold"}

# (key, column title, kind, higher is better); kind decides the formatting.
COLUMNS: tuple[tuple[str, str, str, bool | None], ...] = (
    ("val_accuracy", "val acc", "pct", True),
    ("val_map", "val mAP", "pct", True),  # multi-label runs only: what `imgclf tune` ranks them by
    # at the kept epoch, as training measured it (S2 compares it); not ranked: focal loss, label smoothing or an L2
    # penalty give numbers of another scale
    ("val_loss", "val loss", "loss", None),
    ("test_accuracy", "test acc", "pct", True),
    ("test_map", "test mAP", "pct", True),  # multi-label runs only (their test acc is subset accuracy)
    ("macro_precision", "precision", "pct", True),  # macro averages, as macro F1 (the page says so)
    ("macro_recall", "recall", "pct", True),
    ("macro_f1", "macro F1", "pct", True),
    ("minority_recall", "minority recall", "pct", True),
    ("worst_recall", "worst-class recall", "pct", True),
    ("num_params", "params", "int", None), ("epochs", "epochs", "num", None),
    ("train_seconds", "train time", "seconds", False),
    ("images_per_s", "images/s", "num", True),
)


# What an unset (None) or empty setting means, for a group's label: `augment=` or `l2=None` says nothing.
UNSET_MEANS = {"augment": "none", "early_stopping": "off", "l2": "model's own", "head": "default",
               "img_size": "model's", "model_args": "defaults", "classes": "all", "steps_per_epoch": "one pass",
               "val_steps": "whole split", "checkpoint_every": "epoch ends", "out": "default",
               "folds": "none", "pretrained": "no weights"}
# Settings that a run's model ignores are left out of its config (None): such a run does not differ from the others
# in them (simple_cnn has no pretrained weights, whatever --pretrained said), though a label names them where another
# run sets one otherwise than its default (a backbone trained from scratch beside simple_cnn: pretrained=False).
IGNORED_WHEN_UNSET = frozenset({"pretrained"})


@dataclass
class RunSummary:
    path: Path
    name: str
    config: dict[str, Any]  # config.yaml as plain values: grouping compares them as JSON
    seed: int
    split: str
    values: dict[str, float | None]
    history: list[HistoryRow]
    hardware: str
    evaluation: EvaluationSet | None = None  # None: not evaluated (no metrics.json)
    # "resumed after epoch 2 with batch size, augment changed": its config.yaml, which groups it, is the last
    # process's (None: trained in one go, or resumed with the same settings)
    resumed: str | None = None
    val_set: str | None = None  # digest of its validation files and labels (dataset.json); None: unknown
    # digest of every file and label it split (dataset.json; the same whatever the seed drew; with per_class_max,
    # the cache key of the whole folder), and its training images: runs of one config on a data folder that grew
    # in between were averaged as seeds
    data_set: str | None = None
    data_images: int | None = None


@dataclass
class Group:
    label: str
    runs: list[RunSummary]
    stats: dict[str, MeanStd] = field(default_factory=dict)  # column key -> mean ± std over the group's runs
    key: str = ""  # A, B, ...: the short name the tables and the curves share

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def evaluations(self) -> tuple[EvaluationSet, ...]:
        """The distinct evaluation sets of its runs (seeds drawing their own test split give one each)."""
        sets = {r.evaluation.key: r.evaluation for r in self.runs if r.evaluation is not None}
        return tuple(sets[k] for k in sorted(sets))


@dataclass
class Comparison:
    groups: list[Group]
    differing: list[str]  # config keys whose values differ between groups
    splits: list[str]
    sections: list[Section] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run, why): unfinished runs left out
    digits: int | None = 4  # significant digits of float settings as labels show them (None: all)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: each group (its label, mean ± std per column, its runs' own numbers), the settings that
        differ, the sections of groups scored on the same images, and the runs left out with why."""
        def run(r: RunSummary) -> dict[str, Any]:
            return {"path": str(r.path), "name": r.name, "seed": r.seed, "split": r.split, "values": dict(r.values),
                    "hardware": r.hardware, "resumed": r.resumed}

        return {"groups": [{"key": g.key, "label": g.label, "n": g.n,
                            "stats": {k: v.as_dict() for k, v in g.stats.items()},
                            "runs": [run(r) for r in g.runs]} for g in self.groups],
                "differing": list(self.differing), "splits": list(self.splits),
                "sections": [{"title": s.title, "groups": [self.groups[i].key for i in s.groups],
                              "val_alike": s.val_alike} for s in self.sections],
                "skipped": [{"run": run_name, "why": why} for run_name, why in self.skipped]}

    def __repr__(self) -> str:  # the groups, not every run's whole config
        groups = ", ".join(f"{g.key}: {g.label!r} (n={g.n})" for g in self.groups)
        return f"Comparison(runs={sum(g.n for g in self.groups)}, groups=[{groups}], differing={self.differing})"


def _same_sample(a: RunSummary, b: RunSummary) -> bool:
    """Two runs of one group that are one sample: the same seed (and fold), and trained alike (a run resumed with
    other settings, grouped by its last ones, trained otherwise than a run of those settings: one was dropped as
    'a copy or a rerun' of the other, whatever their scores)."""
    return (a.seed, a.config.get("fold"), a.resumed) == (b.seed, b.config.get("fold"), b.resumed)


def summarize_run(run_dir: str | os.PathLike) -> RunSummary:
    """The numbers `compare` shows for one run, read from its records. metrics.json and dataset.json may be
    missing (a run still training or not yet evaluated): their columns are then empty."""
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    missing = [name for name in ("model.json", "config.yaml") if not run.has(name)]
    if missing:
        raise bad_path("runs", run_dir, "run directories with config.yaml and model.json",
                       f"no {missing[0]}" if run_dir.exists() else "no such folder")
    card, config = run.read_card(), run.read_config()
    metrics = run.read_metrics() if run.has("metrics.json") else None
    dataset = run.read_dataset() if run.has("dataset.json") else None
    history = run.read_history()
    training = card.training
    minority = dataset.imbalance.minority if dataset is not None and dataset.imbalance.imbalanced else []
    hw = card.hardware
    hardware = hw.get("gpu") or (f"{hw.get('cpu')} ({hw.get('cores')} cores)" if hw.get("cpu") else "unknown")
    values = {
        "val_accuracy": kept_val_accuracy(history, training),
        "val_map": finite_number(kept_val_map(history, training)),
        "test_accuracy": finite_number(accuracy_beside_val(metrics)) if metrics else None,
        "val_loss": finite_number(best_val_accuracy(history, training.best_epoch, "val_loss")),
        "test_map": finite_number(metrics.multilabel.map_macro) if metrics and metrics.multilabel else None,
        "macro_precision": finite_number(metrics.macro.precision) if metrics else None,
        "macro_recall": finite_number(metrics.macro.recall) if metrics else None,
        "macro_f1": finite_number(metrics.macro.f1) if metrics else None,
        "minority_recall": mean_recall(metrics.per_class, minority) if metrics and minority else None,
        "worst_recall": finite_number(metrics.worst_class.recall) if metrics and metrics.worst_class else None,
        "num_params": finite_number(card.num_params),
        "epochs": finite_number(training.epochs_run or len(history) or None),
        "train_seconds": finite_number(training.train_seconds),
        "images_per_s": finite_number(training.images_per_s),
    }
    evaluation = evaluation_set(metrics, dataset, config.data) if metrics else None
    val_set = digest(*dataset.split_answers("val")) if dataset is not None and "val" in dataset.splits else None
    pairs = [pair for split in (dataset.splits if dataset is not None else ())
             for pair in zip(*dataset.split_answers(split))]
    data_set = digest([f for f, _ in pairs], [y for _, y in pairs]) if pairs else None
    if config.per_class_max and dataset is not None:
        # each seed keeps other files of the folder (the records list only those), so the folder's own listing
        # as the decode cache keyed it (all files, before the caps) tells whether the data changed
        data_set = dataset.cache_key
    settings = config.model_dump(mode="json")
    for chosen in ("classes", "drop_classes"):  # a choice of classes, not an order: the outputs are sorted by name
        if settings.get(chosen):
            settings[chosen] = sorted(settings[chosen])
    if not _has_pretrained_weights(config.model):
        settings["pretrained"] = None
    return RunSummary(run_dir, run_dir.resolve().name, settings, config.seed,
                      metrics.split if metrics else "?", values, history, hardware, evaluation,
                      resumed_note(training.resumes), val_set, data_set,
                      dataset.sizes.get("train") if dataset is not None else None)


def _has_pretrained_weights(model: str) -> bool:
    """Whether `model` can start from pretrained weights: a timm backbone, not one of our registered models (all
    trained from scratch; read from the registry's static listing, which imports no torch)."""
    from ..models.registry import LISTING

    return model not in {m.name for m in LISTING}


def _experiment(config: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in config.items() if k not in NOT_THE_EXPERIMENT}, sort_keys=True, default=str)


def compare_runs(run_dirs: list[str | os.PathLike] | str | os.PathLike, say_skipped: bool = True) -> Comparison:
    """Summarise each run, group runs that differ only in seed, label each group by what sets it apart. A folder
    that is not a run itself stands for the runs under it (a k-fold parent, a study, a runs/ folder). A run that is
    unfinished, cannot be read, or repeats another's settings and seed is skipped while two readable, finished runs
    are left (a copy or rerun counts among them, shown once, named as counted once): `Comparison.skipped` says why,
    and (`say_skipped`) an `imgclf` logger warning. One path (str or PathLike) is a list of that one folder."""
    if isinstance(run_dirs, (str, os.PathLike)):  # compare_runs("runs"): "r", "u", ..., "/" searched from the root
        run_dirs = [run_dirs]
    elif isinstance(run_dirs, Iterable):
        run_dirs = list(run_dirs)  # a generator (Path.glob) too
    else:
        raise invalid("runs", Described(f"an object of type {type(run_dirs).__name__}"),
                      "a list of run directories, or one folder of runs")
    # a path (a Run, a loaded Classifier; "~/runs/a" expanded); anything else named, not a TypeError
    run_dirs = _expand_folders([run_path(r) for r in run_dirs])
    if len(run_dirs) < 2:
        raise invalid("runs", [str(r) for r in run_dirs], "at least two run directories")
    resolved = [str(Path(r).resolve()) for r in run_dirs]
    # a folder and one of its runs (overlapping globs): the run once, said, as a copy of a run is
    twice = sorted({str(r) for r, p in zip(run_dirs, resolved) if resolved.count(p) > 1})
    run_dirs = [r for i, (r, p) in enumerate(zip(run_dirs, resolved)) if p not in resolved[:i]]
    for r in twice:
        _skipped(f"compare: {r} given more than once: counted once", say_skipped)
    if len(run_dirs) < 2:
        raise invalid("runs", [str(r) for r in run_dirs], "at least two distinct run directories",
                      note=f"{', '.join(twice)} given more than once")
    finished, skipped = [], []
    for r in run_dirs:
        why = unfinished(r)
        if why:
            skipped.append((str(r), why))
            _skipped(f"compare: skipped {r}: {why}", say_skipped)
        else:
            finished.append(r)
    if not finished:
        raise invalid("runs", [str(r) for r in run_dirs], "at least one finished run directory (with model.json)",
                      note="none has finished training")
    summaries = []
    for r in finished:
        try:
            summaries.append(summarize_run(r))
        except ImgclfError as exc:  # one corrupt file no longer ends the whole comparison
            if not is_run_dir(r):
                raise  # not a run at all (a typo, a data folder): to fix, not a run to pass over
            why = f"unreadable: {str(exc).splitlines()[0]}"
            skipped.append((str(r), why))
            _skipped(f"compare: skipped {r}: {why}", say_skipped)
    _refuse_fewer_than_two(run_dirs, len(summaries), skipped)
    for s in summaries:
        if s.evaluation is None:  # its group's n counts it, its test columns do not: their cells give their own n
            _skipped(f"compare: {s.path} is not evaluated (no metrics.json): its test columns are empty (imgclf "
                     f"evaluate {shell_word(s.path)} scores it)", say_skipped)
    by_key: dict[str, list[RunSummary]] = {}
    dropped: list[tuple[RunSummary, list[RunSummary]]] = []  # (a copy or a rerun, the group that keeps its twin)
    for s in summaries:
        # scores on another folder (written over the run's own by an older release) are never averaged with
        # scores on the run's own split
        other_data = s.split if ":" in s.split else ""
        group = by_key.setdefault(_experiment(s.config) + other_data + (s.data_set or ""), [])
        twin = next((t for t in group if _same_sample(t, s)), None)
        if twin is not None:  # a copy or a rerun: one more sample of the same seed would narrow the ±std falsely
            # the evaluated one is kept: an interrupted first attempt hid its evaluated rerun's test scores
            keep, drop = (s, twin) if twin.evaluation is None and s.evaluation is not None else (twin, s)
            if keep is s:
                group[group.index(twin)] = s
            dropped.append((drop, group))
            continue
        group.append(s)
    for drop, group in dropped:  # named by the run kept in the end (a later evaluated rerun may replace a twin)
        keep = next(t for t in group if _same_sample(t, drop))
        what = f"seed {drop.seed}" + (f", fold {drop.config['fold']}" if drop.config.get("fold") else "")
        why = f"the same settings and {what} as {keep.path} (a copy or a rerun): counted once"
        skipped.append((str(drop.path), why))
        _skipped(f"compare: skipped {drop.path}: {why}", say_skipped)
    keys = sorted({k for s in summaries for k in s.config} - NOT_THE_EXPERIMENT)
    members = list(by_key.values())
    differing = [k for k in keys if _differs(k, [m[0].config.get(k) for m in members])]
    groups = []
    # floats rounded, unless that makes two groups' labels one
    short = [tuple(setting_text(k, m[0].config.get(k)) for k in differing) for m in members]
    digits = 4 if len(set(short)) == len(short) else None
    experiments = [_experiment(m[0].config) for m in members]
    for runs in members:
        # Label a group by what sets it apart; with one group only, by its model (several seeds) or run name.
        if differing:
            label = ", ".join(f"{k}={setting_text(k, runs[0].config.get(k), digits, clip=False)}"
                              for k in differing)
        else:
            label = str(runs[0].config.get("model")) if len(runs) > 1 else runs[0].name
        if ":" in runs[0].split:
            label += f", scored on {short_value(runs[0].split)}"
        if experiments.count(_experiment(runs[0].config)) > 1:  # one config, other images: said
            label += (f", {runs[0].data_images:,} training images [data {(runs[0].data_set or '-')[:6]}]"
                      if runs[0].data_images is not None else ", training images unknown (no readable dataset.json)")
        folds = sorted({r.config.get("fold") for r in runs if r.config.get("fold")})
        if folds:
            label += f" ({len(folds)} of {runs[0].config.get('folds')} folds)"
        groups.append(Group(label, runs, {key: mean_std(r.values[key] for r in runs) for key, *_ in COLUMNS}))
    groups, sections = sectioned(groups)
    for i, g in enumerate(groups):
        g.key = _letter(i)
    return Comparison(groups, differing, sorted({s.split for s in summaries}), sections, skipped, digits)


def _differs(key: str, values: list[Any]) -> bool:
    """Whether groups whose settings hold `values` for `key` differ in it (IGNORED_WHEN_UNSET: their None is any
    value, unless another is not the setting's default, which the labels then say)."""
    if key not in IGNORED_WHEN_UNSET or None not in values:
        return len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1
    from ..config import TrainConfig

    given = {json.dumps(v, sort_keys=True, default=str) for v in values if v is not None}
    default = json.dumps(TrainConfig.model_fields[key].default, sort_keys=True, default=str)
    return len(given) > 1 or given - {default} != set()


def _expand_folders(run_dirs: list[str | os.PathLike]) -> list[str | os.PathLike]:
    """Each given folder that is not a run directory but holds some, replaced by those runs (sorted)."""
    out: list[str | os.PathLike] = []
    for r in run_dirs:
        path = Path(r)
        inside = find_run_dirs(path) if path.is_dir() and not is_run_dir(path) else []
        out.extend(inside or [r])  # a folder with no run under it stays, to be refused by name
    return out


def _skipped(line: str, say: bool) -> None:
    if say:  # the imgclf logger, as every warning about the user's runs and data (silenced as any library's logs)
        from ..notices import warn

        warn(line)


def _refuse_fewer_than_two(run_dirs: list[Any], left: int, skipped: list[tuple[str, str]]) -> None:
    """One run left once the others were passed over (unfinished, unreadable): a page of one run compared with
    nothing, where one run given is refused."""
    if left < 2:
        raise invalid("runs", [str(r) for r in run_dirs], "at least two readable, finished run directories",
                      note=f"{left} left once these were passed over: "
                           + "; ".join(f"{r}: {why}" for r, why in skipped[:3])
                           + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""))


def unfinished(run_dir: str | os.PathLike) -> str:
    """Why a run directory is still unfinished (no model card yet: training interrupted or under way), or ""
    for a finished run and for anything that is not a run at all (summarize_run reports those)."""
    run = RunDir(run_dir)
    if run.has(FINISHING_FILE) and run.has("model.json"):
        return "interrupted while it was being finished (imgclf train --resume finishes it)"
    if run.has("model.json") and (past := run.epochs_past_card()):
        # resumed for more epochs: its card and scores are of the run before, its history and weights after
        return (f"resumed for more epochs, {past} trained past its model.json so far (imgclf train --resume "
                "finishes it; its scores are then of its new weights)")
    if run.has("model.json") or not is_run_dir(run_dir):
        return ""
    from ..records.tune import INTERRUPTED_TRIAL, trial_of_run

    trial = trial_of_run(run.path.absolute())
    stopped = "" if trial is None else trial.stopped or ""
    if trial is not None and trial.state == "pruned":  # resuming it would make a finished run of a rejected trial
        return f"a trial its search pruned ({stopped or 'pruned'}), not a run to compare"
    if stopped.startswith("interrupted"):  # as `imgclf runs` says of it (train --resume would test it)
        return f"interrupted, no model.json ({INTERRUPTED_TRIAL})"
    if trial is not None and trial.state == "fail":
        return f"a trial that failed in its search ({stopped or 'failed'}), not a run to compare"
    from ..locks import is_locked
    from ..records.run_dir import LOCK_FILE

    if is_locked(run.path / LOCK_FILE):  # its training holds the folder now (`imgclf runs` says so too)
        return "running, no model.json yet (another process holds its train.lock: wait for its training to end)"
    if run.has("checkpoints/last.ckpt"):
        return "interrupted, no model.json (imgclf train --resume continues it)"
    return "unfinished, no model.json (training stopped before its first checkpoint, or is under way)"


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"G{i + 1}"


def setting_text(key: str, value: Any, digits: int | None = 4, clip: bool = True) -> str:
    """A setting's value for a label: what an unset or empty value means rather than `augment=`; a float to
    `digits` significant digits (a searched rate read lr=0.008459126528049376; None: all of them). clip: cut at
    40 characters (a group's label is never cut: two augment strings alike in their first 40 read as one)."""
    if value is None or value == "" or value == {} or value == []:
        return UNSET_MEANS.get(key, "none")
    if isinstance(value, float) and digits is not None:
        return f"{value:.{digits}g}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value) and key == "data":
        return " + ".join(short_value(v, 30) for v in value)  # several data folders
    return short_value(value, 40 if clip else None)
