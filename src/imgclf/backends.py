"""Which engine runs a run's predictions: torch (the trained network) or onnxruntime (its export). One loader for
`imgclf predict --backend` and `imgclf serve --backend`, without the web stack's imports."""

from __future__ import annotations

import numbers
import os

from .errors import invalid

BACKENDS = ("torch", "onnx")


def check_backend(argument: str, backend: str) -> str:
    """Refused before the run is loaded: the flag is wrong whatever the run holds."""
    if backend not in BACKENDS:
        raise invalid(argument, backend, BACKENDS)
    return backend


MAX_THREADS = 1024  # torch ran 3,000 and crashed at 100,000


def check_threads(threads: object) -> int | None:
    """None (the backend's own choice) or a whole number of forward-pass threads, as a Python int (numpy's too):
    torch.set_num_threads(100000) and the next tensor crashed the process (segfault, no word); onnxruntime raised
    its binding's TypeError for 2.5 or "x"."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or not 1 <= threads <= MAX_THREADS:
        raise invalid("threads", threads, f"a whole number from 1 to {MAX_THREADS:,} (forward-pass threads), or None")
    return int(threads)


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
