"""Training speed side by side with the Keras workflow, interleaved and repeated in one run.

For each round: the Keras peer's cases (own venv, subprocess), `imgclf train` end to end (subprocess: data,
augmentation, Lightning, progress bar; validation excluded from images/s), and a plain PyTorch channels-last
loop (in-memory float tensors, no augmentation: pure compute, the ceiling our framework is measured against).
Also the data pipeline alone (imgclf's BatchAugment, as in benchmarks.pipeline) against ImageDataGenerator.
Every side reads the same 28x28 grey Fashion-MNIST PNGs and resizes them itself (imgclf in its decode cache).

    python -m benchmarks.train_speed [--repeats 3]
    python -m benchmarks.train_speed --only-fer     # fer_cnn on 12 full batches of 64 -> train_speed_fer.json

The smoke mode leaves out the Keras cases and fer_cnn, and times tiny batches and one epoch once.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

from benchmarks.common import (ROOT, Bench, add_arguments, augment_step, interleaved, last_json_line, peer_python,
                               print_table, throughput)


def keras_case(bench: Bench, case: str, data: Path, steps: int) -> float:
    out = subprocess.run([str(peer_python(bench, "keras")), str(ROOT / "peers" / "keras_peer.py"), case, str(data),
                          str(steps)], capture_output=True, text=True, timeout=900,
                         env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return float(last_json_line(out.stdout)["images_per_s"])


def plain_loop(model_name: str, channels: int, size: int, classes: int, steps: int, batch: int = 64) -> float:
    """A plain PyTorch training loop: channels-last, Adam, data already float in memory."""
    import torch

    from imgclf.models import create_model

    torch.manual_seed(0)
    model = create_model(model_name, classes, channels, size).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(batch * 8, channels, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch * 8,))
    state = {"i": 0}

    def step() -> int:
        i = state["i"] = (state["i"] + batch) % len(x)
        loss = torch.nn.functional.cross_entropy(model(x[i:i + batch]), y[i:i + batch])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return batch

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    fer = parser.add_mutually_exclusive_group()  # both together would time nothing
    fer.add_argument("--skip-fer", action="store_true", help="leave out fer_cnn (minutes per round)")
    fer.add_argument("--only-fer", action="store_true", help="only the fer_cnn cases (-> train_speed_fer.json)")
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    smoke = bench.smoke
    rgb32 = bench.fashion_tree(400)
    # fer_cnn: 72 per class, 8 of them split off for validation, so imgclf trains on 6 full batches of 64 per epoch
    # (epochs 2-3 timed: 12 batches) like every other side
    gray48 = bench.fashion_tree(72, classes=6)
    fer_val_split = 8 / 72
    batch, steps, epochs = (4, 1, 1) if smoke else (64, 40, 2)
    cases = {} if args.only_fer else {
        "keras ImageDataGenerator flow_from_directory (S3 aug)": lambda: keras_case(bench, "idg_directory", gray48, 40),
        "keras ImageDataGenerator .flow in memory (S3 aug)": lambda: keras_case(bench, "idg_memory", gray48, 80),
        "imgclf pipeline (S3 aug, cached uint8)": lambda: throughput(augment_step(256 if smoke else 20_000),
                                                                     bench.min_seconds(2.0)),
        "keras model_s reference pipeline": lambda: keras_case(bench, "model_s", rgb32, 40),
        "keras model_s in memory": lambda: keras_case(bench, "model_s_memory", rgb32, 40),
        "plain PyTorch model_s channels-last": lambda: plain_loop("model_s", 3, 32, 10, steps, batch),
        "imgclf train model_s (s5-model-s)": lambda: bench.training_speed(
            rgb32, "s5-model-s", {"img_size": 32, "color": "rgb", "epochs": epochs}),
    }
    if not args.skip_fer and (args.only_fer or not smoke):  # fer_cnn steps take seconds
        cases.update({
            "keras fer_cnn reference pipeline (ImageDataGenerator)": lambda: keras_case(bench, "fer_cnn", gray48, 12),
            "plain PyTorch fer_cnn channels-last": lambda: plain_loop("fer_cnn", 1, 48, 6, 1 if smoke else 12, batch),
            "imgclf train fer_cnn (s3-fer-cnn)": lambda: bench.training_speed(
                gray48, "s3-fer-cnn", {"img_size": 48, "color": "grayscale", "epochs": 1 if smoke else 3,
                                       "val_split": fer_val_split}),
        })
    if smoke:  # no Keras venv in smoke mode
        cases = {name: case for name, case in cases.items() if not name.startswith("keras")}
    results = interleaved(cases, bench.repeats(args.repeats))
    med = {k: v["median"] for k, v in results.items()}

    def ratio(a: str, b: str) -> float | None:
        return round(med[a] / med[b], 2) if a in med and b in med else None

    ratios = {
        "pipeline / ImageDataGenerator flow_from_directory (target >= 20)":
            ratio("imgclf pipeline (S3 aug, cached uint8)", "keras ImageDataGenerator flow_from_directory (S3 aug)"),
        "pipeline / ImageDataGenerator .flow (target >= 6)":
            ratio("imgclf pipeline (S3 aug, cached uint8)", "keras ImageDataGenerator .flow in memory (S3 aug)"),
        "pipeline / imgclf model_s training (target >= 20)":
            ratio("imgclf pipeline (S3 aug, cached uint8)", "imgclf train model_s (s5-model-s)"),
        "imgclf model_s / plain PyTorch (target >= 0.95)":
            ratio("imgclf train model_s (s5-model-s)", "plain PyTorch model_s channels-last"),
        "imgclf model_s / keras reference pipeline (target >= 1.5)":
            ratio("imgclf train model_s (s5-model-s)", "keras model_s reference pipeline"),
        "imgclf fer_cnn / plain PyTorch (target >= 0.95)":
            ratio("imgclf train fer_cnn (s3-fer-cnn)", "plain PyTorch fer_cnn channels-last"),
        "imgclf fer_cnn / keras reference pipeline (target >= 1.0)":
            ratio("imgclf train fer_cnn (s3-fer-cnn)", "keras fer_cnn reference pipeline (ImageDataGenerator)"),
    }
    ratios = {k: v for k, v in ratios.items() if v is not None}
    path = bench.write_result("train_speed_fer" if args.only_fer else "train_speed",
                              {"unit": "images/s", "repeats": args.repeats, "results": results, "ratios": ratios})
    print_table(results, ratios)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
