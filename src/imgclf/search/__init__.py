"""Hyper-parameter search (`imgclf tune`, `imgclf.tune`): Optuna over ordinary runs of the pipeline.

space.py: what may be searched (--space YAML, a model family's default); search.py: the study, its trials,
resume and budget; outputs.py: best.yaml, tune.json and tune.html.
"""

from __future__ import annotations

from .search import TuneResult, tune

__all__ = ["TuneResult", "tune"]
