"""One function per figure. Each takes data already read from a run's records and an output path, and writes a PNG
through the plotting stack (`imgclf.plotting`: one style, Figure objects, atomic writes, no mathtext in user text).

Sizes are chosen for the report page: a figure is drawn as wide as its slot there (FULL_WIDTH_PX across the page,
HALF_WIDTH_PX beside another), so the page shows it at its natural size, and no text is smaller than MIN_FONT_PT.
Figures that need more room for many classes grow instead of shrinking their text; the page then shows them in a
scroll frame at their natural size.

Modules: `layout` (font sizes, text measurement, titles, the image-cell grid), `training_curves` (curves over
epochs), `per_class` (confusion matrix, per-class scores, class distribution), `score_curves` (ROC, PR,
reliability, unknown scores), `image_grids` (predictions, top losses, Grad-CAM, class samples).
"""

from ...plotting import MAX_PIXELS, MAX_TALL_PIXELS  # the caps every figure here respects
from .image_grids import (
    plot_class_samples,
    plot_gradcam_grid,
    plot_prediction_grid,
    plot_top_losses,
)
from .per_class import (
    plot_class_distribution,
    plot_confusion_matrix,
    plot_per_class_metrics,
)
from .score_curves import (
    plot_pr_curves,
    plot_reliability,
    plot_roc_curves,
    plot_score_distributions,
)
from .training_curves import plot_compare_curves, plot_training_curves

__all__ = [
    "MAX_PIXELS", "MAX_TALL_PIXELS", "plot_class_distribution", "plot_class_samples", "plot_compare_curves",
    "plot_confusion_matrix",
    "plot_gradcam_grid", "plot_per_class_metrics", "plot_pr_curves", "plot_prediction_grid", "plot_reliability",
    "plot_roc_curves", "plot_score_distributions", "plot_top_losses", "plot_training_curves",
]
