"""Data pipeline alone: cached uint8 -> batched augmentation with S3's settings -> normalised float batch.

Sides, interleaved and repeated in one run: imgclf's BatchAugment (one sampling grid + grid_sample per batch,
per-image parameters), kornia's RandomAffine + RandomHorizontalFlip with the same ranges, and torchvision v2
applied one image at a time (the shape of ImageDataGenerator's per-image loop, in PyTorch). The Keras
ImageDataGenerator figures come from peers/keras_peer.py (its own venv) and are joined in docs/performance.md.

    python -m benchmarks.pipeline [--repeats 3]
"""

from __future__ import annotations

import argparse

from benchmarks.common import S3_AUGMENT, Bench, add_arguments, augment_step, interleaved, throughput, torch_threads

BATCH = 64


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    with torch_threads(2):
        results = measure(bench.repeats(args.repeats), 256 if bench.smoke else 20_000, bench.min_seconds(2.0))
    ratio = results["imgclf BatchAugment"]["median"] / results["kornia RandomAffine+flip"]["median"]
    path = bench.write_result("pipeline", {"unit": "images/s", "batch": BATCH, "augment": S3_AUGMENT,
                                           "image": "48x48x1 uint8", "threads": 2, "results": results,
                                           "ours_over_kornia": round(ratio, 2)})
    for name, r in results.items():
        print(f"{name:28s} {r['median']:>10.0f} img/s  (range {r['min']:.0f}-{r['max']:.0f})")
    print(f"ours / kornia: {ratio:.2f}x")
    print(f"wrote {path}")


def measure(repeats: int, images: int, min_seconds: float) -> dict[str, dict]:
    import kornia.augmentation as K
    import numpy as np
    import torch
    from torchvision.transforms import v2

    rng = np.random.default_rng(0)
    cache = rng.integers(0, 255, (images, 48, 48, 1), dtype=np.uint8)
    mean, std = torch.tensor(0.5), torch.tensor(0.25)
    kornia_aug = torch.nn.Sequential(
        K.RandomHorizontalFlip(),
        K.RandomAffine(degrees=30, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=0.1, padding_mode="border"),
    )
    per_image = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomAffine(30, (0.1, 0.1), (0.9, 1.1), 0.1)])
    ours = augment_step(images, BATCH)
    state = {"i": 0}

    def batch() -> torch.Tensor:
        i = state["i"] = (state["i"] + BATCH) % (len(cache) - BATCH)
        return torch.from_numpy(cache[i : i + BATCH]).permute(0, 3, 1, 2)

    def run_kornia() -> int:
        x = batch().float().div_(255)  # kornia rejects uint8 (STACK.md)
        x = (kornia_aug(x) - mean) / std
        return len(x)

    def run_per_image() -> int:
        x = batch()
        out = torch.stack([per_image(img) for img in x]).float().div_(255)
        return len((out - mean) / std)

    return interleaved({
        "imgclf BatchAugment": lambda: throughput(ours, min_seconds),
        "kornia RandomAffine+flip": lambda: throughput(run_kornia, min_seconds),
        "torchvision v2 per image": lambda: throughput(run_per_image, min_seconds),
    }, repeats)


if __name__ == "__main__":
    main()
