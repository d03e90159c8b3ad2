"""Every figure function on a stored run (and on edge cases): a valid, non-blank PNG is written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from run_fixtures import write_run
from imgclf.evaluation import plots
from imgclf.evaluation.interpret import Interpretation, decode_for_display
from imgclf.evaluation.metrics import compute_metrics
from imgclf.plotting import FULL_WIDTH_PX, TEXT_PX_KEY, style
from imgclf.records import HistoryRow, RunDir


def assert_png(path: Path, min_side: int = 200) -> tuple[int, int]:
    path = Path(path)
    assert path.exists() and path.stat().st_size > 2000, path
    with Image.open(path) as img:
        img.verify()  # a complete, uncorrupted PNG
    with Image.open(path) as img:
        assert img.format == "PNG"
        pixels = np.asarray(img.convert("L"), dtype=np.float64)
    assert min(pixels.shape) >= min_side and pixels.shape[1] <= plots.MAX_PIXELS + 10
    assert pixels.shape[0] <= (plots.MAX_TALL_PIXELS if pixels.shape[0] > pixels.shape[1] else plots.MAX_PIXELS) + 10
    assert pixels.std() > 5, "figure is blank"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], "temp file left behind"
    return pixels.shape


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A run written through the records (no training): its figures are drawn from what the records read back."""
    run = RunDir(write_run(tmp_path_factory.mktemp("stored")))
    interp = Interpretation.from_run(run.path)
    card = run.read_card()
    images = decode_for_display(interp.paths, card.img_size, card.color)
    samples = [dict(interp.describe(i), image=images[i]) for i in range(len(interp.paths)) if i in images]
    return {"interp": interp, "history": run.read_history(), "dataset": run.read_dataset(), "samples": samples,
            "card": card}


FIGURES = {
    "training_curves": lambda s, p: plots.plot_training_curves(s["history"], p, best_epoch=2, onset=3),
    "confusion_counts": lambda s, p: plots.plot_confusion_matrix(s["interp"].confusion, s["interp"].classes, p),
    "confusion_normalized": lambda s, p: plots.plot_confusion_matrix(s["interp"].confusion, s["interp"].classes, p,
                                                                     normalize=True),
    "per_class": lambda s, p: plots.plot_per_class_metrics(s["interp"].per_class, p, s["interp"].metrics.macro),
    "roc": lambda s, p: plots.plot_roc_curves(s["interp"].y_true, s["interp"].probs, s["interp"].classes, p),
    "pr": lambda s, p: plots.plot_pr_curves(s["interp"].y_true, s["interp"].probs, s["interp"].classes, p),
    "reliability": lambda s, p: plots.plot_reliability(s["interp"].y_true, s["interp"].probs, p),
    "samples": lambda s, p: plots.plot_prediction_grid(s["samples"][:8], p),
    "top_losses": lambda s, p: plots.plot_top_losses(s["samples"][:6], p),
    "class_distribution": lambda s, p: plots.plot_class_distribution(s["dataset"].counts, p),
    "class_samples": lambda s, p: plots.plot_class_samples(
        dict(zip(s["dataset"].classes, s["dataset"].split_paths("train")[0][::4])), p),
    "gradcam_grid": lambda s, p: plots.plot_gradcam_grid(
        [dict(x, heatmap=np.linspace(0, 1, 256).reshape(16, 16)) for x in s["samples"][:4]], p, layer="features.14"),
    "compare_curves": lambda s, p: plots.plot_compare_curves(
        [{"label": "a", "histories": [s["history"], s["history"][:2]]}, {"label": "b", "histories": [s["history"]]}],
        p),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_from_the_stored_run(stored, tmp_path, name):
    path = tmp_path / "plots" / f"{name}.png"
    assert FIGURES[name](stored, path) == path
    assert_png(path)
    with Image.open(path) as img:
        # drawn no wider than the report's (and the compare page's) column, so shown at natural size; its smallest
        # text >= 11 px there
        assert img.width <= FULL_WIDTH_PX and float(img.info[TEXT_PX_KEY]) >= 11, (img.size, img.info)


def test_the_stored_run_has_its_figures_from_training(tiny_run):
    # fit() ends with write_report: the figures exist without any extra call
    for name in ("training_curves", "confusion_counts", "roc", "samples", "top_losses", "reliability"):
        assert_png(tiny_run / "plots" / f"{name}.png")


def synthetic(k: int, per_class: int = 10):
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, per_class * k)
    logits = rng.normal(size=(len(y), k))
    logits[np.arange(len(y)), y] += 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    classes = [f"class_with_a_long_name_{i}" for i in range(k)]
    return y, probs, classes, compute_metrics(y, probs, classes)


@pytest.mark.parametrize("k", [2, 40])
def test_confusion_matrix_scales_with_the_number_of_classes(tmp_path, k):
    # 40 takes the many-class path (no cell numbers, square-root colours) at a fraction of 100 classes' cost
    y, probs, classes, m = synthetic(k)
    small, big = assert_png(plots.plot_confusion_matrix(m.confusion, classes, tmp_path / "cm.png", normalize=True))
    with Image.open(tmp_path / "cm.png") as img:
        assert float(img.info[TEXT_PX_KEY]) >= 11  # the labels keep their size ...
    if k == 40:
        assert min(small, big) > 40 * 16  # ... and the figure grows with the classes, a label's height per row
        assert_png(plots.plot_per_class_metrics(m.per_class, tmp_path / "pc.png"))  # dot plot above 30 classes
    else:
        assert max(small, big) < 1200


def test_charts_of_a_row_per_class_stay_readable_at_300_classes(tmp_path):
    """Capped at 3,200 px like any figure, the per-class chart of 300 classes was drawn 268 px wide with 7 px text."""
    y, probs, classes, m = synthetic(300, per_class=4)
    for path in (plots.plot_per_class_metrics(m.per_class, tmp_path / "pc.png"),
                 plots.plot_class_distribution({"train": {c: 10 + i for i, c in enumerate(classes)}},
                                               tmp_path / "cd.png")):
        with Image.open(path) as img:
            assert float(img.info[TEXT_PX_KEY]) >= 11 and img.height > plots.MAX_PIXELS, (path, img.size)


def test_a_confusion_matrix_wider_than_the_page_has_its_title_where_its_frame_opens(tmp_path, monkeypatch):
    """The page shows a matrix wider than its column in a frame that opens at its left: a centred title sat 1,600 px
    out of view at 300 classes."""
    from imgclf.evaluation.plots import per_class

    drawn = []
    monkeypatch.setattr(per_class, "save_figure", lambda fig, path, **kw: drawn.append(fig) or Path(path))
    for k in (5, 80):
        y, probs, classes, m = synthetic(k, per_class=2)
        plots.plot_confusion_matrix(m.confusion, classes, tmp_path / "cm.png")
    small, wide = (fig._suptitle for fig in drawn)
    assert small.get_ha() == "center" and wide.get_ha() == "left" and wide.get_position()[0] < 0.01


def test_a_class_without_images_is_a_row_of_dashes_in_the_rates_not_a_recall_of_0(tmp_path, monkeypatch):
    """A class with no test image was drawn as a row of zeros under the caption "the diagonal is each class's
    recall", where the table shows a dash for it."""
    from imgclf.evaluation.plots import per_class

    drawn = []
    monkeypatch.setattr(per_class, "save_figure", lambda fig, path, **kw: drawn.append(fig) or Path(path))
    plots.plot_confusion_matrix([[2, 1, 0], [0, 0, 0], [1, 0, 3]], ["a", "b", "c"], tmp_path / "r.png", normalize=True)
    plots.plot_confusion_matrix([[2, 1, 0], [0, 0, 0], [1, 0, 3]], ["a", "b", "c"], tmp_path / "n.png")
    rates, counts = drawn
    ax = rates.axes[0]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert [cells[(1, p)] for p in range(3)] == ["—"] * 3
    assert [cells[(0, p)] for p in range(3)] == ["0.67", "0.33", "0"] and cells[(2, 2)] == "0.75"
    shown = ax.images[0].get_array()
    assert np.ma.getmaskarray(np.ma.masked_invalid(shown))[1].all() and not np.isnan(shown[0]).any()
    assert [t.get_text() for t in counts.axes[0].texts][3:6] == ["0", "0", "0"]  # counts are counts: 0 images


def test_a_confusion_matrix_of_counts_ticks_its_colour_scale_at_whole_images(tmp_path, monkeypatch):
    from imgclf.evaluation.plots import per_class

    drawn = []
    monkeypatch.setattr(per_class, "save_figure", lambda fig, path: drawn.append(fig) or Path(path))
    plots.plot_confusion_matrix([[2, 1], [0, 2]], ["a", "b"], tmp_path / "cm.png")  # up to 2 images a cell
    (fig,) = drawn
    fig.canvas.draw()
    colour_bar = fig.axes[-1]
    low, high = colour_bar.get_ylim()
    ticks = [t for t in colour_bar.get_yticks() if low <= t <= high]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_the_gradcam_grid_has_its_colour_scale_below_the_images(stored, tmp_path, monkeypatch):
    """The overlay had no colour scale: red read as "a lot of evidence" though each map is scaled to its own range;
    the bar under the grid says what its ends are, and sits clear of every image and inside the figure."""
    from imgclf.evaluation.plots import image_grids

    drawn = []
    monkeypatch.setattr(image_grids, "save_figure", lambda fig, path, **kw: drawn.append(fig) or Path(path))
    FIGURES["gradcam_grid"](stored, tmp_path / "g.png")
    (fig,) = drawn
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    bar, images = fig.axes[-1], fig.axes[:-1]
    assert [t.get_text() for t in bar.get_xticklabels()] == ["least", "most"]
    assert "each map scaled to its own image's range" in bar.get_title()
    box = bar.get_tightbbox(renderer)
    assert box.y0 >= 0 and box.x0 >= 0 and box.x1 <= fig.bbox.width
    assert all(box.y1 < ax.get_window_extent(renderer).y0 for ax in images)


def test_roc_and_pr_with_more_than_ten_classes_and_a_class_absent(tmp_path):
    y, probs, classes, _ = synthetic(12, per_class=8)
    y[y == 5] = 4  # class 5 has no test images: its curves are left out, not a crash
    assert_png(plots.plot_roc_curves(y, probs, classes, tmp_path / "roc.png"))
    assert_png(plots.plot_pr_curves(y, probs, classes, tmp_path / "pr.png"))


def test_training_curves_mark_step_and_continuous_lr_schedules(tmp_path):
    rows = [HistoryRow(epoch=e, loss=1 / e, val_loss=1 / e + 0.1, acc=1 - 1 / (e + 1), val_acc=0.9 - 1 / (e + 2),
                       lr=0.1 if e < 4 else 0.01, frozen=int(e <= 2)) for e in range(1, 9)]
    assert_png(plots.plot_training_curves(rows, tmp_path / "step.png", best_epoch=8))
    for r in rows:
        r.lr = 0.1 * 0.7 ** r.epoch  # changes every epoch: drawn as a curve
    assert_png(plots.plot_training_curves(rows, tmp_path / "cont.png"))
    one = RunDir(tmp_path)  # one epoch as history.csv stores it: empty validation cells
    (tmp_path / "history.csv").write_text("epoch,lr,loss,acc,val_loss,val_acc\n1,0.001,0.9,0.5,,\n")
    assert_png(plots.plot_training_curves(one.read_history(), tmp_path / "one.png"))


def test_a_one_epoch_run_is_ticked_at_its_epoch_and_its_validation_point_shows_under_the_star(tmp_path,
                                                                                              monkeypatch):
    """A 1-epoch run's axis was ticked 0.6, 0.8, 1.0, 1.2, 1.4 and the filled best-epoch star hid its only
    validation point, which the legend named."""
    from imgclf.evaluation.plots import training_curves

    saved = []
    monkeypatch.setattr(training_curves, "save_figure", lambda fig, path, **kw: saved.append(fig) or Path(path))
    rows = [HistoryRow(epoch=1, loss=0.9, val_loss=0.8, acc=0.5, val_acc=0.6, lr=0.1)]
    plots.plot_training_curves(rows, tmp_path / "one.png", best_epoch=1)
    (fig,) = saved
    fig.canvas.draw()
    for ax in fig.axes[:2]:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks == [1.0], ticks
        star = next(line for line in ax.lines if line.get_marker() == "*")
        assert star.get_markerfacecolor() == "none"  # an outline: the validation marker inside stays visible
    named = [t.get_text() for legend in fig.legends for t in legend.get_texts()] + \
        [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert "validation at the best epoch" in named, named  # the star was in no legend entry


def test_the_zoom_connectors_do_not_look_like_the_chance_line_they_cross(tmp_path, monkeypatch):
    """The lines joining the ROC zoom box to its inset were drawn like the chance diagonal and crossed it: the
    plot showed three grey diagonals where the legend named one."""
    from matplotlib.inset import InsetIndicator

    from imgclf.evaluation.plots import score_curves

    saved = []
    monkeypatch.setattr(score_curves, "save_figure", lambda fig, path, **kw: saved.append(fig) or Path(path))
    y, probs, classes, _ = synthetic(4)
    plots.plot_roc_curves(y, probs, classes, tmp_path / "roc.png")
    ax = saved[0].axes[0]
    (chance,) = [line for line in ax.lines if line.get_label() == "chance"]
    saved[0].canvas.draw()
    connectors = [c for indicator in ax.findobj(InsetIndicator) for c in indicator.connectors if c.get_visible()]
    assert connectors, "no zoom inset drawn"
    assert all(c.get_linestyle() == ":" and c.get_edgecolor() != chance.get_color() for c in connectors)


def test_a_loss_spike_puts_the_loss_panel_on_a_log_scale(tmp_path, monkeypatch):
    from imgclf.evaluation.plots import training_curves

    saved = []
    monkeypatch.setattr(training_curves, "save_figure", lambda fig, path, **kw: saved.append(fig) or Path(path))

    def loss_axis_scale(val_losses):
        rows = [HistoryRow(epoch=e, loss=0.8 - 0.01 * e, val_loss=v, acc=0.5, val_acc=0.5, lr=0.1)
                for e, v in enumerate(val_losses, 1)]
        plots.plot_training_curves(rows, tmp_path / "c.png")
        fig = saved.pop()
        fig.canvas.draw()
        title = fig.axes[1].title.get_window_extent()
        assert fig.bbox.x0 <= title.x0 and title.x1 <= fig.bbox.x1, "the loss panel's title runs off the figure"
        return fig.axes[1].get_yscale()

    # one validation epoch at loss 2,000 among 0.7s (a small data set at a high learning rate)
    assert loss_axis_scale([2.3, 2000.0, 150.0] + [0.7] * 12) == "log"
    assert loss_axis_scale([2.3, 1.2, 0.9] + [0.7] * 12) == "linear"  # an ordinary start stays linear
    assert not training_curves.loss_spikes(np.array([np.nan, 0.5, 0.4, 0.3]))


def test_grids_and_samples_tolerate_unreadable_and_empty_input(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(good)
    assert_png(plots.plot_class_samples({"good": str(good), "broken": str(broken)}, tmp_path / "cs.png"), min_side=100)
    assert decode_for_display([str(broken), str(good)], 16, "grayscale").keys() == {1}
    path = plots.plot_prediction_grid([], tmp_path / "empty.png")
    assert path.exists() and path.stat().st_size > 0


def test_a_grid_of_every_image_of_a_split_does_not_call_its_red_no_error_rate(monkeypatch, tmp_path):
    saved = []
    monkeypatch.setattr(plots.image_grids, "save_figure", lambda fig, path, **kw: saved.append(fig) or Path(path))
    image = np.zeros((8, 8, 3), np.uint8)
    samples = [{"image": image, "true": "a", "pred": p, "prob": 0.9, "correct": p == "a"} for p in "aab"]
    plots.plot_prediction_grid(samples, tmp_path / "s.png")
    plots.plot_prediction_grid(samples, tmp_path / "w.png", whole_split="test")
    mixed, whole = (fig._suptitle.get_text() for fig in saved)
    assert mixed == "Sample predictions: 1 wrong (red frame) and 2 right, mixed on purpose (not the error rate)"
    assert whole == "All 3 test images: 1 wrong (red frame) and 2 right"


# --------------------------------------------------------------------------------------------- issue 26: placement
def drawn(monkeypatch, draw):
    """The Figure a plot function saves, drawn, with its renderer."""
    saved = []
    monkeypatch.setattr(plots.score_curves, "save_figure", lambda fig, path, **kw: saved.append(fig) or Path(path))
    draw()
    (fig,) = saved
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from imgclf.plotting import style

    canvas = FigureCanvasAgg(fig)
    with style():
        canvas.draw()
    return fig, canvas.get_renderer()


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def points(line) -> np.ndarray:
    """A curve's points in display pixels, steps drawn as steps and segments filled in (every 1/200 of each)."""
    x, y = (np.asarray(v, dtype=np.float64) for v in line.get_data())
    if line.get_drawstyle().startswith("steps"):
        x, y = np.repeat(x, 2)[1:], np.repeat(y, 2)[:-1]
    t = np.linspace(0, 1, 200)[:, None]
    xy = np.column_stack([x, y])
    dense = (xy[:-1][None] * (1 - t[..., None]) + xy[1:][None] * t[..., None]).reshape(-1, 2) if len(xy) > 1 else xy
    return line.axes.transData.transform(dense)


@pytest.mark.parametrize("kind", ["roc", "pr"])
def test_curve_legend_is_off_the_plot_and_the_zoom_inset_covers_no_curve(monkeypatch, tmp_path, kind):
    """Issue 26: the ROC inset's connector lines crossed the legend (both sat on the plot)."""
    y, probs, classes, _ = synthetic(6, per_class=30)
    probs = probs ** 0.2 * np.eye(6)[y] + probs * 2.0  # a good model, not a perfect one: AUC about 0.99, so the
    # inset is drawn (at * 0.05 every AUC was 1.000)
    probs /= probs.sum(1, keepdims=True)
    draw = plots.plot_roc_curves if kind == "roc" else plots.plot_pr_curves
    fig, renderer = drawn(monkeypatch, lambda: draw(y, probs, classes, tmp_path / "c.png"))
    ax = fig.axes[0]
    (inset,) = ax.child_axes
    legend = (fig.legends or [ax.get_legend()])[0].get_window_extent(renderer)
    assert not overlaps(legend, ax.get_window_extent(renderer))  # so no connector line can cross it
    box = inset.get_tightbbox(renderer)  # with its tick labels and title
    for line in ax.get_lines():
        inside = [(box.x0 < px < box.x1) and (box.y0 < py < box.y1) for px, py in points(line)]
        assert not any(inside), f"the inset covers {line.get_label()!r}"


@pytest.mark.parametrize("kind", ["roc", "pr"])
@pytest.mark.parametrize("classes", [["0", "1", "2"], ["cat", "dog", "fish"], list("abcde"),
                                     ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt"]])
def test_curve_legend_fits_inside_the_figure(monkeypatch, tmp_path, kind, classes):
    """Three short class names were laid out in 3 columns, as 2 + 1 + 1 entries, where the width was reckoned
    for 2 + 2: the legend ran past both edges of the PR figure."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, len(classes), 120)
    probs = rng.dirichlet(np.ones(len(classes)), 120) + np.eye(len(classes))[y]
    probs /= probs.sum(1, keepdims=True)
    draw = plots.plot_roc_curves if kind == "roc" else plots.plot_pr_curves
    fig, renderer = drawn(monkeypatch, lambda: draw(y, probs, classes, tmp_path / "c.png"))
    legend, figure = fig.legends[0].get_window_extent(renderer), fig.bbox
    assert figure.x0 <= legend.x0 and legend.x1 <= figure.x1 and figure.y0 <= legend.y0, (legend, figure)


@pytest.mark.parametrize("kind", ["roc", "pr"])
def test_perfect_curves_get_no_zoom_inset(monkeypatch, tmp_path, kind):
    """Every AUC 1.000: nothing differs in the corner, and the inset only crossed the plot with its lines."""
    y, _, classes, _ = synthetic(4, per_class=20)
    probs = np.eye(4)[y] * 0.9 + 0.025  # every image's own class far ahead: perfect rankings
    draw = plots.plot_roc_curves if kind == "roc" else plots.plot_pr_curves
    fig, _ = drawn(monkeypatch, lambda: draw(y, probs, classes, tmp_path / "c.png"))
    assert fig.axes[0].child_axes == []


def test_reliability_legend_covers_no_bar(monkeypatch, tmp_path):
    """Issue 26: the reliability diagram's legend (upper left, on the plot) covered a bar."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 600)
    probs = rng.dirichlet(np.ones(4) * 0.7, 600)  # confidences from 0.25 to 1; accuracy near chance in every bin
    probs[np.arange(600)[:300], y[:300]] += 0.3  # half of them right: high bars at low confidence
    probs /= probs.sum(1, keepdims=True)
    fig, renderer = drawn(monkeypatch, lambda: plots.plot_reliability(y, probs, tmp_path / "r.png"))
    top = fig.axes[0]
    legend = (fig.legends or [top.get_legend()])[0].get_window_extent(renderer)
    assert len(top.patches) > 5
    assert not [p for p in top.patches if overlaps(legend, p.get_window_extent(renderer))]
    assert not overlaps(legend, top.get_window_extent(renderer))


def test_every_per_class_bar_carries_its_number_even_a_zero(tmp_path, monkeypatch):
    """A class scoring 0 drew no bar and no number, and a short bar (recall 0.17) no number: read as missing."""
    from imgclf.evaluation.plots import per_class as module
    from imgclf.records import ClassScores

    seen = {}
    real_save = module.save_figure

    def save(fig, path, *args, **kwargs):
        seen["texts"] = [t.get_text() for t in fig.axes[0].texts]
        return real_save(fig, path, *args, **kwargs)

    monkeypatch.setattr(module, "save_figure", save)
    scores = {"shirt": ClassScores(precision=0, recall=0, f1=0, support=6),
              "sneaker": ClassScores(precision=1.0, recall=0.17, f1=0.29, support=6)}
    module.plot_per_class_metrics(scores, tmp_path / "pc.png")
    shown = [t for t in seen["texts"] if t and not t.startswith("n=")]
    assert sorted(shown) == sorted(["0", "0", "0", "1.00", "0.17", "0.29"])


def test_training_curves_show_the_kept_weights_accuracy_after_batch_norm_recompute(tmp_path, monkeypatch):
    """The curve read 18 % at the kept epoch where the model kept, its batch-norm statistics recomputed, scored 60 %:
    only the report's text said why. The figure draws the kept model's point and names it; where the two agree,
    nothing is added."""
    from imgclf.evaluation.plots import training_curves as module

    seen = []
    real_save = module.save_figure

    def save(fig, path, *args, **kwargs):
        acc_ax = fig.axes[0]
        points = [line.get_xydata().tolist() for line in acc_ax.lines if line.get_marker() == "D"]
        seen.append((points, [t.get_text() for t in fig.legends[0].get_texts()], acc_ax.get_ylim()))
        return real_save(fig, path, *args, **kwargs)

    monkeypatch.setattr(module, "save_figure", save)
    rows = [HistoryRow(epoch=e, loss=1 / e, val_loss=1 / e + 0.1, acc=0.5 + e / 20, val_acc=0.18, lr=0.1)
            for e in range(1, 6)]
    module.plot_training_curves(rows, tmp_path / "a.png", best_epoch=4, kept_val_acc=0.6)
    module.plot_training_curves(rows, tmp_path / "b.png", best_epoch=4, kept_val_acc=0.18)
    (points, labels, ylim), (same_points, same_labels, _) = seen
    assert points == [[[4.0, 0.6]]] and ylim[0] <= 0.6 <= ylim[1]
    assert "kept weights, batch-norm statistics recomputed (0.600)" in labels
    assert same_points == [] and not any(label.startswith("kept weights") for label in same_labels)


def test_a_class_without_test_images_is_drawn_with_dashes_as_the_table_shows_it(tmp_path, monkeypatch):
    """The table shows "—" for the recall and F1 of a class the test split holds no image of (nothing to divide
    by); the figure beside it drew "0" for both, which read as "always missed"."""
    import shutil

    import imgclf
    from conftest import make_image_folder
    from imgclf.evaluation.plots import per_class as module

    data = make_image_folder(tmp_path / "data", layout="splits", per_split={"train": 12, "test": 6})
    shutil.rmtree(data / "test" / "fox")
    seen = {}
    real_save = module.save_figure

    def save(fig, path, *args, **kwargs):
        if Path(path).name == "per_class.png":
            seen["texts"] = [t.get_text() for t in fig.axes[0].texts]
        return real_save(fig, path, *args, **kwargs)

    monkeypatch.setattr(module, "save_figure", save)
    run = imgclf.fit({"data": str(data), "img_size": 16, "epochs": 1, "progress": False, "model_args": {"width": 8},
                      "out": str(tmp_path / "run"), "val_split": 0.25})
    never_predicted = int((np.asarray(run.metrics.confusion).sum(axis=0) == 0).sum())
    # fox's recall and F1, and the precision of each class never predicted
    assert seen["texts"].count("—") == 2 + never_predicted, (seen["texts"], run.metrics.confusion)


def test_unknown_score_ticks_of_a_pretrained_backbone_do_not_run_together(monkeypatch, tmp_path):
    """Mahalanobis scores of 2,560 features (-16000 ... -8000) were ticked every 2,000 in full across the half-width
    figure, and the labels ran into one string; the legend said -1.582e+04 where the facts table says -15818.470."""
    rng = np.random.default_rng(0)
    scores = {"validation": rng.uniform(-16500, -5200, 300), "test": rng.uniform(-17000, -5500, 300)}
    fig, renderer = drawn(monkeypatch, lambda: plots.plot_score_distributions(scores, -15818.47, "mahalanobis-l2",
                                                                             tmp_path / "s.png"))
    ax = fig.axes[0]
    labels = [t for t in ax.get_xticklabels() if t.get_text() and ax.get_xlim()[0] <= t.get_position()[0]
              <= ax.get_xlim()[1]]
    assert 3 <= len(labels) <= 6 and all(len(t.get_text()) <= 6 for t in labels)
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:]))  # apart, left to right
    # and well apart: the labels fill at most half the axis (in full, six of them filled two thirds and touched
    # in the report's fonts)
    assert sum(b.width for b in boxes) < 0.5 * ax.get_window_extent(renderer).width
    assert "threshold -15818.470: unknown below" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_an_epoch_cut_short_is_drawn_hollow_with_its_share(tmp_path, monkeypatch):
    """A time limit's last epoch, cut at 66 % of its batches, was drawn as any other: its train loss over two
    thirds of a pass and its dip in validation read as the run's course."""
    from imgclf.evaluation.plots import training_curves

    saved = []
    monkeypatch.setattr(training_curves, "save_figure", lambda fig, path, **kw: saved.append(fig) or Path(path))
    rows = [HistoryRow(epoch=i, loss=1 / i, val_loss=1.1 / i, acc=1 - 0.5 / i, val_acc=1 - 0.6 / i, lr=0.01,
                       fraction=0.6667 if i == 4 else None) for i in range(1, 5)]
    for history, cut in ((rows, True), ([r.model_copy(update={"fraction": None}) for r in rows], False)):
        plots.plot_training_curves(history, tmp_path / "c.png", best_epoch=3)
        fig = saved.pop()
        for ax in fig.axes[:2]:
            hollow = [line for line in ax.lines if line.get_marker() == "o" and line.get_markerfacecolor() == "white"]
            assert [list(line.get_xdata()) for line in hollow] == ([[4], [4]] if cut else [])
            assert ("66 %" in [t.get_text() for t in ax.texts]) == cut
        assert any("epoch cut short" in t.get_text() for t in fig.legends[0].get_texts()) == cut


def test_a_shortened_class_name_names_one_class_of_the_run_in_every_figure(tmp_path, monkeypatch):
    """With 22 classes "very_long_class_name_number_NN_xxxxxx", the ROC title's lowest class read
    "very_lon…bbbbbb" (three classes end so) and a tile read "True: very_lon…ffff" in one figure and
    "ver…15_ffffff" in the Grad-CAM grid: each figure cut names apart only among the names it happened to show."""
    from imgclf.evaluation.plots import image_grids, score_curves

    k = 22
    y, probs, _, _ = synthetic(k)
    classes = [f"very_long_class_name_number_{i:02d}_{'abcdefghij'[i % 10] * 6}" for i in range(k)]
    saved = []
    monkeypatch.setattr(score_curves, "save_figure", lambda fig, path, **kw: saved.append(fig) or Path(path))
    monkeypatch.setattr(image_grids, "save_figure", lambda fig, path, **kw: saved.append(fig) or Path(path))

    def named(text: str) -> list[str]:
        """The classes a cut name can stand for: those that begin and end as it does."""
        head, _, tail = text.partition("…")
        return [c for c in classes if c.startswith(head) and c.endswith(tail)]

    from sklearn.metrics import roc_auc_score

    plots.plot_roc_curves(y, probs, classes, tmp_path / "roc.png")
    title = saved[-1].axes[0].get_title()
    shown = title.split("lowest AUC: ")[1].rsplit(" (", 1)[0]
    worst = min(range(k), key=lambda c: roc_auc_score(y == c, probs[:, c]))  # its suffix is two other classes' too
    assert named(shown) == [classes[worst]], title

    image = np.zeros((16, 16, 3), np.uint8)
    sample = [{"image": image, "true": classes[15], "pred": classes[7], "prob": 0.86, "loss": 2.0, "correct": False}]
    plots.plot_top_losses(sample, tmp_path / "top.png", classes=classes)
    plots.plot_gradcam_grid([{**sample[0], "heatmap": np.zeros((16, 16))}], tmp_path / "cam.png", classes=classes)
    captions = [next(ax.get_title() for ax in fig.axes if ax.get_title().startswith("True:")) for fig in saved[1:]]
    assert captions[0].splitlines()[:2] == captions[1].splitlines()[:2], captions  # the same names in both
    true, pred = (line.split(": ", 1)[1].split(" (")[0] for line in captions[0].splitlines()[:2])
    assert (named(true), named(pred)) == ([classes[15]], [classes[7]]), captions


def test_the_grad_cam_overlay_lies_on_the_image_in_grey(tmp_path, monkeypatch):
    """On a red picture the map's red ("most evidence") was the picture's own colour: the overlay now lies on the
    image's luminance, the colour image above it unchanged."""
    from imgclf.evaluation.plots import image_grids

    drawn = []
    monkeypatch.setattr(image_grids, "save_figure", lambda fig, path, **kw: drawn.append(fig) or Path(path))
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 200
    heat = np.linspace(0, 1, 256).reshape(16, 16)
    plots.plot_gradcam_grid([{"image": red, "heatmap": heat, "true": "a", "pred": "a", "prob": 0.9,
                              "correct": True}], tmp_path / "g.png")
    top, bottom = [ax for ax in drawn[0].axes if ax.images][:2]
    assert np.array_equal(np.asarray(top.images[0].get_array()), red)
    under = np.asarray(bottom.images[0].get_array())
    assert under.shape == red.shape and (under[..., 0] == under[..., 1]).all() and (under[..., 1] == under[..., 2]).all()
    assert under[0, 0, 0] == round(0.299 * 200)
    assert len(bottom.images) == 2  # the map over it


def test_classes_tied_for_the_lowest_score_are_counted_in_the_title(tmp_path, monkeypatch):
    """Four classes tied at the lowest AUC (0.966): the title named one of them as if it stood alone."""
    from imgclf.evaluation.plots import score_curves

    k = 12
    y = np.repeat(np.arange(k), 10)
    probs = np.full((len(y), k), 0.05)
    probs[np.arange(len(y)), y] = 0.5
    for c in (1, 5, 7, 9):  # each of these misses one of its own images the same way: the same AUC
        probs[np.flatnonzero(y == c)[0], c] = 0.01
    classes = [f"class_{i:02d}" for i in range(k)]
    saved = []
    monkeypatch.setattr(score_curves, "save_figure", lambda fig, path, **kw: saved.append(fig) or Path(path))
    plots.plot_roc_curves(y, probs, classes, tmp_path / "roc.png")
    assert saved[-1].axes[0].get_title().endswith("lowest AUC: class_01 and 3 more (0.900)"), \
        saved[-1].axes[0].get_title()
    probs[np.flatnonzero(y == 5)[0], 5] = 0.02  # still below every other class's image: the same AUC
    probs[np.flatnonzero(y == 7)[0], 7] = 0.5
    probs[np.flatnonzero(y == 9)[0], 9] = 0.5
    plots.plot_roc_curves(y, probs, classes, tmp_path / "roc.png")
    assert saved[-1].axes[0].get_title().endswith("lowest AUC: class_01 and 1 more (0.900)"), \
        saved[-1].axes[0].get_title()
    # with long names the line is wrapped, not cut at the figure's edges
    classes = [f"very_long_class_name_number_{i:02d}_xyz" for i in range(k)]
    plots.plot_roc_curves(y, probs, classes, tmp_path / "roc.png")
    fig = saved[-1]
    with style():  # laid out as saved (a bare canvas draws nothing, nor runs the layout)
        fig.draw_without_rendering()
    box = fig.axes[0].title.get_window_extent()
    assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1, (box, fig.bbox)
    assert "and 1 more" in fig.axes[0].get_title()


def test_class_sample_captions_in_a_wide_script_stay_inside_their_cells(monkeypatch, tmp_path):
    """Captions were cut to a count of "m"-wide characters: 14 CJK ones (171 px in a 147 px cell) ran into the
    next cell's caption and past the figure's edge."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from imgclf.plotting import style

    image = tmp_path / "i.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(image)
    names = [f"上海市浦东新区博物馆藏品{kind}照片" for kind in "陶瓷青铜书画玉器钱币家具"]
    saved = []
    monkeypatch.setattr(plots.image_grids, "save_figure", lambda fig, path, **kw: saved.append(fig) or Path(path))
    plots.plot_class_samples({name: str(image) for name in names}, tmp_path / "cs.png")
    (fig,) = saved
    canvas = FigureCanvasAgg(fig)
    with style():
        canvas.draw()
    renderer = canvas.get_renderer()
    titles = [ax.title for ax in fig.axes if ax.title.get_text()]
    boxes = [t.get_window_extent(renderer) for t in titles]
    assert len({t.get_text() for t in titles}) == len(names)  # still told apart
    assert all(0 <= b.x0 and b.x1 <= fig.bbox.width for b in boxes)
    assert not any(overlaps(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_a_short_bar_holds_its_number_only_where_its_pixels_do(tmp_path, monkeypatch):
    """Beside long class names the axes shrink: a 0.25 bar lost the 0 of its white "0.25" off its start."""
    from matplotlib.colors import to_hex

    from imgclf.evaluation.plots import per_class as module
    from imgclf.records import ClassScores

    seen = []
    monkeypatch.setattr(module, "save_figure", lambda fig, path, **kw: seen.append(
        {t.get_text(): to_hex(t.get_color()) for t in fig.axes[0].texts if t.get_text()}) or Path(path))
    score = ClassScores(precision=0.25, recall=0.9, f1=0.4, support=3)
    module.plot_per_class_metrics({"a": score, "b": score}, tmp_path / "short.png")
    module.plot_per_class_metrics({"東京都美術館所蔵の昼景写真コレクション": score, "b": score}, tmp_path / "long.png")
    short_names, long_names = seen
    assert short_names["0.25"] == "#ffffff" and long_names["0.25"] != "#ffffff"  # inside; beside, in grey
    assert long_names["0.90"] == "#ffffff"
    # the number's offset is in points (31 pt, 47 px): a 0.11 bar of 41 px had its white number start before it
    module.plot_per_class_metrics({"a": ClassScores(precision=0.11, recall=0.9, f1=0.2, support=3)}, tmp_path / "s")
    assert seen[-1]["0.11"] != "#ffffff"


def test_the_dot_chart_shows_every_score_whole_and_a_dash_where_one_is_undefined(tmp_path, monkeypatch):
    """Above 30 classes: recall and F1 both 0 drew one dot over the other, dots at 0 and 1 were cut in half, and a
    precision with nothing to divide by was left out where the docstring promised a dash."""
    from imgclf.evaluation.plots import per_class as module
    from imgclf.records import ClassScores

    seen = []
    monkeypatch.setattr(module, "save_figure", lambda fig, path, **kw: seen.append(fig) or Path(path))
    scores = {f"c{i}": ClassScores(precision=0, recall=0, f1=0, support=2) for i in range(31)}
    shown = {c: {"precision": None, "recall": 0.0, "f1": 0.0} for c in scores}
    module.plot_per_class_metrics(scores, tmp_path / "pc.png", shown=shown)
    (fig,) = seen
    points = [(c.get_offsets(), c.get_clip_on()) for c in fig.axes[0].collections]
    drawn = [offsets[np.isfinite(offsets[:, 0])] for offsets, _ in points]
    first_row = {tuple(p) for rows in drawn for p in rows if p[1] < 0.5}
    assert len(first_row) == 3  # precision's dash, recall and F1: three places, none over another
    assert not any(clip for _, clip in points)
