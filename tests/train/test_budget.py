import json
from types import SimpleNamespace

import pytest
import torch

import imgclf
from imgclf.io import read_csv
from imgclf.train.budget import TimeBudget, budget_lr_factor


def test_budget_factor_warms_up_then_decays_to_zero_at_the_deadline():
    assert budget_lr_factor(0.0) == pytest.approx(0.02)
    assert budget_lr_factor(0.05) == pytest.approx(1.0)
    assert budget_lr_factor(0.525) == pytest.approx(0.5)
    assert budget_lr_factor(1.0) == 0.0
    values = [budget_lr_factor(f / 100) for f in range(5, 101)]
    assert values == sorted(values, reverse=True)


class _FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _fake_trainer(lr: float = 0.1, **state) -> SimpleNamespace:
    """What TimeBudget reads of a Lightning Trainer: mid-way through the first of 1,000 epochs unless told."""
    return SimpleNamespace(optimizers=[SimpleNamespace(param_groups=[{"lr": lr}])], should_stop=False,
                           **{"max_epochs": 1000, "current_epoch": 0, "is_last_batch": False, "world_size": 1,
                              **state})


def _step(budget: TimeBudget, trainer, clock: _FakeClock, seconds: float = 1.0) -> float:
    budget.on_train_batch_start(trainer, None, None, 0)
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    clock.now += seconds
    budget.on_train_batch_end(trainer, None, None, None, 0)
    return lr


def test_time_budget_stops_at_the_end_of_the_first_step_past_the_deadline():
    clock, trainer = _FakeClock(), _fake_trainer(lr=0.1)
    budget = TimeBudget(3.5, fit_schedule=True, min_warmup_steps=0, clock=clock)
    budget.on_train_start(trainer, None)
    lrs = []
    for _ in range(3):  # steps ending at 1, 2, 3 s: inside the budget
        lrs.append(_step(budget, trainer, clock))
        assert not trainer.should_stop
    lrs.append(_step(budget, trainer, clock))  # ends at 4 s, past 3.5 s: stop here, not at the epoch's end
    assert trainer.should_stop and budget.reached
    assert budget.summary() == {"seconds": 3.5, "stopped_at_seconds": 4.0, "longest_check_interval_seconds": 1.0}
    # each step runs at the learning rate of its start time's fraction of the budget
    assert lrs == pytest.approx([0.1 * budget_lr_factor(t / 3.5) for t in (0, 1, 2, 3)])


def test_data_parallel_ranks_run_by_rank_0s_clock():
    """Each rank read its own clock: the budget schedule set other rates on the two replicas (13 % apart, their
    weights drifted apart) and one rank could stop while the other trained on, waiting for it. Both follow rank 0."""
    clocks = [_FakeClock(), _FakeClock()]
    budgets = [TimeBudget(3.5, fit_schedule=True, min_warmup_steps=0, clock=c) for c in clocks]
    shared = {}

    def broadcast(value, src):  # the collective: every rank gets rank 0's value
        return shared.setdefault("rank0", value) if src == 0 else value

    trainers = [_fake_trainer(lr=0.1, world_size=2, strategy=SimpleNamespace(broadcast=broadcast)) for _ in range(2)]
    for budget, trainer in zip(budgets, trainers):
        budget.on_train_start(trainer, None)
    rates = [[], []]
    for step in range(4):
        for rank in (0, 1):  # rank 1's steps take half as long by its own clock
            rates[rank].append(_step(budgets[rank], trainers[rank], clocks[rank], seconds=1.0 if rank == 0 else 0.5))
            if rank == 1:
                shared.clear()
    assert rates[0] == pytest.approx(rates[1])
    assert [t.should_stop for t in trainers] == [True, True]  # 4 s by rank 0's clock, 2 s by rank 1's


def test_warm_up_lasts_a_minimum_of_steps_when_the_time_share_holds_only_a_few():
    """5 % of a budget whose steps take 10 % each is under one step: without a minimum the first step after it
    runs at the full rate (SGD at 0.2 diverged so on a small data set); the warm-up lasts 4 steps here, also
    across a resume."""
    clock, trainer = _FakeClock(), _fake_trainer(lr=0.2)
    budget = TimeBudget(10.0, fit_schedule=True, min_warmup_steps=4, clock=clock)
    budget.on_train_start(trainer, None)
    lrs = [_step(budget, trainer, clock) for _ in range(2)]
    resumed = TimeBudget(10.0, fit_schedule=True, min_warmup_steps=4, clock=clock)
    resumed.load_state_dict(budget.state_dict())
    resumed.on_train_start(trainer, None)
    lrs += [_step(resumed, trainer, clock) for _ in range(4)]
    ramp = [0.2 * min(budget_lr_factor(t / 10.0), (i + 1) / 4) for i, t in enumerate(range(6))]
    assert lrs == pytest.approx(ramp)
    assert lrs[:4] == pytest.approx([0.004, 0.1, 0.15, 0.2 * budget_lr_factor(0.3)])  # steps 1-3 held by the ramp
    assert lrs[4:] == pytest.approx([0.2 * budget_lr_factor(t / 10.0) for t in (4, 5)])  # then the clock's decay


def test_an_epoch_limit_reached_before_the_deadline_ends_the_schedule_too():
    """`--time-limit 30s --epochs 3` on a small data set: the epochs run out long before the clock, so the
    schedule follows the epochs' fraction and decays to near zero by the last step instead of stopping while
    the time's warm-up still holds the rate low."""
    clock, trainer = _FakeClock(), _fake_trainer(lr=0.2, max_epochs=3, num_training_batches=10)
    budget = TimeBudget(1000.0, fit_schedule=True, min_warmup_steps=0, clock=clock)
    budget.on_train_start(trainer, None)
    lrs = []
    for epoch in range(3):
        trainer.current_epoch = epoch
        for batch_idx in range(10):
            budget.on_train_batch_start(trainer, None, None, batch_idx)
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])
            clock.now += 0.1
            budget.on_train_batch_end(trainer, None, None, None, batch_idx)
    assert lrs == pytest.approx([0.2 * budget_lr_factor(step / 30) for step in range(30)])
    assert max(lrs) == pytest.approx(0.2 * budget_lr_factor(2 / 30)) and lrs[-1] < 0.01
    assert not budget.reached  # the time limit was not what ended it


def test_time_budget_spent_during_validation_stops_before_the_next_epoch():
    clock, trainer = _FakeClock(), _fake_trainer()
    budget = TimeBudget(2.5, fit_schedule=False, clock=clock)
    budget.on_train_start(trainer, None)
    _step(budget, trainer, clock)
    _step(budget, trainer, clock)
    assert not trainer.should_stop and trainer.optimizers[0].param_groups[0]["lr"] == 0.1  # no schedule asked
    clock.now += 1.0  # the epoch's closing validation crosses the deadline
    budget.on_train_epoch_end(trainer, None)
    assert trainer.should_stop and budget.stopped_at == 3.0


def test_the_last_step_of_the_last_epoch_completes_the_run_whatever_the_clock():
    clock = _FakeClock()
    trainer = _fake_trainer(max_epochs=2, current_epoch=1, is_last_batch=True)
    budget = TimeBudget(0.5, fit_schedule=False, clock=clock)
    budget.on_train_start(trainer, None)
    _step(budget, trainer, clock)
    budget.on_train_epoch_end(trainer, None)
    assert not budget.reached and not trainer.should_stop  # all epochs ran: "completed", not "time limit"


def test_a_resumed_run_keeps_the_time_it_spent_and_stops_at_once_when_it_is_all_spent():
    clock, trainer = _FakeClock(), _fake_trainer()
    first = TimeBudget(60, fit_schedule=True, min_warmup_steps=0, clock=clock)
    first.on_train_start(trainer, None)
    _step(first, trainer, clock, seconds=20.0)
    state = first.state_dict()
    assert state == {"spent": 20.0, "longest_interval": 20.0, "steps": 1}
    # the fake clock starts at 0: still counted

    resumed, trainer = TimeBudget(60, fit_schedule=True, min_warmup_steps=0, clock=clock), _fake_trainer()
    resumed.load_state_dict(state)
    resumed.on_train_start(trainer, None)
    assert _step(resumed, trainer, clock, seconds=1.0) == pytest.approx(0.1 * budget_lr_factor(20 / 60))
    assert not trainer.should_stop and resumed.elapsed() == 21.0

    spent, trainer = TimeBudget(60, fit_schedule=True, clock=clock), _fake_trainer()
    spent.load_state_dict({"spent": 61.0})
    spent.on_train_start(trainer, None)
    assert trainer.should_stop and spent.stopped_at == 61.0


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_a_per_step_schedule_records_the_rate_of_each_epochs_first_step(schedule, tmp_path, image_folder, capsys):
    """history.csv and the epoch line gave the second step's rate: at a batch's end a per-step scheduler has
    already stepped (onecycle's first epoch read 2.8e-04 where its first step ran at 4e-05)."""
    run = imgclf.fit({"data": str(image_folder), "img_size": 16, "epochs": 2, "batch_size": 8, "lr": 0.01,
                      "optimizer": "sgd", "schedule": schedule, "progress": True, "model_args": {"width": 4},
                      "out": str(tmp_path / schedule)}, report=False)
    first = 0.01 if schedule == "cosine" else 0.01 / 25  # OneCycleLR starts at max_lr / div_factor (25)
    history = read_csv(run.path / "history.csv")
    assert float(history[0]["lr"]) == pytest.approx(first, rel=1e-6)
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("epoch 1/2"))
    assert f"lr {first:.1e}" in line, line


def test_time_limit_stops_cleanly_with_a_complete_run(tmp_path, image_folder):
    run = imgclf.fit({"data": str(image_folder), "img_size": 16, "epochs": 10_000, "batch_size": 8, "lr": 0.05,
                      "time_limit": "4s", "schedule": "budget", "progress": False, "model_args": {"width": 8},
                      "out": str(tmp_path / "t")})
    assert run.stopped_reason == "time limit (4s)"
    history = read_csv(run.path / "history.csv")
    assert 1 <= len(history) < 10_000
    # the first epoch's rate is the one its first step ran at, deep in the warm-up, not the unscheduled base 0.05
    assert float(history[0]["lr"]) < 0.05 * 0.05
    card = json.loads((run.path / "model.json").read_text())
    budget = card["training"]["time_budget"]
    interval = budget["longest_check_interval_seconds"]
    assert budget["seconds"] == 4 and budget["stopped_at_seconds"] >= 4 and interval > 0
    # the learning rate was fitted to the budget: the last step ran at its start time's fraction of the budget.
    # It began after the check before it; the stop is that check's next one, or the epoch-end check after one more
    # interval (the budget ran out between the last step's check and the end of the epoch): no earlier than two
    # check intervals before the stop (2 ms: the card's rounding)
    state = torch.load(run.path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    final_lr = state["optimizer_states"][0]["param_groups"][0]["lr"]
    last_start = (budget["stopped_at_seconds"] - 2 * interval - 0.002) / 4
    assert final_lr <= 0.05 * budget_lr_factor(max(last_start, 0.05)) + 1e-9
    for name in ("model.safetensors", "model.json", "metrics.json", "predictions.csv", "checkpoints/last.ckpt"):
        assert (run.path / name).exists()


def test_budget_schedule_needs_a_time_limit(image_folder):
    from imgclf.errors import ImgclfError

    with pytest.raises(ImgclfError, match="time_limit must be set"):
        imgclf.fit({"data": str(image_folder), "schedule": "budget"})
