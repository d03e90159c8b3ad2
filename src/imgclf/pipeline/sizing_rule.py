"""The `fast` recipe's sizing rule: which candidate, batch, learning rate and regularisation the probe's measured
speeds call for. Pure functions of those speeds (the probe itself is `sizing.size_run`), so they are tested with
made-up tables; `pipeline/sizing.py`'s docstring says what the rule is for."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from ..data.augment import parse_augment
from ..errors import invalid

# A candidate must be predicted at least this many epochs to qualify. At 18 (the rule to 2026-12-04), width 24 of
# the stride stem qualified in 10 minutes on 2 AVX-512-bf16 cores (22-23 predicted epochs) and trained 20-27 epochs
# to 93.57, 94.19 and 94.56 % test in three runs, where width 16 trained more: 31 epochs of the stride stem to
# 94.58 %, 38-46 of the fixed recipe's pooling stem to 94.85 and 94.77 % (Fashion-MNIST, seeds 0 and 1,
# docs/results.md). The wider model's extra capacity does not pay for the epochs it loses until it too gets about 40;
# under 40, width 16 trained 55/54 epochs there to 94.46/94.66 %, the fixed recipe 94.50/94.65 % (2026-12-05).
MIN_EPOCHS = 40.0
# A long budget's run that gets this many epochs (though not MIN_EPOCHS) already overfits: see LONG_BUDGET_SECONDS.
LONG_BUDGET_MIN_EPOCHS = 18.0
# The optimiser steps a candidate must be predicted to qualify: 18 epochs of Fashion-MNIST's 55,000 training images
# at batch 256 (215 per epoch), the minimum before MIN_EPOCHS rose to 40. On the S5 stand-in (1,350 training
# images, 6 steps an epoch) width 24 qualified on epochs alone at 2 minutes, under that minimum of 18, and trained 29
# epochs (175 steps) to 76.3 % test, where width 16 trained 45 (270 steps) to 83.9 % (2 AVX2 cores).
MIN_STEPS = 18 * 215
# The smallest batch the steps rule halves to. On the S5 stand-in (2 minutes, width 16 fixed, seed 0, 2 AVX2 cores)
# the same images per second trained to 85.1 % test at batch 256 (lr 0.2, 342 steps), 86.1 % at 64 (lr 0.05) and
# 87.1 % at 32 (lr 0.025, 2,580 steps), the smallest measured.
MIN_BATCH = 32
# Runs predicted to train fewer epochs than this drop the recipe's pad-and-crop translation (flips stay): so short a
# run underfits. Fashion-MNIST, 10 minutes, width 16 with the stride stem, 2 AVX2 cores (8-9 epochs, train accuracy
# with crop 94.4 %, validation 93.7 %): hflip alone tested 93.46 and 93.71 % (seeds 0, 1) against 93.27 and 93.09 %.
SHORT_EPOCHS = 10.0
# Epochs from which the chosen model gets random erasing with probability 0.25, and from which 0.5 and EMA. Width 16
# overfits only past about 60 epochs: on Fashion-MNIST, 66 epochs with erase=0.5 tested 94.74 % against 94.59 %
# without (2 AVX2 cores), where in 10 minutes on 2 AVX-512-bf16 cores (stride stem, seeds 0 and 1) 36-41 epochs
# without erasing tested 94.60/94.46 and 94.42/94.62 % (two machines), 31/37 with erase 0.25 94.58/94.32 %, and 52
# with erase 0.5 and EMA 94.31/94.41 % (train accuracy 95.5 %: underfitted) (benchmarks/results).
ERASE_EPOCHS = 50.0
LONG_EPOCHS = 60.0
# The EMA's horizons (1 / (1 - decay) steps each) a run must be predicted to train for the average to forget the
# initial weights: 0.99^1000 leaves them 4e-5. On 400 digits at batch 256 (2 steps an epoch), a 30-second fast run
# got EMA 0.99 for 50 predicted epochs, trained 14 (28 steps) and tested at chance, 10.1 %, where the same run
# without the probe tested 95.5 %; a 32 px RGB set of 3 classes at 20 and 80 steps also stayed at chance.
EMA_HORIZONS = 10.0
# A budget this long gets the strongest regularisation from LONG_BUDGET_MIN_EPOCHS: it trains long enough for any
# candidate to overfit (width 16 on Fashion-MNIST for 60 minutes: train 98.3 %, issue 23). The evidence is thin and
# pulls both ways: on 2 AVX2 cores width 16 at 47 epochs with erase 0.5 + EMA tested 94.72 % where the fixed recipe's
# 62 epochs without tested 94.59 %; in 10 minutes on AVX-512, 52 epochs with them tested 94.36 % (2 seeds) where the
# fixed recipe's 42-43 without tested 94.58 %.
LONG_BUDGET_SECONDS = 1800.0
# A candidate must be predicted this many epochs for each hour of the budget (never fewer than MIN_EPOCHS, reached
# below 30 minutes): above that a floor on speed, an epoch every 45 s, so a longer budget never buys a narrower
# model. Measured at 60 minutes only (Fashion-MNIST, seed 0, erase 0.5 + EMA, 2 AVX-512-bf16 cores): width 48 of
# fast (stride-2 stem), chosen at 18 epochs, trained 37 to 94.83 % test; width 24 of fast-fmnist (pooling stem) 92
# to 95.12 % (val 95.00 and 95.58 %); fixed width 16 without regularisation 189 to 95.01 %. On 2 AVX2 cores no
# wider candidate reaches it in 60 minutes and width 16 trains, where the two seeds of the old rule tied: width 24
# at 25 epochs 94.74 % (seed 0), width 16 at 47 epochs 94.72 % (seed 1).
EPOCHS_PER_HOUR = 80.0
# Whole epochs (batch assembly, augmentation, validation, history) run slower than the probe's bare steps:
# imgclf train epochs over probe img/s, measured on 2 AVX2 cores with fast_resnet width 16 on Fashion-MNIST.
EPOCH_EFFICIENCY = 0.8
# A halved batch is kept only where its steps run at this share of the larger batch's images per second: a CPU step
# has a fixed cost besides its images (Fashion-MNIST, width 16, 2 AVX2 cores: batch 64 trained 602 img/s, where 128
# and 256 ran 705-736 in the runs before it).
SPEED_KEPT = 0.9
# On an accelerator the batch grows instead: a step of these small models there is bound by the host's work per step
# (Python, Lightning, one kernel launch per operation), not by the arithmetic, so a larger batch trains more images
# a second. One H200 (Intel Xeon host, 16 vCPU), Fashion-MNIST, 30 s, seed 0: width 16 at batch 256 trained 12
# epochs at 21,900 img/s and tested 93.09 %; at batch 1024 (learning rate 0.4) 58 epochs at 115,800 img/s, 94.21 %.
# A doubling is kept where the probe reads its steps at GROWTH_GAIN times the images/s of the batch below: 1.5x the
# epochs for at most a quarter fewer optimiser steps (`confirm_growth` also keeps MIN_STEPS once the epochs are
# there). 1.5 is chosen, not measured: no probe read a grown batch of fast_resnet on a GPU (the bare loop of model_s
# there read 1.96x from batch 512 to 1024 in bf16, 1.37x from 1024 to 2048). Unmeasured there too: the epochs a grown
# batch trains against the probe's (EPOCH_EFFICIENCY is a CPU figure: whole epochs at batch 256 ran at 0.54 and 0.63
# of the probe's speed on two H200 machines), and the erasing and EMA that the predicted epochs then call for (the
# 94.21 % run had erase 0.25 and no EMA).
GROWTH_GAIN = 1.5
MAX_GROWTH = 4  # times the run's batch: 1,024 from 256, the largest measured


@dataclass(frozen=True)
class Timed:
    """One candidate as the probe measured it."""

    model_args: dict[str, Any]
    num_params: int
    images_per_s: float  # the fastest reading
    readings: tuple[float, ...] = ()  # every reading, in the order taken


@dataclass(frozen=True)
class Choice:
    index: int
    epochs: list[float]  # predicted, one per timed candidate
    augment: str
    ema: float | None
    reason: str
    batch_size: int  # the batch the chosen model trains at (the run's, or halved by `batch_for_steps`)
    trained_epochs: float  # the chosen model's predicted epochs at that batch's timed speed, within --epochs
    trained_images_per_s: float  # that speed (the candidate's own where the batch stayed)


def predicted_epochs(images_per_s: float, seconds: float, train_images: int,
                     efficiency: float = EPOCH_EFFICIENCY) -> float:
    return max(0.0, images_per_s * efficiency * seconds / max(1, train_images))


def steps_per_epoch(train_images: int, batch_size: int) -> int:
    return max(1, -(-train_images // batch_size))


def min_epochs_for(budget_seconds: float, max_epochs: float | None = None) -> float:
    """The epochs a candidate must be predicted to train in a budget of `budget_seconds` to qualify: MIN_EPOCHS,
    or EPOCHS_PER_HOUR of the budget where that is more, but no more than a run of `max_epochs` (--epochs) trains
    (a run stopped at 12 epochs qualifies a width that trains those 12 in the budget)."""
    wanted = max(MIN_EPOCHS, round(EPOCHS_PER_HOUR * budget_seconds / 3600, 1))
    return wanted if max_epochs is None else min(wanted, max_epochs)


def qualifies(epochs: float, steps: int, min_epochs: float = MIN_EPOCHS, min_steps: int = MIN_STEPS) -> bool:
    """Whether `epochs` predicted epochs of `steps` optimiser steps each are enough for the budget schedule."""
    return epochs >= min_epochs and epochs * steps >= min_steps


def batch_for_steps(epochs: float, train_images: int, batch_size: int, min_steps: int = MIN_STEPS,
                    min_batch: int = MIN_BATCH) -> int:
    """The batch for a run predicted to train `epochs` epochs: `batch_size` halved while those epochs would take
    fewer than `min_steps` optimiser steps, down to `min_batch` (a small data set or a short budget: more, smaller
    steps at the same images per second); where no halving is enough, the one with the most steps (a batch larger
    than the data set is the data set: halving it adds none). The learning rate goes with it (`scaled_lr`)."""
    halvings = [batch_size >> k for k in range(batch_size.bit_length()) if batch_size >> k >= min_batch]
    for batch in halvings or [batch_size]:
        if epochs * steps_per_epoch(train_images, batch) >= min_steps:
            return batch
    # none is enough: the most steps, and of batches with as many (larger than the data set), the largest
    return max(halvings or [batch_size], key=lambda b: (steps_per_epoch(train_images, b), b))


def confirm_halving(time_at: Callable[[int], float | None], batch_size: int, target: int, speed: float,
                    speed_kept: float = SPEED_KEPT) -> tuple[int, str, float]:
    """Walk the halvings from `batch_size` (trained at `speed` img/s) down to the rule's `target`, timing each
    (`time_at(batch)`: img/s, or None once the probe's time is used: the rest are kept untimed, at the speed
    above); stop at the first that runs below `speed_kept` of the batch above it. Returns the batch, where it
    stopped short of the target why, and the speed measured at the batch kept."""
    batch = batch_size
    while batch > target:
        half = batch // 2
        measured = time_at(half)
        if measured is None:  # the speed read at `batch` stands in for the target's
            return target, (f"batch {target} untimed (the probe's time was used): its epochs predicted at "
                            f"batch {batch}'s {speed:,.0f} img/s"), speed
        if measured < speed_kept * speed:
            return batch, (f"batch {batch} kept: {half} ran at {measured:,.0f} img/s, {measured / speed:.2f} of "
                           f"{batch}'s {speed:,.0f}"), speed
        batch, speed = half, measured
    return batch, "", speed


def confirm_growth(time_at: Callable[[int], float | None], batch_size: int, speed: float, max_batch: int,
                   epochs_at: Callable[[float], float], train_images: int, min_epochs: float, min_steps: int,
                   max_epochs: float = float("inf"), gain: float = GROWTH_GAIN) -> tuple[int, str, float]:
    """Double the batch from `batch_size` (trained at `speed` img/s) while the doubled batch fits `max_batch`, the
    batch below is predicted fewer epochs than `max_epochs` (`epochs_at(speed)`, uncapped: more speed buys nothing
    past it) and the doubled batch's steps run at `gain` times the images/s of the batch below (`time_at(batch)`:
    img/s, or None once the probe's time is used: no reading, no growth). Epochs first, then steps: a batch short of
    `min_epochs` grows on speed alone; one that has them grows only where the doubled batch keeps `min_steps`
    optimiser steps, or as many as the batch below where that had fewer (a small data set wants more steps, not
    more epochs). Returns the batch, why it stopped where a doubling was refused or left untimed, and the speed
    measured at the batch kept."""
    batch = batch_size
    while batch * 2 <= max_batch:
        if epochs_at(speed) >= max_epochs:
            return batch, f"batch {batch} kept: its {max_epochs:g} epochs (--epochs) fit the budget", speed
        measured = time_at(batch * 2)
        if measured is None:
            return batch, f"batch {batch * 2} untimed (the probe's time was used): batch {batch} kept", speed
        if measured < gain * speed:
            return batch, (f"batch {batch} kept: {batch * 2} ran at {measured:,.0f} img/s, {measured / speed:.2f}x "
                           f"{batch}'s {speed:,.0f}"), speed
        steps = epochs_at(measured) * steps_per_epoch(train_images, batch * 2)
        floor = min(min_steps, epochs_at(speed) * steps_per_epoch(train_images, batch))
        if epochs_at(speed) >= min_epochs and steps < floor:
            return batch, (f"batch {batch} kept: {batch * 2} would train {steps:,.0f} steps, fewer than "
                           f"{floor:,.0f}"), speed
        batch, speed = batch * 2, measured
    return batch, "", speed


def scaled_lr(lr: float, batch: int, from_batch: int, train_images: int) -> float:
    """The learning rate for `batch` where `lr` was set for `from_batch`, by the batches' real sizes (a batch larger
    than the data set holds the data set only): linear for a smaller batch (Goyal et al. 2017); by the square root
    for a larger one, as the accelerator's growth makes it (one H200, Fashion-MNIST, 30 s, batch 1024 from 256:
    0.4 trained width 16 to 94.21 %; the one run at the linear 0.8, width 64 with the pooling stem, erasing 0.5 and
    EMA, started at a loss of 10.5, so the square root is the cautious choice, not a measured optimum)."""
    ratio = min(batch, train_images) / min(from_batch, train_images)
    return lr * (ratio if ratio <= 1 else ratio ** 0.5)


def regularisation(epochs: float, budget_seconds: float, base_augment: str,
                   steps_per_epoch: int) -> tuple[str, float | None]:
    """Augmentation and EMA decay for a run predicted to train `epochs` epochs in a `budget_seconds` budget: no
    pad-and-crop below SHORT_EPOCHS, random erasing from ERASE_EPOCHS, with EMA from LONG_EPOCHS (or from
    LONG_BUDGET_MIN_EPOCHS in a budget of LONG_BUDGET_SECONDS: so long a run overfits any candidate). EMA averages over
    about one epoch of steps (at least 100), so its horizon scales with the data rather than a fixed step count;
    a run predicted fewer steps than EMA_HORIZONS of those horizons gets random erasing 0.25 without it. The
    augmentation is the base's, rewritten in its canonical form (`AugmentSpec.to_string`)."""
    spec = replace(parse_augment(base_augment), erase=0.0)
    if epochs < SHORT_EPOCHS:  # however long the budget: a starved run underfits
        spec = replace(spec, crop=0.0)
    if epochs >= LONG_EPOCHS or (budget_seconds >= LONG_BUDGET_SECONDS and epochs >= LONG_BUDGET_MIN_EPOCHS):
        decay = min(0.9999, max(0.99, 1.0 - 1.0 / max(1, steps_per_epoch)))
        if epochs * steps_per_epoch >= EMA_HORIZONS / (1.0 - decay):
            return replace(spec, erase=0.5).to_string(), round(decay, 5)
        return replace(spec, erase=0.25).to_string(), None  # too few steps for the average: erasing alone
    if epochs >= ERASE_EPOCHS:
        return replace(spec, erase=0.25).to_string(), None
    return spec.to_string(), None


def choose(timed: list[Timed], train_seconds: float, train_images: int, batch_size: int, base_augment: str,
           min_epochs: float | None = None, budget_seconds: float | None = None, min_steps: int = MIN_STEPS,
           min_batch: int = MIN_BATCH, lr_note: str | None = None,
           time_at: Callable[[Timed, int], float] | None = None, speed_kept: float = SPEED_KEPT,
           max_epochs: float | None = None, grow_to: int | None = None) -> Choice:
    """The rule: the widest candidate predicted to reach `min_epochs` (default: `min_epochs_for` the budget) and
    `min_steps` optimiser steps in `train_seconds` (the budget less the probe), else the fastest; its batch
    (`batch_for_steps`, no smaller than `min_batch`; `lr_note` says what becomes of the learning rate), each
    halving kept only if `time_at(candidate, batch)` (img/s) keeps `speed_kept` of the speed above it
    (`confirm_halving`; None: kept untimed); with `grow_to` (an accelerator) the batch doubles instead, up to
    `grow_to` and the data set's size, while `time_at` reads GROWTH_GAIN times the speed (`confirm_growth`);
    regularisation for the epochs it is predicted at the batch it keeps (timed there), the budget and that batch
    (`regularisation`). Predicted epochs never exceed `max_epochs` (the run's --epochs). `lr_note` says what becomes
    of the learning rate (default: scaled as `scaled_lr` does)."""
    if not timed:
        raise invalid("sizing candidates", "none timed", "at least one candidate measured by the probe")
    min_epochs = min_epochs_for(budget_seconds or train_seconds, max_epochs) if min_epochs is None else min_epochs
    cap = float("inf") if max_epochs is None else max_epochs
    epochs = [min(cap, predicted_epochs(t.images_per_s, train_seconds, train_images)) for t in timed]
    steps = steps_per_epoch(train_images, batch_size)
    qualified = [i for i, e in enumerate(epochs) if qualifies(e, steps, min_epochs, min_steps)]
    if qualified:
        index = max(qualified, key=lambda i: (timed[i].num_params, epochs[i]))
        reason = (f"widest candidate predicted to train >= {min_epochs:g} epochs and {min_steps:,} steps in "
                  f"{train_seconds:.0f} s: {epochs[index]:.1f} epochs")
    else:
        index = max(range(len(timed)), key=lambda i: epochs[i])
        short_of = f"{min_epochs:g} epochs" if max(epochs) < min_epochs else (
            f"{min_steps:,} steps ({steps} per epoch of {train_images:,} images at batch {batch_size})")
        fastest = "the fastest" if len(timed) > 1 else "the only one timed"
        reason = (f"no candidate reaches {short_of} in {train_seconds:.0f} s; {fastest}, "
                  f"{epochs[index]:.1f} epochs")
    batch = batch_for_steps(epochs[index], train_images, batch_size, min_steps, min_batch)
    refused, speed = "", timed[index].images_per_s
    if grow_to is not None and time_at is not None:
        batch, refused, speed = confirm_growth(lambda b: time_at(timed[index], b), batch_size, speed,
                                               min(grow_to, train_images),
                                               lambda v: predicted_epochs(v, train_seconds, train_images),
                                               train_images, min_epochs, min_steps, cap)
    elif time_at is not None and batch < batch_size:
        batch, refused, speed = confirm_halving(lambda b: time_at(timed[index], b), batch_size, batch, speed,
                                                speed_kept)
    if batch != batch_size and min(batch, train_images) == min(batch_size, train_images):
        # both hold the whole training split, one batch: "down to 128 (from 256, learning rate scaled alike)" said
        # it changed (48 images), and "batch 128 kept: 64 ran at 0.53 of its speed" named a batch the run did not
        # train at (36 images)
        batch, refused, speed = batch_size, "", timed[index].images_per_s
    trained = min(cap, predicted_epochs(speed, train_seconds, train_images))
    if batch != batch_size:
        lr_note = lr_note or ("learning rate scaled alike" if batch < batch_size
                              else "learning rate scaled by the square root")
        reason += (f"; batch {'down' if batch < batch_size else 'up'} to {batch} (from {batch_size}, {lr_note}) for "
                   f"{trained * steps_per_epoch(train_images, batch):,.0f} steps"
                   + (f" ({trained:.1f} epochs at its {speed:,.0f} img/s)"
                      if speed != timed[index].images_per_s and "untimed" not in refused else ""))
    reason += f"; {refused}" if refused else ""
    augment, ema = regularisation(trained, budget_seconds or train_seconds, base_augment,
                                  steps_per_epoch(train_images, batch))
    chosen = parse_augment(augment)
    extra = [f"random erasing {chosen.erase:g}"] if chosen.erase else []
    extra += ["no pad-and-crop"] if parse_augment(base_augment).crop and not chosen.crop else []
    extra += [f"EMA of the weights (decay {ema:g})"] if ema is not None else []
    if extra:
        reason += "; " + " and ".join(extra) + f" for {trained:.0f} epochs of a {_run_length(train_seconds)} run"
    return Choice(index, epochs, augment, ema, reason, batch, trained, speed)


def _run_length(seconds: float) -> str:
    return f"{seconds:.0f}-second" if seconds < 90 else f"{seconds / 60:.0f}-minute"
