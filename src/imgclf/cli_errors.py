"""How the `imgclf` command reports failures: the one place where a user's error (ImgclfError, or a flag Typer
could not parse) becomes one line and exit status 2 (an interrupted run: the signal's status, 130 or 143), and an
error of ours one line plus the path of a log that holds its traceback (exit status 1). Every command and
sub-command runs through `CommandGroup`."""

from __future__ import annotations

import contextlib
import os
import sys
import typing
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from .errors import ImgclfError, Interrupted, disk_problem, invalid_message
from .io import terminal_safe

try:  # Typer >= 0.2x carries its own copy of click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # older Typer runs on click itself
    import click.exceptions as _click_exceptions

    UsageError = _click_exceptions.UsageError
    NoArgsIsHelpError = getattr(_click_exceptions, "NoArgsIsHelpError", ())  # click < 8.2 has none


class CommandGroup(TyperGroup):
    """Every command runs through here: the one place a user's error (ImgclfError) becomes one line and exit
    status 2, and an error of ours one line plus the path of a log holding its traceback (exit status 1)."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        try:  # `imgclf --bogus`: the top level's own options, parsed before invoke
            return super().parse_args(ctx, args)
        except UsageError as exc:
            if isinstance(exc, NoArgsIsHelpError):
                raise
            _usage_error(exc)

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta[_COMMAND_KEY] = name  # the innermost group's invoke reads it when the command fails
        return name, command, rest

    def invoke(self, ctx: typer.Context) -> Any:
        from .notices import silence_pillow_warnings
        from .train.interrupts import Terminated, sigterm_interrupts

        # SIGTERM (a timeout, kill, a scheduler) as Ctrl-C: evaluate, report, export and audit ended silently with
        # status 143, before their cleanup ran. serve keeps its server's own graceful stop.
        named = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", None) or [""]
        silence_pillow_warnings()  # the command's process is imgclf's own
        try:
            with sigterm_interrupts() if named[0] != "serve" else contextlib.nullcontext():
                return super().invoke(ctx)
        except Interrupted as exc:  # what was kept and how to go on; the signal's status
            from .hardware import launch_rank

            if launch_rank() == 0:  # every data-parallel process stops together: the first one says so, once
                typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:  # a command with no word of its own for it (audit, predict): one line
            from .hardware import launch_rank

            said, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("Ctrl-C", 130)
            if launch_rank() == 0:
                typer.secho(f"error: imgclf {_command_words(ctx)} interrupted ({said})", fg=typer.colors.RED,
                            err=True)
            raise typer.Exit(code) from None
        except ImgclfError as exc:
            # by name: a subclass may build the command it resolves (cli.base._Commands)
            command = self.commands.get(ctx.meta.get(_COMMAND_KEY, ""))
            found = getattr(exc, "found", None) or [(exc.argument, str(exc))]  # ConfigError: one per setting
            message = "\n".join(with_flag(line, argument, command) for argument, line in found)
            typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        except UsageError as exc:  # a bad flag or value, found while parsing: one line too, not Typer's box
            if isinstance(exc, NoArgsIsHelpError):
                raise
            _usage_error(exc)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except BrokenPipeError:
            _quiet_after_closed_pipe()
        except Exception as exc:
            disk = disk_problem(exc)
            if disk is not None:
                typer.secho(f"error: {terminal_safe(disk)}", fg=typer.colors.RED, err=True)
                raise typer.Exit(1) from None
            extra = missing_extra(exc)
            if extra is not None:
                typer.secho(f"error: {extra}", fg=typer.colors.RED, err=True)
                raise typer.Exit(2) from None
            log = _log_internal_error(exc)
            first = next((line for line in str(exc).splitlines() if line.strip()), "")[:300]
            where = f"traceback in {log}" if log else "its traceback could not be saved"
            typer.secho(f"internal error: {type(exc).__name__}: {terminal_safe(first)} ({where}; please report it)",
                        fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None


_COMMAND_KEY = "imgclf.command"


def _command_words(ctx: typer.Context) -> str:
    """The failing command as typed after `imgclf`: 'study imbalance' from the study group's context (the
    command's own name alone said "imgclf imbalance interrupted")."""
    groups = []
    while ctx.parent is not None:
        groups.append(ctx.info_name)
        ctx = ctx.parent
    command = ctx.meta.get(_COMMAND_KEY)
    return " ".join([*reversed(groups), *([command] if command else [])]) or ctx.info_name

# pyproject.toml's optional extras, by the top-level module a command imports from each: a plain `pip install imgclf`
# that then ran `imgclf serve` met "internal error: ModuleNotFoundError ... please report it"
EXTRA_OF_MODULE = {"fastapi": "serve", "uvicorn": "serve", "starlette": "serve", "multipart": "serve",
                   "python_multipart": "serve", "onnx": "export", "onnxruntime": "export", "onnxscript": "export",
                   "pytorch_grad_cam": "explain", "tensorboard": "track", "mlflow": "track", "optuna": "tune",
                   "optuna_integration": "tune"}


def missing_extra(exc: BaseException) -> str | None:
    """The one-line error for a package of an optional extra that is not installed, naming the extra to install;
    None for any other exception."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return (f"this command needs the {top} package, part of imgclf's {extra} extra, which is not installed: "
            f"pip install 'imgclf[{extra}]'")


# the Python API's keywords whose command-line option is named otherwise
API_OPTION_NAMES = {"config_file": "config"}


def with_flag(message: str, argument: str | None, command: Any) -> str:
    """`img_size must be ...` -> `img_size (--img-size) must be ...` when `command` has that option: errors name
    the setting (the Python API's keyword, the config file's key), the command line's user typed its flag. A
    nested setting (`model_args.stem`) names the option it belongs to; a flag spelled like its setting
    (`--epochs`) is not repeated."""
    if not argument or command is None or not message.startswith(argument):
        return message
    setting = API_OPTION_NAMES.get(argument.split(".")[0], argument.split(".")[0])
    for param in getattr(command, "params", []):
        flags = [o for o in getattr(param, "opts", []) if o.startswith("--")]
        if getattr(param, "param_type_name", "") == "option" and param.name == setting and flags:
            flag = flags[0]
            if flag == f"--{argument}":
                return message
            return f"{argument} ({flag}){message[len(argument):]}"
    return message


def _quiet_after_closed_pipe() -> typing.NoReturn:
    """`imgclf recipes NAME | head -1`: the reader left, which is not an error of ours. Later writes (the
    interpreter's own flush at exit) go to /dev/null, and the status is a shell's for a process killed by SIGPIPE
    (128 + 13), as `cat` or `git log` would give."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(141) from None


def _usage_error(exc: UsageError) -> typing.NoReturn:
    typer.secho(f"error: {_usage_message(exc)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(exc.exit_code) from None


_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
           "less_than": ("<", "lt")}
_KINDS = {"int_parsing": "an integer", "int_from_float": "an integer", "float_parsing": "a number",
          "bool_parsing": "true or false"}


def _usage_message(exc: UsageError) -> str:
    """A parsing error as one house-style line: the flag, what it must be, and the text the user gave.

    Typer checks option types and bounds with pydantic; the ValidationError it raises from holds the input."""
    from pydantic import ValidationError  # here: `imgclf models` and `--version` should not load pydantic

    cause = exc.__cause__
    param = getattr(exc, "param", None)
    if param is not None and isinstance(cause, ValidationError) and cause.errors():
        first = cause.errors()[0]
        if isinstance((first.get("ctx") or {}).get("error"), ImgclfError):  # the option's parser said it already
            return str(first["ctx"]["error"])
        flag = max(getattr(param, "opts", None) or [param.name or "value"], key=len)
        if first["type"] in _BOUNDS:
            sign, key = _BOUNDS[first["type"]]
            allowed = f"{sign} {first['ctx'][key]}"
        else:
            allowed = _KINDS.get(first["type"]) or first["msg"].removeprefix("Input should be ").split(", unable")[0]
        return invalid_message(flag, first["input"], allowed)
    text = " ".join(exc.format_message().split())
    text = text if text.endswith((".", "?", "!")) else text + "."
    option = _option_naming_extra(text, exc.ctx)
    if option:
        text += f" Did you mean {option}?"
    elif (flag := _flag_given_a_word(text, exc.ctx)) is not None:
        text += f" A flag such as {flag} takes no value: give it alone, or leave it out."
    return f"{text} See: {exc.ctx.command_path} --help" if exc.ctx is not None else text


def _option_naming_extra(text: str, ctx: Any) -> str | None:
    """`imgclf export RUN onnx`: the one option whose help names the stray word as a value ('--format onnx'),
    else None."""
    import re

    extra = re.match(r"Got unexpected extra argument(?:s|\(s\))? \(([^\s)]+)", text)
    if extra is None or ctx is None:
        return None
    word = re.escape(extra.group(1))
    # a value the help lists ("onnx, or pt2 (...)", "one of: a, b", "torch, or onnx: onnxruntime ..."), not the
    # word anywhere in its prose
    listed = re.compile(rf"(^|[:,]\s*|\bor\s+){word}(?=\s*(,|$|\bor\b|\(|:))")
    flags = [max(p.opts, key=len) for p in getattr(ctx.command, "params", [])
             if getattr(p, "param_type_name", "") == "option" and not getattr(p, "is_flag", False) and p.help
             and listed.search(p.help)]
    return f"{flags[0]} {extra.group(1)}" if len(flags) == 1 else None


_SWITCH_WORDS = ("true", "false", "yes", "no", "on", "off", "1", "0")


def _flag_given_a_word(text: str, ctx: Any) -> str | None:
    """`imgclf runs --json true`: the stray word a switch's value, which a flag does not take. The flag given (else
    the command's first), or None (another stray word, or a command without flags)."""
    import re

    extra = re.match(r"Got unexpected extra argument(?:s|\(s\))? \(([^\s)]+)", text)
    if extra is None or ctx is None or extra.group(1).lower() not in _SWITCH_WORDS:
        return None
    flags = [p for p in getattr(ctx.command, "params", [])
             if getattr(p, "is_flag", False) and not getattr(p, "count", False) and p.opts]
    given = [p for p in flags if ctx.params.get(p.name) is True and p.default is not True]  # the one typed, likely
    return max((given or flags)[0].opts, key=len) if flags else None


def _log_internal_error(exc: BaseException) -> Path | None:
    """The traceback of an error that is ours, not the user's, kept in a log file whose path is printed: under
    $IMGCLF_CACHE/logs, else the temp folder; None when neither can be written (the one line still comes)."""
    import tempfile
    import time
    import traceback

    text = "imgclf " + " ".join(sys.argv[1:]) + "\n\n" + "".join(traceback.format_exception(exc))
    name = f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    from .data.cache import default_cache_dir

    cache = default_cache_dir()
    for folder in (cache / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8")
            return folder / name
        except OSError:
            continue
    return None
