"""The precision a run's network predicts at: the choices, `auto` resolved on a device, and what `auto` means for a
run whose temperature and thresholds were fitted in fp32 (its card says)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config_text import precision_name
from .errors import invalid
from .hardware import resolve_precision

if TYPE_CHECKING:
    import torch

    from .records import ModelCard

PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")


def inference_precision(precision: str, device: torch.device) -> str:
    """The precision the network runs at: auto is bf16 autocast on a CPU with native bf16 (AVX-512 BF16 or AMX)
    and the GPU's mixed precision, else fp32 (`hardware.resolve_precision`, as for training). The head
    (temperature, unknown detector) always reads float32 logits and features."""
    name = precision_name(precision)
    if name not in PRECISIONS:
        raise invalid("precision", precision, PRECISIONS)
    return resolve_precision(name, device.type)


def fitting_precision(training_precision: str, device: torch.device) -> str:
    """The precision a run's temperature and thresholds are fitted at, as its card records it
    (`ModelCard.fitted_precision`): fp32 for a run trained with --precision 32 (which keeps the whole run in fp32),
    else auto resolved on `device`. Not the training's mixed precision as such: the fits run on the CPU, where fp16
    autocast is emulated."""
    return inference_precision("32" if training_precision == "32" else "auto", device)


def card_precision(card: ModelCard) -> str:
    """What `auto` means for a run: fp32 where its temperature and thresholds were fitted in fp32, so that it is
    predicted as they were fitted (a card written before `fitted_precision` and holding any fit: fitted in fp32);
    else auto, which follows the machine."""
    fitted = card.fitted_precision
    if fitted is None and (card.unknown is not None or card.thresholds is not None
                           or (card.calibration is not None and card.calibration.method != "none")):
        fitted = "32"
    return "32" if fitted == "32" else "auto"
