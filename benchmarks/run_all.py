"""`make bench`: the CPU benchmarks in sequence (never in parallel: 2 cores), then docs/performance.md and
docs/results.md. Each step is `python -m benchmarks.<name> ARGS` from the repository root, in its own process.

The GPU benchmark (gpu_throughput) needs a CUDA machine and is run there separately. The imbalance study
(imbalance_study, docs/imbalance.md) and the transfer comparison (transfer_pretrained_vs_scratch) are run on
their own as well. The smoke mode runs nothing: it checks that every step names a benchmark module whose
parser accepts the step's arguments, so a renamed flag fails in the test suite rather than hours into a run.

    python -m benchmarks.run_all
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from benchmarks.common import ROOT, add_arguments

STEPS = [
    ["pipeline"],
    ["cache_build"],
    ["memory"],
    ["train_speed", "--repeats", "3"],
    ["train_speed", "--repeats", "3", "--only-fer"],
    ["flops"],
    ["compile_cpu", "--repeats", "3"],
    ["infer_speed", "--repeats", "3"],
    ["infer_precision", "--per-class", "1000", "--epochs", "4", "--repeats", "3"],
    ["serve_load"],
    ["fast_recipe", "--time-limit", "10m", "--seeds", "0,1"],
    ["fast_recipe", "--time-limit", "60m", "--seeds", "0"],  # one hour
    ["peers_10min", "--budget", "600", "--seeds", "0"],
    ["peers_10min", "--probe-frictions"],
    ["recipes_repro", "--budget", "120", "--seeds", "0"],
    # the cheap recipes again, for a mean and spread over 3 seeds
    ["recipes_repro", "--budget", "120", "--seeds", "1,2", "--only",
     "s1-vgg16-dense512-256,s1-vgg16-flatten256,s3-fer-cnn-small,s4-caltech-cnn,s4-caltech-cnn-reg,"
     "s4-caltech-cnn-reg-bn,s5-vgg16-features"],
    ["recipes_repro", "--budget", "400", "--seeds", "0", "--only", "s3-fer-cnn"],  # one epoch takes ~130 s
    ["freeze_bn", "--seeds", "0,1"],
    ["time_to_accuracy", "keras"],  # S5's whole Keras recipe: about 2.5 hours here
    ["time_to_accuracy", "ours", "--time-limit", "15m"],
    ["time_to_accuracy", "report"],
    ["report_performance"],
    ["report_results"],
]


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(description=__doc__,
                                                 formatter_class=argparse.RawDescriptionHelpFormatter))


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    passed = [a for flag in ("work", "results") if getattr(args, flag) for a in (f"--{flag}", str(getattr(args, flag)))]
    for name, *step_args in STEPS:
        if args.smoke:  # parse only: the module exists and takes these arguments
            importlib.import_module(f"benchmarks.{name}").build_parser().parse_args([*step_args, *passed])
            continue
        print(f"== {name} {' '.join(step_args)}", flush=True)
        subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *step_args, *passed], check=True,
                       cwd=ROOT.parent)
    if args.smoke:
        print(f"{len(STEPS)} steps parse")


if __name__ == "__main__":
    main()
