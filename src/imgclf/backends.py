"""Which engine runs a run's predictions: torch (the trained network) or onnxruntime (its export). One loader for
`imgclf predict --backend` and `imgclf serve --backend`, without the web stack's imports."""

from __future__ import annotations

import os

from .errors import invalid
from .hardware import MAX_THREADS, check_threads  # noqa: F401  (MAX_THREADS: re-exported)

BACKENDS = ("torch", "onnx")


def check_backend(argument: str, backend: str) -> str:
    """Refused before the run is loaded: the flag is wrong whatever the run holds."""
    if backend not in BACKENDS:
        raise invalid(argument, backend, BACKENDS)
    return backend


def load_classifier(run_dir: str | os.PathLike, backend: str = "torch", threads: int | None = None,
                    precision: str = "auto"):
    """A `Classifier` (torch) or `OnnxClassifier` (RUN/export/model.onnx, or an .onnx file) with the same
    predict. threads: forward-pass threads (torch's are process-wide: set only when asked for). precision: what
    the torch backend's network runs at (`prediction_precision.PRECISIONS`); the ONNX graph is fp32, so with it
    auto or 32 is accepted."""
    check_backend("backend", backend)
    threads = check_threads(threads)
    if backend == "torch":
        import torch

        from .inference import Classifier

        if threads is not None:
            torch.set_num_threads(threads)
        return Classifier.load(run_dir, precision=precision)
    from .export import load_onnx

    return load_onnx(run_dir, threads=threads, precision=precision)
