"""Errors a user can act on. The CLI turns these into one line and exit status 2.

Every message a user can cause is built here, in one shape (Keras's):

    <argument>[ for <where>] must be <allowed>.[ Did you mean: x?] Received: <argument>=<value>[ (<note>)][. <hint>]

`invalid(...)` returns an `ImgclfError` to raise; `invalid_message(...)` is the same text for errors of
another type (the HTTP service's `ApiError`, itself an `ImgclfError`); `bad_path(...)` is `invalid` for a
file or folder, with the problem found ("not found", "not a file", ...) as the note. A static test
(`tests/test_errors.py`) fails when a "Received:" message is formatted by hand elsewhere.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

MAX_SHOWN = 300  # characters of an echoed value; longer ones are cut (a whole file listing helps no one)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM ended a run, a study or a search; the message says what was kept and how to go on.

    A KeyboardInterrupt, as the Ctrl-C it reports: a loop of runs guarded by `except Exception` still stops.
    `state`: what was kept, without the hint on how to continue (a study or a search gives its own);
    `exit_code`: the command's status, a shell's for the signal (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, message: str, state: str | None = None, exit_code: int = 130):
        super().__init__(message)
        self.state = state if state is not None else message
        self.exit_code = exit_code
        self.argument = None

    def __reduce__(self):  # pickled with what __init__ takes
        return type(self), (str(self), self.state, self.exit_code)


class ImgclfError(ValueError):
    """A problem with the user's input: names the argument, echoes the value, lists what is allowed.

    `argument`: the setting the message starts with (None for errors of another shape), so that the command line
    can add the flag that sets it (`img_size (--img-size) must be ...`)."""

    def __init__(self, message: str, argument: str | None = None):
        super().__init__(message)
        self.argument = argument

    def __reduce__(self):  # pickled with the argument too (a process pool re-raises it)
        if type(self).__init__ is not ImgclfError.__init__:  # a subclass that takes other arguments
            return super().__reduce__()
        return type(self), (str(self), self.argument)


class Described(str):
    """What was received, described in words rather than echoed: printed as is after "Received:".

    For values that cannot usefully be echoed: `Described("more than 10000000 bytes")`, a count of files.
    """


def shown(value: object) -> str:
    """A value as echoed in a message: `repr`, paths as plain strings, long values shortened."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 4] + " ..."


# Options listed in a message: the 120 classes of a run refused for `explain --label` were 3,000 characters before
# "Did you mean", which names the closest whatever the list shows
MAX_LISTED = 80  # (more than the settings a config file takes, which a misspelt key lists)


def _options(allowed: Iterable[object]) -> list[str]:
    return sorted(str(a) for a in allowed)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


def _fold(name: str) -> str:
    return re.sub(r"[\s._-]", "", name.lower())


def close_names(received: str, names: Iterable[str], n: int = 5) -> list[str]:
    """Up to n names close to `received`, for long lists of names with mixed conventions (timm's ~1,400
    architectures): separators and case are ignored (mobilenet_v2 ~ mobilenetv2_100, efficientnet-b0 ~
    efficientnet_b0) and a name that starts with what was typed counts as close (vit_base ~ vit_base_patch16_224).
    Closest first; ties go to the shorter name."""
    folded = _fold(received)
    scored = []
    for name in set(names):
        other = _fold(name)
        score = max(difflib.SequenceMatcher(None, received.lower(), name.lower()).ratio(),
                    difflib.SequenceMatcher(None, folded, other).ratio())
        if len(folded) >= 3 and other.startswith(folded):
            score = max(score, 0.9)
        if score >= 0.6:
            scored.append((-score, len(name), name))
    return [name for _, _, name in sorted(scored)[:n]]


def invalid_message(argument: str, received: object, allowed: str | Iterable[object], *, where: str | None = None,
                    note: str | None = None, hint: str | None = None, also: Mapping[str, object] | None = None,
                    suggest: Iterable[str] | None = None) -> str:
    """The house-style message; see the module docstring.

    argument: the name the user typed (`model`, `model_args.stem`, `source`). received: their value, echoed
    with `repr` as `argument=value` (a `Described` is printed as is). allowed: a phrase ("a folder of class
    folders", ">= 1") or the options themselves (any iterable, a dict's keys), listed sorted, with the
    closest ones to `received` offered as "Did you mean". where: what the argument belongs to ("source for
    cifar10"). note: what was wrong with the value, in parentheses after it. hint: a sentence on what to do.
    also: other arguments that took part, echoed after the first (`pretrained=False`). suggest: names to offer
    as "Did you mean" (`close_names`) when `allowed` is a phrase, for lists too long to print (timm's models).
    """
    subject = f"{argument} for {where}" if where else argument
    if isinstance(allowed, str):
        text = f"{subject} must be {_sentence(allowed)}"
        if suggest is not None and isinstance(received, str) and not isinstance(received, Described):
            close = close_names(received, suggest)
            if close:
                text += f" Did you mean: {', '.join(close)}?"
    else:
        options = _options(allowed)
        listed = options if len(options) <= MAX_LISTED else options[:MAX_LISTED] + [f"... {len(options):,} in all"]
        text = f"{subject} must be one of {{{', '.join(listed)}}}."
        if isinstance(received, str) and not isinstance(received, Described):
            # else the names it begins (`test` for test_accuracy), separators and case aside
            # the names it begins first (`runs --sort test` offered test_map alone, not test_accuracy)
            begun = [o for o in options if len(received) >= 2 and o != received
                     and o.lower().startswith(received.lower())]
            close = list(dict.fromkeys(begun + (difflib.get_close_matches(received, options, n=3, cutoff=0.6)
                                                or close_names(received, options, 3))))[:3]
            if close:
                text += f" Did you mean: {', '.join(close)}?"
    echo = str(received) if isinstance(received, Described) else f"{argument}={shown(received)}"
    echo += "".join(f", {key}={shown(value)}" for key, value in (also or {}).items())
    text += f" Received: {echo}"
    if note:
        text += f" ({note})"
    if hint:
        text += f". {_sentence(hint)}"
    return text


def invalid(argument: str, received: object, allowed: str | Iterable[object], *, where: str | None = None,
            note: str | None = None, hint: str | None = None, also: Mapping[str, object] | None = None,
            suggest: Iterable[str] | None = None) -> ImgclfError:
    """An `ImgclfError` with the house-style message (`invalid_message`); raise it: `raise invalid(...)`."""
    return ImgclfError(invalid_message(argument, received, allowed, where=where, note=note, hint=hint, also=also,
                                       suggest=suggest), argument)


def bad_path(argument: str, path: str | os.PathLike, allowed: str, problem: str = "not found", *,
             where: str | None = None, hint: str | None = None) -> ImgclfError:
    """A file or folder the user named that cannot be used:
    `data must be an existing folder. Received: data='x' (not found)`."""
    return invalid(argument, os.fspath(path), allowed, where=where, note=problem, hint=hint)


def renamed(error: ImgclfError, old: str, new: str) -> ImgclfError:
    """The same error naming the argument `new` where it named `old`: the Python API's keyword (`run_dir`) for the
    command line's RUN, which the readers deeper in name `run`."""
    text = str(error)
    if error.argument != old or type(error) is not ImgclfError or not text.startswith(f"{old} "):
        return error
    return ImgclfError(new + text[len(old):].replace(f"Received: {old}=", f"Received: {new}=", 1), new)


def add_hint(error: ImgclfError, hint: str) -> ImgclfError:
    """The same error with one more sentence on what to do (a caller that knows more than the raiser)."""
    return ImgclfError(f"{_sentence(str(error))} {_sentence(hint)}", error.argument)


def check_switch(argument: str, value: object) -> bool:
    """`value` as a bool when it is True or False (numpy's included), else the usual error: Python reads "no" and
    "false" as true, so `overwrite="no"` would have replaced a run."""
    if isinstance(value, bool):
        return value
    if type(value).__module__ == "numpy" and getattr(value, "dtype", None) is not None \
            and value.dtype.kind == "b" and getattr(value, "ndim", 1) == 0:
        return bool(value)
    raise invalid(argument, value, (True, False))


def whole_number(argument: str, value: object, allowed: str, low: int, high: int | None = None,
                 note: str | None = None) -> int:
    """`value` as an int when it is a whole number from `low` to `high` (numpy's included, bool not: True read as
    1), else the usual error with `allowed` (and `note`)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low \
            or (high is not None and value > high):
        raise invalid(argument, value, allowed, note=note)
    return int(value)


NAME_MAX = 255  # the longest file or folder name, in bytes, of Linux's file systems (ext4, xfs, btrfs, tmpfs)


def path_argument(argument: str, value: object, allowed: str = "a path (str or os.PathLike)") -> Path:
    """`value` as a Path when it is a str or os.PathLike, else the usual error: Path(3) raised a bare TypeError
    that named no argument."""
    if isinstance(value, str) and not value.strip():  # Path("") is the working folder, which was then used
        raise invalid(argument, value, "a path ('.' for the current folder)")
    if isinstance(value, (str, os.PathLike)):
        # "~/runs/x" as a shell reads it (fit expanded it; load did not); "~name" of no user is left as written
        # (Path.expanduser raised RuntimeError for it)
        path = Path(os.path.expanduser(os.fspath(value)))
        # a name no file system here takes: Path.exists() and is_file() raised OSError (File name too long)
        longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
        if longest > NAME_MAX:
            raise invalid(argument, value, f"{allowed[0].lower()}{allowed[1:]} whose names are at most {NAME_MAX} "
                          f"bytes each (one is {longest}: File name too long)")
        return path
    raise invalid(argument, Described(f"an object of type {type(value).__name__}"), allowed)


# The disk refused a write: the user's machine, not a bug of ours. What is wrong, and what to do about it.
_DISK_ERRORS = {
    errno.ENOSPC: ("has no space left", "Make room there, or write elsewhere"),
    errno.EROFS: ("is read-only", "Write elsewhere"),
    errno.EDQUOT: ("is over your quota", "Free some of your quota there, or write elsewhere"),
}


class ReplaceRefused(PermissionError):
    """A file written whole could not take its name (`io.atomic_write_bytes`): another user's file in a shared
    folder such as /tmp, or one made immutable (a rename is refused where writing beside it is not)."""


def disk_problem(exc: BaseException) -> str | None:
    """One line for a write the disk refused (no space, a read-only mount, a quota; also a library's error that
    quotes one, as safetensors' 'os error 28'), naming the folder, or a file that could not be replaced; None for
    any other error."""
    if isinstance(exc, ReplaceRefused):
        return (f"{exc.filename} cannot be replaced ({exc.strerror}): it belongs to another user of a shared folder, "
                "or is made immutable; the new file was not kept. Write it under another name or folder, then run "
                "the command again")
    code = exc.errno if isinstance(exc, OSError) else None
    if code is None:
        found = re.search(r"os error (\d+)", str(exc))
        code = int(found.group(1)) if found else None
    if code not in _DISK_ERRORS:
        return None
    filename = getattr(exc, "filename", None)
    where = f"the disk holding {Path(os.fspath(filename)).parent}" if filename else "the disk written to"
    problem, advice = _DISK_ERRORS[code]
    return (f"{where} {problem} ({os.strerror(code)}): the file being written was not kept, and the files written "
            f"before it are whole. {advice}, then run the command again (an interrupted training run continues "
            "with imgclf train --resume RUN)")
