"""The record `imgclf data fetch` keeps in the folder it writes (which data set, from where, whether every image
is there), and what reading a folder says of an unfinished one."""

from __future__ import annotations

import os
import re
from pathlib import Path

# what `imgclf data fetch` writes into its folder: the data set, where from, and whether every image is there
FETCH_RECORD = ".imgclf-fetch.json"
WRITTEN_NAME = re.compile(r"\d{5,}\.png")  # the name of each image a fetch writes (sources.tree.write_tree)


def refetch_command(record: dict, root: str | os.PathLike) -> str:
    """The `imgclf data fetch` command that completes the fetch `record` describes: with its options, which a
    command without them is refused for (another fetch)."""
    import shlex

    options = "".join(f" --{key.replace('_', '-')} {shlex.quote(str(value))}"
                      for key, value in dict(record.get("options") or {}).items())
    return f"imgclf data fetch {record.get('name')} --out {shlex.quote(str(root))}{options}"


def warn_of_an_unfinished_fetch(root: Path) -> None:
    """A fetch killed part-way left a tree that looked whole (635 of the 1,797 digits, 10 classes, no word)."""
    import json

    try:
        record = json.loads((root / FETCH_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(record, dict) and record.get("complete") is False:
        from ..notices import warn

        warn(f"{root} holds an unfinished fetch of {record.get('name')}: some of its images are missing. Run "
             f"{refetch_command(record, root)} again to complete it")
