"""Training speed side by side with the Keras workflow, interleaved and repeated in one run.

For each round: the Keras peer's cases (own venv, subprocess), `imgclf train` end to end (subprocess: data,
augmentation, Lightning, progress bar; validation excluded from images/s), and a plain PyTorch channels-last
loop (in-memory float tensors, no augmentation: pure compute, the ceiling our framework is measured against).
Also the data pipeline alone (pipeline.py's BatchAugment) against ImageDataGenerator.

    python benchmarks/train_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import ROOT, WORK, fashion_png_tree, interleaved, print_table, throughput, write_result

KERAS_PY = WORK / "venv-keras" / "bin" / "python"


def ensure_keras_venv() -> None:
    if KERAS_PY.exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(WORK / "venv-keras")], check=True)
    subprocess.run([str(KERAS_PY), "-m", "pip", "install", "-q", "-r", str(ROOT / "peers" / "requirements-keras.txt")],
                   check=True)


def keras_case(case: str, data: Path, steps: int) -> float:
    out = subprocess.run([str(KERAS_PY), str(ROOT / "keras_peer.py"), case, str(data), str(steps)],
                         capture_output=True, text=True, timeout=900, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return float(json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"])


def with_val_folder(tree: Path, per_class: int = 10) -> Path:
    """Give a train/ test/ tree a val/ folder (links to test images), so train/ is used whole: with 64 images
    per class and 6 classes, every training batch of 64 is full, as in the plain loop it is compared with."""
    done = tree / ".val-complete"
    if not done.exists():
        for class_dir in sorted((tree / "test").iterdir()):
            target = tree / "val" / class_dir.name
            target.mkdir(parents=True, exist_ok=True)
            for path in sorted(class_dir.iterdir())[:per_class]:
                if not (target / path.name).exists():
                    os.link(path, target / path.name)
        done.write_text("ok")
    return tree


def imgclf_train(data: Path, recipe: str, img_size: int, color: str, epochs: int, extra: list[str]) -> float:
    """images/s of `imgclf train` (median over epochs after the first), progress bar on."""
    out = WORK / "runs" / f"speed-{recipe}-{time.time_ns()}"
    cmd = [sys.executable, "-m", "imgclf.cli", "train", str(data), "--recipe", recipe, "--img-size", str(img_size),
           "--color", color, "--epochs", str(epochs), "--out", str(out), "--val-split", "0.05", "--early-stopping",
           "100", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "IMGCLF_CACHE": str(WORK / "cache")})
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    from imgclf.io import read_csv

    rows = read_csv(out / "history.csv")
    speeds = [float(r["images_per_s"]) for r in rows[1:]] or [float(rows[0]["images_per_s"])]
    return statistics.median(speeds)


def plain_loop(model_name: str, channels: int, size: int, classes: int, steps: int) -> float:
    """A plain PyTorch training loop: channels-last, Adam, batch 64, data already float in memory."""
    import torch

    from imgclf.models import create_model

    torch.manual_seed(0)
    model = create_model(model_name, classes, channels, size).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(64 * 8, channels, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (64 * 8,))
    state = {"i": 0}

    def step() -> int:
        i = state["i"] = (state["i"] + 64) % len(x)
        loss = torch.nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return 64

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * 64 / (time.perf_counter() - start)


def ours_pipeline() -> float:
    import torch

    from imgclf.data.augment import BatchAugment, parse_augment

    cache = np.random.default_rng(0).integers(0, 255, (20_000, 48, 48, 1), dtype=np.uint8)
    aug = BatchAugment(parse_augment("rotate=30,shift=0.1,shear=0.1,zoom=0.1,hflip"))
    gen = torch.Generator().manual_seed(0)
    state = {"i": 0}

    def run() -> int:
        i = state["i"] = (state["i"] + 64) % (len(cache) - 64)
        x = torch.from_numpy(cache[i:i + 64]).permute(0, 3, 1, 2).float().div_(255)
        return len((aug(x, gen) - 0.5) / 0.25)

    return throughput(run)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    fer = parser.add_mutually_exclusive_group()  # both together would time nothing
    fer.add_argument("--skip-fer", action="store_true", help="leave out fer_cnn (minutes per round)")
    fer.add_argument("--only-fer", action="store_true", help="only the fer_cnn cases (-> train_speed_fer.json)")
    args = parser.parse_args()
    ensure_keras_venv()
    rgb32 = fashion_png_tree(32, "rgb", per_class=400)
    gray48 = fashion_png_tree(48, "grayscale", per_class=64, classes=6)
    # fer_cnn steps take seconds: every side times 12 full batches of 64 (imgclf: epochs 2-3 of 6 full batches)
    fer_tree = with_val_folder(gray48)
    cases = {} if args.only_fer else {
        "keras ImageDataGenerator flow_from_directory (S3 aug)": lambda: keras_case("idg_directory", gray48, 40),
        "keras ImageDataGenerator .flow in memory (S3 aug)": lambda: keras_case("idg_memory", gray48, 80),
        "imgclf pipeline (S3 aug, cached uint8)": ours_pipeline,
        "keras model_s reference pipeline": lambda: keras_case("model_s", rgb32, 40),
        "keras model_s in memory": lambda: keras_case("model_s_memory", rgb32, 40),
        "plain PyTorch model_s channels-last": lambda: plain_loop("model_s", 3, 32, 10, 40),
        "imgclf train model_s (s5-model-s)": lambda: imgclf_train(rgb32, "s5-model-s", 32, "rgb", 2, []),
    }
    if not args.skip_fer:
        cases.update({
            "keras fer_cnn reference pipeline (ImageDataGenerator)": lambda: keras_case("fer_cnn", fer_tree, 12),
            "plain PyTorch fer_cnn channels-last": lambda: plain_loop("fer_cnn", 1, 48, 6, 12),
            "imgclf train fer_cnn (s3-fer-cnn)": lambda: imgclf_train(fer_tree, "s3-fer-cnn", 48, "grayscale", 3, []),
        })
    results = interleaved(cases, args.repeats)
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
    path = write_result("train_speed_fer" if args.only_fer else "train_speed",
                        {"unit": "images/s", "repeats": args.repeats, "results": results, "ratios": ratios})
    print_table(results, ratios)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
