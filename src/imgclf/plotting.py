"""The one plotting stack for every figure imgclf writes (evaluation, inspect, studies).

Figures are `matplotlib.figure.Figure` objects, never pyplot: no global state, no GUI backend, safe in threads
and notebooks alike. Each is drawn inside `style()` and written by `save_figure`: rendered to memory, then
temp file + rename, so a crash never leaves half a PNG behind.

Class names, folder names and configuration labels are user text: `style()` turns matplotlib's mathtext off, so
a class called "cost $^$ x_1" is drawn as written instead of failing to parse (or silently turning into maths).
Log axes therefore need `plain_log_scale`, whose tick labels are plain text too.

Text must stay readable where the figure is shown: a page that scales a 1,300-pixel figure into a 450-pixel column
turns 9-point text into 6 pixels. Figures for the report are therefore drawn at the width the page gives them
(FULL_WIDTH_PX, HALF_WIDTH_PX) so that they are shown at their natural size, with no text under MIN_FONT_PT; and
every PNG records the pixel height of its smallest text (TEXT_PX_KEY), so a page test can check what a reader
sees: that height times the displayed width over the natural width.
"""

from __future__ import annotations

import bisect
import io
import math
import os
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from .io import atomic_write_bytes

TRAIN_COLOR = "#2563eb"
VAL_COLOR = "#ea580c"
BEST_COLOR = "#16a34a"
ONSET_COLOR = "#dc2626"
WRONG_COLOR = "#dc2626"
RIGHT_COLOR = "#166534"
GREY = "#6b7280"
MAX_PIXELS = 3200  # longest side of any figure, so a 100-class figure stays a sensible file ...
# ... except a tall one (a row per class, read by scrolling): capped at 3200 px, a 300-class per-class chart was
# drawn 268 px wide with 7 px text, and a 1000-class one 80 px wide
MAX_TALL_PIXELS = 20000
DPI = 110
# The report's slots at a 1280-pixel window with a 15-pixel scrollbar: the page's content column (909 px) and half
# of it beside a neighbour (443 px). A figure up to this wide is shown at its natural size there and wider.
FULL_WIDTH_PX = 900
HALF_WIDTH_PX = 440
# the pages' figure slots: a figure up to `half` pixels wide fits beside another, up to `full` across the page;
# the figure macro of evaluation/templates/figures.html reads them
FIGURE_SLOTS = {"half": HALF_WIDTH_PX + 12, "full": FULL_WIDTH_PX + 60}
MIN_FONT_PT = 7.5  # 11.5 px at DPI: at least 10 px even where a narrower window shrinks the figure to 87 %
TEXT_PX_KEY = "imgclf:min-text-px"  # PNG text chunk: pixel height of the smallest text in the image
WHOLE_SPLIT_KEY = "imgclf:whole-split"  # PNG text chunk of a sample grid that shows every image of its split

STYLE: dict[str, Any] = {
    "text.parse_math": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.6,
    "axes.titleweight": "bold",
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "font.size": 9.5,
    "legend.frameon": False,
    "figure.facecolor": "white",
}


# Fonts tried, in order, for glyphs DejaVu Sans lacks (class and file names in CJK, Arabic, Hebrew, ...):
# matplotlib (>= 3.6) falls back glyph by glyph through a list of families. Only installed ones are listed, so a
# machine without them draws boxes for those glyphs but never fails (.ci/run installs fonts-wqy-microhei).
FALLBACK_FONTS = ("WenQuanYi Micro Hei", "Noto Sans CJK JP", "Noto Sans CJK SC", "Droid Sans Fallback",
                  "Noto Sans", "Noto Sans Arabic", "Noto Sans Hebrew",
                  # Debian's fonts-noto-core: the scripts of South and South-East Asia, and symbols
                  *(f"Noto Sans {script}" for script in (
                      "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Tamil", "Telugu", "Kannada", "Malayalam",
                      "Sinhala", "Thai", "Lao", "Khmer", "Myanmar", "Armenian", "Georgian", "Ethiopic", "Symbols",
                      "Symbols2")))
# what a missing glyph makes matplotlib say, once per glyph and figure: `undrawn_names` says it once per run
_MISSING_GLYPH = r"Glyph \d+ .* missing from"


@lru_cache(maxsize=1)
def font_families() -> list[str]:
    import logging

    from matplotlib import font_manager

    # A fallback font without a bold face makes matplotlib log "findfont: Failed to find font weight bold" for
    # every bold title, on the user's terminal; it then uses the regular face, which is what we want.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    manager = font_manager.fontManager
    if not any(f.name in FALLBACK_FONTS for f in manager.ttflist):
        # matplotlib lists the fonts of its cache, built once: one installed since (fonts-wqy-microhei after the
        # first plot) was not seen, and CJK class names drew as boxes with a warning for every glyph
        cached = {f.fname for f in manager.ttflist}
        for file in font_manager.findSystemFonts():
            if file not in cached:
                try:
                    manager.addfont(file)
                except Exception:  # a font file matplotlib cannot read: as if not there
                    pass
    present = {f.name for f in manager.ttflist}
    return ["DejaVu Sans", *(name for name in FALLBACK_FONTS if name in present)]


@lru_cache(maxsize=1)
def _drawable() -> frozenset[int]:
    """The code points some font of `font_families()` holds a glyph for."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    points: set[int] = set()
    for family in font_families():
        try:
            points.update(FT2Font(font_manager.findfont(font_manager.FontProperties(family=family),
                                                        fallback_to_default=False)).get_charmap())
        except Exception:  # a font file matplotlib cannot read: it draws nothing either
            pass
    return frozenset(points)


def undrawn_names(names: Sequence[str]) -> list[str]:
    """The names holding a character that no installed font of the figures draws (matplotlib draws a box for
    each); invisible format characters (the tags of a flag emoji) are not counted, nor control characters and the
    stand-ins of undecodable bytes, which no font draws and no font install helps (a tab in a file name)."""
    import unicodedata

    drawable = _drawable()
    return [name for name in names
            if any(ord(c) not in drawable and unicodedata.category(c) not in ("Cf", "Cc", "Cs") for c in name)]


def undrawn_names_note(names: Sequence[str], redraw: str = "imgclf report RUN",
                       what: str = "class name") -> str | None:
    """One sentence for the terminal and the report, or None when every name can be drawn; `redraw`: the
    command that draws the figures again; `what`: what the names are."""
    undrawn = undrawn_names(names)
    if not undrawn:
        return None
    shown = ", ".join(repr(n) for n in undrawn[:5]) + (f" and {len(undrawn) - 5} more" if len(undrawn) > 5 else "")
    one = len(undrawn) == 1
    return (f"{len(undrawn)} {what}{'' if one else 's'} ({shown}) hold{'s' if one else ''} characters no "
            "installed font draws: the figures show boxes in their place. Install a font for their script (Debian "
            f"and Ubuntu: fonts-noto-core; CJK: fonts-wqy-microhei), then draw them again ({redraw})")


def warn_of_undrawn_names(names: Sequence[str], redraw: str, what: str = "class name") -> None:
    """The note, once, on the terminal (where a command draws figures with class names but writes no page)."""
    note = undrawn_names_note(names, redraw, what)
    if note:
        from .notices import warn

        warn(note)


@contextmanager
def quiet_missing_glyphs() -> Iterator[None]:
    """matplotlib warns of each missing glyph of each figure (113 lines for one run of six class names);
    `undrawn_names_note` says it once."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_MISSING_GLYPH, category=UserWarning)
        yield


@contextmanager
def style() -> Iterator[None]:
    """Draw (and save) a figure under this: text artists read these settings when they are created."""
    import matplotlib as mpl

    with mpl.rc_context({**STYLE, "font.family": font_families()}):
        yield


def new_figure(width: float, height: float, layout: str | None = "constrained"):
    """A figure of width x height inches; call inside `style()`."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout=layout)


def inches(px: float) -> float:
    """A length in pixels of the saved PNG (at DPI) as inches, the unit of figure sizes."""
    return px / DPI


def save_figure(fig, path: str | os.PathLike, dpi: int = DPI, tall: bool = False,
                notes: dict[str, str] | None = None) -> Path:
    """Write fig as a PNG atomically, its longest side capped at MAX_PIXELS; returns the path. tall: a chart of
    one row per class, read by scrolling: its width capped at MAX_PIXELS and its height at MAX_TALL_PIXELS (a photo
    grid stays under MAX_PIXELS: at 1000 classes it would have been a 10 MB image).

    The PNG carries the pixel height of its smallest text under TEXT_PX_KEY (see `smallest_text_px`), and `notes`
    as text chunks of their own (what a page written later from the file alone must know of it)."""
    path = Path(path)
    width, height = fig.get_size_inches()
    if tall and height > width:
        dpi = int(min(dpi, MAX_PIXELS / width, MAX_TALL_PIXELS / height))
    else:
        dpi = int(min(dpi, MAX_PIXELS / max(width, height)))
    buf = io.BytesIO()
    with style(), quiet_missing_glyphs():  # tick labels are created while drawing: they must see the style too
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    data = buf.getvalue()
    smallest = smallest_text_px(fig, dpi)
    if smallest is not None:
        data = _with_text_chunk(data, TEXT_PX_KEY, f"{smallest:.2f}")
    for key, value in (notes or {}).items():
        data = _with_text_chunk(data, key, value)
    atomic_write_bytes(path, data)
    return path


def smallest_text_px(fig, dpi: float) -> float | None:
    """Pixel height (font size in points x dpi / 72) of the smallest non-empty visible text of a drawn figure;
    None when it has none. Tick labels exist once the figure is drawn, so call it after saving."""
    from matplotlib.text import Text

    sizes = [t.get_fontsize() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip() and (t.axes is None or t.axes.get_visible())]
    return min(sizes) * dpi / 72 if sizes else None


def _with_text_chunk(png: bytes, key: str, value: str) -> bytes:
    """png with a tEXt chunk key=value right after its header chunk (PNG: 8-byte signature, then IHDR of 25)."""
    body = key.encode("latin-1") + b"\0" + value.encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return png[:33] + chunk + png[33:]


def plain_log_scale(ax, which: str = "y", base: float = 10) -> None:
    """A log scale on ax's x or y axis with plain-text tick labels.

    matplotlib's default log labels are mathtext ("$\\mathdefault{10^{-3}}$"), which `style()` would print raw.
    """
    from matplotlib.ticker import LogFormatter

    (ax.set_xscale if which == "x" else ax.set_yscale)("log", base=base)
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_formatter(LogFormatter(base))
    axis.set_minor_formatter(LogFormatter(base, labelOnlyBase=False))


def short(name: str, limit: int = 18, head: int | None = None) -> str:
    """A label cut to `limit` characters (long class names would squeeze the axes), the ellipsis in the middle:
    names often share a prefix ("class_with_a_long_name_3"), so the end is kept too. `head`: how many of the
    first characters are kept (default 60 % of the room)."""
    if len(name) <= limit:
        return name
    head = math.ceil((limit - 1) * 0.6) if head is None else head
    return name[:head] + "…" + name[len(name) - (limit - 1 - head):]


def distinct_short(names: Sequence[str], limit: int = 18) -> list[str]:
    """`short` for labels shown together: where two different names would read the same ("a_very_long…ariant"
    for every "a_very_long_…_number_0K_variant"), the cut moves to where they differ, so that a row, bar or
    tile can still be told from its neighbours; names that differ in two places the room cannot both show end in
    "#1", "#2", ... (in name order). Names that are equal stay equal. `limit` is at least 4."""
    limit = max(limit, 4)
    out = [short(name, limit) for name in names]
    for _ in range(3):  # a subgroup may still share more than the group did: settle it on the next pass
        clashes = _clashes(names, out)
        if not clashes:
            return out
        settled = {name: label for group in clashes for name, label in _told_apart(group, limit).items()}
        out = [settled.get(name, label) for name, label in zip(names, out)]
    left = sorted({name for group in _clashes(names, out) for name in group})
    room = limit - len(f"#{len(left)}")
    bases: dict[str, list[str]] = {}
    for name in left:
        bases.setdefault(short(name, room), []).append(name)
    numbered = {name: base + f"#{i}" for base, group in bases.items() for i, name in enumerate(group, 1)}
    return [numbered.get(name, label) for name, label in zip(names, out)]


# Up to this many names, a cut label is checked against every name it may stand for (each check reads the names
# that begin as it does: 1,000 names sharing their ends took a second); above, labels are told apart as text.
PATTERN_CHECKED = 400


def _clashes(names: Sequence[str], labels: Sequence[str]) -> list[list[str]]:
    """Groups of different names (sorted) that share a label, or that a cut label reads as: "species_…4_xxxxx",
    unique as a string, fits species_104_xxxxx and species_14_xxxxx alike, and a reader cannot tell which. (Two
    labels cut alike fit each other's names only when they are equal: the search is for the others.)"""
    by_label: dict[str, set[str]] = {}
    for name, label in zip(names, labels):
        by_label.setdefault(label, set()).add(name)
    groups = [group for group in by_label.values() if len(group) > 1]
    whole = sorted(set(names))
    for label, group in by_label.items() if len(whole) <= PATTERN_CHECKED else ():
        if "…" in label and label not in group and not re.search(r"#\d+$", label):  # cut, and not numbered
            fitting = {name for name in _starting_with(whole, label.split("…", 1)[0])
                       if name not in group and reads_as(label, name)}
            if fitting:
                groups.append(fitting | group)
    return [sorted(group) for group in groups]


def reads_as(label: str, name: str) -> bool:
    """Whether `name` is one a cut `label` may stand for: its parts in order, each "…" one character or more."""
    parts = label.split("…")
    if not (name.startswith(parts[0]) and name.endswith(parts[-1]) and all(part in name for part in parts)):
        return False  # (most names fail here, before the pattern)
    return re.fullmatch("(?s)" + ".+".join(map(re.escape, parts)), name) is not None


def _starting_with(ordered: list[str], head: str) -> list[str]:
    start = bisect.bisect_left(ordered, head)
    end = start
    while end < len(ordered) and ordered[end].startswith(head):
        end += 1
    return ordered[start:end]


def _told_apart(group: list[str], limit: int) -> dict[str, str]:
    """The first cut that gives each name of `group` its own label: `short` with another share for the head,
    nearest the default first; else a window that starts just before the characters where they differ."""
    default = math.ceil((limit - 1) * 0.6)
    for head in sorted(range(limit), key=lambda h: abs(h - default)):
        labels = {name: short(name, limit, head) for name in group}
        # labels cut alike read as one another's names only when equal; a name shown whole may fit a cut one
        whole = [name for name in group if labels[name] == name]
        if len(set(labels.values())) == len(group) and not any(
                reads_as(label, other) for name, label in labels.items() if label != name for other in whole):
            return labels
    common = len(os.path.commonprefix(group))
    start = max(0, common - max(1, limit // 3))
    lead = group[0][:2] + "…" if start > 2 else group[0][:start]
    room = limit - len(lead)
    return {name: lead + (name[start:] if len(name) - start <= room else name[start:start + room - 1] + "…")
            for name in group}
