"""The HTML pages imgclf writes (report.html, compare.html, study.html): one Jinja environment and one way to
embed a figure, so every page escapes, formats numbers and inlines images alike.

Pages are self-contained: images are base64 data URIs and the CSS is inline, so a page can be mailed,
archived or opened offline.
"""

from __future__ import annotations

import base64
import math
import os
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any

from .stats import MeanStd

# Packages whose templates/ folder the environment loads from; template names are unique across them.
TEMPLATE_PACKAGES = ("imgclf.evaluation", "imgclf.study", "imgclf.audit", "imgclf.search")


@lru_cache(maxsize=1)
def environment():
    """The Jinja environment of every page: HTML autoescaped (class names and paths are user text), undefined
    names an error rather than an empty cell, and the number filters pct, num, seconds and mean_std."""
    from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=ChoiceLoader([PackageLoader(p, "templates") for p in TEMPLATE_PACKAGES]),
                      autoescape=select_autoescape(["html"]), undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["pct"] = pct
    env.filters["num"] = num
    env.filters["seconds"] = seconds
    env.filters["mean_std"] = mean_std_text
    env.filters["breakable"] = breakable
    return env


def breakable(text: Any) -> Any:
    """`text` escaped, with a line-break opportunity after each / _ - , and before each dot: a file name in a
    narrow caption wraps at its parts ('ctr08_' 'rgba.png'), not mid-word ('ctr08_rgba.p' 'ng'); so does a
    comma-separated list (an augment setting)."""
    import re

    from markupsafe import Markup, escape

    return Markup(re.sub(r"([/_\-,])|(?=\.)", lambda m: (m.group(1) or "") + "<wbr>", str(escape(text))))


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


# ------------------------------------------------------------------------------------------- number filters
def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def pct(x: Any, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f} %" if finite(x) else "—"


def num(x: Any, digits: int = 3) -> str:
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    return f"{x:.{digits}f}" if finite(x) else "—"


def seconds(x: Any) -> str:
    if not finite(x):
        return "—"
    if x < 90:
        return f"{x:.1f} s"
    if x < 5400:
        return f"{x / 60:.1f} min"
    return f"{x / 3600:.2f} h"


def mean_std_text(stat: MeanStd | dict[str, Any] | None, digits: int = 3) -> str:
    """A MeanStd, or its dict as stored in study.json, as "0.912 ± 0.012"."""
    if isinstance(stat, dict):
        stat = MeanStd(stat.get("mean"), stat.get("std"), int(stat.get("n") or 0))
    return stat.text(digits) if stat is not None else "—"


# ------------------------------------------------------------------------------------------- images
def embed_png(path: str | os.PathLike | None) -> dict[str, Any]:
    """{"src": data URI, "width", "height"} of a PNG (size from its IHDR header, so the page reserves the space);
    all None without a path (a figure that could not be drawn)."""
    if not path:
        return {"src": None, "width": None, "height": None}
    data = Path(path).read_bytes()
    width, height = struct.unpack(">II", data[16:24]) if data[:8] == b"\x89PNG\r\n\x1a\n" else (None, None)
    return {"src": "data:image/png;base64," + base64.b64encode(data).decode("ascii"), "width": width, "height": height}
