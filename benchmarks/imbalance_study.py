"""S4's class-imbalance study on a Fashion-MNIST stand-in, small enough for a shared 2-core CPU.

10 classes, 5 minority (the first five by name, all classes being equally large in the pool), step imbalance
rho = 1, 3, 7, 15 with the total fixed at 10 x 128 images, split 60/10/30 % train/val/test per subset as S4
splits 70/30 (the test split is imbalanced like the training data, as in S4). Model: simple_cnn width 16 on the
native 28x28 grey images, Adam 1e-3, 10 epochs. Two grids in one study folder:

  A. configuration none at every ratio  -> S4's finding: accuracy holds or rises with rho while the minority
     classes' recall collapses;
  B. the correctives at rho = 15 (class-weighted loss, oversampling sampler, focal loss) -> minority recall
     compared with none.

Every number is a mean over seeds (default 0, 1, 2). Writes benchmarks/results/imbalance_study.json and
prints the table for docs/imbalance.md. The study folder (default benchmarks/work/imbalance_study) keeps
every run directory and study.html; a second invocation skips finished runs.

    python -m benchmarks.imbalance_study            # about 10 minutes on 2 shared cores
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.common import ROOT, Bench, add_arguments, torch_threads

RHOS = [1.0, 3.0, 7.0, 15.0]
CORRECTIVES = ["weighted", "oversample", "focal"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--per-class", type=int, default=128,
                        help="Base set per class (a multiple of 8 keeps rho exact).")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 is fastest when other processes share the cores.")
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> int:
    from imgclf.io import write_json
    from imgclf.study.imbalance import run_imbalance_study

    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    work = bench.work / "imbalance_study"
    seeds = [int(s) for s in args.seeds.split(",")]
    rhos, correctives, per_class, epochs = RHOS, CORRECTIVES, args.per_class, args.epochs
    if bench.smoke:  # 3 tiny runs: none at rho 1 and 3, one corrective at rho 3
        rhos, correctives, per_class, epochs, seeds = [1.0, 3.0], CORRECTIVES[:1], 4, 1, seeds[:1]
    pool = bench.fashion_tree(400) / "train"  # 400 per class >= 15/16 x 2N
    overrides = {"img_size": 28, "epochs": epochs, "batch_size": 32, "lr": 1e-3, "optimizer": "adam",
                 "model_args": {"width": 16}, "test_split": 0.3, "val_split": 0.1, "channels_last": False,
                 "progress": False}
    common = dict(per_class=per_class, mu=0.5, seeds=seeds, model="simple_cnn", overrides=overrides,
                  run_reports=False, log=lambda m: print(m, flush=True))
    started = time.perf_counter()
    # On a CPU shared with other jobs, 2 threads per process ran 4x slower than 1 (spin-waiting threads).
    with torch_threads(args.threads):
        run_imbalance_study(pool, work / "study", rhos=rhos, configs=["none"], **common)
        study = run_imbalance_study(pool, work / "study", rhos=rhos[-1:], configs=correctives, **common)
    wall = time.perf_counter() - started

    rows = {(r["rho"], r["config"]): r for r in study["summary"]}

    def mean(rho: float, config: str, key: str) -> float:
        return rows[(rho, config)][key]["mean"]

    low, high = rhos[0], rhos[-1]
    acc = {r: mean(r, "none", "accuracy") for r in rhos}
    minority = {r: mean(r, "none", "minority_recall") for r in rhos}
    gains = {c: mean(high, c, "minority_recall") - minority[high] for c in correctives}
    best = max(gains, key=gains.get)
    findings = {
        "accuracy_holds_or_rises_with_rho": acc[high] >= acc[low] - 0.02,
        "minority_recall_falls_with_rho": all(minority[a] >= minority[b] for a, b in zip(rhos, rhos[1:]))
                                          and minority[high] < minority[low] - 0.3,
        f"corrective_raises_minority_recall_at_rho{high:g}": gains[best] >= 0.2,
        "best_corrective": best,
        f"minority_recall_gain_over_none_at_rho{high:g}": {c: round(g, 4) for c, g in gains.items()},
    }
    table = [{"rho": r["rho"], "config": r["config"], "seeds": r["seeds"],
              **{k: {"mean": r[k]["mean"], "std": r[k]["std"]}
                 for k in ("accuracy", "macro_recall", "minority_recall", "majority_recall", "final_train_acc")}}
             for r in study["summary"]]
    result = {
        "benchmark": "imbalance_study",
        "reference": "S4 (REFERENCES.md): step imbalance, mu = 0.5, rho = 1, 3, 7, 15; accuracy vs per-class recall",
        "data": "Fashion-MNIST train images (Debian dataset-fashion-mnist), 400-per-class pool, 28x28 grey",
        "setup": {"per_class": per_class, "total_per_subset": 10 * per_class, "mu": 0.5, "rhos": rhos,
                  "model": "simple_cnn", "overrides": overrides, "seeds": seeds, "threads": args.threads,
                  "minority": study["minority"], "subset_counts": study["subsets"]},
        "table": table,
        "findings": findings,
        "wall_seconds": round(wall, 1),
        "note": "wall time measured on a CPU shared with other jobs; a rerun skips finished runs",
        "hardware": study["hardware"],
        "versions": study["versions"],
        "study_html": study_html(work / "study" / "study.html"),
    }
    path = bench.results / "imbalance_study.json"
    write_json(path, result)
    print(markdown_table(table))
    print({k: v for k, v in findings.items()})
    print(f"wrote {path} ({wall:.0f} s)")
    return 0


def study_html(path: Path) -> str:
    """The study page's path, relative to the repository when it lies inside it."""
    repo = ROOT.parent.resolve()
    return str(path.resolve().relative_to(repo)) if path.resolve().is_relative_to(repo) else str(path)


def markdown_table(table: list[dict]) -> str:
    def f(stat: dict) -> str:
        if stat["mean"] is None:
            return "–"
        return f"{stat['mean']:.3f}" + (f" ± {stat['std']:.3f}" if stat["std"] is not None else "")

    lines = ["| rho | configuration | seeds | test accuracy | macro recall | minority recall | majority recall |",
             "|---|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['rho']:g}:1 | {r['config']} | {len(r['seeds'])} | {f(r['accuracy'])} | "
                     f"{f(r['macro_recall'])} | {f(r['minority_recall'])} | {f(r['majority_recall'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
