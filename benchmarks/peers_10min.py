"""Equal wall-time budget on Fashion-MNIST: Ultralytics and fastai from scratch, our S5 reference recipe, our fast recipe.

Everyone trains on the same PNG tree with the same splits: 55,000 train / 5,000 validation (stratified, seed
0, hard links into benchmarks/work/fmnist-split) / the 10,000 official test images, one after the other (never
in parallel: 2 cores), each with the same budget of training wall time. Each peer runs in its own venv from
benchmarks/peers/ (installed here, never by the tests). Test accuracy is scored once, after training.

    python benchmarks/peers_10min.py --budget 600 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, WORK, write_result  # noqa: E402
from fast_recipe import fashion_tree  # noqa: E402

PEERS = ("ultralytics", "fastai")
# What a peer printed that says it tried the network, a font, an update or a hub check: the frictions offline.
FRICTION = re.compile(r"https?://|download|font|arial|offline|update|hub|internet|connect", re.IGNORECASE)


def split_tree() -> Path:
    """train/ val/ test/ hard links: our stratified seed-0 validation split, made visible to every tool."""
    from imgclf.data.dataset import stratified_holdout
    from imgclf.data.folder import scan_folder

    out = WORK / "fmnist-split"
    if (out / ".complete").exists():
        return out
    scan = scan_folder(fashion_tree())
    classes = scan.classes
    train = scan.files["train"]
    labels = np.array([classes.index(c) for _, c in train])
    val_mask = stratified_holdout(labels, 5000 / 60000, np.random.default_rng(0))
    for split, items in (("train", [t for t, v in zip(train, val_mask) if not v]),
                         ("val", [t for t, v in zip(train, val_mask) if v]), ("test", scan.files["test"])):
        for path, cls in items:
            target = out / split / cls / Path(path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.link(path, target)
    (out / ".complete").write_text("ok")
    return out


def peer_python(peer: str) -> Path:
    venv = WORK / f"venv-{peer}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        # the CPU-capable torch pair first, as in the Makefile; then the peer's own requirements
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.14.1", "torchvision==0.29.1"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r",
                        str(ROOT / "peers" / f"requirements-{peer}.txt")], check=True)
    return python


def frictions(output: str) -> list[str]:
    seen: list[str] = []
    for line in output.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if FRICTION.search(line) and line not in seen:
            seen.append(line[:300])
    return seen[:20]


def run_peer(peer: str, tree: Path, budget: float, seed: int) -> dict[str, object]:
    work = WORK / "peers" / peer
    work.mkdir(parents=True, exist_ok=True)
    cmd = [str(peer_python(peer)), str(ROOT / "peers" / f"{peer}_peer.py"), str(tree), str(budget), str(seed)]
    if peer == "ultralytics":
        cmd.append(str(work))
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "2"})
    wall = time.perf_counter() - start
    output = proc.stdout + "\n" + proc.stderr
    if proc.returncode != 0:
        return {"peer": peer, "seed": seed, "error": output[-3000:], "frictions": frictions(output)}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**result, "wall_seconds_total": round(wall, 1), "frictions": frictions(output)}


def run_ours(recipe: str, tree: Path, budget: float, seed: int) -> dict[str, object]:
    out = WORK / "runs" / f"peers-{recipe}-seed{seed}-{int(time.time())}"
    cmd = [sys.executable, "-m", "imgclf.cli", "train", str(tree), "--recipe", recipe, "--time-limit",
           f"{int(budget)}s", "--seed", str(seed), "--out", str(out), "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "IMGCLF_CACHE": str(WORK / "cache")})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"peer": f"imgclf {recipe}", "seed": seed, "error": proc.stderr[-3000:]}
    card = json.loads((out / "model.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    return {"peer": f"imgclf {recipe}", "model": card["model"]["name"], "seed": seed,
            "epochs": card["training"]["epochs_run"], "train_seconds": card["training"]["train_seconds"],
            "images_per_s": card["training"]["images_per_s"], "test_accuracy": metrics["accuracy"],
            "test_accuracy_tta": metrics.get("tta", {}).get("accuracy"),
            "val_accuracy": card["metrics"].get("val_accuracy"), "wall_seconds_total": round(wall, 1), "run": str(out)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=600.0, help="training wall time per run, seconds")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--only", default="ultralytics,fastai,s5-model-s,fast-fmnist")
    args = parser.parse_args()
    tree = split_tree()
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for who in args.only.split(","):
            row = run_peer(who, tree, args.budget, seed) if who in PEERS else run_ours(who, tree, args.budget, seed)
            print(json.dumps({k: v for k, v in row.items() if k != "frictions"}), flush=True)
            rows.append(row)
    path = write_result(f"peers_{int(args.budget)}s", {
        "data": "Fashion-MNIST, 55,000 train / 5,000 val (stratified, seed 0) / 10,000 test, PNG tree",
        "budget_seconds": args.budget, "runs": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
