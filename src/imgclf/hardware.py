"""What machine this is, for model cards and benchmark JSON, and which precision it runs fast."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_has_fast_bf16() -> bool:
    """bf16 autocast pays off on CPUs with native bf16 dot products (AVX-512 BF16 or AMX); elsewhere it
    is emulated and slower than fp32 (measured in STACK.md)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str, accelerator: str) -> str:
    if precision != "auto":
        return precision
    import torch

    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_fast_bf16() else "32"


def launch_rank() -> int:
    """Global rank of this process as set by the launcher (Lightning's ddp launcher, torchrun, SLURM) before
    any Trainer exists; 0 for a plain single-process run. Only rank 0 writes run files."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if "LOCAL_RANK" in os.environ:
        return int(os.environ.get("NODE_RANK", 0)) * 1_000_000 + int(os.environ["LOCAL_RANK"])
    if "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return int(os.environ["SLURM_PROCID"])
    return 0


def describe() -> dict[str, object]:
    import torch

    info: dict[str, object] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "isa": sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma"}),
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("imgclf", "torch", "torchvision", "lightning", "timm", "numpy", "pillow", "scikit-learn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def prediction_device(device: Any) -> Any:
    """`device` (a name or a torch.device) as a torch device this machine has; the user's error otherwise (not
    torch's, at the first tensor moved there)."""
    import torch

    from .errors import invalid

    allowed = "cpu, cuda, cuda:N or mps, on a machine that has it"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise invalid("device", device, allowed) from None
    if resolved.type == "cuda" and not (torch.cuda.is_available()
                                        and (resolved.index or 0) < torch.cuda.device_count()):
        raise invalid("device", device, allowed, note=f"{torch.cuda.device_count()} CUDA devices here")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise invalid("device", device, allowed, note="no MPS device here")
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise invalid("device", device, allowed)
    return resolved


MAX_THREADS = 1024  # torch ran 3,000 and crashed at 100,000


def check_threads(threads: object) -> int | None:
    """None (the backend's own choice) or a whole number of forward-pass threads, as a Python int (numpy's too):
    torch.set_num_threads(100000) and the next tensor crashed the process (segfault, no word); onnxruntime raised
    its binding's TypeError for 2.5 or "x"."""
    from .errors import whole_number

    return None if threads is None else whole_number(
        "threads", threads, f"a whole number from 1 to {MAX_THREADS:,} (forward-pass threads), or None", 1, MAX_THREADS)
