"""`torch.compile` (Inductor) against eager PyTorch for a training step on this CPU.

Issue 11 asks for each option that might close the fer_cnn gap to be measured and kept only if it wins.
Both sides run the same step (channels-last, SGD + Nesterov, cross-entropy with label smoothing), interleaved
and repeated; the compiled side's first-compilation seconds are reported apart (a 10-minute budget pays them).

    python benchmarks/compile_cpu.py --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import interleaved, print_table, throughput, write_result  # noqa: E402

# model, model_args, image size, channels, batch: our fast recipe's model and the S5 and S3 reference models
CASES = {
    "fast_resnet w16 28x28x1 b256": ("fast_resnet", {"width": 16}, 28, 1, 256),
    "model_s 32x32x3 b64": ("model_s", {}, 32, 3, 64),
    "fer_cnn 48x48x1 b64": ("fer_cnn", {}, 48, 1, 64),
}


def make_step(name: str, args: dict, size: int, chans: int, batch: int, compiled: bool):
    import torch
    from torch import nn

    from imgclf.models.registry import create_model

    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=chans, img_size=size, **args)
    model = model.to(memory_format=torch.channels_last).train()
    forward = torch.compile(model) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    x = torch.randn(batch, chans, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step() -> int:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(forward(x), y).backward()
        optimizer.step()
        return batch

    start = time.perf_counter()
    step()
    step()
    return step, time.perf_counter() - start


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results, ratios, first_steps = {}, {}, {}
    for label, (name, model_args, size, chans, batch) in CASES.items():
        steps = {}
        for compiled in (False, True):
            side = f"{label} {'compiled' if compiled else 'eager'}"
            steps[side], first_steps[side] = make_step(name, model_args, size, chans, batch, compiled)
        cases = {side: (lambda s=s: throughput(s, min_seconds=5.0)) for side, s in steps.items()}
        found = interleaved(cases, args.repeats)
        results.update(found)
        eager_speed, compiled_speed = (found[f"{label} {kind}"]["median"] for kind in ("eager", "compiled"))
        ratios[f"{label}: compiled / eager"] = round(compiled_speed / eager_speed, 2)
    print_table(results, ratios)
    seconds = {side: round(s, 1) for side, s in first_steps.items()}
    print("first two steps (s):", seconds)
    path = write_result("compile_cpu", {"unit": "images/s", "repeats": args.repeats, "results": results,
                                        "ratios": ratios, "first_two_steps_seconds": seconds,
                                        "threads": torch.get_num_threads()})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
