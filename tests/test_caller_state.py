"""The Python API leaves the caller's process as it found it: a notebook that seeds its generators, trains, then
draws numbers gets the numbers its own seed gives (Lightning's seed_everything reseeded every generator), and no
environment variable or log level of the training stays behind."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import pytest
import torch

import imgclf
from imgclf.errors import ImgclfError

TINY = {"img_size": 16, "epochs": 1, "batch_size": 16, "progress": False, "model_args": {"width": 4}, "seed": 3}


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_fit_puts_back_the_generators_environment_and_log_levels(image_folder, tmp_path):
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    rank_zero.setLevel(logging.DEBUG)
    before_env = {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "IMGCLF_RUN_DIR")}
    random.seed(11), np.random.seed(11), torch.manual_seed(11)
    expected = _draws()
    random.seed(11), np.random.seed(11), torch.manual_seed(11)
    imgclf.fit(data=str(image_folder), out=str(tmp_path / "run"), report=False, **TINY)
    assert _draws() == expected
    assert {k: os.environ.get(k) for k in before_env} == before_env
    assert rank_zero.level == logging.DEBUG
    # but not what imgclf quiets once per process for its own figures (a cached call would not quiet it again)
    from imgclf.plotting import font_families

    font_families.cache_clear()
    logging.getLogger("matplotlib.font_manager").setLevel(logging.NOTSET)
    imgclf.fit(data=str(image_folder), out=str(tmp_path / "again"), **TINY)  # its report draws figures
    assert logging.getLogger("matplotlib.font_manager").level == logging.ERROR


def test_fit_leaves_every_loggers_level_as_the_caller_set_it(image_folder, tmp_path):
    """Each logger training quiets is put back, not only those listed: Lightning's "Initializing distributed"
    logger stayed at WARNING after fit."""
    imgclf.fit(data=str(image_folder), out=str(tmp_path / "first"), report=False, **TINY)  # first imports done
    loggers = {name: logger for name, logger in logging.root.manager.loggerDict.items()
               if isinstance(logger, logging.Logger)}
    before = {name: logger.level for name, logger in loggers.items()}
    chosen = logging.WARNING + 5  # a level no library sets (quieter than WARNING: the run's output is unchanged)
    try:
        for logger in loggers.values():
            logger.setLevel(chosen)
        imgclf.fit(data=str(image_folder), out=str(tmp_path / "run"), report=False, **TINY)
        changed = {name: logging.getLevelName(logger.level) for name, logger in loggers.items()
                   if logger.level != chosen}
    finally:
        for name, logger in loggers.items():
            logger.setLevel(before[name])
    assert changed == {}


def test_a_folder_given_as_the_config_names_data():
    with pytest.raises(ImgclfError, match=r"^config must be a TrainConfig.*Received: an object of type int$"):
        imgclf.fit(5)
    with pytest.raises(ImgclfError, match=r"config must be a TrainConfig.*Received: config='data/flowers'.*"
                                          r"Give the image folder as data= \(imgclf.fit\(data='data/flowers'"):
        imgclf.fit("data/flowers")
    for function in ("lr_find", "tune"):  # each names itself: the lr_find one named imgclf.fit
        with pytest.raises(ImgclfError, match=rf"Give the image folder as data= \(imgclf\.{function}\(data="):
            getattr(imgclf, function)("data/flowers", **({"trials": 2} if function == "tune" else {}))


def test_a_run_or_a_listed_run_goes_where_a_run_folder_does(tiny_run, image_folder, tmp_path):
    """imgclf.load(run) raised a bare TypeError (expected str, not Run)."""
    run = imgclf.fit(data=str(image_folder), out=str(tmp_path / "run"), report=False, **TINY)
    assert imgclf.load(run).card.classes == imgclf.load(run.path).card.classes
    row = next(r for r in imgclf.list_runs(tmp_path) if r.name == "run")
    assert imgclf.evaluate(row).count == imgclf.evaluate(run.path).count
    # and it can be logged as JSON (json.dumps(dataclasses.asdict(run)) fails on its Path)
    import json

    record = json.loads(json.dumps(run.as_dict()))
    assert record["path"] == str(run.path) and record["metrics"]["accuracy"] == run.metrics.accuracy
    assert record["config"]["seed"] == TINY["seed"] and record["epochs_run"] == run.epochs_run


def test_a_run_given_as_out_is_that_folder_and_resume_checks_keywords(image_folder, tmp_path):
    """out=run (a path-like Run) became a folder named after its repr in the current directory."""
    run = imgclf.fit(data=str(image_folder), out=str(tmp_path / "run"), report=False, **TINY)
    with pytest.raises(ImgclfError, match="holds another run"):
        imgclf.fit(data=str(image_folder), out=run, report=False, **TINY)
    with pytest.raises(ImgclfError, match=r"^setting must be one of .*Did you mean: overwrite\?"):
        imgclf.fit(resume=run, overwrit=True)


def test_loading_explaining_and_evaluating_leave_the_callers_generators(tiny_run, image_folder, tmp_path):
    """The network's random initialisation, which the run's weights replace, drew from the caller's torch
    generator: torch.manual_seed(0); imgclf.load(run); torch.rand(1) gave another number."""
    import shutil

    tiny_run = shutil.copytree(tiny_run, tmp_path / "run")  # evaluate writes evaluations/ into it
    image = str(next((image_folder / "cat").iterdir()))
    for call in (lambda: imgclf.load(tiny_run), lambda: imgclf.explain(tiny_run, [image]),
                 lambda: imgclf.evaluate(tiny_run, split="val", progress=False)):
        random.seed(5), np.random.seed(5), torch.manual_seed(5)
        expected = _draws()
        random.seed(5), np.random.seed(5), torch.manual_seed(5)
        call()
        assert _draws() == expected


def test_a_loaded_classifier_goes_where_a_run_does_and_other_objects_are_named(tiny_run, image_folder, tmp_path):
    import shutil

    tiny_run = shutil.copytree(tiny_run, tmp_path / "run")  # evaluate writes evaluations/ into it
    clf = imgclf.load(tiny_run)
    image = str(next((image_folder / "cat").iterdir()))
    assert imgclf.evaluate(clf, split="val", progress=False).count == \
        imgclf.evaluate(tiny_run, split="val", progress=False).count
    # and explain's predictions are predict's to the last digit (folded batch norms both)
    assert imgclf.explain(clf, [image])[0].prediction.top == clf.predict(image)[0].top
    for bad in (None, 3, clf.card):
        with pytest.raises(ImgclfError, match=rf"^run_dir must be a run directory's path .*Received: an object of type "
                                              rf"{type(bad).__name__}"):
            imgclf.load(bad)
    with pytest.raises(ImgclfError, match=r"fold_batch_norm must be one of \{False, True\}.*'no'"):
        imgclf.load(tiny_run, fold_batch_norm="no")


def test_the_first_tune_of_a_process_leaves_the_callers_random(image_folder, tmp_path):
    """Importing the search (optuna, rich) drew from `random` before the caller's state was kept."""
    import subprocess
    import sys

    code = ("import random, imgclf; random.seed(5); expected = random.random(); random.seed(5); "
            f"imgclf.tune(data={str(image_folder)!r}, img_size=8, epochs=1, trials=1, out={str(tmp_path / 's')!r}, "
            "progress=False, model_args={'width': 4}, batch_size=16); assert random.random() == expected, 'moved'")
    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
