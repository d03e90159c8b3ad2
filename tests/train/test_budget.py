import pytest

import imgclf
from imgclf.io import read_csv
from imgclf.train.budget import budget_lr_factor


def test_budget_factor_warms_up_then_decays_to_zero_at_the_deadline():
    assert budget_lr_factor(0.0) == pytest.approx(0.02)
    assert budget_lr_factor(0.05) == pytest.approx(1.0)
    assert budget_lr_factor(0.525) == pytest.approx(0.5)
    assert budget_lr_factor(1.0) == 0.0
    values = [budget_lr_factor(f / 100) for f in range(5, 101)]
    assert values == sorted(values, reverse=True)


def test_time_limit_stops_cleanly_with_a_complete_run(tmp_path, image_folder):
    run = imgclf.fit({"data": str(image_folder), "img_size": 16, "epochs": 10_000, "batch_size": 8,
                      "time_limit": "4s", "schedule": "budget", "progress": False, "model_args": {"width": 8},
                      "out": str(tmp_path / "t")})
    assert run.stopped_reason == "time limit (4s)"
    history = read_csv(run.path / "history.csv")
    assert 1 <= len(history) < 10_000
    # the stop lands at the first batch boundary after the deadline: within one epoch of the budget
    longest_epoch = max(float(r["seconds"]) for r in history)
    assert sum(float(r["seconds"]) for r in history) <= 4 + longest_epoch + 1
    for name in ("model.safetensors", "model.json", "metrics.json", "predictions.csv", "checkpoints/last.ckpt"):
        assert (run.path / name).exists()


def test_budget_schedule_needs_a_time_limit(image_folder):
    from imgclf.errors import ImgclfError

    with pytest.raises(ImgclfError, match="time_limit must be set"):
        imgclf.fit({"data": str(image_folder), "schedule": "budget"})
