"""A shared network in eval mode for a prediction, put back as its caller left it, whatever threads predict at
once (`Classifier.predict` and its pixel methods)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """The network in eval mode for one forward pass, put back as the caller left it: a model loaded to train
    further (`fold_batch_norm=False`) and left in train mode predicted with each batch's own BatchNorm
    statistics (answers that changed with the batch's other images) and moved its running statistics. Each module
    is put back in its own mode, not the model's (model.train() after predict woke a frozen BatchNorm)."""
    # Threads predicting at once share the switch: the first puts eval mode on, the last puts the modes back. A
    # thread restoring train mode while another's forward pass ran gave that pass its batch's own BatchNorm
    # statistics (probabilities 0.25 off).
    with _SWITCH_LOCK:
        switch = _SWITCHED.get(model)
        if switch is None:
            modes = {m: m.training for m in model.modules()}
            if any(modes.values()):
                switch = _SWITCHED[model] = [modes, 0]
                model.eval()
        if switch is not None:
            switch[1] += 1
    try:
        yield
    finally:
        if switch is not None:
            with _SWITCH_LOCK:
                switch[1] -= 1
                if not switch[1]:  # each module as it was: a fine-tuning's frozen BatchNorm stays in eval mode
                    del _SWITCHED[model]
                    for module, training in switch[0].items():
                        module.train(training)


_SWITCH_LOCK = threading.Lock()
_SWITCHED: dict[torch.nn.Module, list[Any]] = {}  # model -> [modes before the first switch, predictions under way]
