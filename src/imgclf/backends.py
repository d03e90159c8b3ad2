"""Which engine runs a run's predictions: torch (the trained network) or onnxruntime (its export). One loader for
`imgclf predict --backend` and `imgclf serve --backend`, without the web stack's imports."""

from __future__ import annotations

import os

from .errors import invalid

BACKENDS = ("torch", "onnx")


def check_backend(argument: str, backend: str) -> str:
    """Refused before the run is loaded: the flag is wrong whatever the run holds."""
    if backend not in BACKENDS:
        raise invalid(argument, backend, BACKENDS)
    return backend


MAX_THREADS = 1024  # torch ran 3,000 and crashed at 100,000


def load_classifier(run_dir: str | os.PathLike, backend: str = "torch", threads: int | None = None,
                    precision: str = "auto"):
    """A `Classifier` (torch) or `OnnxClassifier` (RUN/export/model.onnx, or an .onnx file) with the same
    predict. threads: forward-pass threads (torch's are process-wide: set only when asked for). precision: what
    the torch backend's network runs at (`prediction_precision.PRECISIONS`); the ONNX graph is fp32, so with it
    auto or 32 is accepted."""
    check_backend("backend", backend)
    if threads is not None and not isinstance(threads, bool) and isinstance(threads, int) and threads > MAX_THREADS:
        # torch.set_num_threads(100000) and the next tensor crashed the process (segfault, no word)
        raise invalid("threads", threads, f"from 1 to {MAX_THREADS:,} (forward-pass threads)")
    if backend == "torch":
        import torch

        from .inference import Classifier

        if threads is not None:
            torch.set_num_threads(threads)
        return Classifier.load(run_dir, precision=precision)
    from .export import load_onnx

    return load_onnx(run_dir, threads=threads, precision=precision)
