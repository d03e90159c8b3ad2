"""Evaluation and prediction throughput against training throughput for the same model (target >= 2.5x).

model_s (s5-model-s recipe) on Fashion-MNIST 32x32 RGB PNGs, 400 per class per split. Each round, interleaved:
  - training: `imgclf train` for 2 epochs, images/s of the second epoch (history.csv);
  - `evaluate_run` on the run's 4,000 test PNGs, cold (a fresh decode cache: decode + forward) and warm;
  - `Classifier.predict` on the same 4,000 PNG paths (decode + forward, what `imgclf predict` does).

    python benchmarks/infer_speed.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import WORK, fashion_png_tree, interleaved, print_table, write_result  # noqa: E402
from train_speed import imgclf_train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["IMGCLF_CACHE"] = str(WORK / "cache")
    data = fashion_png_tree(32, "rgb", per_class=400)
    run = WORK / "runs" / "infer-speed-model_s"
    if not (run / "model.json").exists():
        import imgclf
        from imgclf.recipes import load_recipe

        imgclf.fit({**load_recipe("s5-model-s"), "data": str(data), "epochs": 2, "out": str(run),
                    "progress": False}, report=False)
    from imgclf.evaluation.run_eval import evaluate_run
    from imgclf.inference import Classifier, expand_inputs

    files = expand_inputs([data / "test"])
    clf = Classifier.load(run)

    def evaluate_cold() -> float:
        cache = tempfile.mkdtemp(prefix="infer-speed-")
        try:
            start = time.perf_counter()
            metrics = evaluate_run(run, cache_dir=cache)
            return metrics["count"] / (time.perf_counter() - start)
        finally:
            shutil.rmtree(cache)

    def evaluate_warm() -> float:
        evaluate_run(run)  # makes sure the default cache holds the test split
        start = time.perf_counter()
        metrics = evaluate_run(run)
        return metrics["count"] / (time.perf_counter() - start)

    def predict_files() -> float:
        start = time.perf_counter()
        n = len(clf.predict(files))
        return n / (time.perf_counter() - start)

    cases = {
        "imgclf train model_s (s5-model-s)": lambda: imgclf_train(data, "s5-model-s", 32, "rgb", 2, []),
        "evaluate, cold cache (decode + forward)": evaluate_cold,
        "evaluate, warm cache": evaluate_warm,
        "Classifier.predict on PNG paths": predict_files,
    }
    results = interleaved(cases, args.repeats)
    train = results["imgclf train model_s (s5-model-s)"]["median"]
    ratios = {f"{name} / training (target >= 2.5)": round(r["median"] / train, 2)
              for name, r in results.items() if not name.startswith("imgclf train")}
    path = write_result("infer_speed", {"unit": "images/s", "repeats": args.repeats, "model": "model_s 32x32 RGB",
                                        "test_images": len(files), "results": results, "ratios": ratios})
    print_table(results, ratios)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
