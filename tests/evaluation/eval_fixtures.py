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
    """load(path) -> {"errors", "requests", "images", "anchors_missing", "pixel_std", "text"} for a local HTML file.

    errors: console errors and page exceptions; requests: any request that is not the file itself or a data: URI
    (a self-contained page makes none); images: (alt, naturalWidth) per <img>; pixel_std: standard deviation of the
    full-page screenshot's pixels (0 for a blank page).
    """
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright
    from PIL import Image
    import io

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def load(path: Path) -> dict:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
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
            shot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("L")
            page.close()
            return {"errors": errors, "requests": requests, "images": images, "anchors_missing": anchors_missing,
                    "pixel_std": float(np.asarray(shot, dtype=np.float64).std()), "text": text}

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
