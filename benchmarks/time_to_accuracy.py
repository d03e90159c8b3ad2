"""Time to accuracy: our fastest recipe against the Keras S5 `model_s` reference run, same Fashion-MNIST split.

Both sides train on the peers' split tree (55,000 train / 5,000 val, imgclf's stratified seed-0 split / 10,000
test; see benchmarks.common.Bench.split_tree).

- Keras (its own venv): S5's whole recipe, `peers/keras_peer.py model_s_fit` (32x32 RGB view of the tree, up to
  40 epochs, early stopping restores the best val_loss). The target is the restored model's validation accuracy;
  the cost is the fit's wall time. One JSON line per epoch goes to benchmarks/work/tta/keras_model_s.jsonl.
- Ours: `imgclf train TREE --recipe fast-fmnist --time-limit T` (a subprocess); its history.csv gives validation
  accuracy against elapsed seconds, and we record when it first reaches the Keras target.

The Keras run takes hours here, so it is not repeated three times like the throughput comparisons; `report`
also works while it runs (marked unfinished: its time so far and its best so far, which may still rise). Keras' epochs
all do the same work, so where its run shared the CPU with other work, its clean wall time is estimated as the
first epoch plus (epochs - 1) x the median of its three fastest later epochs (the estimate favours Keras); the
raw wall time is recorded beside it.

    python -m benchmarks.time_to_accuracy keras            # hours; the .jsonl shows it as it goes
    python -m benchmarks.time_to_accuracy keras --resume   # a run cut off goes on from its last logged epoch
    python -m benchmarks.time_to_accuracy ours --time-limit 15m
    python -m benchmarks.time_to_accuracy report           # -> results/time_to_accuracy.json

The smoke mode runs `ours` for one epoch in-process and `report` against a made-up two-epoch Keras log (no venv).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from benchmarks.common import ROOT, Bench, add_arguments, last_json_line, peer_python

STEPS = ("keras", "ours", "report")
# Smoke mode: what keras_peer.py model_s_fit logs per epoch, for `report` to read
SMOKE_KERAS_LOG = [{"epoch": 1, "seconds": 2.0, "elapsed": 2.0, "val_accuracy": 0.3, "val_loss": 1.5, "lr": 1e-3},
                   {"epoch": 2, "seconds": 1.0, "elapsed": 3.0, "val_accuracy": 0.4, "val_loss": 1.4, "lr": 1e-3}]


def files(bench: Bench) -> tuple[Path, Path, Path]:
    """The Keras epoch log, the Keras result and ours, under work/tta/."""
    tta = bench.work / "tta"
    return tta / "keras_model_s.jsonl", tta / "keras_model_s.json", tta / "ours.json"


def run_keras(bench: Bench, max_epochs: int, resume: bool) -> None:
    keras_log, keras_result, _ = files(bench)
    keras_log.parent.mkdir(parents=True, exist_ok=True)
    if bench.smoke:  # no venv: a made-up log of two epochs, unfinished (no result file)
        keras_log.write_text("".join(json.dumps(row) + "\n" for row in SMOKE_KERAS_LOG))
        keras_result.unlink(missing_ok=True)
        return
    python = peer_python(bench, "keras")
    if not resume:
        keras_log.unlink(missing_ok=True)
    keras_result.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run([str(python), str(ROOT / "peers" / "keras_peer.py"), "model_s_fit", str(bench.split_tree()),
                           str(max_epochs), str(keras_log)] + ["--resume"] * resume, capture_output=True, text=True,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    result = last_json_line(proc.stdout)
    result["wall_seconds_total"] = time.perf_counter() - start
    keras_result.write_text(json.dumps(result))
    print(json.dumps(result))


def run_ours(bench: Bench, recipe: str, time_limit: str, seed: int) -> None:
    values = {"time_limit": time_limit, "seed": seed, **({"epochs": 1, "batch_size": 32} if bench.smoke else {})}
    trained = bench.train(bench.split_tree(), bench.run_dir(f"tta-{recipe}-seed{seed}"), recipe=recipe,
                          values=values, isolate=not bench.smoke)
    elapsed, curve = 0.0, []
    for epoch in trained.run.read_history():
        elapsed += epoch.seconds or 0.0
        curve.append({"epoch": epoch.epoch, "elapsed": round(elapsed, 1), "val_accuracy": epoch.val_acc})
    result = {"recipe": recipe, "time_limit": time_limit, "seed": seed, "run": str(trained.run.path), "curve": curve,
              "test_accuracy": trained.run.read_metrics().accuracy,
              "wall_seconds_total": round(trained.wall_seconds, 1),
              "command": f"imgclf train TREE --recipe {recipe} --time-limit {time_limit} --seed {seed}"}
    ours = files(bench)[2]
    ours.parent.mkdir(parents=True, exist_ok=True)
    ours.write_text(json.dumps(result))
    print(json.dumps(result))


def keras_clean_seconds(epochs: list[dict]) -> float:
    """First epoch (graph tracing) + the rest at the median of the three fastest later epochs."""
    later = sorted(e["seconds"] for e in epochs[1:])
    return epochs[0]["seconds"] + (len(epochs) - 1) * statistics.median(later[:3]) if later else epochs[0]["seconds"]


def report(bench: Bench) -> None:
    keras_log, keras_result, ours_result = files(bench)
    epochs = [json.loads(line) for line in keras_log.read_text().splitlines() if line.strip()]
    finished = keras_result.exists()
    if finished:
        keras = json.loads(keras_result.read_text())
    else:  # still running or cut off: what restoring its best val_loss so far would give; the target may still rise
        best = min(epochs, key=lambda e: e["val_loss"])
        keras = {"epochs": len(epochs), "fit_seconds": epochs[-1]["elapsed"], "val_accuracy": best["val_accuracy"],
                 "val_loss": best["val_loss"], "test_accuracy": None}
    keras["finished"] = finished
    ours = json.loads(ours_result.read_text())
    target = keras["val_accuracy"]
    keras_seconds = keras_clean_seconds(epochs)
    reached = next((p for p in ours["curve"] if p["val_accuracy"] >= target), None)
    ratio = round(reached["elapsed"] / keras_seconds, 4) if reached else None
    path = bench.write_result("time_to_accuracy", {
        "data": "Fashion-MNIST, 55,000 train / 5,000 val (stratified, seed 0) / 10,000 test, PNG tree",
        "keras": {**keras, "wall_seconds_estimated_clean": round(keras_seconds, 1),
                  "curve": [{"epoch": e["epoch"], "elapsed": round(e["elapsed"], 1), "seconds": round(e["seconds"], 1),
                             "val_accuracy": e["val_accuracy"]} for e in epochs]},
        "target_val_accuracy": target, "ours": ours,
        "ours_seconds_to_target": reached["elapsed"] if reached else None,
        "ratio_ours_over_keras (target <= 0.2)": ratio})
    print(f"target {target:.4f}; Keras {keras_seconds:.0f} s (raw {keras['fit_seconds']:.0f} s); ours "
          f"{reached['elapsed'] if reached else 'never'} s; ratio {ratio}; wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", nargs="?", choices=STEPS, help="required, except with --smoke (which runs all three)")
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--resume", action="store_true", help="keras: go on from the last logged epoch")
    parser.add_argument("--recipe", default="fast-fmnist")
    parser.add_argument("--time-limit", default="15m")
    parser.add_argument("--seed", type=int, default=0)
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    bench = Bench.from_args(args)
    if args.step is None and not bench.smoke:
        parser.error(f"the step is required: one of {', '.join(STEPS)}")
    for step in [args.step] if args.step else STEPS:
        if step == "keras":
            run_keras(bench, args.max_epochs, args.resume)
        elif step == "ours":
            run_ours(bench, args.recipe, args.time_limit, args.seed)
        else:
            report(bench)


if __name__ == "__main__":
    main()
