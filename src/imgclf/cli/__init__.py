"""The `imgclf` command: a thin layer over the Python API. Errors a user can fix exit with status 2.

One module per kind of command (`training`, `data`, `run_commands`, `catalogue`, `housekeeping`); importing them registers their
commands on `app`, in the order `imgclf --help` lists them.
"""

from __future__ import annotations

import os

# importing a module registers its commands, in this order in `imgclf --help`
from . import training  # noqa: F401, I001
from . import data  # noqa: F401
from . import run_commands  # noqa: F401
from . import catalogue  # noqa: F401
from . import housekeeping  # noqa: F401
from .base import app, cache_app, data_app, defer_options, study_app

defer_options(app, data_app, study_app, cache_app)


def main() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    app()


__all__ = ["app", "main"]
