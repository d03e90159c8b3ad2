"""The offline demo: scikit-learn's digits -> PNG tree -> simple_cnn -> evaluated run directory."""

from __future__ import annotations

from pathlib import Path

from .config import make_config
from .data.sources import TOP_LEVEL, export_digits, refuse_other_content
from .io import next_free_dir, writable_folder

DEMO_SETTINGS = {
    "model": "simple_cnn", "img_size": 16, "batch_size": 32, "lr": 3e-3, "schedule": "onecycle",
    "optimizer": "adamw", "weight_decay": 1e-4, "augment": "shift=0.1,rotate=10", "seed": 0,
}


def run_demo(out: str | Path = "imgclf-demo", epochs: int = 15, progress: bool = True):
    from .pipeline import fit

    out = writable_folder("out", out)
    refuse_other_content("out", out, ("digits", "runs"), "an earlier demo's digits/ and runs/, which it adds a run to")
    refuse_other_content("out", out / "digits", TOP_LEVEL["digits"], "the digits an earlier demo wrote")
    settings = {**DEMO_SETTINGS, "data": str(out / "digits"), "epochs": epochs, "progress": progress}
    make_config(**settings)  # a bad epochs is refused before the 1,797 digits are written, not after
    data = export_digits(out / "digits")
    return fit({**settings, "data": str(data), "out": str(next_free_dir(out / "runs", "demo"))})
