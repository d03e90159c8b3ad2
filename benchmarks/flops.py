"""Achieved GFLOP/s of training against this machine's practical peak.

The peak is a 2048 x 2048 x 2048 fp32 GEMM run as a 1x1 convolution (oneDNN, channels-last), beside the same
GEMM as `torch.matmul`, interleaved and repeated. FLOPs per image (forward + backward) are counted by torch's
FlopCounterMode on one training step; training images/s come from the latest train_speed*.json of this machine
(in the results folder, or --speeds; the smoke mode reads the committed ones and writes nowhere near them).

    python -m benchmarks.flops [--repeats 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import RESULTS, Bench, add_arguments, interleaved, load_result, throughput

GEMM = 2048
MODELS = {"model_s": (3, 32, 10), "fer_cnn": (1, 48, 6)}  # in_chans, size, classes as in train_speed.py
SPEED_CASES = {  # train_speed*.json case -> model
    "imgclf train model_s (s5-model-s)": "model_s", "plain PyTorch model_s channels-last": "model_s",
    "imgclf train fer_cnn (s3-fer-cnn)": "fer_cnn", "plain PyTorch fer_cnn channels-last": "fer_cnn",
}


def gflops(fn, flop: float, min_seconds: float) -> float:
    """GFLOP/s of fn(), timed by common.throughput (one warm-up call, at least `min_seconds`)."""
    def one_call() -> int:
        fn()
        return 1

    return throughput(one_call, min_seconds) * flop / 1e9


def peak_cases(size: int, min_seconds: float) -> dict:
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    conv = torch.nn.Conv2d(size, size, 1, bias=False).eval()
    x = torch.randn(1, size, 32, size // 32).contiguous(memory_format=torch.channels_last)
    conv = conv.to(memory_format=torch.channels_last)
    flop = 2.0 * size**3

    def as_conv() -> float:
        with torch.no_grad():
            return gflops(lambda: conv(x), flop, min_seconds)

    return {f"{size}^3 GEMM as a 1x1 convolution (oneDNN)": as_conv,
            f"{size}^3 GEMM as torch.matmul": lambda: gflops(lambda: a @ b, flop, min_seconds)}


def train_flop_per_image(name: str, batch: int = 8) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from imgclf.models import create_model

    chans, size, classes = MODELS[name]
    model = create_model(name, classes, chans, size).train()
    x, y = torch.rand(batch, chans, size, size), torch.randint(0, classes, (batch,))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / len(x)


def latest_speeds(folder: Path) -> dict[str, float]:
    speeds = {}
    for name in ("train_speed", "train_speed_fer"):  # the fer-only run, when present, supersedes the main one
        result = load_result(name, folder)
        if result:
            speeds.update({case: result["results"][case]["median"] for case in SPEED_CASES
                           if case in result["results"]})
    return speeds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--speeds", type=Path, default=None,
                        help="folder of train_speed*.json (default: the results folder)")
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    size = 128 if bench.smoke else GEMM
    peaks = interleaved(peak_cases(size, bench.min_seconds(2.0)), bench.repeats(args.repeats))
    peak = peaks[f"{size}^3 GEMM as a 1x1 convolution (oneDNN)"]["median"]
    flop = {name: train_flop_per_image(name, 1 if bench.smoke else 8) for name in MODELS}
    achieved = {}
    for case, images_per_s in latest_speeds(args.speeds or (RESULTS if bench.smoke else bench.results)).items():
        value = images_per_s * flop[SPEED_CASES[case]] / 1e9
        achieved[case] = {"images_per_s": round(images_per_s, 2), "gflops": round(value, 1),
                          "fraction_of_peak": round(value / peak, 3)}
    path = bench.write_result("flops", {"unit": "GFLOP/s", "repeats": args.repeats, "peaks": peaks,
                                        "train_gflop_per_image": {k: round(v / 1e9, 4) for k, v in flop.items()},
                                        "achieved": achieved})
    for name, r in peaks.items():
        print(f"{name:45s} {r['median']:7.1f} GFLOP/s ({r['min']:.1f}-{r['max']:.1f})")
    for case, r in achieved.items():
        print(f"{case:45s} {r['gflops']:7.1f} GFLOP/s = {r['fraction_of_peak']:.0%} of the 1x1-conv peak")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
