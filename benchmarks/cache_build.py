"""Cache build (decode + resize on both cores) in images/s, and how long a second run takes to have its data
ready (scan + hash of the file list + opening the memory-mapped cache) on the 70,000 Fashion-MNIST PNGs.

    python -m benchmarks.cache_build
"""

from __future__ import annotations

import argparse
import shutil
import time

from benchmarks.common import Bench, add_arguments


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(description=__doc__,
                                                 formatter_class=argparse.RawDescriptionHelpFormatter))


def main(argv: list[str] | None = None) -> None:
    from imgclf.data.dataset import prepare_data

    bench = Bench.from_args(build_parser().parse_args(argv))
    data = bench.fashion_tree()
    cache = bench.work / "cache-build-bench"
    shutil.rmtree(cache, ignore_errors=True)
    start = time.perf_counter()
    prepared = prepare_data(data, 28, "grayscale", val_split=5000 / 60000, cache_dir=str(cache), workers=2)
    cold = time.perf_counter() - start
    n = len(prepared.decoded.paths)
    warm = []
    for _ in range(bench.repeats(3)):
        start = time.perf_counter()
        prepare_data(data, 28, "grayscale", val_split=5000 / 60000, cache_dir=str(cache), workers=2)
        warm.append(time.perf_counter() - start)
    result = {"images": n, "cold_seconds": round(cold, 2), "cold_images_per_s": round(n / cold, 1),
              "warm_seconds": [round(w, 2) for w in warm], "target_warm_seconds": 5.0}
    print(result)
    print(f"wrote {bench.write_result('cache_build', result)}")
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
