"""`imgclf.plotting`: the one plotting stack (style, atomic PNG writes, no mathtext in user text)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.text import Text
from PIL import Image

from imgclf import plotting


def test_save_figure_writes_atomically_and_caps_the_size(tmp_path, monkeypatch):
    written = []
    write = plotting.atomic_write_bytes
    monkeypatch.setattr(plotting, "atomic_write_bytes", lambda p, d: (written.append(p), write(p, d)))
    with plotting.style():
        fig = plotting.new_figure(60, 2)
        fig.subplots().plot([0, 1], [0, 1])
    path = plotting.save_figure(fig, tmp_path / "sub" / "wide.png")
    assert written == [path]
    with Image.open(path) as img:
        assert max(img.size) <= plotting.MAX_PIXELS
    assert [p.name for p in path.parent.iterdir()] == ["wide.png"]  # no temp file left
    # a tall figure (a row per class) keeps its resolution, up to its own cap: capped at 3200 px like a wide one,
    # a 300-class chart's text was drawn 7 px high
    for inches, expected in ((40, 40 * plotting.DPI), (400, plotting.MAX_TALL_PIXELS)):
        with plotting.style():
            fig = plotting.new_figure(8, inches)
            fig.subplots().set_title("one row per class")
        with Image.open(plotting.save_figure(fig, tmp_path / "tall.png", tall=True)) as img:
            assert abs(img.size[1] - expected) <= 2 and img.size[0] <= plotting.MAX_PIXELS, img.size
        with Image.open(plotting.save_figure(fig, tmp_path / "grid.png")) as img:  # a photo grid: the usual cap
            assert max(img.size) <= plotting.MAX_PIXELS


def test_user_text_and_log_axes_are_plain_text(tmp_path):
    with plotting.style():
        fig = plotting.new_figure(4, 3)
        ax = fig.subplots()
        ax.plot([1, 2, 3], [1e-4, 1e-3, 1e-1])
        plotting.plain_log_scale(ax, "y")
        ax.set_title("price $5 and $10, x_1^2")
    plotting.save_figure(fig, tmp_path / "f.png")
    texts = [t for t in fig.findobj(Text) if t.get_text()]
    assert any(t.get_text() == "price $5 and $10, x_1^2" for t in texts)
    assert all("$" not in t.get_text() for t in texts if t.get_text() != "price $5 and $10, x_1^2"), \
        [t.get_text() for t in texts]
    assert np.asarray(Image.open(tmp_path / "f.png").convert("L")).std() > 5


def test_the_png_records_the_pixel_height_of_its_smallest_text(tmp_path):
    """What the report's Chromium test multiplies by displayed / natural width (issue 26)."""
    with plotting.style():
        fig = plotting.new_figure(4, 3)
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1])
        ax.tick_params(labelsize=9)
        ax.text(0.5, 0.5, "small note", fontsize=6)
        ax.text(0.5, 0.2, "", fontsize=2)  # empty and invisible text draws nothing: not counted
        ax.text(0.5, 0.3, "hidden", fontsize=3, visible=False)
    path = plotting.save_figure(fig, tmp_path / "f.png", dpi=100)
    with Image.open(path) as img:
        img.verify()  # the inserted chunk keeps the file valid (CRC included)
    with Image.open(path) as img:
        assert float(img.info[plotting.TEXT_PX_KEY]) == pytest.approx(6 * 100 / 72, abs=0.01)


def _each_reads_as_one(labels, names):
    """Every cut label (a numbered one aside) fits one of the names alone, its "…" read as any characters."""
    return all(sum(plotting.reads_as(label, name) for name in names) == 1 for label in labels
               if "…" in label and "#" not in label)


def test_names_shown_together_are_cut_where_they_differ():
    """Cut alone, every 'a_very_long_..._number_0K_variant' read 'a_very_long…ariant' and 'class_000' and
    'class_100' both 'class…00': rows, bars and tiles of different classes looked the same."""
    long = [f"a_very_long_descriptive_category_name_for_product_number_0{i}_variant" for i in range(10)]
    for names, limit in ((long + ["Zzz"], 16), (long, 22), ([f"class_{i:03d}" for i in range(0, 300, 10)], 8)):
        labels = plotting.distinct_short(names, limit)
        assert len(set(labels)) == len(set(names)), labels
        assert all(len(label) <= limit for label in labels)
        assert [plotting.short(n, limit) for n in names if len(n) <= limit] == [
            label for n, label in zip(names, labels) if len(n) <= limit]  # short names stay whole
    # names that differ in two places the room cannot both show: numbered, never alike
    acer = ["Acer_saccharum_var_northern", "Acer_saccharum_var_southern", "Acer_saccharinum_var_northern",
            "Acer_saccharinum_var_southern"]
    for limit in (4, 13, 16, 18, 22):
        labels = plotting.distinct_short(acer, limit)
        assert len(set(labels)) == 4 and all(len(label) <= limit for label in labels), labels
    rng = np.random.default_rng(0)
    for _ in range(200):
        names = sorted({"".join(rng.choice(list("ab_"), rng.integers(1, 40))) for _ in range(rng.integers(2, 40))})
        limit = int(rng.integers(4, 23))
        labels = plotting.distinct_short(names, limit)
        assert len(set(labels)) == len(names) and all(len(label) <= limit for label in labels), (names, labels)
        assert _each_reads_as_one(labels, names), (names, labels)
    # a cut label reads as one name: "species_…4_xxxxx" was unique as text, and fitted species_104 and species_14
    species = [f"species_{i}_xxxxx" for i in range(120)] + [f"species_{i}_xx" for i in range(120)]
    for limit in (8, 13, 16):
        assert _each_reads_as_one(plotting.distinct_short(species, limit), species)
    assert plotting.distinct_short(["cat", "dog", "cat"], 8) == ["cat", "dog", "cat"]
    # a name holding "…" of its own, shown whole, is no cut label: it and its neighbours stay as they are
    for names in (["a…b", "axxb"], ["wait…", "waiting"], ["ab…", "abc", "abd", "abe"]):
        assert plotting.distinct_short(names, 18) == names
    assert plotting.distinct_short(["pullover_long_name", "t_shirt_long_name"], 10) == [
        plotting.short("pullover_long_name", 10), plotting.short("t_shirt_long_name", 10)]  # no clash: as before


def test_the_figures_tell_classes_with_long_shared_names_apart(tmp_path, monkeypatch):
    from imgclf.evaluation import plots
    from imgclf.evaluation.plots import per_class

    classes = [f"a_very_long_descriptive_category_name_for_product_number_0{i}_variant" for i in range(6)]
    ticks = {}
    real_save = per_class.save_figure

    def save(fig, path, *args, **kwargs):
        ticks[path.name] = [t.get_text() for ax in fig.axes[:1] for t in ax.get_yticklabels()]
        return real_save(fig, path, *args, **kwargs)

    monkeypatch.setattr(per_class, "save_figure", save)
    plots.plot_confusion_matrix(np.eye(6, dtype=int) * 3, classes, tmp_path / "cm.png")
    scores = {c: per_class.ClassScores(precision=1.0, recall=1.0, f1=1.0, support=3) for c in classes}
    plots.plot_per_class_metrics(scores, tmp_path / "pc.png")
    for name in ("cm.png", "pc.png"):
        assert len(set(ticks[name])) == 6, ticks[name]


def test_the_count_colour_bar_labels_do_not_overlap(tmp_path, monkeypatch):
    """A 2-class matrix of up to 20 images ticked its bar at 0, 2, ..., 20: eleven labels in 96 pixels, overlapping."""
    from imgclf.evaluation import plots
    from imgclf.evaluation.plots import per_class

    seen = {}
    real_save = per_class.save_figure

    def save(fig, path, *args, **kwargs):
        fig.canvas.draw()
        bar = fig.axes[1]
        boxes = [t.get_window_extent() for t in bar.get_yticklabels() if t.get_text()]
        seen["labels"] = len(boxes)
        seen["overlaps"] = sum(a.overlaps(b) for a, b in zip(boxes, boxes[1:]))
        return real_save(fig, path, *args, **kwargs)

    monkeypatch.setattr(per_class, "save_figure", save)
    plots.plot_confusion_matrix([[20, 0], [1, 4]], ["a", "b"], tmp_path / "cm.png")
    assert seen["labels"] >= 2 and seen["overlaps"] == 0, seen


def test_sample_captions_fit_their_tiles_and_tell_classes_apart(tmp_path, monkeypatch):
    """'Pred: a_very_l…iant (0.31)' (162 pixels) ran into the next tile's caption in a 132-pixel cell, and every
    variant class read 'a_very_l…iant': the grid now takes fewer columns, and the names are cut where they differ."""
    from imgclf.evaluation.plots import image_grids
    from imgclf.evaluation.plots.layout import CAPTION_PT, text_px

    names = [f"a_very_long_descriptive_category_name_for_product_number_0{i}_variant" for i in range(6)]
    samples = [{"image": np.zeros((8, 8, 3), np.uint8), "true": n, "pred": n, "prob": 0.5, "correct": True}
               for n in names]
    seen = {}
    real_save = image_grids.save_figure

    def save(fig, path, *args, **kwargs):
        seen["tiles"] = [(ax.get_title(), ax.get_window_extent().width) for ax in fig.axes if ax.get_title()]
        return real_save(fig, path, *args, **kwargs)

    monkeypatch.setattr(image_grids, "save_figure", save)
    image_grids.plot_prediction_grid(samples, tmp_path / "s.png")
    titles = [title for title, _ in seen["tiles"]]
    assert len(set(titles)) == 6, titles
    gap = 0.14 * plotting.DPI  # the padding between tiles: a caption may spread into it, not over the next one
    assert all(text_px(line, CAPTION_PT) <= width + gap for title, width in seen["tiles"]
               for line in title.splitlines()), seen["tiles"]


def test_an_image_scored_unknown_is_captioned_unknown_and_still_counted_by_its_top_class(tmp_path, monkeypatch):
    """The report's grids captioned an image scored unknown "Pred: bar_bot (0.72)", green among the right ones,
    where predict, serve and `imgclf explain` answer "unknown" for it. Then they counted it neither right nor wrong:
    a top-losses grid of 4 misclassified images, all scored unknown, said "0 wrong" under an accuracy that counts
    them. Wrong is the top class, as accuracy counts it; the heading says how many of each were scored unknown."""
    from imgclf.evaluation.plots import image_grids

    tile = np.zeros((8, 8, 3), np.uint8)
    samples = [{"image": tile, "true": "cat", "pred": "cat", "prob": 0.9, "correct": True, "unknown": False},
               {"image": tile, "true": "cat", "pred": "cat", "prob": 0.4, "correct": True, "unknown": True},
               {"image": tile, "true": "dog", "pred": "cat", "prob": 0.8, "correct": False, "unknown": False},
               {"image": tile, "true": "dog", "pred": "cat", "prob": 0.3, "correct": False, "unknown": True}]
    seen = {}

    def save(fig, path, *args, **kwargs):
        seen["heading"] = fig._suptitle.get_text()
        seen["tiles"] = [(ax.get_title(), ax.title.get_color()) for ax in fig.axes if ax.get_title()]
        return path

    monkeypatch.setattr(image_grids, "save_figure", save)
    image_grids.plot_prediction_grid(samples, tmp_path / "s.png")
    assert ("2 wrong (red frame) and 2 right; scored unknown: 1 of the wrong, 1 of the right"
            in seen["heading"]), seen["heading"]
    (right, green), (flagged, ink), (wrong, red), (flagged_wrong, also_red) = seen["tiles"]
    assert right.endswith("Pred: cat (0.90)") and wrong.endswith("Pred: cat (0.80)")
    assert flagged.endswith("Pred: unknown, closest cat (0.40)") and flagged_wrong.endswith("unknown, closest cat (0.30)")
    assert green == image_grids.RIGHT_COLOR and ink == image_grids.NEUTRAL_INK
    assert red == also_red == image_grids.WRONG_COLOR


def test_the_reliability_title_stays_inside_its_figure(tmp_path, monkeypatch):
    """'Calibrated (T = 1.24) — ECE 0.106, over- and under-confident' was cut at both edges of the half-width
    figure, and the counts panel packed ten tick labels into one another."""
    import numpy as np

    import imgclf.evaluation.plots.score_curves as curves

    seen = {}
    save = curves.save_figure

    def look(fig, path, *args, **kwargs):
        fig.canvas.draw()
        box, title = fig.bbox, fig._suptitle.get_window_extent()
        seen.update(inside=box.x0 <= title.x0 and title.x1 <= box.x1,
                    ticks=len(fig.axes[1].get_yticks()))
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(curves, "save_figure", look)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10) * 0.5, 200)
    curves.plot_reliability(rng.integers(0, 10, 200), probs, tmp_path / "r.png",
                            title="Calibrated with temperature (T = 1.24)")
    assert seen["inside"] and seen["ticks"] <= 5, seen


def test_a_fallback_font_installed_after_matplotlibs_cache_was_built_is_used(monkeypatch):
    """matplotlib lists the fonts of the cache it built once: WenQuanYi installed after the first plot was not
    seen, and every CJK class name drew as boxes, with a warning for each glyph."""
    from matplotlib import font_manager

    files = [f for f in font_manager.findSystemFonts() if "wqy" in f.lower()]
    if not files:
        pytest.skip("no WenQuanYi font on this machine (.ci/run installs fonts-wqy-microhei)")
    manager = font_manager.fontManager
    # the cache as built before the font was installed: none of its files' faces (the .ttc holds a Mono one too)
    monkeypatch.setattr(manager, "ttflist", [f for f in manager.ttflist
                                             if f.fname not in files and f.name not in plotting.FALLBACK_FONTS])
    plotting.font_families.cache_clear()
    try:
        assert "WenQuanYi Micro Hei" in plotting.font_families()
    finally:
        plotting.font_families.cache_clear()


@pytest.mark.parametrize("classes", [
    ("<img src=x onerror=alert(1)> & \"q\"", "a_very_long_class_name_that_goes_on_and_on_forever_xyz", "b", "c"),
    tuple(f"class_with_a_long_name_{i}" for i in range(6)),
    tuple(f"c{i}" for i in range(12)), ("cat", "dog"),
])
def test_the_class_distribution_tick_labels_do_not_overlap(tmp_path, monkeypatch, classes):
    """Six or fewer classes never turned their labels, however long: two 22-character labels printed over each
    other in slots of 135 pixels."""
    from imgclf.evaluation import plots
    from imgclf.evaluation.plots import per_class

    seen = {}
    real_save = per_class.save_figure

    def save(fig, path, *args, **kwargs):
        with plotting.style():  # laid out as saved (a bare canvas draws nothing, nor runs the layout)
            fig.draw_without_rendering()
        labels = [t for t in fig.axes[0].get_xticklabels() if t.get_text()]
        seen["labels"] = len(labels)
        seen["turned"] = labels[0].get_rotation() != 0
        if seen["turned"]:  # parallel lines at 45 degrees: apart by the step between them times sin 45
            step = np.diff([t.get_window_extent().x1 for t in labels]).min()
            seen["overlaps"] = int(step * np.sqrt(0.5) < labels[0].get_fontsize() * fig.dpi / 72)
        else:
            boxes = [t.get_window_extent() for t in labels]
            seen["overlaps"] = sum(a.overlaps(b) for a, b in zip(boxes, boxes[1:]))
        return real_save(fig, path, *args, **kwargs)

    monkeypatch.setattr(per_class, "save_figure", save)
    plots.plot_class_distribution({"train": {c: 10 for c in classes}, "test": {c: 3 for c in classes}},
                                  tmp_path / "d.png")
    assert seen["labels"] == len(classes) and seen["overlaps"] == 0, seen
    if classes == ("cat", "dog"):
        assert not seen["turned"]  # short names side by side stay level


def test_every_label_reliability_panel_title_lies_inside_the_figure(tmp_path, monkeypatch):
    """A 16-character label and ": ECE 0.429" in bold, in a panel a quarter of the figure wide: the last panel's
    title was cut at the figure's right edge (the ECE read 0.42)."""
    from imgclf.evaluation import multilabel_plots

    seen = {}
    real_save = multilabel_plots.save_figure

    def save(fig, path, *args, **kwargs):
        with plotting.style():  # laid out as saved (a bare canvas draws nothing, nor runs the layout)
            fig.draw_without_rendering()
        right = fig.bbox.x1
        # inside the figure, and no wider than its panel (centred over a square panel, a wider one is cut at
        # the figure's edge in the last column)
        seen["titles"] = [(ax.title.get_text(), ax.title.get_window_extent().x1 <= right + 0.5
                           and ax.title.get_window_extent().width <= ax.get_window_extent().width + 10)
                          for ax in fig.axes if ax.get_visible()]
        return real_save(fig, path, *args, **kwargs)

    monkeypatch.setattr(multilabel_plots, "save_figure", save)
    classes = ["Ångström_long_label_name_for_testing_the_layout", "WWWWWWWWWWWWWWWWWWWW", "cat", "MMMMMMMMMMMMMMMM"]
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, (200, 4))
    multilabel_plots.plot_label_reliability(targets, rng.random((200, 4)), classes, tmp_path / "r.png")
    assert len(seen["titles"]) == 4 and all(inside for _, inside in seen["titles"]), seen
    assert all("ECE 0." in text for text, _ in seen["titles"])
