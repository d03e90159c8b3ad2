"""A run stopped by a signal: what it has kept and how to go on, during training and after it (`finishing`: its
BatchNorm statistics recomputed, its weights saved, calibrated, evaluated and reported).

During training, Lightning turns either signal into an exception that `train.fit` reports with the epochs kept
and how to continue. Once `trainer.fit` returns, Lightning has put back the handlers it found: SIGTERM would
end the process with no word and Ctrl-C would end as click's bare "Aborted!", each leaving a run without its
card or scores. Here either one ends the same way as during training: what is kept, and the --resume command
that finishes the run.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import Interrupted
from ..file_names import shell_word


class TrainingInterrupted(Interrupted):
    """A run's training (or its evaluation after training) stopped by a signal; the message says which epochs are
    kept and the --resume command that finishes it."""


def interrupt_state(signal_name: str, completed: int, saved_epochs: int, saved_steps: int = 0) -> str:
    """What an interrupted run has kept, said only as far as it is true."""
    done = f"after {completed} completed epoch{'s' if completed != 1 else ''}"
    if saved_steps:
        kept = f"epochs 1-{saved_epochs} and " if saved_epochs > 1 else "epoch 1 and " if saved_epochs else ""
        steps = f"{saved_steps} step{'s' if saved_steps != 1 else ''}"  # "1 steps of epoch 4"
        verb = "is" if saved_steps == 1 and not kept else "are"
        return (f"training interrupted ({signal_name}) {done}; {kept}{steps} of epoch {saved_epochs + 1} {verb} saved "
                f"in checkpoints/last.ckpt")
    if saved_epochs == 0:
        return f"training interrupted ({signal_name}) {done}, before any epoch was saved"
    kept = "epoch 1 is" if saved_epochs == 1 else f"epochs 1-{saved_epochs} are"
    return f"training interrupted ({signal_name}) {done}; {kept} saved in checkpoints/last.ckpt"


def interrupt_message(state: str, saved_epochs: int, run_dir: Path, saved_steps: int = 0) -> str:
    """`interrupt_state` and how to continue the run, on the command line and in Python (a notebook's fit was
    told the command alone)."""
    python = f"(Python: imgclf.fit(resume={str(run_dir)!r}))"
    if saved_epochs == 0 and not saved_steps:
        return f"{state}; imgclf train --resume {shell_word(run_dir)} {python} starts it again from epoch 1"
    return f"{state}. Continue with: imgclf train --resume {shell_word(run_dir)} {python}"


# What gloo and NCCL raise in the processes left running when another process of a data-parallel run stops (a
# signal sent to it alone, a crash): an internal error, "please report it", where the run had kept its checkpoint
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "communicator was aborted")


def peer_gone(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and any(words in str(exc) for words in _PEER_GONE)


class _Terminated(BaseException):
    """SIGTERM as an exception (a BaseException, as KeyboardInterrupt: no `except Exception` swallows it)."""


@contextlib.contextmanager
def finishing(run_dir: Path, epochs: int, stopped: str = "completed", mark: bool = False) -> Iterator[None]:
    """Turn Ctrl-C and SIGTERM inside the block into `TrainingInterrupted` (exit status 130 or 143). The SIGTERM
    handler is only installed from the main thread, the one place Python allows it. `stopped`: why training
    ended; a run stopped before its last epoch (early stopping, a time limit) is finished with --epochs set to
    the epochs it trained, since a checkpoint does not hold the stop and a plain --resume would train on. mark:
    the block writes the run's weights, card, scores and report, and leaves FINISHING_FILE unless it ends
    normally: `imgclf runs` then calls the run interrupted (its card may be written already)."""
    from ..run_markers import FINISHING_FILE

    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    if main:
        signal.signal(signal.SIGTERM, _raise_terminated)
    marker = Path(run_dir) / FINISHING_FILE if mark else None
    if marker is not None:
        marker.touch()
    try:
        yield
        if marker is not None:
            marker.unlink(missing_ok=True)
    except (KeyboardInterrupt, _Terminated) as exc:
        name, code = ("SIGTERM", 143) if isinstance(exc, _Terminated) else ("Ctrl-C", 130)
        _, _, kept = interrupt_state(name, epochs, epochs).partition("; ")  # what the checkpoint holds
        kept = kept or "no epoch was saved"
        state = f"interrupted ({name}) after training, while the run was being finished; {kept}"
        more = "" if stopped == "completed" else f" --epochs {epochs}"
        raise TrainingInterrupted(f"{state}. Finish it with: imgclf train --resume {shell_word(run_dir)}{more}",
                                  state=state, exit_code=code) from None
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


class Terminated(KeyboardInterrupt):
    """SIGTERM outside Lightning's training loop, raised as Ctrl-C is, so that every place that says what an
    interrupt kept says it for SIGTERM too (`stop_signal` names it, exit status 143)."""


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises `Terminated` inside the block (a search between its trials, an LR sweep): the default
    action ended the process with no word, leaving tune.lock, train.lock and temp files behind. While Lightning
    trains, its own handler is the one installed, and it calls this one after its own: then this one does
    nothing, and Lightning ends the epoch its way (reported as SIGTERM by `train.fit`). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if signal.getsignal(signal.SIGTERM) is handler:
            raise Terminated()

    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back inside the block and delivered as it ends, to the handlers that were there: a
    few milliseconds of bookkeeping that must not be cut in two (a search's trial trained and not yet told to
    Optuna stayed "running", and its resume marked the finished run failed). A Python-level hold, as blocking the
    signals in the main thread leaves them to torch's threads. Main thread only (elsewhere nothing is held)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for number in previous:
        signal.signal(number, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
        if held:
            signal.raise_signal(held[0])


@contextlib.contextmanager
def remembered_ctrl_c() -> Iterator[Callable[[], bool]]:
    """Ctrl-C raises KeyboardInterrupt inside the block as always, and is remembered: Python prints and drops an
    exception raised in a garbage collector's weakref callback or a __del__, and a search then ran all its trials
    to the end after a Ctrl-C (2 of 9 signals in its first seconds). Yields whether one came, for a loop to stop
    at its next step. Main thread only (elsewhere nothing is remembered)."""
    came = [False]
    # a process started with Ctrl-C ignored (`tune ... &` from a script) keeps ignoring it
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield lambda: came[0]
        return

    def handler(signum: int, frame: object) -> None:
        came[0] = True
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: came[0]
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated()
