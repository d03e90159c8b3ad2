"""Commands on what imgclf keeps between runs: `imgclf cache list` and `imgclf cache clear` (a thin layer over
imgclf.data.cache_admin)."""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path
from typing import Optional

import typer

from .base import cache_app, new_console, shown

CACHE_DIR_HELP = "The cache folder (default $IMGCLF_CACHE, else ~/.cache/imgclf), as train's --cache-dir."


def _age(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:  # rounded down, as --older-than counts: "1 d ago" is not yet --older-than 2d
            return f"{int(seconds // length)} {unit} ago"
    return "just now"


def _what(entry) -> str:
    note = " (made under older decoding rules: never opened again)" if entry.outdated else ""
    return shown(entry.what) + note


@cache_app.command("list")
def cache_list(cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP),
               as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON.")) -> None:
    """What the cache holds: each entry's size, when a run last opened it, and what it is.

    Decoded images (one entry per folder, image size and colour mode trained on) and backbone features; both are
    rebuilt when next wanted once cleared. Downloads, audit pointers and crash logs are counted, never cleared."""
    from ..config_text import byte_text, plural
    from ..data.cache_admin import cache_contents

    contents = cache_contents(cache_dir)
    if as_json:
        typer.echo(json.dumps({"folder": str(contents.folder), "bytes": contents.size, "kept": contents.kept,
                               "entries": [{"kind": e.kind, "key": e.key, "bytes": e.size, "last_used": e.last_used,
                                            "what": e.what, "outdated": e.outdated, "complete": e.complete}
                                           for e in contents.entries]}, indent=2))
        return
    console = new_console()
    kinds = {kind: sum(e.size for e in contents.entries if e.kind == kind) for kind in ("images", "features")}
    kept = ", ".join(f"{name}/ {byte_text(size)}" for name, size in contents.kept.items())
    console.print(f"cache: {shown(contents.folder)}: {plural(len(contents.entries), 'entry', 'entries')}, "
                  f"{byte_text(contents.size)} "
                  f"(decoded images {byte_text(kinds['images'])}, features {byte_text(kinds['features'])})"
                  + (f"; kept, never cleared: {kept}" if kept else "")
                  + (f"; builds in progress, left alone: {byte_text(contents.building)}" if contents.building else ""))
    if not contents.entries:
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column, justify in (("last used", "right"), ("size", "right"), ("kind", "left"), ("key", "left"),
                            ("what", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    now = time.time()
    for entry in contents.entries:
        table.add_row(_age(now - entry.last_used), byte_text(entry.size), entry.kind, entry.key, _what(entry))
    console.print(table)
    console.print("Clear it with: imgclf cache clear (--older-than 30d: only what no run opened for 30 days)")


@cache_app.command("clear")
def cache_clear(older_than: Optional[str] = typer.Option(
                    None, "--older-than", help="Only entries no run has built or opened for this long, in days or "
                                               "hours: 30d, 12h, 1d12h (default: every entry)."),
                dry_run: bool = typer.Option(False, "--dry-run", help="List what would be removed; remove nothing."),
                cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP)) -> None:
    """Remove cached decoded images and features: runs that want them again decode them again.

    Safe beside running commands: one reading an entry keeps it open until it ends, and a build in progress is
    left alone. Downloads, audit pointers and crash logs are never removed."""
    from ..config_text import byte_text, plural
    from ..data.cache import cache_argument
    from ..data.cache_admin import cache_contents, entries_unused_for, parse_age, remove_entries
    from ..errors import invalid

    seconds = parse_age(older_than) if older_than is not None else None
    contents = cache_contents(cache_dir)
    chosen = entries_unused_for(contents, seconds)
    console = new_console()
    total = sum(entry.size for entry in chosen)
    left = len(contents.entries) - len(chosen)
    unused = f" unused for {older_than}" if older_than else ""
    if dry_run:
        for entry in chosen:
            console.print(f"would remove {entry.kind} {entry.key} ({byte_text(entry.size)}): {_what(entry)}")
        console.print(f"would remove {plural(len(chosen), 'entry', 'entries')}{unused}, {byte_text(total)}, "
                      f"from {shown(contents.folder)}; {left} kept")
        return
    removal = remove_entries(chosen)
    # not "freed": a running command that has an entry open keeps its blocks until it ends
    console.print(f"removed {plural(len(removal.removed), 'entry', 'entries')}{unused}, "
                  f"{byte_text(removal.freed)}, from {shown(contents.folder)}; "
                  f"{len(contents.entries) - len(removal.removed)} kept")
    if removal.failed:
        path, exc = removal.failed[0]
        owner = exc.errno in (errno.EACCES, errno.EPERM)
        raise invalid(cache_argument(cache_dir), str(contents.folder), "a folder whose entries this user may remove",
                      note=f"{len(removal.failed)} file(s) not removed, {shown(path.name)} among them: "
                           f"{exc.strerror or type(exc).__name__}",
                      hint=("Remove them as the user who owns them (a shared cache; on Windows, a file a running "
                            "command holds is refused too: clear again once it ends)" if owner else
                            "Clear again once what holds them is over")
                           + "; the other entries are gone")
