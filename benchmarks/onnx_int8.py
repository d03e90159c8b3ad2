"""`imgclf export --quantize int8` against the fp32 export: answers on the test split and forward-pass speed.

For each run, both exports are made (the int8 one calibrated on the run's validation images, as the command does),
the run's test split is decoded once, and each graph answers it through `OnnxClassifier.infer_pixels` (what
`predict` and `serve --backend onnx` run): accuracy of each, top-1 agreement, unknown flags that differ, the
largest change of a probability, ECE. The torch network at `precision: auto` (what `--backend torch` serves) is
answered and timed beside them. Speed: process CPU time of the forward pass on 1 thread (what `imgclf serve` runs
on 2 cores) at batch 8 (the batch its batcher reached under 16 clients) and 256, the arms interleaved, `--repeats`
rounds after a warm-up, medians.

Runs: `--runs RUN ...`, or by default the two of benchmarks/infer_precision.py trained here on a Fashion-MNIST
subset (`fast-fmnist`, fast_resnet 28x28 grey; `s5-model-s`, model_s 32x32 RGB).

    python -m benchmarks.onnx_int8 --per-class 1000 --epochs 4 --repeats 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.common import Bench, add_arguments
from benchmarks.infer_precision import ece, test_split, train_runs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", type=Path, default=None, help="trained runs to measure (default: "
                        "train fast-fmnist and s5-model-s here)")
    parser.add_argument("--per-class", type=int, default=1000, help="Fashion-MNIST images per class and split for "
                        "the runs trained here")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the runs trained here")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tag", default="", help="result file suffix: results/onnx_int8<tag>.json")
    return add_arguments(parser)


def cpu_ms_per_image(infer, pixels: np.ndarray, batch: int, images: int) -> float:
    """Process CPU milliseconds per image of `infer` over whole batches of about `images` images (a test split
    smaller than one batch is repeated)."""
    pool = np.concatenate([pixels] * max(1, -(-batch // len(pixels))))
    chunks = [pool[i:i + batch] for i in range(0, max(batch, min(images, len(pool))) - batch + 1, batch)]
    start = time.process_time()
    for chunk in chunks:
        infer(chunk)
    return 1000 * (time.process_time() - start) / (len(chunks) * batch)


def measure(run_dir: Path, work: Path, repeats: int) -> dict[str, object]:
    import torch

    from imgclf.export import export_run, load_onnx
    from imgclf.inference import Classifier

    fp32_dir, int8_dir = work / "fp32", work / "int8"
    for d in (fp32_dir, int8_dir):
        shutil.rmtree(d, ignore_errors=True)
    export_run(run_dir, "onnx", out=fp32_dir)
    export_run(run_dir, "onnx", out=int8_dir, quantize="int8")
    pixels, labels = test_split(run_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        arms = {"torch-auto": Classifier.load(run_dir),
                "onnx-fp32": load_onnx(fp32_dir / "model.onnx", threads=1),
                "onnx-int8": load_onnx(int8_dir / "model.onnx", threads=1)}
        answers = {arm: clf.infer_pixels(pixels) for arm, clf in arms.items()}  # warm-up, and the answers
        ms: dict[str, dict[int, list[float]]] = {arm: {8: [], 256: []} for arm in arms}
        for _ in range(repeats):
            for batch in (8, 256):
                for arm, clf in arms.items():  # interleaved: a change in the machine's load hits every arm
                    ms[arm][batch].append(cpu_ms_per_image(lambda x: clf.infer_pixels(x, batch_size=batch),
                                                           pixels, batch, 2048))
    finally:
        torch.set_num_threads(threads)
    fp32, int8 = answers["onnx-fp32"], answers["onnx-int8"]
    accuracy = {arm: float((a.probabilities.argmax(1) == labels).mean()) for arm, a in answers.items()}
    median = {arm: {b: round(statistics.median(v), 4) for b, v in by.items()} for arm, by in ms.items()}
    card = arms["onnx-int8"].card
    return {
        "run": str(run_dir), "architecture": card.architecture, "img_size": card.img_size, "color": card.color,
        "images": len(pixels), "torch_precision": arms["torch-auto"].precision,
        "recipe": card.training.recipe, "epochs_trained": card.training.epochs_trained,
        "quantization_check": card.export.quantization_check.model_dump(),
        "accuracy": {arm: round(v, 4) for arm, v in accuracy.items()},
        "accuracy_int8_minus_fp32_points": round(100 * (accuracy["onnx-int8"] - accuracy["onnx-fp32"]), 2),
        "top1_agreement_int8_fp32": round(float((int8.probabilities.argmax(1)
                                                 == fp32.probabilities.argmax(1)).mean()), 5),
        "unknown_flags_differing": int((int8.unknown != fp32.unknown).sum()),
        "max_probability_change": round(float(np.abs(int8.probabilities - fp32.probabilities).max()), 4),
        "score_correlation": round(float(np.corrcoef(int8.scores, fp32.scores)[0, 1]), 6),
        "ece": {arm: round(ece(a.probabilities, labels), 4) for arm, a in answers.items()},
        "forward_cpu_ms_per_image": median,
        "int8_speedup_over_fp32": {b: round(median["onnx-fp32"][b] / median["onnx-int8"][b], 3) for b in (8, 256)},
        "int8_speedup_over_torch_auto": {b: round(median["torch-auto"][b] / median["onnx-int8"][b], 3)
                                         for b in (8, 256)},
        "cpu_ms_rounds": ms,
    }


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    runs = args.runs or train_runs(bench, args.per_class, args.epochs)
    rows = [measure(run, bench.work / "onnx-int8" / run.name, 1 if bench.smoke else args.repeats) for run in runs]
    for r in rows:
        print(f"{r['architecture']:12s} {r['images']:6d} test images  accuracy fp32 {r['accuracy']['onnx-fp32']:.4f} "
              f"int8 {r['accuracy']['onnx-int8']:.4f} (torch {r['torch_precision']} {r['accuracy']['torch-auto']:.4f})"
              f"  agreement {r['top1_agreement_int8_fp32']}  unknown flags differing {r['unknown_flags_differing']}"
              f"  ms/image at batch 8: torch {r['forward_cpu_ms_per_image']['torch-auto'][8]}, fp32 "
              f"{r['forward_cpu_ms_per_image']['onnx-fp32'][8]}, int8 {r['forward_cpu_ms_per_image']['onnx-int8'][8]}"
              f"  int8 x{r['int8_speedup_over_fp32'][8]} over fp32, x{r['int8_speedup_over_torch_auto'][8]} over torch"
              f" (batch 256: x{r['int8_speedup_over_fp32'][256]}, x{r['int8_speedup_over_torch_auto'][256]})")
    payload = {"repeats": args.repeats, "threads": 1, "per_class": None if args.runs else args.per_class,
               "epochs": None if args.runs else args.epochs, "tag": args.tag, "rows": rows}
    print(f"wrote {bench.write_result(f'onnx_int8{args.tag}', payload)}")


if __name__ == "__main__":
    main()
