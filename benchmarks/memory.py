"""Peak resident memory of `imgclf train` on the 60,000-image Fashion-MNIST training set.

Two runs of model_s at 32x32 RGB with a 60 s time limit: the memory-mapped uint8 cache (the default), and the
streaming path forced by a tiny --cache-budget (workers decode per sample). Peak RSS comes from wait4's
rusage: the largest of the training process and the worker processes it waited for (Linux reports the
largest single process, not their sum). Budget stated in the issue: <= 2 GB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import WORK, write_result  # noqa: E402
from fast_recipe import fashion_tree  # noqa: E402

BUDGET_BYTES = 2 * 10**9


def peak_rss(cmd: list[str], env: dict[str, str]) -> tuple[int, float, int]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss * 1024, time.perf_counter() - start, proc.returncode


def main() -> None:
    data = fashion_tree()
    env = {**os.environ, "IMGCLF_CACHE": str(WORK / "cache")}
    results = {}
    for name, extra in [("cached", []), ("streaming", ["--cache-budget", "10MB", "--num-workers", "2"])]:
        out = WORK / "runs" / f"memory-{name}-{time.time_ns()}"
        cmd = [sys.executable, "-m", "imgclf.cli", "train", str(data), "--model", "model_s", "--img-size", "32",
               "--color", "rgb", "--epochs", "1", "--time-limit", "60s", "--no-progress", "--out", str(out), *extra]
        rss, seconds, rc = peak_rss(cmd, env)
        results[name] = {"peak_rss_bytes": rss, "peak_rss_gb": round(rss / 1e9, 3), "wall_s": round(seconds, 1),
                         "returncode": rc, "within_budget": rss <= BUDGET_BYTES}
        print(name, results[name])
    write_result("memory", {"data": "Fashion-MNIST train/ 60,000 PNGs (+10,000 test), model_s 32x32 RGB",
                            "budget_bytes": BUDGET_BYTES, "results": results})


if __name__ == "__main__":
    main()
