"""The class-imbalance study of S4 (Buda et al. 2017 step imbalance) as a grid of ordinary runs.

For every ratio rho a step-imbalanced subset of the data is linked (`data.subset`); for every
(seed, rho, configuration) cell `imgclf.fit` writes a normal run directory under OUT/runs/. The study is
resumable: finished cells (metrics.json present) are skipped, interrupted ones continue from their
checkpoints/last.ckpt, and calling it again with more ratios, configurations or seeds extends the grid.
Everything in study.json / study.html is read back from the run directories' files.

What a cell's configuration and protocol mean: `study.configurations`.
"""

from __future__ import annotations

import math
import os
import shutil
import time
import unicodedata
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Interrupted, invalid, path_argument
from ..io import outside_data
from ..notices import each_once
from ..stats import mean_std
from .cells import read_cell, refuse_cells_configured_otherwise, run_cell
from .configurations import (PROTOCOLS, S4_CONFIGS, S4_RHOS, S4_SPLIT, check_overrides, check_protocol,
                             built_in_regularisation, configuration_settings, held_out, refuse_respelled,
                             say_s4_threshold)
from .files import any_cell_in_use, any_epoch_saved, read_study, write_study


def _parse_rhos(rhos: Sequence[float]) -> list[float]:
    out = []
    for r in rhos:
        try:
            value = float(r)
        except (TypeError, ValueError):
            raise invalid("rhos", list(rhos), "ratios >= 1 such as 1,3,7,15", note=f"{r!r} is not a number") from None
        if not math.isfinite(value) or value < 1:
            raise invalid("rhos", list(rhos), "ratios >= 1 such as 1,3,7,15")
        out.append(value)
    if not out or len(set(out)) != len(out):
        raise invalid("rhos", list(rhos), "distinct ratios such as 1,3,7,15")
    labels = [rho_label(r) for r in out]
    if len(set(labels)) != len(labels):  # their folders and cells would be the same ones (rho1 for 1 and 1.0000001)
        same = sorted({label for label in labels if labels.count(label) > 1})
        raise invalid("rhos", list(rhos), "ratios that differ in their first 6 digits such as 1,3,7,15",
                      note=f"{', '.join(same)} named twice: their subsets and runs would share folders")
    return out


def scored_split(runs: list[dict[str, Any]], protocol: str) -> str:
    """What the cells' scores were measured on: test, or validation where the data gave the standard protocol no
    test split (a train/ and val/ tree: each run is then evaluated on the split that chose its kept epoch)."""
    splits = {r["split"] for r in runs if r["finished"]}
    return "test" if protocol == "s4" or not splits or splits == {"test"} else "validation"


def rho_label(rho: float) -> str:
    return f"{rho:g}"


def cell_name(rho: float, config: str, seed: int) -> str:
    return f"rho{rho_label(rho)}-{config}-seed{seed}"


def _compared(request: dict[str, Any]) -> dict[str, Any]:
    """A study's request with its overrides as the settings they make, less those that cannot change its results
    (--no-progress, --num-workers, ...): a re-run that differs only in them, or that gives a default or the same
    value spelt otherwise (--lr 1e-3 after --lr 0.001, --batch-size 64), continues the study."""
    from ..config import RUNTIME_ONLY, make_config

    given = {k: v for k, v in (request.get("overrides") or {}).items() if k not in RUNTIME_ONLY}
    try:
        made = make_config(data=request["data"], model=request["model"], **given).model_dump(mode="json")
    except Exception:  # no request yet, or an older release's settings: compared as written
        return {**request, "overrides": given}
    return {**request, "overrides": {k: v for k, v in made.items() if k not in RUNTIME_ONLY | {"data", "model", "out"}}}


def _changes(was: dict[str, Any], now: dict[str, Any]) -> dict[str, str]:
    """What differs between two compared requests, a setting of the overrides named as itself."""
    changed = {k: f"{was.get(k)!r} -> {now[k]!r}" for k in now if k != "overrides" and was.get(k) != now[k]}
    old, new = was.get("overrides") or {}, now.get("overrides") or {}
    changed.update({k: f"{old.get(k)!r} -> {new.get(k)!r}" for k in sorted(old.keys() | new.keys())
                    if old.get(k) != new.get(k)})
    return changed


@each_once()  # the cells share data and settings: each cell's training repeated the same warnings
def run_imbalance_study(data: str | os.PathLike, out: str | os.PathLike, *, per_class: int,
                        rhos: Sequence[float] = S4_RHOS, mu: float | None = None,
                        configs: Sequence[str] = S4_CONFIGS, seeds: Sequence[int] = (0,), model: str | None = None,
                        minority: Sequence[str] | None = None, subset_seed: int = 0,
                        overrides: dict[str, Any] | None = None, run_reports: bool = True,
                        protocol: str = "standard", log: Callable[[str], None] | None = None,
                        config_file: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train every missing (seed, rho, configuration) cell, then write study.json and study.html in `out`.

    `overrides` may name a recipe, as `imgclf study imbalance --recipe` does, and `config_file` a YAML file of
    settings (`--config`): their settings apply under the other overrides, less what the configurations and
    protocol decide, and their model is the default `model` (else caltech_cnn). `protocol` is one of PROTOCOLS:
    "s4" splits every subset 70/30 into train and test and records the test curves per epoch (S4's protocol; see
    S4_SPLIT). `run_reports=False` skips each run's own report.html (it can
    cost more than a tiny run's training); `imgclf report RUN` can still write one later.
    """
    from ..config import make_config
    from ..config_text import parse_mapping
    from ..data.subset import build_subset, plan_subset, subset_notes
    from ..pipeline import fit
    from . import DEFAULT_MODEL
    from ..train.fit import TrainingInterrupted

    log = log or (lambda message: None)
    path_argument("data", data, "the image folder to study (str or os.PathLike)")  # "" was blamed on out
    if isinstance(out, str) and not out.strip():  # an unset $OUT: the study was written into the current folder
        raise invalid("out", out, "a folder for the study")
    out = Path(out)
    overrides = dict(overrides or {})
    if isinstance(overrides.get("model_args"), str):  # as the CLI passes it: "width=4"; study.json stores a mapping
        overrides["model_args"] = parse_mapping("model_args", overrides["model_args"])
    check_protocol(protocol)
    if minority:  # as the subsets read them (NFC): the same names typed in NFD were another study's settings
        minority = [unicodedata.normalize("NFC", name) for name in minority]
    from .settings import file_sources, study_settings, unread_per_configuration

    # the command's layering (recipe, then file, then the flags), less what the configurations and protocol decide
    # the model given counts as a flag: a recipe's model_args for another model are dropped, as `imgclf train` does
    given = {**overrides, "model": model} if model else overrides
    recipe_model, overrides, ignored = study_settings(config_file, given, protocol)
    from_file = file_sources(config_file, overrides, given)
    if ignored:
        log(f"note: the study's configurations{' and protocol' if protocol != 'standard' else ''} set "
            f"{', '.join(ignored)}; ignoring the recipe/config file's values")
    model = model or recipe_model or DEFAULT_MODEL
    check_overrides(overrides, protocol)
    rhos = _parse_rhos(rhos)
    if not configs or len(set(configs)) != len(configs):  # "none,none" ran the grid with the second "skipped"
        raise invalid("configs", list(configs), "distinct configurations, at least one, such as none,reg,reg+bn")
    settings = {c: configuration_settings(c, model) for c in configs}
    refuse_respelled(configs)
    try:
        seeds = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise invalid("seeds", list(seeds), "distinct integers >= 0 such as 0,1,2") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise invalid("seeds", list(seeds), "distinct integers >= 0 such as 0,1,2")
    # the study's links inside the data folder would be read as one more class of it: refused before any file
    outside_data("out", out, data)
    # fail on a bad override before any work (an img_size the model cannot take was refused by the first cell,
    # after the subsets and study.json were written)
    from ..models import get_model_info
    from ..pipeline.prepare import input_size

    input_size(make_config(from_file, data=str(data), model=model, **overrides,
                           **(S4_SPLIT if protocol == "s4" else {})),
               get_model_info(model))
    unread = unread_per_configuration(data, model, overrides, settings, S4_SPLIT if protocol == "s4" else {})
    unread_anywhere = set.intersection(*unread.values())
    if unread_anywhere:
        from ..notices import warn

        warn(f"settings no configuration of this study reads, so they change nothing: "
             f"{', '.join(sorted(unread_anywhere))} (configurations: {', '.join(configs)})")
    for rho in rhos:  # fail on too-small classes before any training
        plan = plan_subset(data, per_class, rho, mu, subset_seed, minority)
    if protocol == "s4" and plan["manifest"]["layout"] != "flat":
        raise invalid("data", data, "a folder of class folders under protocol s4, which splits each imbalanced "
                      "subset 70/30 itself", note="it has train/ (val/, test/) folders", also={"protocol": protocol},
                      hint="Use protocol standard, or point at a folder of class folders")

    request = {"data": str(Path(data).resolve()), "mu": plan["manifest"]["mu"], "per_class": int(per_class),
               "minority": sorted(minority) if minority else None, "model": model, "subset_seed": int(subset_seed),
               "overrides": overrides, "protocol": protocol}
    previous = read_study(out)
    # A study.json from before protocols existed ran the standard one (the record's default).
    before = previous.request.model_dump(mode="json") if previous else {}
    was, now = _compared(before), _compared(request)
    if previous is not None and was != now and not any_epoch_saved(out) and not any_cell_in_use(out):
        # a study whose first cell failed (a setting its model refused, say) holds nothing to keep: the corrected
        # command was refused "holds a study with other settings" until the folder was deleted by hand
        for part in ("runs", "data"):
            shutil.rmtree(out / part, ignore_errors=True)
        previous, was = None, now
    if previous is not None and was != now:
        raise invalid("out", out, "a new folder, or one holding a study with the same settings",
                      note=f"holds a study with other settings: {_changes(was, now)}",
                      hint="Use a new --out (a study can only be extended with more rhos, configs or seeds)")
    cells = {(c.rho, c.config, c.seed) for c in (previous.cells if previous else [])}
    if previous is not None:  # extended with bn+reg after reg+bn: every cell of that configuration trained again
        refuse_respelled(configs, sorted({c.config for c in previous.cells}))
    new = [(rho, c, s) for s in seeds for rho in rhos for c in configs]
    cells |= set(new)
    grid = sorted(cells, key=lambda c: (c[0], c[1], c[2]))
    kept = built_in_regularisation(model, overrides.get("model_args"))
    if kept:
        from ..notices import warn

        warn(f"{model} keeps {' and '.join(kept)} in every configuration: it has no argument to switch "
             f"{'them' if len(kept) > 1 else 'it'} off" + (", so 'none' is not free of regularisation" if "none"
                                                           in configs else "")
             + " (caltech_cnn, S4's model, switches dropout and batch norm)")
    refuse_cells_configured_otherwise(out, [(c, out / "runs" / cell_name(r, c, s)) for r, c, s in grid], model)
    write_study(out, {"request": request, "state": "running", "cells": _cells_json(grid)})
    if protocol == "s4":
        say_s4_threshold(log)
    subsets: dict[float, dict[str, Any]] = {}
    try:
        for rho in sorted({c[0] for c in grid}):
            subsets[rho] = build_subset(data, out / "data" / f"rho{rho_label(rho)}", per_class, rho, mu, subset_seed,
                                        minority, mode="symlink")
            for level, text in subset_notes(subsets[rho]):  # said as `imgclf subset` says it; the page shows it
                log(f"{level}: rho {rho_label(rho)}: {text}")
        started, ran = time.perf_counter(), False
        for k, (rho, config, seed) in enumerate(new, 1):
            run_dir = out / "runs" / cell_name(rho, config, seed)
            train, model_args = settings[config]
            if protocol == "s4":
                train = {**train, **S4_SPLIT}
            try:
                read = {k: v for k, v in overrides.items() if k not in unread[config]}
                status = run_cell(partial(fit, report=run_reports), run_dir, out / "data" / f"rho{rho_label(rho)}",
                                  model, seed, train, model_args, read)
            except TrainingInterrupted as exc:
                # the cell's own hint (imgclf train --resume CELL) would finish that cell only: the study command
                # resumes it and goes on with the rest
                raise TrainingInterrupted(f"{exc.state} (study cell {run_dir.name}). {CONTINUE_STUDY}: finished "
                                          "cells are kept, this one resumes",
                                          state=exc.state, exit_code=exc.exit_code) from None
            log(f"[{k}/{len(new)}] {run_dir.name}: {status}")
            ran = ran or status != "skipped (finished)"
    except BaseException as exc:
        # stopped (Ctrl-C, or a cell's error) while drawing subsets, in a cell or between cells: the file never says
        # "running", and keeps the finished cells' results (an extension stopped after 18 of 28 cells had left only
        # the request, beside a page that still read "16 of 16 runs finished")
        _write_stopped(out, grid, subsets, request)
        if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Interrupted):
            # outside a cell (drawing the subsets, between cells): the study's own way on, as a cell's stop says it
            from ..train.interrupts import Terminated

            said, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("Ctrl-C", 130)
            raise Interrupted(f"imgclf study imbalance interrupted ({said}). {CONTINUE_STUDY}: finished cells "
                              "are kept", exit_code=code) from None
        raise
    # a command that found every cell finished trained nothing: the page keeps the time of the one that did
    seconds = time.perf_counter() - started if ran else getattr(previous, "seconds", None)

    study = write_study(out, summarise(out, grid, subsets, request, seconds))
    from .report import write_study_report

    write_study_report(out, study)
    return study


CONTINUE_STUDY = ("Continue the study by running the same imgclf study imbalance command again (Python: the same "
                  "run_imbalance_study call)")


def _write_stopped(out: Path, grid: list[tuple[float, str, int]], subsets: dict[float, dict[str, Any]],
                   request: dict[str, Any]) -> None:
    """study.json (and study.html) of a study stopped before its grid finished: the finished cells summarised, a
    "partial" study, where every subset was drawn and a cell finished; else the request and the grid,
    "interrupted"."""
    from .report import write_study_report

    finished = any((out / "runs" / cell_name(*cell) / "metrics.json").exists() for cell in grid)
    if finished and set(subsets) == {rho for rho, _, _ in grid}:
        try:
            write_study_report(out, write_study(out, summarise(out, grid, subsets, request)))
            return
        except Exception:  # a summary that fails must not hide why the study stopped: the short record instead
            pass
    write_study(out, {"request": request, "state": "interrupted", "cells": _cells_json(grid)})


def _cells_json(grid: list[tuple[float, str, int]]) -> list[dict[str, Any]]:
    return [{"rho": r, "config": c, "seed": s, "run": f"runs/{cell_name(r, c, s)}"} for r, c, s in grid]


# ---------------------------------------------------------------------------------------------------
# Reading the grid back from the run directories
# ---------------------------------------------------------------------------------------------------
def _class_scores(done: list[dict[str, Any]], cls: str) -> dict[str, Any]:
    """A class's precision and recall, means over the seeds that define them: recall over those whose scored split
    holds images of it (a seed without any has no recall, not a recall of 0, as `mean_recall` reads it), precision
    over those that predicted it at all (a seed that never did has no precision: the page says "no score, not a
    score of 0", and the run's report dashes it); None where no seed does."""
    cells = [r["per_class"][cls] for r in done]
    held = [c["recall"] for c in cells if c["support"] > 0]
    # cells from before "predicted" was recorded count as predicting it (their precision was averaged as it stood)
    precise = [c["precision"] for c in cells if c["support"] > 0 and (c.get("predicted") is None or c["predicted"])]
    return {"precision": float(np.mean(precise)) if precise else None,
            "recall": float(np.mean(held)) if held else None,
            "support": int(np.mean([c["support"] for c in cells]))}


def summarise(out: Path, grid: list[tuple[float, str, int]], subsets: dict[float, dict[str, Any]],
              request: dict[str, Any], seconds: float | None = None) -> dict[str, Any]:
    """study.json: every cell's numbers, mean +- std over seeds per (rho, config), and S4's per-class table."""
    from ..data.subset import subset_notes

    from .. import hardware

    any_subset = next(iter(subsets.values()))
    minority = any_subset["minority"]
    classes = any_subset["classes"]
    protocol = request.get("protocol", "standard")
    runs = []
    for rho, config, seed in grid:
        rel = f"runs/{cell_name(rho, config, seed)}"
        cell = read_cell(out / rel, minority, protocol)
        runs.append({"rho": rho, "config": config, "seed": seed, "run": rel, "finished": cell is not None,
                     **(cell or {})})
    summary, table = [], {}
    for rho in sorted({r for r, _, _ in grid}):
        for config in sorted({c for r, c, _ in grid if r == rho}, key=_config_order):
            done = [r for r in runs if r["rho"] == rho and r["config"] == config and r["finished"]]
            row = {"rho": rho, "config": config, "seeds": [r["seed"] for r in done]}
            for key in ("accuracy", "macro_recall", "minority_recall", "majority_recall", "final_train_acc",
                        "overfitting_onset", "train_seconds"):
                row[key] = mean_std(r.get(key) for r in done).as_dict()
            summary.append(row)
            if done:
                table.setdefault(config, {})[rho_label(rho)] = {c: _class_scores(done, c) for c in classes}
    finished = sum(r["finished"] for r in runs)
    return {
        "request": request,
        "protocol": {"name": protocol, "description": PROTOCOLS[protocol], "held_out": held_out(protocol),
                     "settings": dict(S4_SPLIT) if protocol == "s4" else {}},
        "state": "complete" if finished == len(runs) else "partial",
        "cells": _cells_json(grid),
        "classes": classes,
        "minority": minority,
        "majority": [c for c in classes if c not in minority],
        "subsets": {rho_label(r): {k: s[k] for k in ("counts", "total", "rho_actual", "minority_count",
                                                      "majority_count", "exact")}
                    | {"layout": s.get("layout", "flat"), "other_splits": s.get("other_splits", {}),
                       "notes": [text for _, text in subset_notes(s)]}
                    for r, s in sorted(subsets.items())},
        "scored": scored_split(runs, protocol),
        "configs": {c: dict(zip(("train", "model_args"), configuration_settings(c, request["model"])))
                    for c in sorted({c for _, c, _ in grid}, key=_config_order)},
        "model_keeps": built_in_regularisation(request["model"], request["overrides"].get("model_args")),
        "summary": summary,
        "table": table,
        "curves_by_config": curves_by_config(runs),
        "runs": runs,
        "finished_runs": finished,
        "seconds": None if seconds is None else round(seconds, 1),
        "hardware": hardware.describe(),
        "versions": hardware.versions(),
    }


def curves_by_config(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{rho: {configuration: curves}}: every curve of the finished cells averaged over seeds epoch by epoch,
    what S4's figure overlays for its configurations. An epoch some seeds did not reach (early stopping) is the
    mean of those that did; `seeds` per epoch says how many."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    done = [r for r in runs if r["finished"]]
    for rho in sorted({r["rho"] for r in done}):
        by_config = {}
        for config in sorted({r["config"] for r in done if r["rho"] == rho}, key=_config_order):
            cells = [r for r in done if r["rho"] == rho and r["config"] == config]
            epochs = max(len(r["curves"]["loss"]) for r in cells)
            entry: dict[str, Any] = {"seeds": [r["seed"] for r in cells],
                                     "seeds_per_epoch": [sum(len(r["curves"]["loss"]) > e for r in cells)
                                                         for e in range(epochs)]}
            for key in cells[0]["curves"]:
                entry[key] = [_mean_at(cells, key, e) for e in range(epochs)]
            by_config[config] = entry
        out[rho_label(rho)] = by_config
    return out


def _mean_at(cells: list[dict[str, Any]], key: str, epoch: int) -> float | None:
    values = [c["curves"][key][epoch] for c in cells if epoch < len(c["curves"][key])]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return round(float(np.mean(finite)), 6) if finite else None


def _config_order(name: str) -> tuple[int, str]:
    order = {"none": 0, "reg": 1, "reg+bn": 2}
    return (order.get(name, 3), name)
