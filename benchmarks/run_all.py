"""`make bench`: the CPU benchmarks in sequence (never in parallel: 2 cores), then docs/performance.md.

The GPU benchmark (gpu_throughput.py) needs a CUDA machine and is run there separately.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = [
    ["pipeline.py"],
    ["cache_build.py"],
    ["memory.py"],
    ["train_speed.py", "--repeats", "3"],
    ["train_speed.py", "--repeats", "3", "--only-fer"],
    ["flops.py"],
    ["compile_cpu.py", "--repeats", "3"],
    ["infer_speed.py", "--repeats", "3"],
    ["serve_load.py"],
    ["fast_recipe.py", "--time-limit", "10m", "--seeds", "0,1"],
    ["fast_recipe.py", "--time-limit", "60m", "--seeds", "0"],  # one hour
    ["peers_10min.py", "--budget", "600", "--seeds", "0"],
    ["peers_10min.py", "--probe-frictions"],
    ["recipes_repro.py", "--budget", "120", "--seeds", "0"],
    # the cheap recipes again, for a mean and spread over 3 seeds
    ["recipes_repro.py", "--budget", "120", "--seeds", "1,2", "--only",
     "s1-vgg16-dense512-256,s1-vgg16-flatten256,s3-fer-cnn-small,s4-caltech-cnn,s4-caltech-cnn-reg,"
     "s4-caltech-cnn-reg-bn,s5-vgg16-features"],
    ["recipes_repro.py", "--budget", "400", "--seeds", "0", "--only", "s3-fer-cnn"],  # one epoch takes ~130 s
    ["freeze_bn.py", "--seeds", "0,1"],
    ["time_to_accuracy.py", "keras"],  # S5's whole Keras recipe: about 2.5 hours here
    ["time_to_accuracy.py", "ours", "--time-limit", "15m"],
    ["time_to_accuracy.py", "report"],
    ["report_performance.py"],
    ["report_results.py"],
]

if __name__ == "__main__":
    for step in STEPS:
        print(f"== {' '.join(step)}", flush=True)
        subprocess.run([sys.executable, str(HERE / step[0]), *step[1:]], check=True, cwd=HERE)
