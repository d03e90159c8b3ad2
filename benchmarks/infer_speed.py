"""Evaluation and prediction throughput against training throughput for the same model (target >= 2.5x).

model_s (s5-model-s recipe, 32x32 RGB from the 28x28 grey PNGs) on Fashion-MNIST, 400 per class per split. Each
round, interleaved:
  - training: `imgclf train` for 2 epochs, images/s of the second epoch (history.csv);
  - `evaluate_run` on the run's 4,000 test PNGs, cold (a fresh decode cache: decode + forward) and warm;
  - `Classifier.predict` on the same 4,000 PNG paths (decode + forward, what `imgclf predict` does).

    python -m benchmarks.infer_speed --repeats 3
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

from benchmarks.common import Bench, add_arguments, interleaved, print_table

TRAINING = {"img_size": 32, "color": "rgb", "epochs": 2}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    from imgclf.evaluation.run_eval import evaluate_run
    from imgclf.inference import Classifier
    from imgclf.inputs import expand_inputs

    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    data = bench.fashion_tree(400)
    training = {**TRAINING, "epochs": 1} if bench.smoke else TRAINING
    run = bench.work / "runs" / "infer-speed-model_s"
    if not (run / "metrics.json").exists():
        bench.train(data, run, recipe="s5-model-s", values=training, overwrite=True)
    files = expand_inputs([data / "test"])
    clf = Classifier.load(run)
    cache_dir = str(bench.cache_dir)

    def evaluate_cold() -> float:
        cache = tempfile.mkdtemp(prefix="infer-speed-")
        try:
            start = time.perf_counter()
            metrics = evaluate_run(run, cache_dir=cache)
            return metrics.count / (time.perf_counter() - start)
        finally:
            shutil.rmtree(cache)

    def evaluate_warm() -> float:
        evaluate_run(run, cache_dir=cache_dir)  # makes sure the cache holds the test split
        start = time.perf_counter()
        metrics = evaluate_run(run, cache_dir=cache_dir)
        return metrics.count / (time.perf_counter() - start)

    def predict_files() -> float:
        start = time.perf_counter()
        n = len(clf.predict(files))
        return n / (time.perf_counter() - start)

    cases = {
        "imgclf train model_s (s5-model-s)": lambda: bench.training_speed(data, "s5-model-s", training),
        "evaluate, cold cache (decode + forward)": evaluate_cold,
        "evaluate, warm cache": evaluate_warm,
        "Classifier.predict on PNG paths": predict_files,
    }
    results = interleaved(cases, bench.repeats(args.repeats))
    train = results["imgclf train model_s (s5-model-s)"]["median"]
    ratios = {f"{name} / training (target >= 2.5)": round(r["median"] / train, 2)
              for name, r in results.items() if not name.startswith("imgclf train")}
    path = bench.write_result("infer_speed", {"unit": "images/s", "repeats": args.repeats,
                                              "model": "model_s 32x32 RGB", "test_images": len(files),
                                              "results": results, "ratios": ratios})
    print_table(results, ratios)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
