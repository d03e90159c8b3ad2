"""study.html: the imbalance study's tables and figures in one self-contained page (images embedded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from ..pages import embed_png, render
from . import figures
from .configurations import PROTOCOLS


def write_study_report(out: str | Path, study: dict[str, Any]) -> Path:
    """Draw the figures into OUT/plots/ and write OUT/study.html; returns the page's path."""
    out = Path(out)
    folder = out / "plots"
    images: dict[str, Any] = {"metrics": embed_png(figures.plot_metrics_vs_rho(study, folder / "metrics_vs_rho.png")),
                              "by_config": None, "overlay": None}
    # S4's figure: the configurations' curves on one chart per ratio, where there are configurations to compare.
    if any(len(configs) > 1 for configs in study.get("curves_by_config", {}).values()):
        images["overlay"] = embed_png(figures.plot_configs_overlaid(study, folder / "curves_by_config.png"))
    # The ratio with the most configurations (the largest on a tie): where correctives are compared.
    by_rho = {float(rho): [c for c in study["table"] if rho in study["table"][c]]
              for rho in {r for t in study["table"].values() for r in t}}
    if by_rho and max(len(v) for v in by_rho.values()) > 1:
        rho = max(by_rho, key=lambda r: (len(by_rho[r]), r))
        images["by_config"] = embed_png(figures.plot_class_recall_by_config(study, rho,
                                                                            folder / "class_recall_by_config.png"))
    per_config = {}
    for config in study["configs"]:
        if not any(r["config"] == config and r["finished"] for r in study["runs"]):
            continue
        safe = config.replace("+", "_")
        per_config[config] = {"curves": embed_png(figures.plot_curves(study, config, folder / f"curves_{safe}.png")),
                              "recall": None}
        if len(study["table"].get(config, {})) > 1:  # a recall-vs-rho line needs two ratios
            per_config[config]["recall"] = embed_png(
                figures.plot_class_recall(study, config, folder / f"class_recall_{safe}.png"))
    protocol = study.get("protocol") or {"name": "standard", "description": PROTOCOLS["standard"], "held_out": "val"}
    html = render("study.html", study=study, images=images, per_config=per_config, protocol=protocol,
                  held_label=figures.held_out(study)[1], scored=figures.scored(study),
                  reports={r["run"]: (out / r["run"] / "report.html").exists() for r in study["runs"]})
    path = out / "study.html"
    atomic_write_text(path, html)
    return path
