"""--ema: the average's decay warms up, so a run that trains fewer steps than its decay's horizon still averages
its own recent weights, and a long run averages as a fixed decay does."""

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from imgclf.train.ema import warmed_decay_average


def _averaged(multi_avg_fn, values):
    model = torch.nn.Linear(1, 1, bias=False)
    average = AveragedModel(model, multi_avg_fn=multi_avg_fn, use_buffers=True)
    for value in values:
        with torch.no_grad():
            model.weight.fill_(value)
        average.update_parameters(model)
    return float(average.module.weight.detach())


def test_the_first_weights_are_forgotten_within_a_few_dozen_steps():
    """A fixed 0.99 kept 0.99^72 = 48 % of the first weights after 72 steps: a fast run that trained 198 of the
    2,000 steps its probe predicted validated near chance for its first 36 epochs (72 steps) and tested at 62.5 %
    (90 % without EMA)."""
    first_then_zero = [100.0] + [0.0] * 20
    assert _averaged(get_ema_multi_avg_fn(0.99), first_then_zero) > 80  # what Lightning's EMAWeightAveraging keeps
    assert _averaged(warmed_decay_average(0.99), first_then_zero) < 1e-3


def test_a_long_run_averages_as_the_fixed_decay_does():
    values = torch.randn(4000, generator=torch.Generator().manual_seed(0)).tolist()
    warmed, fixed = _averaged(warmed_decay_average(0.99), values), _averaged(get_ema_multi_avg_fn(0.99), values)
    assert abs(warmed - fixed) < 1e-6
    recent = values[-1000:]  # both are averages of the recent steps, weighted alike
    assert abs(fixed - sum(v * 0.01 * 0.99 ** (len(recent) - 1 - i) for i, v in enumerate(recent))) < 1e-3
