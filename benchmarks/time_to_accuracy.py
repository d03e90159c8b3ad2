"""Time to accuracy: our fastest recipe against the Keras S5 `model_s` reference run, same Fashion-MNIST split.

Both sides train on peers_10min.py's split tree (55,000 train / 5,000 val, stratified seed 0 / 10,000 test).

- Keras (its own venv): S5's whole recipe, `keras_peer.py model_s_fit` (32x32 RGB view of the tree, up to 40
  epochs, early stopping restores the best val_loss). The target is the restored model's validation accuracy;
  the cost is the fit's wall time. One JSON line per epoch goes to benchmarks/work/tta/keras_model_s.jsonl.
- Ours: `imgclf train TREE --recipe fast-fmnist --time-limit T`; its history.csv gives validation accuracy
  against elapsed seconds, and we record when it first reaches the Keras target.

The Keras run takes hours here, so it is not repeated three times like the throughput comparisons; `report`
also works while it runs (marked unfinished: its time so far and its best so far, which may still rise). Keras' epochs
all do the same work, so where its run shared the CPU with other work, its clean wall time is estimated as the
first epoch plus (epochs - 1) x the median of its three fastest later epochs (the estimate favours Keras); the
raw wall time is recorded beside it.

    python benchmarks/time_to_accuracy.py keras            # hours; the .jsonl shows it as it goes
    python benchmarks/time_to_accuracy.py keras --resume   # a run cut off goes on from its last logged epoch
    python benchmarks/time_to_accuracy.py ours --time-limit 15m
    python benchmarks/time_to_accuracy.py report           # -> results/time_to_accuracy.json
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

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, WORK, write_result  # noqa: E402
from peers_10min import run_ours as train_within_budget, split_tree  # noqa: E402
from train_speed import KERAS_PY, ensure_keras_venv  # noqa: E402

TTA = WORK / "tta"
KERAS_LOG = TTA / "keras_model_s.jsonl"
KERAS_RESULT = TTA / "keras_model_s.json"
OURS_RESULT = TTA / "ours.json"


def run_keras(max_epochs: int, resume: bool) -> None:
    ensure_keras_venv()
    TTA.mkdir(parents=True, exist_ok=True)
    if not resume:
        KERAS_LOG.unlink(missing_ok=True)
    KERAS_RESULT.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run([str(KERAS_PY), str(ROOT / "keras_peer.py"), "model_s_fit", str(split_tree()),
                           str(max_epochs), str(KERAS_LOG)] + ["--resume"] * resume, capture_output=True, text=True,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds_total"] = time.perf_counter() - start
    KERAS_RESULT.write_text(json.dumps(result))
    print(json.dumps(result))


def run_ours(recipe: str, time_limit: str, seed: int) -> None:
    from imgclf.config import parse_seconds
    from imgclf.io import read_csv

    row = train_within_budget(recipe, split_tree(), parse_seconds(time_limit), seed)
    if "error" in row:
        raise SystemExit(row["error"])
    elapsed, curve = 0.0, []
    for epoch in read_csv(Path(row["run"]) / "history.csv"):
        elapsed += float(epoch["seconds"])
        curve.append({"epoch": int(epoch["epoch"]), "elapsed": round(elapsed, 1),
                      "val_accuracy": float(epoch["val_acc"])})
    result = {"recipe": recipe, "time_limit": time_limit, "seed": seed, "run": row["run"], "curve": curve,
              "test_accuracy": row["test_accuracy"], "wall_seconds_total": row["wall_seconds_total"],
              "command": f"imgclf train TREE --recipe {recipe} --time-limit {time_limit} --seed {seed}"}
    TTA.mkdir(parents=True, exist_ok=True)
    OURS_RESULT.write_text(json.dumps(result))
    print(json.dumps(result))


def keras_clean_seconds(epochs: list[dict]) -> float:
    """First epoch (graph tracing) + the rest at the median of the three fastest later epochs."""
    later = sorted(e["seconds"] for e in epochs[1:])
    return epochs[0]["seconds"] + (len(epochs) - 1) * statistics.median(later[:3]) if later else epochs[0]["seconds"]


def report() -> None:
    epochs = [json.loads(line) for line in KERAS_LOG.read_text().splitlines() if line.strip()]
    finished = KERAS_RESULT.exists()
    if finished:
        keras = json.loads(KERAS_RESULT.read_text())
    else:  # still running or cut off: what restoring its best val_loss so far would give; the target may still rise
        best = min(epochs, key=lambda e: e["val_loss"])
        keras = {"epochs": len(epochs), "fit_seconds": epochs[-1]["elapsed"], "val_accuracy": best["val_accuracy"],
                 "val_loss": best["val_loss"], "test_accuracy": None}
    keras["finished"] = finished
    ours = json.loads(OURS_RESULT.read_text())
    target = keras["val_accuracy"]
    keras_seconds = keras_clean_seconds(epochs)
    reached = next((p for p in ours["curve"] if p["val_accuracy"] >= target), None)
    ratio = round(reached["elapsed"] / keras_seconds, 4) if reached else None
    path = write_result("time_to_accuracy", {
        "data": "Fashion-MNIST, 55,000 train / 5,000 val (stratified, seed 0) / 10,000 test, PNG tree",
        "keras": {**keras, "wall_seconds_estimated_clean": round(keras_seconds, 1),
                  "curve": [{"epoch": e["epoch"], "elapsed": round(e["elapsed"], 1), "seconds": round(e["seconds"], 1),
                             "val_accuracy": e["val_accuracy"]} for e in epochs]},
        "target_val_accuracy": target, "ours": ours,
        "ours_seconds_to_target": reached["elapsed"] if reached else None,
        "ratio_ours_over_keras (target <= 0.2)": ratio})
    print(f"target {target:.4f}; Keras {keras_seconds:.0f} s (raw {keras['fit_seconds']:.0f} s); ours "
          f"{reached['elapsed'] if reached else 'never'} s; ratio {ratio}; wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=["keras", "ours", "report"])
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--resume", action="store_true", help="keras: go on from the last logged epoch")
    parser.add_argument("--recipe", default="fast-fmnist")
    parser.add_argument("--time-limit", default="15m")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.step == "keras":
        run_keras(args.max_epochs, args.resume)
    elif args.step == "ours":
        run_ours(args.recipe, args.time_limit, args.seed)
    else:
        report()


if __name__ == "__main__":
    main()
