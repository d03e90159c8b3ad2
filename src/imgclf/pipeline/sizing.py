"""sizing=probe (the `fast` recipe): the widest model this machine can train well inside --time-limit.

The probe times a few widths of the model for a few seconds, inside the budget (`train.probe`); `choose` is the
rule, a pure function of the measured speeds, so it is tested with made-up tables. A candidate qualifies when the
training time left buys it at least MIN_EPOCHS epochs (below that a wider model's capacity does not pay for the
epochs it loses), or EPOCHS_PER_HOUR for each hour of a longer budget (more epochs of a narrower model beat fewer of a
wider one), and at least MIN_STEPS optimiser steps (on a small data set an epoch is a handful of steps); the widest
that qualifies wins, else the fastest. Then the batch (on a CPU): the run's batch size is the largest it may train
at, halved while the chosen model's predicted epochs give fewer than MIN_STEPS steps, each halving kept only if the
probe times its steps at SPEED_KEPT of the batch above it; the learning rate is scaled alike. On an accelerator the
batch doubles instead, up to MAX_GROWTH times, while the probe reads GROWTH_GAIN times the speed (a GPU step of a
small model is bound by the host's work per step); the learning rate by the square root. The epochs it gets
set the regularisation: a long run of a model overfits (width 16 on Fashion-MNIST for 60 minutes: train 98.3 %,
test lower than at 38 epochs, issue 23), so longer runs get random erasing and then weight averaging (EMA). The run
trains with the choice as fixed settings (config.yaml says `sizing: fixed`); the probe's record is the card's.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from typing import Any, Callable

from .. import hardware
from ..config import TrainConfig
from .sizing_rule import (MAX_GROWTH, MIN_BATCH, MIN_STEPS, SPEED_KEPT, Timed, choose, min_epochs_for,
                          predicted_epochs, qualifies, scaled_lr, steps_per_epoch)

CANDIDATE_WIDTHS = (16, 24, 32, 48)
PROBE_SHARE = 0.025  # of the budget, for all candidates together
# Each candidate is read this many times, in turn with the others, and its fastest reading kept: on a shared machine
# a neighbour's load only slows a reading. One reading each read a 60-minute run's widths at about 0.6x the speed its
# epochs then trained at (2 AVX-512-bf16 cores, 2026-12-02: width 16 1,970 img/s, its first epoch 2,837 and the
# median 3,227), predicting width 24 48 epochs where it would have trained about 80, so width 16 trained; across the
# eight runs in docs/results.md the epochs ran at 0.82-1.74x of the single reading.
PROBE_ROUNDS = 2
PROBE_SECONDS = (2.0, 30.0)  # bounds on that
# The probe's record in the run directory from the moment the choice is made, so that a resumed run's card (written
# by the process that finishes the run) still says how its model was chosen.
# The settings the probe replaces: config.yaml holds its choice as fixed settings, sizing.json the values asked for.
SIZED_SETTINGS = ("sizing", "model_args", "batch_size", "lr", "augment", "ema")

def read_candidates(candidates: list[dict[str, Any]], read: Callable[[dict[str, Any]], tuple[float, int]],
                    short_of_minimum: Callable[[float], bool], out_of_time: Callable[[], bool],
                    rounds: int = PROBE_ROUNDS) -> list[Timed]:
    """The probe's readings of `candidates` (model_args, narrow to wide), each `read` giving (images/s, parameters).
    A round reads them in turn until one is short of the minimum by its fastest reading so far (a wider one is
    slower still) or the probe's time is used; each later round reads again those read so far and goes on past that
    one where it now qualifies. A candidate's speed is its fastest reading: a spell of load that slows one round
    does not decide the width."""
    readings: list[list[float]] = []
    params: list[int] = []
    for _ in range(rounds):
        for i, args in enumerate(candidates):
            if out_of_time():
                break
            speed, num_params = read(args)
            if i == len(readings):
                readings.append([])
                params.append(num_params)
            readings[i].append(speed)
            if short_of_minimum(max(readings[i])):
                break
    return [Timed(args, n, max(r), tuple(r)) for args, n, r in zip(candidates, params, readings)]


def probe_device(cfg: TrainConfig):
    """The device the run trains on, where the probe times it: a CUDA GPU when the run may use one, else the CPU."""
    import torch

    return torch.device("cuda" if cfg.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu")


def size_run(cfg: TrainConfig, data: Any, candidates: tuple[int, ...] = CANDIDATE_WIDTHS):
    """Probe, choose and build: (config with the chosen model_args, augment and ema; the freshly seeded model;
    the card's SizingInfo). Candidates are read from narrow to wide, PROBE_ROUNDS times in turn (`read_candidates`:
    each reading one warm-up step, then steps for its share of the probe's time), up to the first that falls short
    of `min_epochs_for` the budget or of MIN_STEPS, a wider one being slower still, or until the probe's time is
    used."""
    import torch

    from ..models import create_model
    from ..records import SizingCandidate, SizingInfo
    from ..train.probe import images_per_second, probe_batch
    from .prepare import seeded_model

    start = time.perf_counter()
    budget = float(cfg.time_limit_seconds or 0)
    probe_total = min(max(PROBE_SHARE * budget, PROBE_SECONDS[0]), PROBE_SECONDS[1], 0.2 * budget)
    precision = hardware.resolve_precision(cfg.precision, cfg.accelerator)
    device = probe_device(cfg)
    train = data.splits["train"]
    steps = steps_per_epoch(len(train), cfg.batch_size)

    built: dict[tuple[str, int], tuple[torch.nn.Module, torch.Tensor]] = {}  # a later round re-reads the same

    def time_model(args: dict[str, Any], batch_size: int) -> tuple[float, int]:
        """Images per second of a model with `args` at `batch_size`, for one reading's share of the probe; its
        size."""
        key = (json.dumps(args, sort_keys=True), batch_size)
        if key not in built:
            # a batch larger than the training split is the split: its steps hold that many images, so they are timed
            built[key] = (create_model(cfg.model, len(data.classes), data.channels, data.img_size, **args),
                          probe_batch(data.decoded.pixels, train.indices, min(batch_size, max(1, len(train))),
                                      data.channels, data.img_size))
        model, images = built[key]
        speed = images_per_second(model, images, len(data.classes), precision, cfg.channels_last,
                                  probe_total / (len(candidates) * PROBE_ROUNDS), device)
        return speed, int(sum(p.numel() for p in model.parameters()))

    if cfg.progress:
        print(f"sizing: timing {cfg.model} widths {', '.join(map(str, candidates))} on this machine (up to "
              f"{probe_total:.0f} s of the {budget:.0f} s budget)", file=sys.stderr, flush=True)

    def short_of_minimum(speed: float) -> bool:
        left = budget - (time.perf_counter() - start)
        return not qualifies(min(cfg.epochs, predicted_epochs(speed, left, len(train))), steps,
                             min_epochs_for(budget, cfg.epochs))

    timed = read_candidates([{**cfg.model_args, "width": width} for width in candidates],
                            lambda args: time_model(args, cfg.batch_size), short_of_minimum,
                            lambda: time.perf_counter() - start >= probe_total)
    # Smaller batches were measured on CPU cores only; an accelerator grows the batch instead (GROWTH_GAIN).
    accelerated = device.type != "cpu"

    def time_at(candidate: Timed, batch: int) -> float | None:
        """A batch's speed: the fastest of PROBE_ROUNDS readings taken back to back (one spell of load can cover
        both, where the candidates' own were read in turn); None once the probe's time is used (a growth may take
        as long again: a probe stopped at its first short width has time left, and each reading there is short)."""
        limit = probe_total * (2 if batch > cfg.batch_size else 1)
        if time.perf_counter() - start >= limit:
            return None
        return max(time_model(candidate.model_args, batch)[0] for _ in range(PROBE_ROUNDS))

    choice = choose(timed, budget - (time.perf_counter() - start), len(train), cfg.batch_size, cfg.augment,
                    budget_seconds=budget, min_batch=cfg.batch_size if accelerated else MIN_BATCH,
                    lr_note="the LR finder sets the learning rate" if cfg.lr == "auto" else None,
                    time_at=time_at, speed_kept=SPEED_KEPT, max_epochs=cfg.epochs,
                    grow_to=cfg.batch_size * MAX_GROWTH if accelerated else None)
    built.clear()
    untimed = [w for w in candidates if w not in {t.model_args["width"] for t in timed}]
    if untimed:  # the probe stopped early: say why these have no row
        choice = replace(choice, reason=choice.reason + f"; widths {', '.join(map(str, untimed))} not timed "
                         "(the probe stopped at a width already short of the minimum, or out of time)")
    chosen = timed[choice.index]
    probe_seconds = time.perf_counter() - start
    counted = min(probe_seconds, 0.5 * budget)
    lr = cfg.lr if cfg.lr == "auto" else scaled_lr(cfg.lr, choice.batch_size, cfg.batch_size, len(train))
    # What the run trains with, as fixed settings: config.yaml then repeats this run (`--config`) rather than
    # probing again from the batch already halved; the probe's record is the card's `sizing`.
    sized = cfg.model_copy(update={"model_args": chosen.model_args, "augment": choice.augment, "ema": choice.ema,
                                   "batch_size": choice.batch_size, "lr": lr, "sizing": "fixed"})
    # the same initial weights (and L2 marks) as a fixed run of the chosen width
    model = seeded_model(sized, data, data.img_size, {})
    info = SizingInfo(
        budget_seconds=budget, probe_seconds=round(probe_seconds, 2),
        counted_seconds=round(counted, 2), train_images=len(train),
        batch_size=cfg.batch_size, precision=precision, min_epochs=min_epochs_for(budget, cfg.epochs),
        min_steps=MIN_STEPS,
        candidates=[SizingCandidate(model_args=t.model_args, num_params=t.num_params,
                                    images_per_s=round(t.images_per_s, 1), predicted_epochs=round(e, 1),
                                    readings=[round(r, 1) for r in t.readings])
                    for t, e in zip(timed, choice.epochs)],
        chosen=choice.index, augment=choice.augment, ema=choice.ema, reason=choice.reason,
        train_batch_size=choice.batch_size, lr=None if lr == "auto" else lr,
        train_images_per_s=round(choice.trained_images_per_s, 1), train_epochs=round(choice.trained_epochs, 1),
        requested={k: v for k, v in cfg.model_dump(mode="json").items() if k in SIZED_SETTINGS})
    if cfg.progress:
        speeds = ", ".join(f"width {t.model_args['width']} {t.images_per_s:,.0f} img/s (read "
                           f"{' and '.join(f'{r:,.0f}' for r in t.readings)})" for t in timed)
        print(f"sizing {info.probe_seconds:.1f} s probe ({precision}): {speeds}; chose width "
              f"{chosen.model_args['width']}: {choice.reason}", file=sys.stderr, flush=True)
    return sized, model, info
