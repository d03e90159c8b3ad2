"""pydantic's validation errors of the settings, as the one-line-per-setting messages of `imgclf.errors`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

from .errors import Described, ImgclfError, invalid_message


class ConfigError(ImgclfError):
    """Settings that do not validate. pydantic reports every bad setting at once, so the text is one line per
    setting, each built by `imgclf.errors` (`invalid_message`, or the validator's own `invalid` error);
    `arguments` holds the setting each line starts with (None where a line names none)."""

    def __init__(self, found: list[tuple[str | None, str]]):
        super().__init__("\n".join(line for _, line in found), found[0][0] if len(found) == 1 else None)
        self.found = list(found)  # (setting, line): kept whole, since a line's own text may hold a line break

    def __reduce__(self):  # pickled with what __init__ takes (a process pool re-raises it)
        return type(self), (self.found,)

    @property
    def arguments(self) -> list[str | None]:
        return [argument for argument, _ in self.found]

    @property
    def lines(self) -> list[str]:
        return [line for _, line in self.found]


def _literal_options(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The values a Literal setting allows (optimizer -> adam, adamw, sgd); () for anything else."""
    field = model.model_fields.get(str(loc[0])) if len(loc) == 1 else None
    return get_args(field.annotation) if field is not None and get_origin(field.annotation) is Literal else ()


_BOUND_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _both_bounds(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """'greater than 0 and less than 1', 'from 1 to 4096': a setting's whole range where it has a bound on each
    side; None otherwise (pydantic's own phrase then says the one bound)."""
    field = model.model_fields.get(str(loc[0])) if len(loc) == 1 else None
    if field is None:
        return None
    low = high = None
    for bound in field.metadata:
        for attr, words in (("gt", "greater than"), ("ge", "from")):
            if getattr(bound, attr, None) is not None:
                low = (words, getattr(bound, attr))
        for attr, words in (("lt", "less than"), ("le", "to")):
            if getattr(bound, attr, None) is not None:
                high = (words, getattr(bound, attr))
    if low is None or high is None:
        return None
    lo, hi = _number(low[1]), _number(high[1])
    if low[0] == "from" and high[0] == "to":
        return f"from {lo} to {hi}"
    lower = f"at least {lo}" if low[0] == "from" else f"greater than {lo}"
    upper = f"at most {hi}" if high[0] == "to" else f"less than {hi}"
    return f"{lower} and {upper}"


def _number(value: float) -> str:
    """10,000,000 rather than 1e+07; 0.5 as 0.5."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def format_validation_error(exc: ValidationError, values: dict[str, Any], model: type[BaseModel],
                            nullable: frozenset[str] = frozenset(),
                            sources: Mapping[str, str] | None = None) -> list[tuple[str | None, str]]:
    """One `invalid_message` line per pydantic error of `model`: the setting, what is allowed, the value received,
    and a "Did you mean" for a misspelt choice or setting name; each with the setting it names (None: no setting).
    nullable: the settings that can be unset (their message says so). sources: where a setting came from when
    the user did not type it (a --config file's name), said after the setting's name; such a line names no
    setting, so the command line adds no flag the user never typed."""
    lines: list[tuple[str | None, str]] = []
    for err in exc.errors():
        start = len(lines)
        name = ".".join(str(p) for p in err["loc"]) or "config"
        received = err.get("input", values.get(name))
        msg = err["msg"]
        original = (err.get("ctx") or {}).get("error")
        if isinstance(original, ConfigError):  # a model's own __init__ that formatted its errors already
            lines.extend(original.found)
            continue
        if isinstance(original, ImgclfError):
            lines.append((original.argument, str(original)))
        elif err["type"] == "extra_forbidden":
            lines.append((None, invalid_message("setting", name, model.model_fields, also={name: received})))
        elif err["type"] == "missing":
            lines.append((name, invalid_message(name, Described(f"no {name} setting"), "given")))
        elif err["type"] == "literal_error" and _literal_options(model, err["loc"]):
            lines.append((name, invalid_message(name, received, _literal_options(model, err["loc"]))))
        elif err["type"] in _BOUND_ERRORS and (both := _both_bounds(model, err["loc"])):
            # one range, not its two halves one error at a time ("less than 1", then "greater than 0")
            lines.append((name, invalid_message(name, received, both)))
        elif msg.startswith("Input should be "):  # pydantic's own phrase names what is allowed
            allowed, _, detail = msg.removeprefix("Input should be ").partition(", ")
            if not detail.startswith(("unable", "got")):  # "a valid integer, got a number with a fractional part"
                allowed, detail = msg.removeprefix("Input should be "), ""
            if name in nullable:
                allowed += ", or none (unset)"
            lines.append((name, invalid_message(name, received, allowed, note=detail or None)))
        else:
            msg = msg.removeprefix("Value error, ")
            lines.append((None, msg) if name == "config" else
                         (name, invalid_message(name, received, "valid", note=msg)))
        # a check across settings (a model validator) has no location: the setting its error names
        top = str(err["loc"][0]) if err["loc"] else (lines[-1][0] or "").split(".")[0] if len(lines) > start else ""
        if sources and top in sources and len(lines) > start:
            lines[-1] = _from_source(*lines[-1], "setting" if err["type"] == "extra_forbidden" else name, sources[top])
    return lines


def _from_source(argument: str | None, line: str, subject: str, source: str) -> tuple[None, str]:
    """`epochs must be ...` -> `epochs in c.yaml must be ...`."""
    subject = argument or subject
    if line.startswith(subject):
        line = f"{subject} in {source}{line[len(subject):]}"
    return None, line
