"""What every figure shares: font sizes, text measured before drawing (to size margins and legends), the
figure title, and the hand-placed grid of image cells (prediction grids, Grad-CAM, class samples, the multi-label
set grid)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ...plotting import DPI, FULL_WIDTH_PX, font_families, inches, new_figure, quiet_missing_glyphs

# Font sizes in points (at the plotting DPI of 110, one point is 1.53 pixels).
TICK_PT = 8.5
LEGEND_PT = 8.0
TITLE_PT = 10.0
CAPTION_PT = 8.0  # "True: <13 characters>" in bold fits a cell of a six-column grid (146 pixels)


def text_px(text: str, pt: float, weight: str = "normal") -> float:
    """The width in pixels of `text` drawn at `pt` points, measured with the figures' own fonts (to size a figure
    before drawing it: margins for its labels, legend columns that fit)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    font = FontProperties(family=font_families(), size=pt, weight=weight)
    with quiet_missing_glyphs():
        return TextToPath().get_text_width_height_descent(text, font, ismath=False)[0] * DPI / 72


def wrapped(text: str, width_px: float, pt: float, weight: str = "normal") -> str:
    """`text` broken between words into lines no wider than `width_px` at `pt` points (a word longer than the
    width keeps a line of its own): a title wider than its figure is cut at both edges."""
    lines: list[str] = []
    for word in text.split():
        if lines and text_px(f"{lines[-1]} {word}", pt, weight) <= width_px:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return "\n".join(lines)


def figure_title(fig, text: str, left: bool = False) -> None:
    """The figure's title, centred on the figure: over an axes pushed right by long tick labels it would be cut.
    Half-width figures hold about 42 characters. left: at the figure's left edge, for one wider than the page,
    read in a frame that opens at its left (a 300-class matrix's centred title sat 1,600 px out of view)."""
    if left:
        fig.suptitle(text, fontweight="bold", fontsize=TITLE_PT, x=0.005, ha="left")
    else:
        fig.suptitle(text, fontweight="bold", fontsize=TITLE_PT)


def legend_columns(labels: Sequence[str], width_px: float, font_pt: float = LEGEND_PT,
                    handle_em: float = 2.0) -> int:
    """As many legend columns as fit in width_px. matplotlib fills columns top to bottom as np.array_split
    divides the entries (4 in 3 columns: 2, 1, 1); each column is as wide as its widest entry (handle, 0.8 em,
    then the text), columns 1.2 em apart, 0.4 em of padding each side."""
    em = font_pt * DPI / 72
    widths = [text_px(t, font_pt) + (handle_em + 0.8) * em for t in labels]

    def width(columns: int) -> float:
        filled = [column for column in np.array_split(np.asarray(widths), columns) if len(column)]
        # + 0.5 em: drawn legends came out about 5 px wider than this sum (text hinting, the frame's line)
        return sum(float(column.max()) for column in filled) + (len(filled) - 1) * 1.2 * em + 1.3 * em

    return max((c for c in range(1, len(widths) + 1) if width(c) <= width_px), default=1)


def show_image(ax, image: np.ndarray) -> None:
    img = np.asarray(image)
    small = max(img.shape[:2]) < 96  # tiny inputs: crisp pixels beat a blurry upscale
    kwargs = {"interpolation": "nearest" if small else "antialiased"}
    if img.ndim == 3 and img.shape[-1] == 1:
        ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=255, **kwargs)
    else:
        ax.imshow(img, **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def frame(ax, color: str, width: float) -> None:
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color(color)
        spine.set_linewidth(width)


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = max(1, min(max_cols, n))
    return math.ceil(max(n, 1) / cols), cols


def cell_axes(n: int, cols: int, images_per_cell: int = 1, caption_in: float = 0.5, pad_in: float = 0.14,
               title_in: float = 0.4, width_px: float = FULL_WIDTH_PX, title: str = "", footer_in: float = 0.0,
               footer: str = ""):
    """A figure with n cells in rows of up to `cols`, placed by hand (image grids: constrained layout costs seconds
    for 20+ axes). A full row of `cols` cells is width_px wide, so the page shows the grid at its natural size;
    fewer cells keep that cell size in a narrower figure, never narrower than its bold `title` or the bold caption
    `footer` drawn in the free band below (the Grad-CAM scale's line was cut at both edges under 1-4 images).

    Each cell is a caption band over `images_per_cell` square image axes stacked vertically; `footer_in` inches
    are left free below the grid (for a colour scale).
    Returns (figure, [[axes of cell 0], [axes of cell 1], ...]).
    """
    img_in = (inches(width_px) - pad_in) / cols - pad_in
    rows, cols = _grid(n, cols)
    grid_w = cols * (img_in + pad_in) + pad_in
    width = max(grid_w, inches(text_px(title, TITLE_PT, "bold") + 24), inches(text_px(footer, CAPTION_PT, "bold") + 24))
    cell_h = caption_in + images_per_cell * img_in + (images_per_cell - 1) * 0.04
    height = title_in + rows * (cell_h + pad_in) + pad_in + footer_in
    fig = new_figure(width, height, layout=None)
    cells = []
    for i in range(n):
        r, c = divmod(i, cols)
        left = (width - grid_w) / 2 + pad_in + c * (img_in + pad_in)
        top = height - title_in - r * (cell_h + pad_in) - caption_in
        axes = []
        for j in range(images_per_cell):
            bottom = top - (j + 1) * img_in - j * 0.04
            axes.append(fig.add_axes((left / width, bottom / height, img_in / width, img_in / height)))
        cells.append(axes)
    return fig, cells
