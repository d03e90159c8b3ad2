"""Fixtures for the evaluation tests: a real headless Chromium page checker and three small runs for compare.

A helper module, not a conftest.py: a second module named `conftest` would shadow tests/conftest.py for the
suites that do `from conftest import make_image_folder`. Test modules import the fixtures they use.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import make_image_folder

CHROMIUM = "/usr/lib/chromium/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")  # one Playwright at a time: a sync_playwright cannot start inside another
def load_in_chromium():
    """load(path, width=1280) -> {"errors", "requests", "images", "anchors_missing", "pixel_std", "text", "height",
    "figures", "clipped", "wider", "spilled"} for a local HTML file in a window `width` pixels wide.

    errors: console errors and page exceptions; requests: any request that is not the file itself or a data: URI
    (a self-contained page makes none); images: (alt, naturalWidth) per <img>; pixel_std: standard deviation of the
    full-page screenshot's pixels (0 for a blank page); height: the page's height in pixels as it opens (<details>
    closed); figures: per <img>, with every <details> opened, {"alt", "natural", "shown", "top", "text_px"}:
    shown is its rendered width inside its border, top its y on the page, and text_px the pixel height of its
    smallest text as displayed: the PNG's own (imgclf.plotting.TEXT_PX_KEY; None when absent) times shown / natural;
    clipped: the first header of each table box whose content is wider than the box (it scrolls sideways); wider:
    the page is wider than the window (it scrolls sideways); spilled: the start of each block's text that runs
    past its right edge, over what lies beside it.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright
    from PIL import Image
    import base64
    import io

    from imgclf.plotting import TEXT_PX_KEY

    def text_px(src: str, natural: int, shown: float) -> float | None:
        if not src.startswith("data:image/png;base64,") or not natural:
            return None
        value = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).info.get(TEXT_PX_KEY)
        return float(value) * shown / natural if value is not None else None

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def load(path: Path, width: int = 1280) -> dict:
            page = browser.new_page(viewport={"width": width, "height": 900})
            errors, requests = [], []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            url = Path(path).resolve().as_uri()
            page.on("request", lambda r: None if r.url in (url,) or r.url.startswith("data:") else requests.append(r.url))
            page.goto(url, wait_until="load")
            images = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.naturalWidth, e.complete])")
            anchors_missing = page.evaluate(
                "() => [...document.querySelectorAll('a[href^=\"#\"]')].map(a => a.getAttribute('href').slice(1))"
                ".filter(id => !document.getElementById(id))")
            text = page.inner_text("body")
            # tables wider than the box they sit in (a column scrolled out of view, or past the section's edge)
            clipped = page.eval_on_selector_all(
                "table", "els => els.filter(e => e.getBoundingClientRect().right > "
                "e.parentElement.getBoundingClientRect().right + 1)"
                ".map(e => (e.querySelector('th') || e).textContent.trim().slice(0, 40))")
            # the page itself wider than the window: a horizontal scrollbar (a setting's long value did that)
            wider = page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth")
            # text running out of its box over its neighbours (a long class name that does not wrap)
            spilled = page.evaluate(
                "() => [...document.querySelectorAll('div, p, li, td, th, h1, h2, h3')].filter(e => {"
                "const s = getComputedStyle(e); return s.display !== 'inline' && s.overflowX === 'visible' && "
                "e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1}).map(e => e.textContent.trim().slice(0, 60))")
            shot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("L")
            height = page.evaluate("() => document.documentElement.scrollHeight")
            page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
            rendered = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.alt, e.src, e.naturalWidth, e.clientWidth, "
                "e.getBoundingClientRect().top + window.scrollY])")
            figures = [{"alt": alt, "natural": natural, "shown": shown, "top": top,
                        "text_px": text_px(src, natural, shown)} for alt, src, natural, shown, top in rendered]
            page.close()
            return {"errors": errors, "requests": requests, "images": images, "anchors_missing": anchors_missing,
                    "pixel_std": float(np.asarray(shot, dtype=np.float64).std()), "text": text, "height": height,
                    "figures": figures, "clipped": clipped, "wider": wider, "spilled": spilled}

        yield load
        browser.close()


@pytest.fixture()
def run_copy(tiny_run, tmp_path) -> Path:
    """A private copy of the session's tiny run, for tests that rewrite its files."""
    return Path(shutil.copytree(tiny_run, tmp_path / "tiny"))


@pytest.fixture(scope="session")
def compare_runs_dirs(tmp_path_factory, image_folder) -> list[Path]:
    """Three 1-epoch runs: two with the same config but seeds 0 and 1, and one on a step-imbalanced copy."""
    import imgclf

    root = tmp_path_factory.mktemp("compare")
    imbalanced = make_image_folder(root / "imbalanced", classes=("cat", "dog", "fox"), per_class=24, seed=3)
    for f in sorted((imbalanced / "fox").iterdir())[6:]:  # fox: 6 images against 24 -> rho 4, flagged
        f.unlink()
    base = {"model": "simple_cnn", "img_size": 16, "epochs": 1, "batch_size": 16, "lr": 3e-3, "progress": False,
            "model_args": {"width": 8}, "val_split": 0.2, "test_split": 0.25}
    runs = []
    for name, extra in (("a-seed0", {"data": str(image_folder), "seed": 0}),
                        ("a-seed1", {"data": str(image_folder), "seed": 1}),
                        ("b-imbalanced", {"data": str(imbalanced), "seed": 0})):
        runs.append(imgclf.fit({**base, **extra, "out": str(root / name)}, report=False).path)
    return runs
