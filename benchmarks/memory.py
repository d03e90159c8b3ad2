"""Peak resident memory of `imgclf train` on the 60,000-image Fashion-MNIST training set.

Two runs of model_s at 32x32 RGB with a 60 s time limit: the memory-mapped uint8 cache (the default), and the
streaming path forced by a tiny --cache-budget (workers decode per sample). Each is an `imgclf train`
subprocess; peak RSS comes from wait4's rusage: the largest of the training process and the worker processes it
waited for (Linux reports the largest single process, not their sum). Budget stated in the issue: <= 2 GB.

    python -m benchmarks.memory
"""

from __future__ import annotations

import argparse

from benchmarks.common import Bench, add_arguments

BUDGET_BYTES = 2 * 10**9
CASES = {"cached": {}, "streaming": {"cache_budget": "10MB", "num_workers": 2}}


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(description=__doc__,
                                                 formatter_class=argparse.RawDescriptionHelpFormatter))


def main(argv: list[str] | None = None) -> None:
    bench = Bench.from_args(build_parser().parse_args(argv))
    data = bench.fashion_tree()
    results = {}
    # smoke: one subprocess (the cached case) checks the command line; the streaming one differs by two settings
    for name, extra in list(CASES.items())[: 1 if bench.smoke else None]:
        trained = bench.train(data, bench.run_dir(f"memory-{name}"), isolate=True, check=False,
                              values={"model": "model_s", "img_size": 32, "color": "rgb", "epochs": 1,
                                      "time_limit": "60s", **extra})
        if bench.smoke and trained.returncode != 0:
            raise RuntimeError(f"imgclf train failed in smoke mode; see {trained.log}")
        rss = trained.peak_rss_bytes or 0
        results[name] = {"peak_rss_bytes": rss, "peak_rss_gb": round(rss / 1e9, 3),
                         "wall_s": round(trained.wall_seconds, 1), "returncode": trained.returncode,
                         "within_budget": rss <= BUDGET_BYTES}
        print(name, results[name])
    path = bench.write_result("memory", {"data": "Fashion-MNIST train/ 60,000 PNGs (+10,000 test), model_s 32x32 RGB",
                                         "budget_bytes": BUDGET_BYTES, "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
