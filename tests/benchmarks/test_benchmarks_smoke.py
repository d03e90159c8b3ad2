"""Every benchmark module's smallest mode (`--smoke`) runs in the normal suite, so none can rot unseen.

The modules are discovered in the `benchmarks` package: a new benchmark is covered by adding it. Each runs
in-process with a temporary work folder (tiny generated data, one epoch, one repeat); the peers' venvs are
never installed (their smoke modes read made-up peer output through the real parsing), and nothing may be
written to benchmarks/results.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "benchmarks"
RESULTS = PACKAGE / "results"


def _benchmarks_package():
    """The repository's `benchmarks` package. `python -m pytest` from the repository root finds it on sys.path; a
    bare `pytest` would find this folder (tests/benchmarks) as a namespace package of the same name instead, so
    then the package is loaded from its folder."""
    module = sys.modules.get("benchmarks")
    if module is None:
        try:
            import benchmarks as module
        except ImportError:
            module = None
    if module is not None and getattr(module, "__file__", None) and Path(module.__file__).parent == PACKAGE:
        return module
    spec = importlib.util.spec_from_file_location("benchmarks", PACKAGE / "__init__.py",
                                                  submodule_search_locations=[str(PACKAGE)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks"] = module
    spec.loader.exec_module(module)
    return module


benchmarks = _benchmarks_package()
from benchmarks.common import machine_tag  # noqa: E402
from imgclf.hardware import describe  # noqa: E402

HELPERS = {"common"}  # shared plumbing, not a benchmark
# Benchmarks whose optional dependency (an extra of pyproject.toml) may be missing from a test install.
NEEDS = {"serve_load": "aiohttp"}
# What each smoke run writes into its results folder (the report generators write pages instead).
WRITES = {"report_performance": "docs/performance.md", "report_results": "docs/results.md", "run_all": None,
          "fast_recipe": f"results/fast_recipe_10m_{machine_tag(describe())}_seed0.json", "peers_10min": "results/peers_600s.json",
          "transfer_pretrained_vs_scratch": "results/transfer_pretrained_vs_scratch.json",
          "imbalance_study": "results/imbalance_study.json", "serve_load": "results/serve.json"}

MODULES = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name not in HELPERS)


def _snapshot() -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in RESULTS.iterdir()}


def test_every_benchmark_is_discovered():
    assert {"run_all", "report_results", "report_performance", "gpu_throughput"} <= set(MODULES)
    assert len(MODULES) >= 18


@pytest.mark.parametrize("name", MODULES)
def test_smoke(name, tmp_path, monkeypatch):
    import torch

    if name in NEEDS and importlib.util.find_spec(NEEDS[name]) is None:
        pytest.skip(f"{name} needs {NEEDS[name]} (pip install -e '.[bench]')")
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(module.build_parser) and callable(module.main), "a benchmark has build_parser() and main(argv)"
    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # One thread, here and in the subprocesses: nothing is timed, and on a busy machine two spinning threads per
    # process ran steps 10x slower than one.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before, threads = _snapshot(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        module.main(["--smoke", "--work", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    assert _snapshot() == before, "a smoke run wrote to benchmarks/results"
    expected = WRITES.get(name, f"results/{name}.json")
    if expected:
        assert (tmp_path / expected).is_file()


def test_lr_auto_reuse_reads_grid_arms_back_and_always_retrains_auto(tmp_path, monkeypatch):
    """`--reuse` (a new suggestion rule measured against the same grid) must not retrain a finished grid arm,
    and must never reuse the auto arm, whose learning rate comes from the code being measured."""
    import json

    from benchmarks import lr_auto
    from imgclf.records import RunDir

    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    lr_auto.main(["--smoke", "--work", str(tmp_path)])
    first = {r["lr_setting"]: r for r in json.loads((tmp_path / "results" / "lr_auto.json").read_text())["runs"]}
    runs_before = set((tmp_path / "runs").iterdir())
    lr_auto.main(["--smoke", "--work", str(tmp_path), "--reuse"])
    second = {r["lr_setting"]: r for r in json.loads((tmp_path / "results" / "lr_auto.json").read_text())["runs"]}
    made = set((tmp_path / "runs").iterdir()) - runs_before
    assert [p.name.startswith("lrauto-model_s-auto-") for p in made] == [True]  # only auto trained again
    assert second["auto"]["reused"] is False and second["auto"]["run"] != first["auto"]["run"]
    for lr in lr_auto.GRID[1:5:2]:
        assert second[lr]["reused"] is True and second[lr]["run"] == first[lr]["run"]
        assert second[lr]["test_accuracy"] == first[lr]["test_accuracy"]
    # a grid arm is taken for the same experiment only: not for other data, nor for any other setting
    bench = lr_auto.Bench.from_args(lr_auto.build_parser().parse_args(["--smoke", "--work", str(tmp_path)]))
    lr, run = lr_auto.GRID[1], Path(first[lr_auto.GRID[1]]["run"])
    name, data = f"lrauto-model_s-{lr}-seed0", RunDir(run).read_config().data
    asked = lr_auto.arm_values(bench, "model_s", lr, 0, 1)
    assert lr_auto._completed(bench, name, data, asked) == run
    assert lr_auto._completed(bench, name, tmp_path / "other", asked) is None
    assert lr_auto._completed(bench, name, data, {**asked, "label_smoothing": 0.1}) is None


def test_lr_auto_grid_from_trains_only_auto_and_reads_the_grid_from_earlier_results(tmp_path, monkeypatch):
    """`--grid-from` (a new suggestion rule against an earlier session's grid): the auto arm trains, the grid arms
    are the earlier file's rows (named as read back), `--check-lr` trains one grid value again beside them, and
    `--sweep-seeds` runs the finder alone at other seeds."""
    import json

    from benchmarks import lr_auto

    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    lr_auto.main(["--smoke", "--work", str(tmp_path)])
    earlier = tmp_path / "results" / "lr_auto.json"
    first = {r["lr_setting"]: r for r in json.loads(earlier.read_text())["runs"]}
    runs_before = set((tmp_path / "runs").iterdir())
    lr_auto.main(["--smoke", "--work", str(tmp_path), "--grid-from", str(earlier), "--check-lr", "0.001",
                  "--sweep-seeds", "1", "--tag", "_new"])
    made = sorted(p.name.split("-1")[0] for p in set((tmp_path / "runs").iterdir()) - runs_before)
    assert made == ["lrauto-model_s-0.001-seed0", "lrauto-model_s-auto-seed0", "lrfind-model_s-seed1"]
    result = json.loads((tmp_path / "results" / "lr_auto_new.json").read_text())
    second = {r["lr_setting"]: r for r in result["runs"]}
    assert second["auto"]["reused"] is False and second["auto"]["run"] != first["auto"]["run"]
    for lr in lr_auto.GRID[1:5:2]:
        assert second[lr] == {**first[lr], "reused": "lr_auto.json"}
    assert [(r["lr_setting"], r["reused"]) for r in result["rechecked"]] == [(0.001, False)]
    assert result["rechecked"][0]["run"] != first[0.001]["run"]
    [sweep] = result["sweeps"]
    assert sweep["model"] == "model_s" and sweep["seed"] == 1 and sweep["suggestion"] in json.loads(
        next((tmp_path / "runs").glob("lrfind-model_s-seed1-*/lr_find.json")).read_text())["lr"]
    best = max(lr_auto.GRID[1:5:2], key=lambda lr: first[lr]["val_accuracy"])
    assert result["summary"]["model_s seed 0"]["best_grid_test_accuracy"] == first[best]["test_accuracy"]
    # a rate to check outside the grid, or without a grid read back, is refused before anything trains
    for argv in (["--grid-from", str(earlier), "--check-lr", "0.003"], ["--check-lr", "0.001"]):
        with pytest.raises(SystemExit, match="--check-lr"):
            lr_auto.main(["--smoke", "--work", str(tmp_path), *argv])
    # so is a file of another experiment, or one missing an arm
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**json.loads(earlier.read_text()), "epochs": 5}))
    with pytest.raises(SystemExit, match="epochs 5"):
        lr_auto.main(["--smoke", "--work", str(tmp_path), "--grid-from", str(other)])
    other.write_text(json.dumps({**json.loads(earlier.read_text()), "runs": [first["auto"], first[0.001]]}))
    with pytest.raises(SystemExit, match="no arm for"):
        lr_auto.main(["--smoke", "--work", str(tmp_path), "--grid-from", str(other)])
