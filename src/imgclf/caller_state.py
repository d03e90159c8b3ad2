"""What a training leaves changed in the calling process, put back when `imgclf.fit`, `tune` or `lr_find` returns:
the global random generators (Lightning's `seed_everything` reseeds them all), the environment variables it sets
for the processes a data-parallel launch starts, and the log levels it lowers to keep Lightning and Optuna quiet.
A notebook that seeds numpy, calls fit, then draws its own numbers gets the numbers its seed gives."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
from collections.abc import Iterator

import numpy as np

ENVIRONMENT = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "IMGCLF_RUN_DIR")
# not matplotlib.font_manager: plotting quiets it once per process (a cached call), for good
LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.distributed",
           "lightning.pytorch.tuner.lr_finder",
           "lightning.pytorch.trainer.connectors.checkpoint_connector", "lightning.pytorch.loggers.mlflow", "mlflow")


@contextlib.contextmanager
def kept_caller_state() -> Iterator[None]:
    import torch

    python, numpy, torch_cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    # only once CUDA is up: reading its state would start it, which a fork-based launch (ddp_fork, ddp_notebook)
    # then refuses; a seed given before CUDA started is not kept
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    environment = {name: os.environ.get(name) for name in ENVIRONMENT}
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    optuna = sys.modules.get("optuna")
    verbosity = optuna.logging.get_verbosity() if optuna is not None else None
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
        torch.set_rng_state(torch_cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        optuna = sys.modules.get("optuna")
        if optuna is not None:
            optuna.logging.set_verbosity(verbosity if verbosity is not None else optuna.logging.INFO)
