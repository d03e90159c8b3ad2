"""Achieved GFLOP/s of training against this machine's practical peak.

The peak is a 2048 x 2048 x 2048 fp32 GEMM run as a 1x1 convolution (oneDNN, channels-last), beside the same
GEMM as `torch.matmul`, interleaved and repeated. FLOPs per image (forward + backward) are counted by torch's
FlopCounterMode on one training step; training images/s come from the latest train_speed*.json of this machine.

    python benchmarks/flops.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, interleaved, throughput, write_result  # noqa: E402

GEMM = 2048
MODELS = {"model_s": (3, 32, 10), "fer_cnn": (1, 48, 6)}  # in_chans, size, classes as in train_speed.py
SPEED_CASES = {  # train_speed*.json case -> model
    "imgclf train model_s (s5-model-s)": "model_s", "plain PyTorch model_s channels-last": "model_s",
    "imgclf train fer_cnn (s3-fer-cnn)": "fer_cnn", "plain PyTorch fer_cnn channels-last": "fer_cnn",
}


def gflops(fn, flop: float) -> float:
    """GFLOP/s of fn(), timed by common.throughput (one warm-up call, at least 2 s)."""
    def one_call() -> int:
        fn()
        return 1

    return throughput(one_call) * flop / 1e9


def peak_cases() -> dict:
    a, b = torch.randn(GEMM, GEMM), torch.randn(GEMM, GEMM)
    conv = torch.nn.Conv2d(GEMM, GEMM, 1, bias=False).eval()
    x = torch.randn(1, GEMM, 32, GEMM // 32).contiguous(memory_format=torch.channels_last)
    conv = conv.to(memory_format=torch.channels_last)
    flop = 2.0 * GEMM**3

    def as_conv() -> float:
        with torch.no_grad():
            return gflops(lambda: conv(x), flop)

    return {"2048^3 GEMM as a 1x1 convolution (oneDNN)": as_conv,
            "2048^3 GEMM as torch.matmul": lambda: gflops(lambda: a @ b, flop)}


def train_flop_per_image(name: str) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from imgclf.models import create_model

    chans, size, classes = MODELS[name]
    model = create_model(name, classes, chans, size).train()
    x, y = torch.rand(8, chans, size, size), torch.randint(0, classes, (8,))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / len(x)


def latest_speeds() -> dict[str, float]:
    speeds = {}
    for name in ("train_speed", "train_speed_fer"):  # the fer-only run, when present, supersedes the main one
        path = RESULTS / f"{name}.json"
        if path.exists():
            results = json.loads(path.read_text())["results"]
            speeds.update({case: results[case]["median"] for case in SPEED_CASES if case in results})
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    peaks = interleaved(peak_cases(), args.repeats)
    peak = peaks["2048^3 GEMM as a 1x1 convolution (oneDNN)"]["median"]
    flop = {name: train_flop_per_image(name) for name in MODELS}
    achieved = {}
    for case, images_per_s in latest_speeds().items():
        value = images_per_s * flop[SPEED_CASES[case]] / 1e9
        achieved[case] = {"images_per_s": round(images_per_s, 2), "gflops": round(value, 1),
                          "fraction_of_peak": round(value / peak, 3)}
    path = write_result("flops", {"unit": "GFLOP/s", "repeats": args.repeats, "peaks": peaks,
                                  "train_gflop_per_image": {k: round(v / 1e9, 4) for k, v in flop.items()},
                                  "achieved": achieved})
    for name, r in peaks.items():
        print(f"{name:45s} {r['median']:7.1f} GFLOP/s ({r['min']:.1f}-{r['max']:.1f})")
    for case, r in achieved.items():
        print(f"{case:45s} {r['gflops']:7.1f} GFLOP/s = {r['fraction_of_peak']:.0%} of the 1x1-conv peak")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
