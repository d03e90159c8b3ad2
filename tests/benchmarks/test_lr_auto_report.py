"""docs/results.md's LR-finder section over several seeds: the grid value kept is the one with the best mean
validation accuracy, and auto is compared with that value's mean test accuracy (never with a per-seed best)."""

from __future__ import annotations

from benchmarks import report_results


def _run(lr, seed, val, test, used=None):
    return {"model": "fast_resnet", "seed": seed, "lr_setting": lr, "lr_used": used or lr, "val_accuracy": val,
            "test_accuracy": test}


def _result(runs, seed):
    return {"per_class": 1000, "epochs": 10, "grid": [0.001, 0.01], "environment": {"cpu": "test"},
            "when": f"seed {seed}", "runs": runs, "summary": {}}


def test_over_seeds_keeps_the_grid_value_with_the_best_mean_validation_accuracy():
    seed0 = _result([_run("auto", 0, 0.86, 0.870, used=3e-4), _run(0.001, 0, 0.880, 0.905),
                     _run(0.01, 0, 0.875, 0.900)], 0)
    seed1 = _result([_run("auto", 1, 0.87, 0.880, used=2e-4), _run(0.001, 1, 0.860, 0.903),
                     _run(0.01, 1, 0.874, 0.898)], 1)
    lines = report_results._lr_auto_over_seeds([seed0, seed1])
    row = next(line for line in lines if line.startswith("| fast_resnet"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # 0.001 wins seed 0's validation and the mean test, 0.01 the mean validation (0.8745 against 0.870)
    assert cells[:6] == ["fast_resnet", "0, 1", "0.0003, 0.0002", "87.50 %", "0.01", "89.90 %"]
    assert cells[6:] == ["+2.40 pt", "no"]


def test_a_grid_value_missing_a_seed_is_not_compared_and_one_seed_gives_no_table():
    seed0 = _result([_run("auto", 0, 0.86, 0.895, used=1e-3), _run(0.001, 0, 0.88, 0.89), _run(0.01, 0, 0.99, 0.99)], 0)
    seed1 = _result([_run("auto", 1, 0.87, 0.893, used=1e-3), _run(0.001, 1, 0.86, 0.88)], 1)
    row = next(line for line in report_results._lr_auto_over_seeds([seed0, seed1]) if line.startswith("| fast"))
    assert "| 0.001 |" in row and "| yes |" in row  # 0.01 ran on seed 0 only
    assert report_results._lr_auto_over_seeds([seed0]) == []


def test_a_seed_measured_twice_counts_once_from_the_later_file_and_auto_must_cover_every_seed():
    seed0 = _result([_run("auto", 0, 0.86, 0.870, used=3e-4), _run(0.001, 0, 0.88, 0.880)], 0)
    rerun = _result([_run("auto", 0, 0.86, 0.860, used=3e-4), _run(0.001, 0, 0.88, 0.890),
                     _run("auto", 1, 0.86, 0.880, used=2e-4), _run(0.001, 1, 0.88, 0.900)], 1)
    row = next(line for line in report_results._lr_auto_over_seeds([seed0, rerun]) if line.startswith("| fast"))
    # seed 0 from the later file: auto (86.0 + 88.0) / 2, 0.001 (89.0 + 90.0) / 2
    assert "| 87.00 % | 0.001 | 89.50 % | +2.50 pt |" in row
    no_auto = _result([_run(0.001, 1, 0.88, 0.900)], 1)
    assert report_results._lr_auto_over_seeds([seed0, no_auto]) == []  # auto ran on seed 0 only


def test_a_later_seed_gives_the_command_that_writes_its_own_file(tmp_path):
    import json

    from benchmarks.lr_auto import build_parser

    later = _result([_run("auto", 1, 0.87, 0.880, used=2e-4), _run(0.001, 1, 0.86, 0.903)], 1)
    text = "\n".join(report_results._lr_auto_later({**later, "_tag": "_seed1_fast"}))
    assert "--seeds 1 --models fast_resnet --tag _seed1_fast`" in text
    assert build_parser().parse_args(["--tag", "_seed1_fast"]).tag == "_seed1_fast"
    # main() reads results/lr_auto_seed*.json with the file's suffix as the tag
    first = _result([_run("auto", 0, 0.8, 0.8, used=3e-4)], 0)
    for name, result in (("lr_auto", first), ("lr_auto_seed1_fast", later)):
        (tmp_path / f"{name}.json").write_text(json.dumps(result))
    report_results.main(["--results", str(tmp_path), "--docs", str(tmp_path / "docs")])
    assert "--tag _seed1_fast`" in (tmp_path / "docs" / "results.md").read_text()


def test_the_current_rule_trained_in_one_run_and_its_first_try_against_the_grid_read_back():
    """results/lr_auto_end_of_fall.json: today's rule with every arm trained in one run; its over-seeds table takes
    that file's arms, the earlier rule's table keeps its own. The first try (`--grid-from`) shows its auto arms
    against the grid read back, and the grid value trained again beside the value read back."""
    seed0 = _result([_run("auto", 0, 0.86, 0.870, used=3e-4), _run(0.001, 0, 0.880, 0.905)], 0)
    seed1 = _result([_run("auto", 1, 0.87, 0.880, used=2e-4), _run(0.001, 1, 0.860, 0.903)], 1)
    current = {**_result([_run("auto", 0, 0.88, 0.900, used=9e-4), _run("auto", 1, 0.88, 0.902, used=7e-4),
                          _run(0.001, 0, 0.875, 0.899), _run(0.001, 1, 0.87, 0.897)], 0),
               "sweeps": [{"model": "fast_resnet", "seed": 2, "suggestion": 8.3e-4, "lowest_loss_lr": 1.9e-3}],
               "_tag": "_end_of_fall"}
    grid = [{**r, "reused": name} for name, result in (("lr_auto.json", seed0), ("lr_auto_seed1.json", seed1))
            for r in result["runs"] if r["lr_setting"] != "auto"]
    first_try = {**_result([_run("auto", 0, 0.88, 0.890, used=9e-4), _run("auto", 1, 0.88, 0.892, used=7e-4),
                            *grid], 0),
                 "rechecked": [{**_run(0.001, 0, 0.879, 0.894), "reused": False}],
                 "_tag": "_end_of_fall_earlier_grid"}
    from benchmarks.lr_auto import summarise

    runs3 = [_run("auto", 3, 0.88, 0.880, used=4e-4), _run(0.001, 3, 0.89, 0.893)]
    seed3 = {**_result(runs3, 3), "summary": summarise(runs3), "_tag": "_end_of_fall_seed3_fast_resnet"}
    text = "\n".join(report_results.lr_auto_section(seed0, [seed1], current, first_try, [seed3]))
    old, new = text.split("### Where the fall ends")  # exactly one such heading
    assert "| fast_resnet | 0, 1 | 0.0003, 0.0002 | 87.50 % | 0.001 | 90.40 % | +2.90 pt | no |" in old
    new, tried = new.split("#### The same rule against the earlier sessions' grid")
    tried, held_out = tried.split("#### fast_resnet, seeds 3: seeds the rule was not chosen on")
    assert "| fast_resnet seed 3 | 0.0004 | 88.00 % | 0.001 | 89.30 % | +1.30 pt | no |" in held_out
    assert "--seeds 3 --models fast_resnet --tag _end_of_fall_seed3_fast_resnet`" in held_out
    assert "Every arm, the grid's and auto's, trained in this one run." in new and "read back" not in new
    assert "| fast_resnet | 0.001 | 87.00 % | 89.70 % |" in new  # today's grid arms are listed
    assert "| fast_resnet | 0, 1 | 0.0009, 0.0007 | 90.10 % | 0.001 | 89.80 % | -0.30 pt | yes |" in new
    assert "| fast_resnet | 2 | 0.00083 | 0.0019 |" in new
    assert ("Command: `python -m benchmarks.lr_auto --seeds 0,1 --models fast_resnet --tag _end_of_fall "
            "--sweep-seeds 2`.") in new
    assert "| fast_resnet | 0, 1 | 0.0009, 0.0007 | 89.10 % | 0.001 | 90.40 % | +1.30 pt | no |" in tried
    assert ("fast_resnet seed 0 at 0.001, 87.90 % val / 89.40 % test, against 88.00 % / 90.50 % read back from "
            "lr_auto.json") in tried
    assert ("--tag _end_of_fall_earlier_grid --check-lr 0.001 --grid-from benchmarks/results/lr_auto.json,"
            "benchmarks/results/lr_auto_seed1.json`") in tried
    assert "#### Over seeds, where the fall ends" in tried  # a level below its own heading
    # without the new files the section is as before
    assert "### Where the fall ends" not in "\n".join(report_results.lr_auto_section(seed0, [seed1]))
