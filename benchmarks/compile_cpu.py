"""`torch.compile` (Inductor) against eager PyTorch for a training step on this CPU.

Issue 11 asks for each option that might close the fer_cnn gap to be measured and kept only if it wins.
Both sides run the same step (channels-last, SGD + Nesterov, cross-entropy with label smoothing), interleaved
and repeated; the compiled side's first-compilation seconds are reported apart (a 10-minute budget pays them).
The smoke mode times the first case on batches of 4 with the `eager` backend (graph capture, no code generation).
`--precision bf16-mixed` runs both sides' step under bf16 autocast, as `precision: auto` trains on a CPU with
native bf16 (Lightning's bf16-mixed: the training step inside `torch.autocast`); its results go to
compile_cpu_bf16.json.

    python -m benchmarks.compile_cpu --repeats 3
    python -m benchmarks.compile_cpu --repeats 3 --precision bf16-mixed
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import Bench, add_arguments, interleaved, print_table, throughput

# model, model_args, image size, channels, batch: our fast recipe's model and the S5 and S3 reference models
CASES = {
    "fast_resnet w16 28x28x1 b256": ("fast_resnet", {"width": 16}, 28, 1, 256),
    "model_s 32x32x3 b64": ("model_s", {}, 32, 3, 64),
    "fer_cnn 48x48x1 b64": ("fer_cnn", {}, 48, 1, 64),
}


def make_step(name: str, args: dict, size: int, chans: int, batch: int, backend: str | None, bf16: bool = False):
    """A training step of the model (compiled with `backend`, or eager for None), and its first two steps' time."""
    import torch
    from torch import nn

    from imgclf.models import create_model

    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=chans, img_size=size, **args)
    model = model.to(memory_format=torch.channels_last).train()
    forward = torch.compile(model, backend=backend) if backend else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    x = torch.randn(batch, chans, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step() -> int:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(forward(x), y)
        loss.backward()
        optimizer.step()
        return batch

    start = time.perf_counter()
    step()
    step()
    return step, time.perf_counter() - start


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="inductor", help="torch.compile backend of the compiled side")
    parser.add_argument("--precision", choices=("32", "bf16-mixed"), default="32",
                        help="both sides' step in fp32, or under bf16 autocast")
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    import torch

    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    backend = "eager" if bench.smoke else args.backend
    cases = {k: (*v[:4], 4) for k, v in list(CASES.items())[:1]} if bench.smoke else CASES
    results, ratios, first_steps = {}, {}, {}
    for label, (name, model_args, size, chans, batch) in cases.items():
        steps = {}
        for compiled in (False, True):
            side = f"{label} {'compiled' if compiled else 'eager'}"
            steps[side], first_steps[side] = make_step(name, model_args, size, chans, batch,
                                                       backend if compiled else None,
                                                       bf16=args.precision == "bf16-mixed")
        timed = {side: (lambda s=s: throughput(s, min_seconds=bench.min_seconds(5.0))) for side, s in steps.items()}
        found = interleaved(timed, bench.repeats(args.repeats))
        results.update(found)
        eager_speed, compiled_speed = (found[f"{label} {kind}"]["median"] for kind in ("eager", "compiled"))
        ratios[f"{label}: compiled / eager"] = round(compiled_speed / eager_speed, 2)
    print_table(results, ratios)
    seconds = {side: round(s, 1) for side, s in first_steps.items()}
    print("first two steps (s):", seconds)
    name = "compile_cpu" if args.precision == "32" else "compile_cpu_bf16"
    path = bench.write_result(name, {"unit": "images/s", "repeats": args.repeats, "precision": args.precision,
                                     "results": results,
                                              "ratios": ratios, "first_two_steps_seconds": seconds,
                                              "backend": backend, "threads": torch.get_num_threads()})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
