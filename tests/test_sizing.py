"""The `fast` recipe's self-sizing: the rule on made-up throughput tables (no timing), the input size taken from
the images, and whole runs on tiny grey 28, RGB 32 and grey 48 folders that record the probe in model.json."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

import imgclf
from imgclf.config import make_config
from imgclf.config_text import parse_mapping
from imgclf.errors import ImgclfError
from imgclf.pipeline.resolve import resolve_config
from imgclf.pipeline.sizing import PROBE_ROUNDS, read_candidates
from imgclf.pipeline.sizing_rule import (EPOCHS_PER_HOUR, ERASE_EPOCHS, GROWTH_GAIN, LONG_EPOCHS, MAX_GROWTH,
                                         LONG_BUDGET_MIN_EPOCHS, MIN_BATCH, MIN_EPOCHS, MIN_STEPS, SHORT_EPOCHS,
                                         Timed, choose,
                                         confirm_growth, confirm_halving, min_epochs_for, predicted_epochs,
                                         qualifies, scaled_lr, steps_per_epoch)
from imgclf.data.native_size import native_img_size
from imgclf.records import RunDir
from conftest import make_image_folder

BASE = "hflip,crop=2,fill=constant"
PARAMS = {16: 411_000, 24: 920_000, 32: 1_630_000, 48: 3_660_000}


def table(speeds: dict[int, float]) -> list[Timed]:
    return [Timed({"width": w}, PARAMS[w], s) for w, s in speeds.items()]


def test_a_fast_machine_with_a_long_budget_trains_the_widest_model_with_many_epochs_and_ema_and_erasing():
    # the AVX-512-bf16 probe of a 60-minute run: width 48 (36 epochs) would have been chosen at 18 epochs
    timed = table({16: 3500, 24: 2200, 32: 1400, 48: 700})
    choice = choose(timed, 3600 - 20, 55_000, 256, BASE, budget_seconds=3600)
    assert timed[choice.index].model_args == {"width": 24}
    assert choice.epochs[choice.index] >= EPOCHS_PER_HOUR == 80 > choice.epochs[choice.index + 1] >= 18
    assert ">= 80 epochs" in choice.reason
    assert choice.ema is not None and 0.99 <= choice.ema < 1
    assert choice.augment == "hflip,crop=2,erase=0.5,fill=constant"
    # in 10 minutes the minimum is MIN_EPOCHS: the probe of 2026-12-04 read width 24 at 22 epochs, which qualified
    # under the old minimum of 18 and tested below width 16's 44
    probe_1204 = table({16: 5155, 24: 2610, 32: 1643})
    short = choose(probe_1204, 600 - 15, 55_000, 256, BASE, budget_seconds=600)
    assert probe_1204[short.index].model_args == {"width": 16}
    assert short.epochs[short.index] >= MIN_EPOCHS == 40 > short.epochs[short.index + 1] >= 18
    assert ">= 40 epochs" in short.reason


def test_the_minimum_epochs_grow_with_the_budget_within_the_runs_epochs():
    assert [min_epochs_for(m * 60) for m in (2, 10, 15, 30, 45, 60, 120)] == [40, 40, 40, 40, 60, 80, 160]
    assert min_epochs_for(3600, max_epochs=50) == 50 and min_epochs_for(3600, max_epochs=12) == 12
    # so a longer budget never buys a narrower model (the AVX-512-bf16 probe's speeds)
    timed = table({16: 3500, 24: 2200, 32: 1400, 48: 700})
    widths = [timed[choose(timed, m * 60, 55_000, 256, BASE, budget_seconds=m * 60).index].model_args["width"]
              for m in (2, 5, 10, 15, 20, 30, 45, 60, 120, 240)]
    assert widths == sorted(widths) and widths[0] == 16 and widths[-1] == 24
    # --epochs 50 in an hour: width 16 would finish its 50 in 16 minutes; width 32 trains the hour (predicted 72)
    capped = choose(timed, 3600 - 20, 55_000, 256, BASE, budget_seconds=3600, max_epochs=50)
    assert timed[capped.index].model_args == {"width": 32} and ">= 50 epochs" in capped.reason


def test_a_slow_machine_with_a_short_budget_keeps_width_16_and_the_plain_augmentation():
    timed = table({16: 745, 24: 420})
    choice = choose(timed, 600 - 15, 55_000, 256, BASE)
    assert timed[choice.index].model_args == {"width": 16}
    assert choice.epochs[choice.index] < MIN_EPOCHS and "no candidate reaches" in choice.reason
    # 6.3 epochs: too few for the pad-and-crop, the flip stays
    assert (choice.augment, choice.ema) == ("hflip", None)  # no crop: nothing for a fill to fill
    assert "no pad-and-crop for 6 epochs of a 10-minute run" in choice.reason


class ScriptedProbe:
    """A probe that reads each width's next speed from a script, and logs the widths in the order read."""

    def __init__(self, speeds: dict[int, list[float]], readings_in_time: int = 99):
        self.speeds = {w: iter(s) for w, s in speeds.items()}
        self.read: list[int] = []
        self.readings_in_time = readings_in_time

    def __call__(self, args: dict) -> tuple[float, int]:
        self.read.append(args["width"])
        return next(self.speeds[args["width"]]), PARAMS[args["width"]]

    def out_of_time(self) -> bool:
        return len(self.read) >= self.readings_in_time

    def run(self) -> list[Timed]:
        # an hour's budget of 55,000 images: the 80 epochs need about 1,540 img/s
        return read_candidates([{"width": w} for w in PARAMS], self,
                               lambda speed: not qualifies(predicted_epochs(speed, 3580, 55_000), 215, 80),
                               self.out_of_time)


def test_a_spell_of_load_in_one_round_of_the_probe_does_not_decide_the_width():
    # the 60-minute run of 2026-12-02: the first round read both widths at about 0.6x, the epochs then ran at 3,227
    probe = ScriptedProbe({16: [1970, 3500], 24: [921, 1800], 32: [1100, 1150]})
    timed = probe.run()
    assert PROBE_ROUNDS == 2 and probe.read == [16, 24, 16, 24, 32]  # round 2 goes past width 24, now fast enough
    assert [(t.model_args["width"], t.images_per_s, t.readings) for t in timed] == [
        (16, 3500, (1970, 3500)), (24, 1800, (921, 1800)), (32, 1100, (1100,))]
    choice = choose(timed, 3580, 55_000, 256, BASE, budget_seconds=3600)
    assert timed[choice.index].model_args == {"width": 24}
    # the first round's readings alone would have trained width 16
    first = choose(table({16: 1970, 24: 921}), 3580, 55_000, 256, BASE, budget_seconds=3600)
    assert first.index == 0 and first.epochs[1] < 80


def test_a_slower_second_reading_does_not_replace_the_first():
    probe = ScriptedProbe({16: [3500, 1970], 24: [1800, 900], 32: [1100, 1150]})
    timed = probe.run()
    # round 2 reads width 24 short, but its first reading qualified it: the round goes on to width 32
    assert probe.read == [16, 24, 32, 16, 24, 32]
    assert [t.images_per_s for t in timed] == [3500, 1800, 1150]
    assert timed[choose(timed, 3580, 55_000, 256, BASE, budget_seconds=3600).index].model_args == {"width": 24}


def test_a_steady_machine_reads_each_width_up_to_the_first_short_one_in_every_round():
    probe = ScriptedProbe({16: [3500] * 2, 24: [1800] * 2, 32: [1100] * 2})
    assert [t.readings for t in probe.run()] == [(3500, 3500), (1800, 1800), (1100, 1100)]
    assert probe.read == [16, 24, 32, 16, 24, 32]  # width 48 never: width 32 is already short


def test_the_probe_stops_reading_when_its_time_is_used():
    probe = ScriptedProbe({16: [3500] * 2, 24: [1800] * 2, 32: [1600] * 2, 48: [700]}, readings_in_time=5)
    assert [t.readings for t in probe.run()] == [(3500, 3500), (1800,), (1600,), (700,)]
    assert probe.read == [16, 24, 32, 48, 16]


@pytest.mark.parametrize("epochs, augment", [
    (SHORT_EPOCHS - 0.1, "hflip"), (SHORT_EPOCHS, BASE), (LONG_BUDGET_MIN_EPOCHS - 1, BASE),
    (LONG_BUDGET_MIN_EPOCHS, BASE), (ERASE_EPOCHS - 1, BASE),
])
def test_only_a_short_run_drops_the_pad_and_crop(epochs, augment):
    speed = epochs / predicted_epochs(1.0, 600, 55_000)  # the speed that predicts `epochs` epochs
    choice = choose(table({16: speed}), 600, 55_000, 256, BASE)
    assert choice.epochs[0] == pytest.approx(epochs) and choice.augment == augment
    assert ("no pad-and-crop" in choice.reason) == (augment != BASE)
    # a long budget on a machine that cannot give any candidate LONG_BUDGET_MIN_EPOCHS regularises for the epochs
    # it gets
    long = choose(table({16: speed}), 600, 55_000, 256, BASE, budget_seconds=3600)
    if epochs < LONG_BUDGET_MIN_EPOCHS:
        assert (long.augment, long.ema) == (augment, None)
    else:  # that many or more in a long budget: so long a run overfits any width, the strongest
        assert long.augment == "hflip,crop=2,erase=0.5,fill=constant" and long.ema is not None


@pytest.mark.parametrize("speeds, seconds, width", [
    ({16: 5155, 24: 2610, 32: 1643}, 585, 16),  # AVX-512 bf16, 10 minutes: 16's 44 reach 40, 24's 22 do not
    ({16: 5155, 24: 2610, 32: 1643}, 1185, 24),  # 20 minutes: 24's 45 reach 40, 32's 28 do not
    ({16: 3500, 24: 2200, 32: 1700}, 2385, 32),  # 40 minutes: 32's 59 reach the hour's rate, 53
    ({16: 3500, 24: 2200, 32: 1400}, 2385, 24),  # 32's 48.6 are past 40 but short of the hour's rate
    ({16: 4000, 24: 5000}, 600, 24),  # a wider model measured faster (cache effects) still wins on width
])
def test_the_widest_candidate_that_reaches_the_minimum_is_chosen(speeds, seconds, width):
    timed = table(speeds)
    choice = choose(timed, seconds, 55_000, 256, BASE)
    assert timed[choice.index].model_args["width"] == width
    assert choice.epochs[choice.index] >= min_epochs_for(seconds)
    wider = [i for i, t in enumerate(timed) if t.num_params > timed[choice.index].num_params]
    assert all(choice.epochs[i] < min_epochs_for(seconds) for i in wider)


def test_a_small_data_set_keeps_width_16_when_the_epochs_are_too_few_steps():
    # the S5 stand-in's speeds on 2 AVX2 cores: 1,350 images are 6 steps per epoch at batch 256; at 2 minutes width
    # 24's 22.8 predicted epochs were 137 steps, and it trained to 76.3 % test where width 16 reached 83.9 %. In 4
    # minutes both widths reach MIN_EPOCHS, and the steps decide
    timed = table({16: 573.6, 24: 330.2})
    choice = choose(timed, 237, 1_350, 256, BASE, budget_seconds=240)
    assert min(choice.epochs) >= MIN_EPOCHS and max(choice.epochs) * 6 < MIN_STEPS
    assert timed[choice.index].model_args == {"width": 16}
    assert f"no candidate reaches {MIN_STEPS:,} steps (6 per epoch of 1,350 images at batch 256)" in choice.reason
    # the same speeds with the images to make those epochs enough steps: the wider model again (158 minutes: held to
    # MIN_EPOCHS, not to the long budget's minimum, which is not what this checks)
    assert choose(timed, 237 * 40, 1_350 * 40, 256, BASE, min_epochs=MIN_EPOCHS).index == 1


@pytest.mark.parametrize("images, speed, seconds, batch", [
    (1_350, 573.6, 117, MIN_BATCH),  # S5 at 2 minutes: 45 epochs are 270 steps at 256, 1,935 at 32: as far as it goes
    (55_000, 1_000, 585, 64),  # Fashion-MNIST, 10 minutes, 2 AVX2 cores: 8.5 epochs, 1,830 steps at 256
    (55_000, 1_600, 585, 128),  # a faster machine: 13.6 epochs, 2,930 steps at 256, 5,860 at 128
    (55_000, 1_000, 3585, 256),  # an hour: 52 epochs at 256 are enough steps
])
def test_too_few_steps_halve_the_batch_until_there_are_enough(images, speed, seconds, batch):
    choice = choose(table({16: speed}), seconds, images, 256, BASE)
    epochs = choice.epochs[0]
    assert choice.batch_size == batch
    if batch < 256:  # the halving stops at the first batch with enough steps, or at the smallest
        assert epochs * steps_per_epoch(images, 2 * batch) < MIN_STEPS
        assert batch == MIN_BATCH or epochs * steps_per_epoch(images, batch) >= MIN_STEPS
        assert f"batch down to {batch} (from 256, learning rate scaled alike)" in choice.reason
    else:
        assert "batch" not in choice.reason
    # in a long budget the EMA horizon follows the batch's steps per epoch; a run short of LONG_BUDGET_MIN_EPOCHS
    # has none
    long = choose(table({16: speed}), seconds, images, 256, BASE, budget_seconds=3600)
    if long.trained_epochs >= LONG_BUDGET_MIN_EPOCHS:
        assert long.ema == pytest.approx(min(0.9999, max(0.99, 1 - 1 / steps_per_epoch(images, long.batch_size))),
                                         abs=1e-5)
    else:
        assert long.ema is None


def test_the_batch_halves_only_while_it_adds_steps_and_the_learning_rate_follows_the_real_batch():
    # 100 images: batch 256 and 128 are both the whole set, one step; 64 is two steps
    assert choose(table({16: 500}), 60, 100, 256, BASE).batch_size == 32
    assert choose(table({16: 500}), 60, 40, 256, BASE).batch_size == 32  # 32 is two steps of 40, 64 one
    assert choose(table({16: 500}), 60, 30, 256, BASE).batch_size == 256  # one step whatever the batch
    assert scaled_lr(0.2, 32, 256, 100) == pytest.approx(0.2 * 32 / 100)
    assert scaled_lr(0.2, 128, 256, 55_000) == pytest.approx(0.1)
    # an accelerator keeps the batch (min_batch = the batch); the note names what sets the learning rate
    assert choose(table({16: 500}), 60, 1_350, 256, BASE, min_batch=256).batch_size == 256
    auto = choose(table({16: 500}), 60, 1_350, 256, BASE, lr_note="the LR finder sets the learning rate")
    assert "batch down to 32 (from 256, the LR finder sets the learning rate)" in auto.reason


@pytest.mark.parametrize("speeds, kept", [
    ({128: 716, 64: 602}, 128),  # Fashion-MNIST at 10 minutes: batch 64's steps ran 0.84 of 128's images per second
    ({128: 700, 64: 690, 32: 650}, 32),  # each halving within 0.9 of the batch above it
    ({128: 600}, 256),
])
def test_a_halved_batch_is_kept_only_if_its_steps_keep_the_speed(speeds, kept):
    timed: list[int] = []

    def time_at(batch: int) -> float:
        timed.append(batch)
        return speeds[batch]

    batch, why, speed = confirm_halving(time_at, 256, 32 if len(speeds) == 3 else 64, 705)
    assert batch == kept and timed == sorted(speeds, reverse=True)[: len(timed)]
    assert speed == speeds.get(batch, 705)  # the speed of the batch kept, as timed
    assert (why == "") == (kept == 32) and (not why or f"batch {kept} kept" in why)


def test_halvings_left_untimed_once_the_probe_is_out_of_time_are_kept_at_the_speed_above():
    """The halvings' readings are counted inside the probe's time: a probe out of time keeps the rule's batch
    untimed rather than run past its share (a 30 s budget on 64 px images spent 31 s probing, 76 s in all)."""
    timed: list[int] = []

    def time_at(batch: int) -> float | None:
        timed.append(batch)
        return 700.0 if batch == 128 else None

    batch, why, speed = confirm_halving(time_at, 256, 32, 705)
    assert (batch, speed, timed) == (32, 700.0, [128, 64])
    # the speed is batch 128's: the reason said "(N epochs at its 700 img/s)" of the untimed 32
    assert why == "batch 32 untimed (the probe's time was used): its epochs predicted at batch 128's 700 img/s"
    choice = choose(table({16: 705}), 60, 20_000, 256, BASE, budget_seconds=60,
                    time_at=lambda candidate, b: 700.0 if b == 128 else None)
    assert "at its" not in choice.reason and "its epochs predicted at batch 128's 700 img/s" in choice.reason


def test_the_batch_the_speed_check_keeps_sets_the_ema_and_the_reason():
    # 11 minutes of an hour's budget (EMA on: 18 epochs or more) on 20,000 images: the rule wants batch 64, the
    # timing keeps 128 (64 ran at 0.82 of its speed)
    speeds = {128: 700, 64: 575}
    asked: list[tuple[dict, int]] = []

    def time_at(candidate: Timed, batch: int) -> float:
        asked.append((candidate.model_args, batch))
        return speeds[batch]

    timed = table({16: 720, 24: 300})
    choice = choose(timed, 660, 20_000, 256, BASE, budget_seconds=3600, time_at=time_at)
    untimed = choose(timed, 660, 20_000, 256, BASE, budget_seconds=3600)
    assert untimed.batch_size == 64 and choice.batch_size == 128
    assert asked == [(timed[choice.index].model_args, 128), (timed[choice.index].model_args, 64)]
    assert choice.ema == pytest.approx(1 - 1 / steps_per_epoch(20_000, 128), abs=1e-5)
    assert untimed.ema == pytest.approx(1 - 1 / steps_per_epoch(20_000, 64), abs=1e-5)
    assert "batch down to 128 (from 256" in choice.reason and "batch 128 kept: 64 ran at 575 img/s" in choice.reason
    assert "batch down to 64" not in choice.reason
    # every halving refused: the run's batch, and the reason says why
    refused = choose(timed, 660, 20_000, 256, BASE, budget_seconds=3600, time_at=lambda c, b: 100.0)
    assert refused.batch_size == 256 and "batch down" not in refused.reason and "batch 256 kept" in refused.reason


@pytest.mark.parametrize("speeds, kept", [
    # one H200, width 16 on Fashion-MNIST: a step's cost hardly grows with its images, so each doubling pays
    ({512: 80_000, 1024: 150_000}, 1024),
    ({512: 80_000, 1024: 100_000}, 512),  # 1.25x: fewer steps for too few more epochs
    ({512: 55_000}, 256),  # a CPU-like reading: the batch stays
])
def test_an_accelerator_doubles_the_batch_while_its_steps_nearly_double_the_speed(speeds, kept):
    timed: list[int] = []

    def time_at(batch: int) -> float:
        timed.append(batch)
        return speeds[batch]

    # a minute of Fashion-MNIST: the epochs and steps are there at every batch, so the speed decides
    batch, why, speed = confirm_growth(time_at, 256, 41_000, 256 * MAX_GROWTH,
                                       lambda v: predicted_epochs(v, 60, 55_000), 55_000, MIN_EPOCHS, MIN_STEPS)
    assert batch == kept and speed == speeds.get(batch, 41_000)
    assert timed == sorted(speeds)[: len(timed)] and max(timed) <= 256 * MAX_GROWTH
    refused = {b: s for b, s in speeds.items() if b == kept * 2}
    assert (why == "") == (not refused) and all(f"batch {kept} kept: {b} ran at" in why for b in refused)
    assert GROWTH_GAIN > 1


def test_the_growth_stops_at_its_cap_at_the_data_sets_size_and_once_the_probe_is_out_of_time():
    def fast(batch: int) -> float:
        return 40.0 * batch  # each doubling doubles the speed

    def grow(time_at, max_batch):
        return confirm_growth(time_at, 256, 40.0 * 256, max_batch, lambda v: predicted_epochs(v, 60, 55_000),
                              55_000, MIN_EPOCHS, MIN_STEPS)

    assert grow(fast, 1024)[0] == 1024
    assert grow(fast, 700)[0] == 512  # 1024 would pass the cap (a data set of 700)
    timed: list[int] = []

    def out_of_time(batch: int) -> float | None:
        timed.append(batch)
        return 40.0 * batch if batch == 512 else None

    batch, why, _ = grow(out_of_time, 4096)
    assert (batch, timed) == (512, [512, 1024])
    assert why == "batch 1024 untimed (the probe's time was used): batch 512 kept"


def test_the_growth_keeps_a_small_data_sets_steps_and_stops_where_the_epochs_reach_their_cap():
    """1,350 images (the S5 stand-in) in 28 s: the epochs are there at batch 256, so a doubling must keep the
    steps (or MIN_STEPS); a run whose --epochs already fit the budget gains nothing from more speed."""
    def epochs(v: float) -> float:
        return predicted_epochs(v, 28, 1_350)

    speeds = {512: 75_000.0, 1024: 140_000.0}  # under 2x: fewer steps at 512 than at 256
    batch, why, _ = confirm_growth(speeds.get, 256, 40_000, 1024, epochs, 1_350, MIN_EPOCHS, MIN_STEPS)
    assert batch == 256 and why.startswith("batch 256 kept: 512 would train") and epochs(40_000) > MIN_EPOCHS
    doubling = {512: 80_000.0, 1024: 160_000.0}  # 2x: as many epochs' worth of steps, so it grows
    assert confirm_growth(doubling.get, 256, 40_000, 1024, epochs, 1_350, MIN_EPOCHS, MIN_STEPS)[0] == 1024
    capped = confirm_growth(doubling.get, 256, 40_000, 1024, epochs, 1_350, MIN_EPOCHS, MIN_STEPS, max_epochs=500)
    assert capped[0] == 256 and "500 epochs (--epochs) fit the budget" in capped[1]


def test_a_grown_batch_sets_the_epochs_the_regularisation_and_a_square_root_learning_rate():
    """The rule on an accelerator: width 16 short of the minimum at batch 256 (as on the H200 at 30 s), then the
    batch the probe reads faster; its speed sets the epochs, hence erasing and EMA; a CPU table keeps its batch."""
    speeds = {512: 90_000.0, 1024: 180_000.0}
    asked: list[int] = []

    def time_at(candidate: Timed, batch: int) -> float:
        asked.append(batch)
        return speeds[batch]

    timed = table({16: 41_000})
    grown = choose(timed, 28, 55_000, 256, BASE, budget_seconds=30, min_batch=256, time_at=time_at, grow_to=1024)
    kept = choose(timed, 28, 55_000, 256, BASE, budget_seconds=30, min_batch=256, time_at=time_at)
    assert (grown.batch_size, grown.trained_images_per_s, asked) == (1024, 180_000.0, [512, 1024])
    assert grown.trained_epochs == pytest.approx(predicted_epochs(180_000, 28, 55_000))
    assert kept.batch_size == 256 and kept.trained_epochs < MIN_EPOCHS
    assert "batch up to 1024 (from 256, learning rate scaled by the square root)" in grown.reason
    assert grown.ema is not None and "erase=0.5" in grown.augment and kept.ema is None
    capped = choose(timed, 28, 55_000, 256, BASE, min_batch=256, time_at=time_at, grow_to=1024, max_epochs=20)
    assert capped.batch_size == 512 and "20 epochs (--epochs) fit the budget" in capped.reason
    asked.clear()  # 600 training images: a batch of 1024 would hold the same 600, so it is not read
    assert choose(timed, 28, 600, 256, BASE, min_batch=256, time_at=time_at, grow_to=1024).batch_size == 512
    assert asked == [512]
    assert scaled_lr(0.2, 1024, 256, 55_000) == pytest.approx(0.4)
    assert scaled_lr(0.2, 1024, 256, 600) == pytest.approx(0.2 * (600 / 256) ** 0.5)  # by the batches' real sizes


def test_a_run_on_an_accelerator_grows_its_batch_on_the_probes_readings(tmp_path, monkeypatch):
    """The probe's device decides the direction: on an accelerator the batch doubles where its readings pay, up to
    the training split's size, and config.yaml and the card hold the batch and the square-root learning rate."""
    from imgclf.pipeline import sizing as sizing_module
    from imgclf.train import probe

    monkeypatch.setattr(sizing_module, "probe_device", lambda cfg: torch.device("meta"))  # not the CPU
    # width 16's steps cost the same whatever their images (a GPU bound by the host); the wider ones are slow
    monkeypatch.setattr(probe, "images_per_second",
                        lambda model, images, *args, **kwargs: 160.0 * len(images)
                        if sum(p.numel() for p in model.parameters()) < 500_000 else 50.0)
    data = make_image_folder(tmp_path / "d", classes=("a", "b", "c"), per_class=250, size=8, mode="L")
    run = imgclf.fit({"data": str(data), "recipe": "fast", "time_limit": "6s", "progress": False,
                      "val_split": 0.1, "test_split": 0.1, "out": str(tmp_path / "run")}, report=False)
    card, config = RunDir(run.path).read_card(), RunDir(run.path).read_config()
    train = card.sizing.train_images
    assert 512 < train < 1024  # 1024 would pass the data set's size: the growth stops at 512
    assert card.sizing.batch_size == 256 and card.sizing.train_batch_size == config.batch_size == 512
    assert card.sizing.lr == config.lr == pytest.approx(0.2 * 2 ** 0.5)
    assert card.model_args["width"] == 16 and card.sizing.train_images_per_s == 160.0 * 512
    assert "batch up to 512 (from 256, learning rate scaled by the square root)" in card.sizing.reason
    # what the probe chose is not a change from the recipe; the time limit given is
    assert card.training.recipe_changes == {"time_limit": {"recipe": "10m", "run": "6s"}}


def test_a_slow_machine_with_a_long_budget_regularises_its_many_epochs_of_width_16():
    # the AVX2 probe of a 60-minute run: width 24 gets 22 epochs and width 16 39, both short of the hour's 80
    timed = table({16: 745, 24: 420})
    choice = choose(timed, 3600 - 15, 55_000, 256, BASE, budget_seconds=3600)
    assert timed[choice.index].model_args == {"width": 16} and choice.epochs[1] >= LONG_BUDGET_MIN_EPOCHS
    assert "no candidate reaches 80 epochs" in choice.reason
    assert choice.ema is not None and "erase=0.5" in choice.augment


def test_regularisation_grows_with_the_epochs_and_replaces_an_erase_already_given():
    between = (ERASE_EPOCHS + LONG_EPOCHS) / 2
    speed = between / predicted_epochs(1.0, 600, 55_000)  # the speed that predicts `between` epochs
    choice = choose(table({16: speed}), 600, 55_000, 256, BASE + ",erase=0.9")
    assert choice.epochs[0] == pytest.approx(between)
    assert (choice.augment, choice.ema) == ("hflip,crop=2,erase=0.25,fill=constant", None)


def test_the_speed_of_the_halved_batch_sets_the_epochs_and_the_regularisation():
    """A halving that trains faster than the batch above it gives more epochs: the regularisation is set for the
    epochs the run will train at the batch it keeps, not for the candidate's speed at the batch it was timed at."""
    images, seconds = 1_350, 120
    speed = 52 / predicted_epochs(1.0, seconds, images)  # 52 epochs at batch 256: erase 0.25, no EMA
    untimed = choose(table({16: speed}), seconds, images, 256, BASE)
    assert untimed.epochs[0] == pytest.approx(52) and untimed.trained_epochs == pytest.approx(52)
    assert (untimed.ema, "erase=0.25" in untimed.augment) == (None, True)
    faster = choose(table({16: speed}), seconds, images, 256, BASE, time_at=lambda c, b: speed * 1.3)
    assert faster.batch_size == MIN_BATCH and faster.trained_images_per_s == pytest.approx(speed * 1.3)
    assert faster.epochs[0] == pytest.approx(52)  # the candidate's row keeps what was timed at batch 256
    assert faster.trained_epochs == pytest.approx(52 * 1.3) and faster.trained_epochs >= LONG_EPOCHS
    assert faster.ema is not None and "erase=0.5" in faster.augment
    assert f"({52 * 1.3:.1f} epochs at its" in faster.reason and f"for {52 * 1.3:.0f} epochs" in faster.reason


def test_predicted_epochs_stop_at_the_runs_epoch_limit():
    """--epochs caps the run: a candidate predicted 60 epochs that may train 12 is sized as a 12-epoch run."""
    timed = table({16: 3500, 24: 2200, 32: 1400})
    capped = choose(timed, 3600, 55_000, 256, BASE, budget_seconds=3600, max_epochs=12)
    assert max(capped.epochs) == 12 and capped.trained_epochs == 12
    # every width trains its 12 epochs within the hour, but 12 epochs of 215 steps fall short of MIN_STEPS at batch
    # 256: the fastest trains, at the batch that gives it the steps
    assert f"no candidate reaches {MIN_STEPS:,} steps" in capped.reason and capped.batch_size == 128
    # with steps enough (four times the images), --epochs 12 qualifies the widest width that trains them
    wide = choose(timed, 3600, 220_000, 256, BASE, budget_seconds=3600, max_epochs=12)
    assert timed[wide.index].model_args == {"width": 32} and ">= 12 epochs" in wide.reason
    assert (capped.augment, capped.ema) == (BASE, None)  # regularised for 12 epochs, not for the budget
    assert choose(timed, 3600, 55_000, 256, BASE, budget_seconds=3600).epochs[0] > 100


def test_a_batch_halved_within_a_split_smaller_than_it_is_no_change():
    """48 training images: batches of 256 and 128 are the same one step, yet the reason said "batch down to 128
    (from 256, learning rate scaled alike)"."""
    timed = table({16: 2000})  # 128 and 64 hold the 48 images as 256 does, and run as fast; 32 runs slower
    choice = choose(timed, 20, 48, 256, BASE, budget_seconds=20,
                    time_at=lambda candidate, batch: 2000.0 if batch >= 48 else 100.0)
    assert choice.batch_size == 256 and "batch down" not in choice.reason, choice.reason
    # 36 images, 64 timed slower than 128: "batch 128 kept: 64 ran at ..." named a batch it did not train at
    slower = choose(timed, 20, 36, 256, BASE, budget_seconds=20,
                    time_at=lambda candidate, batch: 2000.0 if batch >= 128 else 100.0)
    assert slower.batch_size == 256 and "batch 128" not in slower.reason and "ran at" not in slower.reason, \
        slower.reason


def test_the_rule_refuses_an_empty_table():
    with pytest.raises(ImgclfError, match="sizing candidates"):
        choose([], 600, 100, 32, BASE)


@pytest.mark.parametrize("size, mode, expected", [(28, "L", 28), (48, "L", 48), (32, "RGB", 32), (100, "RGB", 64)])
def test_the_input_size_comes_from_the_images(tmp_path, size, mode, expected):
    data = make_image_folder(tmp_path, classes=("a", "b"), per_class=3, size=size, mode=mode)
    assert native_img_size(str(data), 8) == expected


def test_sizing_needs_a_time_limit():
    with pytest.raises(ImgclfError, match="time_limit.*sizing=probe"):
        make_config(data="x", sizing="probe")
    # `--recipe fast --time-limit none --schedule onecycle`: the way on, as README gives it
    with pytest.raises(ImgclfError, match=r"sizing=probe: the model is sized .* Give --time-limit 10m, or train "
                                          r"without a budget: --sizing fixed"):
        make_config(data="x", sizing="probe", schedule="onecycle")


@pytest.mark.parametrize("given, refused", [
    ({"model_args": {"width": 32}}, r"^model_args\.width must be left to the probe with sizing=probe: .* Received: "
                                    r"model_args\.width=32\. Add --sizing fixed to train it as given"),
    ({"model_args": "stem=pool,width=24"}, r"^model_args\.width must be left to the probe .* Received: "
                                           r"model_args\.width=24\."),
    ({"augment": "hflip,erase=0.3"}, r"^augment must be without erase= with sizing=probe: .* Received: "
                                     r"augment='hflip,erase=0\.3' \(erase=0\.3 given\)\. .*--sizing fixed"),
    ({"ema": 0.999}, r"^ema must be left to the probe with sizing=probe: .* Received: ema=0\.999\. .*--sizing fixed"),
])
def test_a_setting_the_probe_chooses_is_refused_when_the_user_gives_it(tmp_path, given, refused):
    with pytest.raises(ImgclfError, match=refused):
        resolve_config(recipe="fast", data=".", **given)
    own = tmp_path / "own.yaml"  # in a --config file too
    own.write_text(yaml.safe_dump({"recipe": "fast", **given}))
    with pytest.raises(ImgclfError, match=refused):
        resolve_config(config_file=own, data=".")
    # the hint's way: trained as given, the recipe's other settings kept
    fixed = resolve_config(recipe="fast", data=".", sizing="fixed", **given)
    assert fixed.batch_size == 256 and fixed.model_args["stem"] in ("stride", "pool")
    for key, value in given.items():
        if key == "model_args":
            mapping = parse_mapping(key, value) if isinstance(value, str) else value
            assert fixed.model_args["width"] == mapping["width"]
        else:
            assert getattr(fixed, key) == value


def test_a_width_in_a_config_file_is_refused_beside_other_model_args_given(tmp_path):
    own = tmp_path / "own.yaml"
    own.write_text(yaml.safe_dump({"recipe": "fast", "model_args": {"width": 32}}))
    with pytest.raises(ImgclfError, match=r"^model_args\.width must be left to the probe .* model_args\.width=32\."):
        resolve_config(config_file=own, data=".", model_args="stem=pool")


def test_a_stored_config_with_the_probe_asked_again_says_what_it_holds(tmp_path):
    stored = tmp_path / "config.yaml"
    stored.write_text(yaml.safe_dump({**resolve_config(recipe="fast", data=".", sizing="fixed",
                                                       model_args={"width": 24}).model_dump(mode="json")}))
    with pytest.raises(ImgclfError, match=r"^model_args\.width must be .* Received: model_args\.width=24\. A run's "
                                          r"config\.yaml holds the settings it trained .*--recipe fast probes afresh"):
        resolve_config(config_file=stored, sizing="probe")


def test_a_resolved_config_handed_back_is_not_refused_for_the_recipes_own_width():
    cfg = resolve_config(recipe="fast", data=".")
    assert resolve_config(cfg).model_dump() == cfg.model_dump()  # imgclf.fit(resolve_config(...)): the recipe's width


def test_lr_find_refuses_the_probe_it_would_not_run():
    with pytest.raises(ImgclfError, match=r"^sizing must be unset or fixed for lr-find.* Received: sizing='probe'"):
        imgclf.lr_find(data=".", recipe="fast", sizing="probe")


def test_the_probe_keeps_what_it_does_not_choose():
    cfg = resolve_config(recipe="fast", data=".", model_args={"stem": "pool"}, augment="hflip,rotate=10")
    assert cfg.sizing == "probe" and cfg.model_args == {"width": 16, "stem": "pool"}
    assert cfg.augment == "hflip,rotate=10" and cfg.ema is None


def test_lr_find_sweeps_a_width_given_with_the_fast_recipe(tmp_path, monkeypatch):
    from imgclf.pipeline import lr_find as lr_find_module

    swept = {}
    monkeypatch.setattr(lr_find_module, "sweep", lambda cfg, data, model, *rest: swept.update(cfg=cfg, model=model))
    data = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=8, size=16, mode="L")
    imgclf.lr_find(data=str(data), recipe="fast", model_args={"width": 4}, batch_size=4, steps=20, progress=False,
                   out=str(tmp_path / "lf"))
    assert swept["cfg"].model_args["width"] == 4  # no probe runs for a sweep: the width given is the one swept
    widths = {m.out_channels for m in swept["model"].modules() if isinstance(m, torch.nn.Conv2d)}
    assert min(widths) == 4


def test_sizing_is_refused_with_several_devices():
    with pytest.raises(ImgclfError, match="sizing must be fixed with several devices"):
        make_config(data="x", sizing="probe", time_limit="1m", devices="2")
    make_config(data="x", sizing="probe", time_limit="1m")


@pytest.mark.parametrize("size, mode, color", [(28, "L", "grayscale"), (32, "RGB", "rgb"), (48, "L", "grayscale")])
def test_the_fast_recipe_sizes_itself_and_records_the_probe(tmp_path, size, mode, color, monkeypatch):
    from imgclf.pipeline import sizing as sizing_module

    monkeypatch.setattr(sizing_module, "SPEED_KEPT", 0.0)  # the halving is kept whatever this machine's timing
    data = make_image_folder(tmp_path / "d", classes=("a", "b", "c"), per_class=24, size=size, mode=mode)
    run = imgclf.fit({"data": str(data), "recipe": "fast", "time_limit": "8s", "batch_size": 64, "progress": False,
                      "val_split": 0.2, "test_split": 0.2, "out": str(tmp_path / "run")}, report=size == 48)
    card = RunDir(run.path).read_card()
    # about 43 training images are one step per epoch at 64, two at 32: the batch halves, and the learning rate
    # by the batches' real sizes (the batch of 64 holds all of them)
    config, images = RunDir(run.path).read_config(), card.sizing.train_images
    assert card.sizing.batch_size == 64 and MIN_BATCH < images < 64
    assert card.sizing.train_batch_size == config.batch_size == MIN_BATCH
    assert config.sizing == "fixed" and config.model_args == card.model_args  # config.yaml holds what was trained
    assert card.sizing.lr == config.lr == pytest.approx(0.2 * MIN_BATCH / images)
    assert (card.img_size, card.color, card.in_chans) == (size, color, 3 if color == "rgb" else 1)
    sizing = card.sizing
    assert sizing is not None and sizing.candidates and sizing.budget_seconds == 8
    chosen = sizing.candidates[sizing.chosen]
    assert chosen.images_per_s > 0 and card.model_args["width"] == chosen.model_args["width"]
    # each speed is the candidate's fastest reading (how many fit the probe's 1.6 s depends on this machine)
    assert all(0 < len(c.readings) <= PROBE_ROUNDS and c.images_per_s == max(c.readings) for c in sizing.candidates)
    assert card.training.augment == sizing.augment
    # the probe is inside the budget: the budget's clock started at the probe's seconds
    assert card.training.time_budget["before_training_seconds"] == sizing.counted_seconds > 0
    assert sizing.counted_seconds == min(sizing.probe_seconds, 4.0)
    stored = json.loads((run.path / "model.json").read_text())
    assert stored["sizing"]["candidates"][0]["model_args"]["width"] == 16
    if size == 48:
        page = (run.path / "report.html").read_text()
        assert "Model sized for the budget" in page and f"{chosen.images_per_s:,.0f}" in page
        twice = [c for c in sizing.candidates if len(c.readings) > 1]
        assert all(f"(read {' · '.join(f'{r:,.0f}' for r in c.readings)})" in page for c in twice)
        # an 8-second budget: MIN_EPOCHS, and the steps that decide on a small data set
        assert f"a candidate qualifies from {MIN_EPOCHS:g} epochs and {MIN_STEPS:,} optimiser steps" in page
        # what the chosen model trained at, predicted and ran: the halved batch, its rate, the epochs
        trained = card.training.epochs_trained  # the time limit may cut the last epoch: 8.6 trained
        trained = f"{trained:.0f}" if trained == int(trained) else f"{trained:.1f}"
        assert (f"Trained at: batch {MIN_BATCH}, learning rate {config.lr:.3g}; {sizing.train_epochs:.1f} epochs "
                f"predicted at {sizing.train_images_per_s:,.0f} img/s; {trained} trained") in page
    assert sizing.train_images_per_s > 0 and sizing.train_epochs >= 0


def test_a_sized_run_trains_with_the_l2_it_was_given(tmp_path):
    """The probe builds the chosen model again: with the config's L2 marks, as a fixed run would. BatchNorm after
    every convolution makes the loss blind to a convolution's scale, so only the penalty shrinks those weights."""
    from safetensors.torch import load_file

    from imgclf.models import create_model

    data = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=16, size=28, mode="L")
    base = {"data": str(data), "recipe": "fast", "time_limit": "6s", "epochs": 3, "progress": False,
            "val_split": 0.2, "test_split": 0.2}
    run = imgclf.fit({**base, "l2": {"conv": 5.0}, "out": str(tmp_path / "l2")}, report=False)
    card = RunDir(run.path).read_card()
    assert card.sizing is not None and RunDir(run.path).read_config().l2 == {"conv": 5.0}

    def conv_norm(state: dict) -> float:
        return sum(float((v.float() ** 2).sum()) for k, v in state.items() if v.ndim == 4)

    import torch

    torch.manual_seed(0)
    start = create_model("fast_resnet", 2, 1, 28, **card.model_args)
    assert conv_norm(load_file(str(run.path / "model.safetensors"))) < 0.5 * conv_norm(start.state_dict())


def test_the_fast_family_reads_the_input_size_from_the_images_when_not_sized(tmp_path):
    """`--recipe fast --sizing fixed` (no probe) trains the images at their own size, as the probe does."""
    data = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=8, size=32, mode="RGB")
    run = imgclf.fit({"data": str(data), "recipe": "fast", "sizing": "fixed", "epochs": 1, "progress": False,
                      "val_split": 0.25, "test_split": 0.25, "out": str(tmp_path / "run")}, report=False)
    card = RunDir(run.path).read_card()
    assert (card.img_size, card.in_chans, card.sizing) == (32, 3, None)


def test_sizing_is_refused_for_a_model_without_the_fast_familys_width(tmp_path):
    data = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=4, size=16, mode="L")
    refused = r"sizing for model model_s must be fixed for this model: the probe sizes .*\(fast_resnet\)"
    with pytest.raises(ImgclfError, match=refused):
        imgclf.fit({"data": str(data), "recipe": "fast", "model": "model_s", "progress": False,
                    "out": str(tmp_path / "run")})
    assert not (tmp_path / "run").exists()


def test_a_resumed_fast_run_keeps_its_probe_record_without_probing_again(tmp_path, monkeypatch):
    from imgclf.pipeline import sizing as sizing_module
    from imgclf.train.callbacks import HistoryWriter
    from imgclf.train.fit import TrainingInterrupted

    data = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=10, size=28, mode="L")
    original = HistoryWriter.on_train_epoch_start

    def interrupt(self, trainer, pl_module):  # Ctrl-C once the first epoch's checkpoint is written
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt
        original(self, trainer, pl_module)

    with monkeypatch.context() as m:
        m.setattr(HistoryWriter, "on_train_epoch_start", interrupt)
        with pytest.raises(TrainingInterrupted):
            imgclf.fit({"data": str(data), "recipe": "fast", "time_limit": "6s", "epochs": 3, "batch_size": 8,
                        "progress": False, "val_split": 0.2, "test_split": 0.2, "out": str(tmp_path / "run")},
                       report=False)
    probed = json.loads((tmp_path / "run" / "sizing.json").read_text())
    assert probed.pop("schema_version") == 1 and probed["resumed_with"] is None  # the card's sizing, versioned

    def probe_again(*args, **kwargs):
        raise AssertionError("a resumed run keeps the model it was sized to; it must not probe again")

    monkeypatch.setattr(sizing_module, "size_run", probe_again)
    partial = tmp_path / "partial"  # the interrupted run as it was, to resume a second time with other settings
    shutil.copytree(tmp_path / "run", partial)
    # --sizing probe beside --resume probes nothing; config.yaml stayed "probe" with the probe's width, which
    # `--config RUN/config.yaml` then refused ("width must be left to the probe")
    run = imgclf.fit(resume=str(tmp_path / "run"), sizing="probe", report=False)
    from imgclf.pipeline.resolve import resolve_config

    assert RunDir(run.path).read_config().sizing == "fixed"
    repeated = resolve_config(None, config_file=run.path / "config.yaml")
    assert repeated.model_args == RunDir(run.path).read_card().model_args
    card = RunDir(run.path).read_card()
    assert card.sizing is not None and card.sizing.model_dump(mode="json") == probed
    assert card.model_args["width"] == probed["candidates"][probed["chosen"]]["model_args"]["width"]
    assert [r.epoch for r in RunDir(run.path).read_history()] == [1, 2, 3]

    # resumed with another batch and augmentation: the card says its later epochs did not train the probe's choice
    run = imgclf.fit(resume=str(partial), batch_size=4, augment="hflip,rotate=10", time_limit="20s")
    sizing = RunDir(run.path).read_card().sizing
    assert sizing.resumed_with == {"batch_size": 4, "augment": "hflip,rotate=10", "time_limit": "20s"}
    assert {k: v for k, v in sizing.model_dump(mode="json").items() if k != "resumed_with"} == \
        {k: v for k, v in probed.items() if k != "resumed_with"}  # what the probe chose stays on record
    assert json.loads((partial / "sizing.json").read_text())["resumed_with"] == sizing.resumed_with  # kept
    page = (run.path / "report.html").read_text()
    assert "resumed with batch size 4, augment hflip,rotate=10, time limit 20s: its later epochs trained at" in page


def _sized(**fields):
    from imgclf.records import SizingCandidate, SizingInfo

    return SizingInfo(**{"budget_seconds": 600.0, "probe_seconds": 10.0, "counted_seconds": 10.0, "train_images": 1000,
                         "batch_size": 256, "precision": "32", "min_epochs": 18.0, "reason": "r", "chosen": 0,
                         "candidates": [SizingCandidate(model_args={"width": 16}, num_params=1, images_per_s=1.0,
                                                        predicted_epochs=1.0)],
                         "augment": "hflip,crop=2", "train_batch_size": 64, "lr": 0.05, **fields})


def test_the_report_shows_each_candidates_readings_beside_the_speed_it_kept():
    from imgclf.evaluation.report_facts import sizing_table
    from imgclf.records import SizingCandidate

    read = [SizingCandidate(model_args={"width": 16}, num_params=1, images_per_s=3500.0, predicted_epochs=99.0,
                            readings=[1970.0, 3500.0]),
            SizingCandidate(model_args={"width": 24}, num_params=2, images_per_s=900.0, predicted_epochs=40.0,
                            readings=[900.0])]
    rows = sizing_table(_sized(candidates=read))["rows"]
    assert [(r["images_per_s"], r["readings"]) for r in rows] == [(3500.0, "1,970 · 3,500"), (900.0, "")]
    assert sizing_table(_sized())["rows"][0]["readings"] == ""  # a card from before the readings were kept


def test_a_resume_records_what_it_trains_at_other_than_the_probe_chose():
    from imgclf.pipeline.sizing_record import with_resume_changes

    asked = {"data": ".", "time_limit": "10m", "batch_size": 64, "lr": 0.05, "augment": "crop=2,hflip"}
    assert with_resume_changes(_sized(), make_config(**asked)).resumed_with is None  # the same, written otherwise
    assert with_resume_changes(_sized(), make_config(**{**asked, "lr": 0.01, "time_limit": None})).resumed_with == \
        {"lr": 0.01, "time_limit": None}
    # a later resume back at the probe's batch still names it: some epochs trained at another
    earlier = _sized(resumed_with={"batch_size": 32})
    assert with_resume_changes(earlier, make_config(**asked)).resumed_with == {"batch_size": 64}
    # where the LR finder set the rate, the rate it found is the choice
    found = _sized(lr=None)
    assert with_resume_changes(found, make_config(**asked), found_lr=0.05).resumed_with is None
    assert with_resume_changes(found, make_config(**asked), found_lr=0.2).resumed_with == {"lr": 0.05}


def test_a_sized_runs_config_repeats_its_choice_without_probing(tmp_path, monkeypatch):
    from imgclf.pipeline import sizing as sizing_module

    monkeypatch.setattr(sizing_module, "SPEED_KEPT", 0.0)  # the halving is kept whatever this machine's timing
    data = make_image_folder(tmp_path / "d", classes=("a", "b", "c"), per_class=24, size=28, mode="L")
    first = imgclf.fit({"data": str(data), "recipe": "fast", "time_limit": "6s", "batch_size": 64, "progress": False,
                        "val_split": 0.2, "test_split": 0.2, "out": str(tmp_path / "first")}, report=False)
    sized = RunDir(first.path).read_config()
    assert sized.batch_size == MIN_BATCH < 64  # halved: probing again from config.yaml would start from 32

    def probe_again(*args, **kwargs):
        raise AssertionError("a saved config repeats the sized run; it must not probe again")

    monkeypatch.setattr(sizing_module, "size_run", probe_again)
    again = imgclf.fit(config_file=str(first.path / "config.yaml"), out=str(tmp_path / "again"), report=False)
    repeated = RunDir(again.path).read_config()
    trained = ("model_args", "batch_size", "lr", "augment", "ema", "img_size", "color", "seed")
    assert {k: getattr(repeated, k) for k in trained} == {k: getattr(sized, k) for k in trained}
    assert RunDir(again.path).read_card().sizing is None  # no probe ran for it


def test_ema_adds_lightnings_weight_averaging_callback():
    from lightning.pytorch.callbacks import WeightAveraging

    from imgclf.train.fit import _extra_callbacks

    cfg = make_config(data="x", ema=0.995)
    averaging = [c for c in _extra_callbacks(cfg, None) if isinstance(c, WeightAveraging)]
    assert len(averaging) == 1 and _extra_callbacks(make_config(data="x"), None) == []
    assert averaging[0].decay == 0.995 and averaging[0].should_update(step_idx=3)
    assert not averaging[0].should_update(epoch_idx=1)  # none at an epoch's end, after validation


def test_no_weight_average_for_a_run_too_short_for_it_to_forget_its_start():
    """60 epochs of 2 steps (a small data set) would leave an EMA of decay 0.99 mostly the initial weights (such a
    run tested at chance); the same epochs of Fashion-MNIST's 215 steps average as usual."""
    from imgclf.pipeline.sizing_rule import EMA_HORIZONS, regularisation

    small = regularisation(LONG_EPOCHS, 30.0, BASE, steps_per_epoch=2)
    assert small == ("hflip,crop=2,erase=0.25,fill=constant", None)
    # so too in a long budget, where the strongest regularisation starts at LONG_BUDGET_MIN_EPOCHS: erasing alone
    assert regularisation(30.0, 3600.0, BASE, steps_per_epoch=2) == ("hflip,crop=2,erase=0.25,fill=constant", None)
    large = regularisation(LONG_EPOCHS, 30.0, BASE, steps_per_epoch=215)
    assert large[0] == "hflip,crop=2,erase=0.5,fill=constant" and large[1] == pytest.approx(1 - 1 / 215, abs=1e-5)
    # just enough steps: EMA_HORIZONS horizons of 100 steps
    assert regularisation(EMA_HORIZONS * 100 / 2, 30.0, BASE, steps_per_epoch=2)[1] == 0.99


def test_the_native_size_is_read_from_a_sample_that_no_pattern_in_the_listing_fools(tmp_path):
    """Every third file 100 px, the others 20: a stride of 3 through the listing read only the large ones."""
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(201):
            side = 100 if i % 3 == 0 else 20
            Image.new("L", (side, side), 128).save(tmp_path / cls / f"{i:03d}.png")
    assert native_img_size(str(tmp_path), 8) == 20
