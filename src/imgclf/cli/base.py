"""The command groups and what every command shares: building only the command that runs, the console,
the small parsers of flag values."""

from __future__ import annotations

import inspect
import os
import typing
from pathlib import Path
from typing import Any

import typer

from ..cli_errors import CommandGroup
from ..errors import invalid
from ..io import console_text

_HELP_FLAGS = {"help_option_names": ["-h", "--help"]}
_GENERATED: dict[Any, Any] = {}  # command function -> the function listing its generated options
_DEFERRED: dict[Any, Any] = {}  # command function -> its Typer CommandInfo, built when the command runs


class _Commands(CommandGroup):
    """Builds only the command that runs. Typer builds a command's options with pydantic (its own type checks),
    train's come from TrainConfig and the study's from numpy code: `imgclf models` and `--version` should wait
    for none of them. Until it runs, a command holds its help line only, enough for `imgclf --help`'s list."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _flags_without_a_type(self, ctx)  # the group's own (--version, --help)
        super().format_help(ctx, formatter)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, cmd, rest = super().resolve_command(ctx, args)
        func = getattr(getattr(cmd, "callback", None), "__wrapped__", None)
        if func in _DEFERRED and func.__dict__.get("__signature__") is _PENDING:
            if func in _GENERATED:
                func.__signature__ = inspect.Signature(_GENERATED[func]())
            else:
                del func.__signature__  # the function's own parameters again
            cmd = typer.main.get_command_from_info(_DEFERRED[func], pretty_exceptions_short=True,
                                                   rich_markup_mode=getattr(cmd, "rich_markup_mode", None))
            self.commands[name] = cmd
        if cmd is not None:
            _help_for_width(cmd)
            _refuse_blank_paths(cmd)
            _flags_without_a_type(cmd, ctx)
        return name, cmd, rest


def _flags_without_a_type(cmd: Any, ctx: Any) -> None:
    """A flag takes no value: its help read `--json <bool>`, and `--json true` then failed on the stray word."""
    help_option = cmd.get_help_option(ctx) if hasattr(cmd, "get_help_option") else None
    for param in [*getattr(cmd, "params", ()), *([help_option] if help_option is not None else [])]:
        if getattr(param, "is_flag", False) and not getattr(param, "count", False) and param.metavar is None:
            param.metavar = ""


def _refuse_blank_paths(cmd: Any) -> None:
    """Every path a command takes refuses '' and spaces: Typer made Path('') of it, which is '.', so `imgclf
    audit DATA --out ''` (a shell variable left empty) wrote into the current folder and `--plots ''` filled it
    with figures. A user means this folder by '.', which is still taken."""
    for param in getattr(cmd, "params", ()):
        if _takes_paths(param) and not getattr(param.process_value, "refuses_blank", False):
            param.process_value = _blank_refused(param, param.process_value)


def _takes_paths(param: Any) -> bool:
    descriptor = getattr(param, "type_descriptor", None)  # Typer >= 0.2x: the annotation, Optional unwrapped
    if descriptor is not None:
        return descriptor.annotation is Path or Path in typing.get_args(descriptor.annotation)
    return type(getattr(param, "type", None)).__name__ == "Path"  # click's path type, in Typer built on click


def _blank_refused(param: Any, process_value: Any) -> Any:
    def checked(ctx: Any, value: Any) -> Any:
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, str) and not item.strip():
                raise invalid(param.name, item, "a path ('.' for the current folder)")
        return process_value(ctx, value)

    checked.refuses_blank = True
    return checked


RICH_HELP_COLUMNS = 120  # below it rich's option tables cut names: 22 cells of train's help at 80, 3 at 100


def _help_for_width(cmd: Any) -> None:
    """click's help, which wraps every cell, where rich's tables would cut flags and defaults with "…": below
    RICH_HELP_COLUMNS as rich measures the output (a terminal's width, COLUMNS, else 80 for a pipe or a file).
    The command's own help texts are kept, so a later call in a wide terminal gets rich's again."""
    from rich.console import Console

    if not hasattr(cmd, "_imgclf_rich_help"):
        cmd._imgclf_rich_help = (cmd.rich_markup_mode, {p: p.help for p in getattr(cmd, "params", [])})
    mode, helps = cmd._imgclf_rich_help
    narrow = Console().width < RICH_HELP_COLUMNS
    cmd.rich_markup_mode = None if narrow else mode
    for param, text in helps.items():
        # rich escapes a literal bracket; click prints the backslash
        param.help = text.replace("\\[", "[") if narrow and text else text


_PENDING = inspect.Signature([])


def generated_command(group: typer.Typer, name: str, func: Any, options: Any) -> None:
    _GENERATED[func] = options
    group.command(name, context_settings=_HELP_FLAGS)(func)


def defer_options(*groups: typer.Typer) -> None:
    for group in groups:
        for info in group.registered_commands:
            _DEFERRED[info.callback] = info
            info.callback.__signature__ = _PENDING


# -h on the top group: click's contexts inherit help_option_names, so every command and group takes it
app = typer.Typer(cls=_Commands, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings=_HELP_FLAGS,
                  help="Train, evaluate, explain and serve image classifiers from a folder of labelled images.")
data_app = typer.Typer(cls=_Commands, no_args_is_help=True, help="Built-in data sets.")
app.add_typer(data_app, name="data")
study_app = typer.Typer(cls=_Commands, no_args_is_help=True,
                        help="Experiment grids whose cells are ordinary run directories.")
app.add_typer(study_app, name="study")
cache_app = typer.Typer(cls=_Commands, no_args_is_help=True,
                        help="The cache of decoded images and features: what it holds, and clearing it.")
app.add_typer(cache_app, name="cache")


def _print_version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"imgclf {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print imgclf's version and exit.")) -> None:
    """Train, evaluate, explain and serve image classifiers from a folder of labelled images."""


REDIRECTED_WIDTH = 1000

shown = console_text  # a user-chosen name (file, class) for the console: neither Rich markup nor control sequences


def new_console():
    from rich.console import Console

    # soft_wrap: a redirected summary keeps its lines whole; no emoji: a path's ":train:" is a path, not a train
    console = Console(stderr=False, highlight=False, soft_wrap=True, emoji=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        # a pipe or file has no width to fit: Rich's default of 80 columns would fold each long run or class
        # name over several rows, and a table read by grep or less needs one row per line
        console.width = REDIRECTED_WIDTH
    return console


PRECISION_HELP = ("What the network runs at: auto (bf16 autocast on a CPU with native bf16, AVX-512 BF16 or AMX; "
                  "fp32 elsewhere), 32, bf16-mixed or 16-mixed.")
UNKNOWN_HELP = ("on: an image scoring below the run's threshold (model.json 'unknown', set on the validation split) "
                "is labelled unknown, with its score and closest class; off: always the most probable class.")


def on_off(name: str, value: str) -> bool:
    from ..config_text import parse_switch

    return parse_switch(name, value)


def split_list(name: str, text: str, kind: type) -> list[Any]:
    """`1,3,7` as a list of `kind`; an empty item (`1,,3`, a trailing comma) is refused: dropped without a word,
    the study ran other ratios than the ones typed."""
    example = {float: "1,3,7,15", int: "0,1,2"}.get(kind, "none,reg,reg+bn" if name == "configs" else "a,b")
    parts = [p.strip() for p in text.split(",")]
    if not all(parts):
        raise invalid(name, text, f"a comma-separated list of {kind.__name__} values such as {example}",
                      note="an item is empty")
    try:
        return [kind(p) for p in parts]
    except ValueError:
        raise invalid(name, text, f"a comma-separated list of {kind.__name__} values such as {example}") from None


def multilabel_line(m: Any) -> str:
    ml = m.multilabel
    ap = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731  (None: no label had a positive)
    return (f"mAP {ap(ml.map_macro)} (micro {ap(ml.map_micro)})  macro F1 {m.macro.f1:.4f}  subset accuracy "
            f"{ml.subset_accuracy:.4f}  Hamming loss {ml.hamming_loss:.4f}  "
            "(labels at their thresholds in model.json)")  # tuned, or 0.5 where training warned they stay untuned
