"""The refusal of an evaluated folder's class folders that the model has no output for (single- and multi-label
evaluation alike)."""

from __future__ import annotations

import os

from ..errors import invalid


def refusal_of_unknown_classes(data: str | os.PathLike, split: str, unknown: list[str],
                               classes: list[str]) -> Exception:
    """The refusal of class folders the model has no output for, with the model's class each may misspell."""
    import difflib

    lower = {c.lower(): c for c in classes}
    alike = [f"{name} for {lower[near[0]]}" for name in unknown
             if (near := difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.6))]
    where = "" if split == "all" else f" in {split}/"
    return invalid("data", data, f"a folder whose classes are among the model's classes {classes}",
                   note=f"class folder(s) {unknown}{where} the model does not know"
                        + (f"; did you mean {', '.join(alike)}?" if alike else ""),
                   hint="Rename or move those class folders (an evaluation scores the model's classes); imgclf "
                        "predict RUN FOLDER labels images of any folder")
