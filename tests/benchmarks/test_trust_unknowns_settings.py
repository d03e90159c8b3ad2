"""trust_unknowns' --set: extra training settings for a variant, always under a tag and a run of their own."""

from __future__ import annotations

import pytest

from benchmarks.trust_unknowns import build_parser, check_settings, main, training, variants
from imgclf.config import TrainConfig
from imgclf.records import RunDir


def test_settings_reach_the_training_values_and_the_run_name():
    args = build_parser().parse_args(["--time-limit", "10m", "--per-class", "0", "--set", "label_smoothing=0",
                                      "--set", "augment=hflip", "--tag", "_ls0"])
    name, values = training(args, smoke=False)
    assert values == {"time_limit": "10m", "label_smoothing": 0, "augment": "hflip"}
    assert name == "10m_ls0"  # the variant's runs never replace the recipe's own


def test_runs_of_other_sizes_and_smoke_variants_get_names_of_their_own():
    sized = build_parser().parse_args(["--time-limit", "10m", "--per-class", "500"])
    assert training(sized, smoke=False)[0] == "10m-500pc"
    smoke = build_parser().parse_args(["--set", "label_smoothing=0", "--tag", "_ls0"])
    name, values = training(smoke, smoke=True)
    assert name == "smoke_ls0" and values["label_smoothing"] == 0


def test_untagged_settings_and_malformed_ones_are_refused():
    with pytest.raises(ValueError, match="needs a --tag"):
        training(build_parser().parse_args(["--set", "label_smoothing=0"]), smoke=False)
    with pytest.raises(ValueError, match=r"set must be key=value pairs .* Received: set='label_smoothing'"):
        training(build_parser().parse_args(["--set", "label_smoothing", "--tag", "_x"]), smoke=False)


def test_main_answers_a_bad_set_with_a_usage_line_and_no_traceback(capsys, monkeypatch):
    def no_benchmark(args):  # the check must come first: without it the benchmark would start training
        raise AssertionError("the benchmark started")

    monkeypatch.setattr("benchmarks.trust_unknowns.Bench.from_args", no_benchmark)
    with pytest.raises(SystemExit) as stopped:
        main(["--set", "label_smoothing=0"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "needs a --tag" in err and "Traceback" not in err


def test_a_kept_run_is_reused_only_with_the_settings_it_was_trained_with(tmp_path):
    run = tmp_path / "unknowns-shirt-sneaker-10m_ls0"
    run.mkdir()
    RunDir(run).write_config(TrainConfig(data=str(tmp_path), label_smoothing=0.1))
    check_settings(run, {"label_smoothing": 0.1})
    with pytest.raises(ValueError, match=r"trained with label_smoothing=0.1, not label_smoothing=0;"):
        check_settings(run, {"label_smoothing": 0})


def test_another_seed_trains_runs_of_its_own():
    base = ["--time-limit", "10m", "--per-class", "0", "--tag", "_ls0", "--set", "label_smoothing=0"]
    assert training(build_parser().parse_args(base), smoke=False)[0] == "10m_ls0"
    assert training(build_parser().parse_args([*base, "--seed", "1"]), smoke=False)[0] == "10m_ls0-seed1"


def test_the_older_feature_detectors_are_also_scored_on_the_pre_logits():
    """Beside each detector as the product fits it, the two feature detectors that read the pre-logits before the
    map's mean and max, on the pre-logits: the comparison the result files hold."""
    from imgclf.ood import DETECTORS

    rows = variants(DETECTORS)
    assert {rows[d] for d in DETECTORS} == {(d, None) for d in DETECTORS}
    assert {k: v for k, v in rows.items() if k not in DETECTORS} == {
        "mahalanobis (pre-logits)": ("mahalanobis", "pre-logits"),
        "mahalanobis-l2 (pre-logits)": ("mahalanobis-l2", "pre-logits")}


def test_the_result_names_the_features_each_row_read(tmp_path, monkeypatch):
    """The smoke run (fast_resnet, whose head pools its map): the product's rows read the map's mean and max, the
    comparison rows the pre-logits, as their names say."""
    import json

    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    main(["--smoke", "--work", str(tmp_path)])
    rows = json.loads((tmp_path / "results" / "trust_unknowns.json").read_text())["pairs"][0]["detectors"]
    assert {name: row["features"] for name, row in rows.items()} == {
        "msp": None, "energy": None, "mahalanobis": "map-mean-max", "mahalanobis-l2": "map-mean-max",
        "msp+mahalanobis-l2": "map-mean-max", "mahalanobis (pre-logits)": "pre-logits",
        "mahalanobis-l2 (pre-logits)": "pre-logits"}
