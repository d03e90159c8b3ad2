"""Equal wall-time budget on Fashion-MNIST: Ultralytics and fastai from scratch, our S5 reference recipe, our fast recipe.

Everyone trains on the same PNG tree with the same splits: 55,000 train / 5,000 validation (stratified, seed
0, hard links into benchmarks/work/fmnist-split) / the 10,000 official test images, one after the other (never
in parallel: 2 cores), each with the same budget of training wall time. Each peer runs in its own venv from
benchmarks/peers/ (installed here, never by the tests). Test accuracy is scored once, after training.

    python benchmarks/peers_10min.py --budget 600 --seeds 0
    python benchmarks/peers_10min.py --probe-frictions      # what each peer tries to reach offline, 30 s each

Each run's row is merged into benchmarks/results/peers_600s.json as soon as it ends (one row per peer and seed);
each peer's whole output is kept in benchmarks/work/peers/PEER/.
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
from common import RESULTS, ROOT, WORK, write_result  # noqa: E402
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
    (work / f"output-seed{seed}-{int(budget)}s.log").write_text(output)
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
    return row_from_run(recipe, seed, out) | {"wall_seconds_total": round(wall, 1)}


def row_from_run(recipe: str, seed: int, out: Path) -> dict[str, object]:
    card = json.loads((out / "model.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    return {"peer": f"imgclf {recipe}", "model": card["architecture"], "seed": seed, "torch_threads": 2,
            "epochs": card["training"]["epochs_run"], "train_seconds": card["training"]["train_seconds"],
            "images_per_s": card["training"]["images_per_s"], "test_accuracy": metrics["accuracy"],
            "test_accuracy_tta": metrics.get("tta", {}).get("accuracy"),
            "val_accuracy": card["metrics"].get("val_accuracy"), "run": str(out)}


def mini_tree(per_class: int = 150) -> Path:
    """A 2,300-image train/ val/ test/ subset of the split tree, for probing what a peer does offline."""
    out = WORK / "mini-split"
    if (out / ".complete").exists():
        return out
    for split_dir in sorted(split_tree().glob("*/*")):
        if not split_dir.is_dir():
            continue
        keep = per_class if split_dir.parent.name == "train" else 40
        for path in sorted(split_dir.iterdir())[:keep]:
            target = out / split_dir.parent.name / split_dir.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.link(path, target)
    (out / ".complete").write_text("ok")
    return out


def save(budget: float, rows: list[dict[str, object]], probes: dict[str, list[str]]) -> Path:
    """Merge into the budget's JSON, one row per (peer, seed), so runs of several invocations add up."""
    name = f"peers_{int(budget)}s"
    path = RESULTS / f"{name}.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    merged = {(r["peer"], r["seed"]): r for r in old.get("runs", [])}
    merged.update({(r["peer"], r["seed"]): r for r in rows})
    return write_result(name, {
        "data": "Fashion-MNIST, 55,000 train / 5,000 val (stratified, seed 0) / 10,000 test, PNG tree",
        "budget_seconds": budget, "runs": list(merged.values()),
        "friction_probes": {**old.get("friction_probes", {}), **probes}})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=600.0, help="training wall time per run, seconds")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--only", default="ultralytics,fastai,s5-model-s,fast-fmnist")
    parser.add_argument("--probe-frictions", action="store_true",
                        help="only run each peer for 30 s on a 2,300-image subset and record what it printed")
    args = parser.parse_args()
    if args.probe_frictions:
        probes = {}
        for peer in PEERS:
            row = run_peer(peer, mini_tree(), 30.0, 0)
            probes[peer] = row["frictions"]
            print(peer, json.dumps(probes[peer], indent=1), flush=True)
        print(f"wrote {save(args.budget, [], probes)}")
        return
    tree = split_tree()
    for seed in [int(s) for s in args.seeds.split(",")]:
        for who in args.only.split(","):
            row = run_peer(who, tree, args.budget, seed) if who in PEERS else run_ours(who, tree, args.budget, seed)
            print(json.dumps({k: v for k, v in row.items() if k != "frictions"}), flush=True)
            print(f"wrote {save(args.budget, [row], {})}", flush=True)


if __name__ == "__main__":
    main()
