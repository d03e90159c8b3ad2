"""Equal wall-time budget on Fashion-MNIST: Ultralytics and fastai from scratch, our S5 reference recipe, our fast recipe.

Everyone trains on the same PNG tree with the same splits: 55,000 train / 5,000 validation (imgclf's stratified
seed-0 split, hard links in benchmarks/work/fmnist-split) / the 10,000 official test images, one after the other
(never in parallel: 2 cores), each with the same budget of training wall time. Each peer runs in its own venv
from benchmarks/peers/ (installed here, never by the tests); ours is an `imgclf train` subprocess. Test accuracy
is scored once, after training.

    python -m benchmarks.peers_10min --budget 600 --seeds 0
    python -m benchmarks.peers_10min --probe-frictions      # what each peer tries to reach offline, 30 s each

Each run's row is merged into benchmarks/results/peers_600s.json as soon as it ends (one row per peer and seed);
each peer's whole output is kept in benchmarks/work/peers/PEER/. The smoke mode trains fast-fmnist for one
epoch in-process and, instead of installing the peers, reads a made-up peer output through the same parsing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time
from pathlib import Path

from benchmarks.common import ROOT, Bench, add_arguments, last_json_line, load_result, peer_python

PEERS = ("ultralytics", "fastai")
# What a peer printed that says it tried the network, a font, an update or a hub check: the frictions offline.
FRICTION = re.compile(r"https?://|download|font|arial|offline|update|hub|internet|connect", re.IGNORECASE)
# Smoke mode: what a peer script prints (a friction line, then its JSON line), parsed as a real run's output.
SMOKE_OUTPUT = ('Downloading https://example.invalid/Arial.ttf (smoke: no peer ran)\n'
                '{"peer": "%s", "model": "smoke", "seed": %d, "epochs": 1, "train_seconds": 0.0, "images_per_s": 0.0, '
                '"test_accuracy": 0.0, "val_accuracy": 0.0}\n')


def frictions(output: str) -> list[str]:
    seen: list[str] = []
    for line in output.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if FRICTION.search(line) and line not in seen:
            seen.append(line[:300])
    return seen[:20]


def peer_row(peer: str, seed: int, stdout: str, stderr: str, returncode: int, wall: float) -> dict[str, object]:
    """A peer's row from its output: the JSON of its last line, the wall time and the frictions it printed."""
    output = stdout + "\n" + stderr
    if returncode != 0:
        return {"peer": peer, "seed": seed, "error": output[-3000:], "frictions": frictions(output)}
    return {**last_json_line(stdout), "wall_seconds_total": round(wall, 1), "frictions": frictions(output)}


def run_peer(bench: Bench, peer: str, tree: Path, budget: float, seed: int) -> dict[str, object]:
    if bench.smoke:
        return peer_row(peer, seed, SMOKE_OUTPUT % (peer, seed), "", 0, 0.0)
    work = bench.work / "peers" / peer
    work.mkdir(parents=True, exist_ok=True)
    cmd = [str(peer_python(bench, peer)), str(ROOT / "peers" / f"{peer}_peer.py"), str(tree), str(budget), str(seed)]
    if peer == "ultralytics":
        cmd.append(str(work))
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "2"})
    wall = time.perf_counter() - start
    (work / f"output-seed{seed}-{int(budget)}s.log").write_text(proc.stdout + "\n" + proc.stderr)
    return peer_row(peer, seed, proc.stdout, proc.stderr, proc.returncode, wall)


def run_ours(bench: Bench, recipe: str, tree: Path, budget: float, seed: int) -> dict[str, object]:
    values = {"time_limit": f"{int(budget)}s", "seed": seed}
    if bench.smoke:
        values.update(epochs=1, batch_size=32)
    trained = bench.train(tree, bench.run_dir(f"peers-{recipe}-seed{seed}"), recipe=recipe, values=values,
                          isolate=not bench.smoke, check=False)
    if trained.returncode != 0:
        return {"peer": f"imgclf {recipe}", "seed": seed, "error": trained.log.read_text()[-3000:]}
    row = trained.row()
    return {"peer": f"imgclf {recipe}", "model": row["model"], "seed": seed, "torch_threads": 2,
            **{k: row[k] for k in ("epochs", "train_seconds", "images_per_s", "test_accuracy", "test_accuracy_tta",
                                   "val_accuracy", "run", "wall_seconds_total")}}


def save(bench: Bench, budget: float, rows: list[dict[str, object]], probes: dict[str, list[str]]) -> Path:
    """Merge into the budget's JSON, one row per (peer, seed), so runs of several invocations add up."""
    name = f"peers_{int(budget)}s"
    old = load_result(name, bench.results) or {}
    merged = {(r["peer"], r["seed"]): r for r in old.get("runs", [])}
    merged.update({(r["peer"], r["seed"]): r for r in rows})
    return bench.write_result(name, {
        "data": "Fashion-MNIST, 55,000 train / 5,000 val (stratified, seed 0) / 10,000 test, PNG tree",
        "budget_seconds": budget, "runs": list(merged.values()),
        "friction_probes": {**old.get("friction_probes", {}), **probes}})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=600.0, help="training wall time per run, seconds")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--only", default="ultralytics,fastai,s5-model-s,fast-fmnist")
    parser.add_argument("--probe-frictions", action="store_true",
                        help="only run each peer for 30 s on a subset (150 training images per class) and record "
                             "what it printed")
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    if args.probe_frictions or bench.smoke:  # the smoke mode runs both parts
        probes = {}
        for peer in PEERS:
            row = run_peer(bench, peer, bench.split_subset(150), 30.0, 0)
            probes[peer] = row["frictions"]
            print(peer, json.dumps(probes[peer], indent=1), flush=True)
        print(f"wrote {save(bench, args.budget, [], probes)}")
        if not bench.smoke:
            return
    tree = bench.split_tree()
    who = args.only.split(",")
    if bench.smoke:  # the peers' parsing, and one of our recipes
        who = [w for w in who if w in PEERS] + [w for w in who if w not in PEERS][-1:]
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name in who:
            row = run_peer(bench, name, tree, args.budget, seed) if name in PEERS else (
                run_ours(bench, name, tree, args.budget, seed))
            print(json.dumps({k: v for k, v in row.items() if k != "frictions"}), flush=True)
            print(f"wrote {save(bench, args.budget, [row], {})}", flush=True)


if __name__ == "__main__":
    main()
