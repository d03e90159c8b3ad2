"""trust_calibration's variants (another seed, each recipe to its own end, another S5 size) are named runs and
named results: they never reuse or replace the default measurement's."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks.trust_calibration import build_parser, check_tag, main, refitted_copy, train


@pytest.mark.parametrize("argv", [["--seed", "1"], ["--time-limit", "none"], ["--s5-per-class", "0"],
                                  ["--refit-trust"]])
def test_a_variant_without_a_tag_is_refused(argv):
    with pytest.raises(ValueError, match="needs a --tag"):
        check_tag(build_parser().parse_args(argv))
    check_tag(build_parser().parse_args([*argv, "--tag", "_variant"]))


def test_main_answers_an_untagged_variant_with_a_usage_line_and_no_traceback(capsys, monkeypatch):
    def no_benchmark(args):  # the check must come first: without it the benchmark would start training
        raise AssertionError("the benchmark started")

    monkeypatch.setattr("benchmarks.trust_calibration.Bench.from_args", no_benchmark)
    with pytest.raises(SystemExit) as stopped:
        main(["--seed", "1"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "--seed needs a --tag" in err and "Traceback" not in err


def test_the_default_measurement_needs_no_tag():
    check_tag(build_parser().parse_args(["--time-limit", "10m"]))


def _kept(tmp_path, name):
    (tmp_path / "runs" / name).mkdir(parents=True)
    (tmp_path / "runs" / name / "metrics.json").write_text("{}")
    return tmp_path / "runs" / name


def test_each_variant_reuses_its_own_run(tmp_path):
    bench = SimpleNamespace(work=tmp_path)
    runs = {key: _kept(tmp_path, name) for key, name in [
        ("10m", "calibration-s5-model-s-10m"), ("own", "calibration-s5-model-s-own-end"),
        ("own1", "calibration-s5-model-s-own-end-seed1"), ("all1", "calibration-s5-model-s-own-end-all-seed1")]}
    assert train(bench, "s5-model-s", tmp_path, {"time_limit": "10m"}, reuse=True) == runs["10m"]
    assert train(bench, "s5-model-s", tmp_path, {}, reuse=True) == runs["own"]
    assert train(bench, "s5-model-s", tmp_path, {}, reuse=True, seed=1) == runs["own1"]
    assert train(bench, "s5-model-s", tmp_path, {}, reuse=True, tag="-all", seed=1) == runs["all1"]


def test_refit_trust_measures_a_copy_fitted_by_the_current_code(tiny_run, tmp_path):
    """A run whose detector was fitted on the pre-logits (as every run was before the map's mean and max): the copy
    reads what fit_trust chooses now, beside the run, which is left as it was."""
    import shutil

    from benchmarks.common import refit_trust
    from imgclf.records import RunDir

    old = Path(shutil.copytree(tiny_run, tmp_path / "runs" / "old"))
    RunDir(old).write_card(refit_trust(old, old, features="pre-logits"))
    copy = refitted_copy(old)
    assert copy == old.parent / "old-refit" and (copy / "model.safetensors").is_file()
    assert RunDir(old).read_card().unknown.features == "pre-logits"
    assert RunDir(copy).read_card().unknown.features == "map-mean-max"
    assert RunDir(copy).read_card().temperature == pytest.approx(RunDir(old).read_card().temperature)
