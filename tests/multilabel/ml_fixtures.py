"""Tiny generated multi-label data: 2x2 mosaics of coloured shapes; an image's labels are the shapes present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
_COLOURS = {"circle": (230, 40, 40), "square": (40, 200, 40), "triangle": (60, 60, 240)}


def _draw(draw: ImageDraw.ImageDraw, shape: str, x: int, y: int, cell: int) -> None:
    box = (x + 2, y + 2, x + cell - 3, y + cell - 3)
    if shape == "circle":
        draw.ellipse(box, fill=_COLOURS[shape])
    elif shape == "square":
        draw.rectangle(box, fill=_COLOURS[shape])
    else:
        draw.polygon([(x + cell // 2, y + 2), (x + 2, y + cell - 3), (x + cell - 3, y + cell - 3)],
                     fill=_COLOURS[shape])


def make_mosaics(root: Path, count: int = 60, size: int = 32, seed: int = 0,
                 fmt: str = "csv") -> tuple[Path, list[list[str]]]:
    """Write `count` mosaics under root/images and an index (root/index.csv or .jsonl, paths relative to it);
    each quadrant holds a random shape or nothing. Returns (index path, label sets in file order)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    cell = size // 2
    sets = []
    for n in range(count):
        img = Image.new("RGB", (size, size), (20, 20, 20))
        draw = ImageDraw.Draw(img)
        present = set()
        for q in range(4):
            pick = rng.integers(0, len(SHAPES) + 1)
            if pick < len(SHAPES):
                _draw(draw, SHAPES[pick], (q % 2) * cell, (q // 2) * cell, cell)
                present.add(SHAPES[pick])
        img.save(root / "images" / f"m{n:03d}.png")
        sets.append(sorted(present))
    if fmt == "csv":
        index = root / "index.csv"
        index.write_text("path,labels\n" + "".join(f"images/m{n:03d}.png,{';'.join(s)}\n"
                                                    for n, s in enumerate(sets)))
    else:
        index = root / "index.jsonl"
        index.write_text("".join(json.dumps({"path": f"images/m{n:03d}.png", "labels": s}) + "\n"
                                 for n, s in enumerate(sets)))
    return index, sets
