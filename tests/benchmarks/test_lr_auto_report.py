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


def test_the_current_rule_is_compared_with_the_grid_read_back_and_its_check():
    """results/lr_auto_end_of_fall.json: auto arms of today's rule against the earlier files' grid. The over-seeds
    table of the current rule takes its auto arms, the earlier rule's table keeps its own, and the grid value
    trained again is shown beside the value read back."""
    seed0 = _result([_run("auto", 0, 0.86, 0.870, used=3e-4), _run(0.001, 0, 0.880, 0.905)], 0)
    seed1 = _result([_run("auto", 1, 0.87, 0.880, used=2e-4), _run(0.001, 1, 0.860, 0.903)], 1)
    grid = [{**r, "reused": name} for name, result in (("lr_auto.json", seed0), ("lr_auto_seed1.json", seed1))
            for r in result["runs"] if r["lr_setting"] != "auto"]
    current = {**_result([_run("auto", 0, 0.88, 0.900, used=9e-4), _run("auto", 1, 0.88, 0.902, used=7e-4),
                          *grid], 0),
               "rechecked": [{**_run(0.001, 0, 0.879, 0.904), "reused": False}],
               "sweeps": [{"model": "fast_resnet", "seed": 2, "suggestion": 8.3e-4, "lowest_loss_lr": 1.9e-3}]}
    text = "\n".join(report_results.lr_auto_section(seed0, [seed1], current))
    old, new = text.split("### Where the fall ends")  # exactly one such heading
    assert "| fast_resnet | 0, 1 | 0.0003, 0.0002 | 87.50 % | 0.001 | 90.40 % | +2.90 pt | no |" in old
    assert "| fast_resnet | 0, 1 | 0.0009, 0.0007 | 90.10 % | 0.001 | 90.40 % | +0.30 pt | yes |" in new
    assert ("fast_resnet seed 0 at 0.001 trained again to 87.90 % val / 90.40 % test, against 88.00 % / 90.50 % "
            "read back from lr_auto.json") in new
    assert "| fast_resnet | 2 | 0.00083 | 0.0019 |" in new
    assert ("--grid-from benchmarks/results/lr_auto.json,benchmarks/results/lr_auto_seed1.json --sweep-seeds 2`"
            in new and "--check-lr 0.001 " in new)
    # without a current file the section is as before: no split, the rules table at its end
    assert "### Where the fall ends" not in "\n".join(report_results.lr_auto_section(seed0, [seed1]))
