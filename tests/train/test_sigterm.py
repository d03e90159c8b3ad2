"""SIGTERM outside Lightning's training loop (a search between its trials, an LR sweep) is an interrupt that says
what it kept: the default action ended the process with no word, leaving tune.lock, train.lock and temp files."""

from __future__ import annotations

import os
import signal

import pytest

from imgclf.train.fit import stop_signal
from imgclf.train.interrupts import Terminated, sigterm_interrupts


def test_sigterm_in_the_block_is_an_interrupt_named_sigterm_and_the_handler_is_put_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as caught:
        with sigterm_interrupts():
            os.kill(os.getpid(), signal.SIGTERM)  # its handler runs before the next line
    assert isinstance(caught.value, KeyboardInterrupt)  # every handler of Ctrl-C takes it
    assert stop_signal(caught.value) == ("SIGTERM", 143)
    assert signal.getsignal(signal.SIGTERM) is before


def test_while_lightning_trains_its_own_handler_decides():
    """Lightning installs its own handler for the fit and calls the one it found after its own: that one must then
    leave the signal to Lightning, which ends the epoch its way."""
    called = []
    with sigterm_interrupts():
        ours = signal.getsignal(signal.SIGTERM)

        def lightning(signum, frame):  # what Lightning's _HandlersCompose does: its notifier, then the others
            called.append(signum)
            ours(signum, frame)

        signal.signal(signal.SIGTERM, lightning)
        os.kill(os.getpid(), signal.SIGTERM)
        signal.signal(signal.SIGTERM, ours)  # Lightning's teardown puts it back
    assert called == [signal.SIGTERM]


def test_a_search_interrupted_before_its_trial_made_a_folder_points_at_none(tmp_path):
    """It said "its run stays in .../trial-001", a folder the interrupt came before."""
    from imgclf.search.interrupt import interrupted_message

    made, not_made = tmp_path / "trials" / "trial-000", tmp_path / "trials" / "trial-001"
    made.mkdir(parents=True)
    assert f"its run stays in {made}" in interrupted_message(KeyboardInterrupt(), tmp_path, 0, made)
    message = interrupted_message(KeyboardInterrupt(), tmp_path, 1, not_made)
    assert "search interrupted in trial 1 (Ctrl-C)." in message and "stays" not in message  # the signal named


def test_the_interrupt_message_counts_steps_in_words():
    """'1 steps of epoch 4 are saved'."""
    from imgclf.train.interrupts import interrupt_state

    assert interrupt_state("Ctrl-C", 3, 3, 1).endswith("epochs 1-3 and 1 step of epoch 4 are saved in "
                                                       "checkpoints/last.ckpt")
    assert interrupt_state("Ctrl-C", 0, 0, 1).endswith("; 1 step of epoch 1 is saved in checkpoints/last.ckpt")
    assert interrupt_state("Ctrl-C", 0, 0, 2).endswith("; 2 steps of epoch 1 are saved in checkpoints/last.ckpt")
