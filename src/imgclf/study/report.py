"""study.html: the imbalance study's tables and figures in one self-contained page (images embedded)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from . import figures


def _fmt(stat: dict[str, Any] | None, digits: int = 3) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    return text + (f" ± {stat['std']:.{digits}f}" if stat.get("std") is not None else "")


def _embed(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def write_study_report(out: str | Path, study: dict[str, Any]) -> Path:
    """Draw the figures into OUT/plots/ and write OUT/study.html; returns the page's path."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    out = Path(out)
    plots = out / "plots"
    images = {"metrics": _embed(figures.plot_metrics_vs_rho(study, plots / "metrics_vs_rho.png"))}
    # The ratio with the most configurations (the largest on a tie): where correctives are compared.
    by_rho = {float(rho): [c for c in study["table"] if rho in study["table"][c]]
              for rho in {r for t in study["table"].values() for r in t}}
    if by_rho and max(len(v) for v in by_rho.values()) > 1:
        rho = max(by_rho, key=lambda r: (len(by_rho[r]), r))
        images["by_config"] = _embed(figures.plot_class_recall_by_config(study, rho, plots / "class_recall_by_config.png"))
    per_config = {}
    for config in study["configs"]:
        if not any(r["config"] == config and r["finished"] for r in study["runs"]):
            continue
        safe = config.replace("+", "_")
        per_config[config] = {"curves": _embed(figures.plot_curves(study, config, plots / f"curves_{safe}.png"))}
        if len(study["table"].get(config, {})) > 1:  # a recall-vs-rho line needs two ratios
            per_config[config]["recall"] = _embed(figures.plot_class_recall(study, config, plots / f"class_recall_{safe}.png"))
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape())
    env.filters["fmt"] = _fmt
    html = env.get_template("study.html").render(study=study, images=images, per_config=per_config,
                                                 reports={r["run"]: (out / r["run"] / "report.html").exists()
                                                          for r in study["runs"]})
    path = out / "study.html"
    atomic_write_text(path, html)
    return path
