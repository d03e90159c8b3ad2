"""Data pipeline alone: cached uint8 -> batched augmentation with S3's settings -> normalised float batch.

Sides, interleaved and repeated in one run: imgclf's BatchAugment (one sampling grid + grid_sample per batch,
per-image parameters), kornia's RandomAffine + RandomHorizontalFlip with the same ranges, and torchvision v2
applied one image at a time (the shape of ImageDataGenerator's per-image loop, in PyTorch). The Keras
ImageDataGenerator figures come from keras_peer.py (its own venv) and are joined in docs/performance.md.
"""

from __future__ import annotations

import numpy as np
import torch

from common import interleaved, throughput, write_result

S3 = "rotate=30,shift=0.1,shear=0.1,zoom=0.1,hflip"
BATCH = 64


def main(repeats: int = 3) -> None:
    import kornia.augmentation as K
    from torchvision.transforms import v2

    from imgclf.data.augment import BatchAugment, parse_augment

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    cache = rng.integers(0, 255, (20_000, 48, 48, 1), dtype=np.uint8)
    mean, std = torch.tensor(0.5), torch.tensor(0.25)
    ours = BatchAugment(parse_augment(S3))
    gen = torch.Generator().manual_seed(0)
    kornia_aug = torch.nn.Sequential(
        K.RandomHorizontalFlip(),
        K.RandomAffine(degrees=30, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=0.1, padding_mode="border"),
    )
    per_image = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomAffine(30, (0.1, 0.1), (0.9, 1.1), 0.1)])
    state = {"i": 0}

    def batch() -> torch.Tensor:
        i = state["i"] = (state["i"] + BATCH) % (len(cache) - BATCH)
        return torch.from_numpy(cache[i : i + BATCH]).permute(0, 3, 1, 2)

    def run_ours() -> int:
        x = batch().float().div_(255)
        x = (ours(x, gen) - mean) / std
        return len(x)

    def run_kornia() -> int:
        x = batch().float().div_(255)  # kornia rejects uint8 (STACK.md)
        x = (kornia_aug(x) - mean) / std
        return len(x)

    def run_per_image() -> int:
        x = batch()
        out = torch.stack([per_image(img) for img in x]).float().div_(255)
        return len((out - mean) / std)

    results = interleaved({
        "imgclf BatchAugment": lambda: throughput(run_ours),
        "kornia RandomAffine+flip": lambda: throughput(run_kornia),
        "torchvision v2 per image": lambda: throughput(run_per_image),
    }, repeats)
    ratio = results["imgclf BatchAugment"]["median"] / results["kornia RandomAffine+flip"]["median"]
    write_result("pipeline", {"unit": "images/s", "batch": BATCH, "augment": S3, "image": "48x48x1 uint8",
                              "threads": 2, "results": results, "ours_over_kornia": round(ratio, 2)})
    for name, r in results.items():
        print(f"{name:28s} {r['median']:>10.0f} img/s  (range {r['min']:.0f}-{r['max']:.0f})")
    print(f"ours / kornia: {ratio:.2f}x")


if __name__ == "__main__":
    main()
