"""Shared fixtures: small generated image folders and one tiny trained run, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

# Under pytest-xdist (`make test` runs `-n auto`) each worker takes its share of the cores, so that two workers
# on two cores do not each run two torch threads; set before numpy and torch load, and inherited by the processes
# that tests start.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
if _WORKERS > 1 and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // _WORKERS))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from run_walk import SPOILED_MARK, check_run_dirs  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def make_image_folder(root: Path, classes=("cat", "dog", "fox"), per_class: int = 20, size: int = 16,
                      mode: str = "RGB", seed: int = 0, layout: str = "flat", per_split: dict | None = None) -> Path:
    """Write learnable synthetic PNGs: class i is a bright bar at a class-specific place, plus noise.

    layout="flat": root/<class>/*.png; layout="splits": root/<split>/<class>/*.png with per_split counts.
    """
    rng = np.random.default_rng(seed)
    splits = {None: per_class} if layout == "flat" else (per_split or {"train": per_class, "test": per_class // 2})
    for split, count in splits.items():
        base = root if split is None else root / split
        for ci, name in enumerate(classes):
            (base / name).mkdir(parents=True, exist_ok=True)
            for j in range(count):
                img = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
                band = slice(ci * size // len(classes), (ci + 1) * size // len(classes))
                if ci % 2 == 0:
                    img[band, :, :] = 230
                else:
                    img[:, band, :] = 230
                img[..., ci % 3] = np.maximum(img[..., ci % 3], 120)
                pil = Image.fromarray(img)
                if mode != "RGB":
                    pil = pil.convert(mode)
                pil.save(base / name / f"{name}_{j:03d}.png")
    return root


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("imgclf-cache")
    old = os.environ.get("IMGCLF_CACHE")
    os.environ["IMGCLF_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("IMGCLF_CACHE", None)
    else:
        os.environ["IMGCLF_CACHE"] = old


@pytest.fixture()
def steps():
    """The training optimiser steps taken while a test runs (one entry each): a resumed run that repeats an epoch
    takes more than the uninterrupted one. The temperature fitted after training (LBFGS on one scalar) is not an
    epoch's step."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    counted: list[int] = []
    handle = register_optimizer_step_post_hook(
        lambda optimizer, *_: None if isinstance(optimizer, torch.optim.LBFGS) else counted.append(1))
    yield counted
    handle.remove()


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """3 classes x 20 RGB 16x16 images, flat layout."""
    return make_image_folder(tmp_path_factory.mktemp("flat"))


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    from imgclf.data.sources import export_digits

    return export_digits(tmp_path_factory.mktemp("digits") / "digits")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, image_folder) -> Path:
    """A complete run directory: simple_cnn, 3 classes, 5 epochs (a few seconds); learns the classes.

    Trained with hflip and a 1-pixel crop so that its evaluation has test-time views (TTA uses only views
    training made); the classes are bars whose place a mirror or a pixel's shift barely moves."""
    import imgclf

    out = tmp_path_factory.mktemp("runs") / "tiny"
    run = imgclf.fit({"data": str(image_folder), "model": "simple_cnn", "img_size": 16, "epochs": 5,
                      "augment": "hflip,crop=1",
                      "batch_size": 8, "lr": 3e-3, "out": str(out), "progress": False, "seed": 0,
                      "model_args": {"width": 8}, "val_split": 0.2, "test_split": 0.2})
    return run.path


def pytest_configure(config):
    config.addinivalue_line("markers", "run_last: runs after every other test (walks what they wrote)")


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.get_closest_marker("run_last") is not None)  # stable: others keep their order


def pytest_sessionfinish(session, exitstatus):
    """On the pytest-xdist controller, once every worker is done: the walk of tests/test_records.py over every
    worker's run directories (the workers' base folders are inside the controller's). A mismatch fails the
    session and is printed."""
    config = session.config
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return  # a worker, or a single-process session: the test itself walks
    base = config._tmp_path_factory.getbasetemp()  # the folder xdist hands each worker a subfolder of
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write("\n")  # xdist's progress dots do not end their line
    try:
        checked = check_run_dirs(base)
    except Exception as exc:  # an assertion or a schema error: name it, fail the session
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter:
            reporter.write_line(f"FAILED the walk over every run directory under {base}: {exc!r}", red=True)
        return
    if reporter:
        reporter.write_line(f"every run directory the workers wrote under {base} matches its records "
                            f"({sum(checked.values())} files)")


def spoilable_copy(run_dir: Path, dest: Path) -> Path:
    """A copy of a run directory that a test may corrupt on purpose. The mark keeps it out of the walk that
    validates every run directory the suite wrote (tests/test_records.py)."""
    import shutil

    copy = Path(shutil.copytree(run_dir, dest))
    (copy / SPOILED_MARK).write_text("this run directory was corrupted on purpose by a test\n")
    return copy
