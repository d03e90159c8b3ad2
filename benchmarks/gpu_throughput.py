"""GPU path: `imgclf train` images/s at 32x32 RGB against a bare PyTorch loop on the same GPU (issue 23, item 4).

Each case trains through `imgclf.pipeline.fit` unchanged (the same command as on a CPU) for a few epochs and reads
the median images/s of the epochs after the first (warm-up) from history.csv; the same model then runs in a bare
loop (uint8 batches already on the GPU, gathered, scaled, channels-last, autocast where the case asks, SGD +
Nesterov), the ceiling imgclf's own work per step is measured against, in the same run. The data is `--data` (an
image folder, decoded at 32x32 RGB: Fashion-MNIST gives the S5 stand-in of DATA.md), else a generated 32x32 RGB PNG
tree of 25,000 images. Needs a CUDA GPU: on a machine without one it says so and exits 0. The smoke mode runs the
same code on the CPU (one small case, 2 epochs of a few dozen images), so it runs anywhere.

    python -m benchmarks.gpu_throughput --work /tmp/w --results "$OUT" --data /tmp/w/fashion-mnist-full
    python -m benchmarks.gpu_throughput ... --cases model_s:512:32 --tag _before --note "commit X"  # an older imgclf
                                                                                    # first on PYTHONPATH
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import Bench, add_arguments, epoch_speeds

# model:batch:precision; 512 fp32 is the setting of the earlier 48k img/s (H100, commit 14d45e8)
CASES = "model_s:512:32,model_s:512:bf16-mixed,model_s:1024:bf16-mixed,model_s:2048:bf16-mixed,model_s:2048:32"
EPOCHS = 3
AUGMENT = "hflip,crop=4"


def make_tree(root: Path, classes: int = 10, per_class: int = 2500, size: int = 32) -> Path:
    """Noisy RGB images around one random base image per class, as a class-per-folder PNG tree."""
    import numpy as np

    from imgclf.data.sources.tree import write_tree

    if (root / ".complete").exists():
        return root
    rng = np.random.default_rng(0)
    names = [f"c{c}" for c in range(classes)]
    for c in range(classes):
        base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8).astype(int) // 2
        noise = rng.integers(0, 80, (per_class, size, size, 3), dtype=np.uint8)
        write_tree(root, None, np.clip(base + noise, 0, 255).astype(np.uint8), np.full(per_class, c), names)
    (root / ".complete").write_text("ok")
    return root


def parse_cases(text: str) -> list[tuple[str, int, str]]:
    cases = []
    for item in text.split(","):
        model, batch, precision = item.split(":")
        cases.append((model, int(batch), precision))
    return cases


def bare_loop(model_name: str, batch: int, precision: str, pixels, num_classes: int, seconds: float = 3.0) -> float:
    """Images/s of the bare loop: what a hand-written script gets from the same model and resident data."""
    import torch
    import torch.nn.functional as F

    from imgclf.data.augment import BatchAugment, parse_augment
    from imgclf.models import create_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = torch.as_tensor(pixels).to(device)  # (N, H, W, C) uint8
    model = create_model(model_name, num_classes, 3, 32).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    augment = BatchAugment(parse_augment(AUGMENT))
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    labels = torch.randint(0, num_classes, (len(data),), device=device)

    def step() -> None:
        index = torch.randint(0, len(data), (batch,), device=device)
        x = data.index_select(0, index).permute(0, 3, 1, 2).float().div_(255)
        x = augment(x).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(x).float(), labels.index_select(0, index))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            step()
        steps += 10
        if device.type == "cuda":
            torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="an image folder, decoded at 32x32 RGB")
    parser.add_argument("--cases", default=CASES, help="model:batch:precision, separated by commas")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--tag", default="", help="result file suffix (an older imgclf measured as the peer)")
    parser.add_argument("--no-bare", action="store_true", help="imgclf only, without the bare loop")
    parser.add_argument("--note", default="", help="what imgclf this is and where it ran, for the report "
                                                   "(e.g. 'commit 3444a42, before ...')")
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> int:
    import torch

    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    gpu = torch.cuda.is_available()
    if not gpu and not bench.smoke:
        print("no CUDA GPU here: nothing to measure")
        return 0
    data = args.data or make_tree(bench.work / "gpu-data", per_class=6 if bench.smoke else 2500)
    cases = parse_cases(args.cases)[:1] if bench.smoke else parse_cases(args.cases)
    results = []
    for model, batch, precision in cases:
        name = f"{model}-b{batch}-{precision}"
        values = {"model": model, "img_size": 32, "color": "rgb", "epochs": args.epochs, "batch_size": batch,
                  "precision": precision, "accelerator": "gpu", "augment": AUGMENT, "lr": 0.01,
                  "optimizer": "sgd", "num_workers": 8}
        if bench.smoke:
            values.update(epochs=2, batch_size=32, accelerator="gpu" if gpu else "cpu")
        trained = bench.train(data, bench.work / "runs" / f"gpu-{name}{args.tag}", values=values, overwrite=True)
        history = trained.run.read_history()
        train_images = sum(trained.run.read_dataset().counts["train"].values())
        speeds = epoch_speeds(trained.run)
        row = {"model": model, "precision": precision, "batch": values["batch_size"], "channels_last": True,
               "images_per_s_median": statistics.median(speeds), "images_per_s_all": speeds,
               "epoch_seconds": [h.seconds for h in history], "val_acc_last": history[-1].val_acc,
               "wall_s": round(trained.wall_seconds, 1), "epochs": len(history)}
        if not args.no_bare:
            import numpy as np

            # the bare loop's speed does not depend on what the pixels show
            pixels = np.random.default_rng(0).integers(0, 256, (50_000, 32, 32, 3), dtype=np.uint8)
            row["bare_images_per_s"] = round(bare_loop(model, values["batch_size"], precision, pixels, 10,
                                                       seconds=0.5 if bench.smoke else 3.0), 1)
            row["imgclf_over_bare"] = round(row["images_per_s_median"] / row["bare_images_per_s"], 3)
        results.append(row)
        print(name, f"{row['images_per_s_median']:.0f} img/s", speeds,
              f"bare {row.get('bare_images_per_s', 0):.0f}", flush=True)
    from imgclf import hardware

    env = {"gpu": torch.cuda.get_device_name(0) if gpu else None, "torch": torch.__version__,
           "cuda": torch.version.cuda, "python": sys.version.split()[0], "host_cpu": hardware.cpu_model(),
           "host_cores": os.cpu_count()}
    from imgclf.io import write_json

    path = bench.results / f"gpu_throughput{args.tag}.json"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    images = (f"{args.data.name} ({train_images:,} training images an epoch) decoded at 32x32 RGB" if args.data
              else "32x32x3 PNG, 25,000 (generated)")
    write_json(path, {"benchmark": "gpu_throughput", "environment": env, "when": when, "images": images,
                      "augment": AUGMENT, "note": args.note, "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
