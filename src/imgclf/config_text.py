"""Settings given as text, on the command line or in a YAML file: sizes (4GB), durations (10m), mappings
({conv: 1e-5} or width=64), and the words that unset a setting. `TrainConfig`'s validators read them here."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from .errors import bad_path, invalid

_SIZE_UNITS = {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
# A setting that can be unset, given as one of these words, is unset: None itself means "not given" while settings
# are layered (a flag left out never hides a recipe's value), so this is how a command lifts a recipe's time limit,
# early stopping or EMA. A folder literally named none is ./none.
NONE_WORDS = ("none", "off")


# A switch given as text (--unknown, a request's ?unknown=): on/off as documented; true/false and 1/0 too, which
# is what HTTP clients send for a boolean (Python's requests: params={"unknown": False} -> "False").
SWITCH_WORDS = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}


def parse_switch(name: str, value: str) -> bool:
    word = value.strip().lower() if isinstance(value, str) else value
    if word not in SWITCH_WORDS:
        raise invalid(name, value[:40] if isinstance(value, str) else value, "on or off (or true/false, 1/0)")
    return SWITCH_WORDS[word]


def is_none_word(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in NONE_WORDS


def parse_bytes(value: str | int | float) -> int:
    """'4GB' -> 4_000_000_000; plain numbers are bytes."""
    if isinstance(value, (int, float)):
        return int(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2).upper() not in _SIZE_UNITS:
        raise invalid("cache_budget", value, "a size such as 512MB, 4GB or 2GiB")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 image', '2,048 images', '3 entries' (many: the plural where it is not word + 's')."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def byte_text(n: float) -> str:
    """A size as people read it: 0 bytes, 850 KB, 1.5 MB, 46 MB, 12.3 GB (parse_bytes reads these back, but for
    0 bytes)."""
    if n <= 0:
        return "0 bytes"
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    if n >= 1e6:
        return f"{n / 1e6:,.0f} MB" if n >= 1e7 else f"{n / 1e6:.2g} MB"
    return f"{max(1.0, n / 1e3):.0f} KB"


# Lightning's older spellings, and the numbers YAML and Python give (`precision: 32` reads as the int 32)
_PRECISION_SPELLINGS = {"16": "16-mixed", "bf16": "bf16-mixed"}


def precision_name(value: Any) -> Any:
    """A precision as imgclf names it: 32 (YAML's int, `fit(precision=32)`) is "32", 16 and "bf16" are the mixed
    precisions Lightning means by them; anything else is returned as given, for the caller to check (the int 32
    was refused, its message listing 32 among the choices)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _PRECISION_SPELLINGS.get(value, value) if isinstance(value, str) else value


def parse_seconds(value: str | int | float | None, name: str = "time_limit",
                  examples: str = "90s, 10m, 1.5h or 1h30m") -> float | None:
    """'10m' -> 600.0, '90s' -> 90.0, '1.5h' -> 5400.0, '1h30m' -> 5400.0, '7d' -> 604800.0; plain numbers are
    seconds. Units are read in either case ('10M' is ten minutes: no setting here lasts months). name, examples:
    the setting's name and the durations its error message gives."""
    if isinstance(value, bool) or isinstance(value, (int, float)) and not math.isfinite(value):
        # tune read nan and True as a search of 1 s a trial, inf as one that failed every trial
        raise invalid(name, value, f"a duration such as {examples}")
    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    text = str(value).strip().lower()
    if re.fullmatch(_NUMBER, text):
        return float(text)
    parts = re.findall(rf"({_NUMBER})\s*([dhms])\s*", text)
    units = [unit for _, unit in parts]
    # each unit once, largest first ('30m1h' and '1m1m' are typing slips, not durations); nothing else in the text
    if not parts or re.fullmatch(rf"(?:{_NUMBER}\s*[dhms]\s*)+", text) is None or units != sorted(
            set(units), key="dhms".index):
        raise invalid(name, value, f"a duration such as {examples}")
    return sum(float(number) * _TIME_UNITS[unit] for number, unit in parts)


# what a mapping setting looks like on the command line, for its error message
MAPPING_EXAMPLES = {"l2": "conv=1e-5,dense=1e-4", "model_args": "width=64", "per_class_max": "train=2999,test=599"}


def parse_mapping(name: str, text: str) -> dict[str, Any]:
    """'{"a": 1}' (JSON), '{a: 1, b: x}' (a YAML flow mapping, as a config file writes it) or 'a=1,b=x' -> dict,
    numbers and booleans converted (how the CLI passes mappings)."""
    text = text.strip()
    if text.startswith("{"):
        return _braced_mapping(name, text)
    example = MAPPING_EXAMPLES.get(name, "key=value")
    out: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise invalid(name, text, f"key=value pairs such as {example}", note=f"item {item!r} is not key=value")
        if key.strip() in out:  # the last one won without a word, where a config file's twice is refused
            raise invalid(name, text, f"each key once, such as {example}", note=f"{key.strip()!r} is given twice")
        out[key.strip()] = _scalar(raw)
    return out


def _braced_mapping(name: str, text: str) -> dict[str, Any]:
    """JSON, else a YAML flow mapping. PyYAML (YAML 1.1) reads an exponent without a decimal point (1e-5) as
    text: such values are read as the numbers JSON and YAML 1.2 make of them; other text stays text."""
    import yaml

    try:
        return json.loads(text)  # text starting with "{" is an object or no JSON at all
    except json.JSONDecodeError as exc:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as not_yaml:
            example = MAPPING_EXAMPLES.get(name, "key=value")
            raise invalid(name, text, f"a mapping such as {{{example.replace('=', ': ').replace(',', ', ')}}} "
                          f"or {example}", note=getattr(not_yaml, "problem", None) or exc.msg) from None
    glued = next((k for k, v in value.items() if v is None and isinstance(k, str) and ":" in k), None)
    if glued is not None:  # {conv:1e-5}: YAML reads "conv:1e-5" as a key without a value
        example = MAPPING_EXAMPLES.get(name, "key=value")
        raise invalid(name, text, f"a mapping such as {{{example.replace('=', ': ').replace(',', ', ')}}} or {example}",
                      note=f"{glued!r} is read as one key without a value: YAML needs a space after each colon")
    return {k: float(v) if isinstance(v, str) and _EXPONENT.fullmatch(v) else v for k, v in value.items()}


_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _scalar(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping of settings a YAML file (--config, a recipe) holds; else a one-line error naming `config_file`
    (the Python API's keyword; the command line adds its flag, --config)."""
    import yaml

    from .io import read_yaml

    try:
        data = read_yaml(path) or {}
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        problem = getattr(exc, "problem", None)
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        if problem and mark is not None:  # YAML's own first line ("while parsing a flow sequence") says not where
            first = f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
        raise bad_path("config_file", path, "a readable YAML file", first[:200]) from None
    if not isinstance(data, dict):
        raise bad_path("config_file", path, "a YAML file holding a mapping of settings",
                       f"holds a {type(data).__name__}")
    return data
