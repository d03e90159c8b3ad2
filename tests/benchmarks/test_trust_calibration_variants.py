"""trust_calibration's variants (another seed, each recipe to its own end, another S5 size) are named runs and
named results: they never reuse or replace the default measurement's."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmarks.trust_calibration import build_parser, check_tag, main, train


@pytest.mark.parametrize("argv", [["--seed", "1"], ["--time-limit", "none"], ["--s5-per-class", "0"]])
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
