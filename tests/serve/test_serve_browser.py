"""The upload page in real headless Chromium against a real uvicorn server on a loopback port."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/lib/chromium/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def server_url(tiny_run):
    import uvicorn

    from imgclf.serve import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # a free port, loopback only
    server = uvicorn.Server(uvicorn.Config(create_app(tiny_run), log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_upload_an_image_and_read_the_predicted_label(server_url, tiny_run, image_folder, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from imgclf.inference import Classifier

    image = sorted(image_folder.glob("fox/*.png"))[2]
    expected = Classifier.load(tiny_run).predict([str(image)], top_k=3)[0]
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server_url)
            # Locators and arrow functions only: the page's CSP (script-src 'self') forbids the eval a
            # string predicate needs, and whether Playwright reaches that eval depends on timing.
            expect(page.locator("#model-name")).to_have_text("simple_cnn")
            page.set_input_files("#file", str(image))
            label = page.wait_for_selector("[data-testid=label]", timeout=15_000)
            assert label.text_content() == expected.label
            bars = page.locator(".bars li")
            assert bars.count() == 3
            assert bars.first.get_attribute("aria-label").startswith(f"{expected.label}: ")
            # the bar as drawn: its rendered width relative to its track is the probability
            fraction = page.eval_on_selector(
                ".bars li .fill", "e => e.getBoundingClientRect().width / e.parentElement.getBoundingClientRect().width")
            assert fraction == pytest.approx(expected.probability, abs=0.01)
            page.wait_for_function("() => document.querySelector('.preview').naturalWidth > 0")  # the image is shown
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

            # a file that is not an image, then one beside a good image: each file gets its own card, the bad one
            # with the server's reason; nothing of the previous upload stays on the page
            bad = tmp_path / "notes.png"
            bad.write_text("not an image")
            page.set_input_files("#file", str(bad))
            page.wait_for_selector(".result.failed", timeout=15_000)
            assert page.locator(".result").count() == 1, "the previous upload's result must be gone"
            assert page.text_content(".result.failed .file") == "notes.png"
            assert "not a recognised image format" in page.text_content(".result.failed .reason")
            assert page.locator("#error").is_hidden()
            page.set_input_files("#file", [str(image), str(bad)])
            page.wait_for_selector(".result:not(.failed) [data-testid=label]", timeout=15_000)
            assert page.locator(".result").count() == 2 and page.locator(".result.failed").count() == 1
            assert page.text_content("[data-testid=label]") == expected.label
            assert page.text_content("#status").startswith("1 of 2 image(s) classified; 1 could not be used")
            page.wait_for_function("() => document.querySelector('.result:not(.failed) .preview').naturalWidth > 0")
            page.screenshot(path=str(tmp_path / "mixed.png"), full_page=True)

            # an upload refused as a whole (more files than the server takes): its message, and no old results
            many = []
            for i in range(33):
                many.append(tmp_path / f"copy{i}.png")
                many[-1].write_bytes(image.read_bytes())
            page.set_input_files("#file", [str(p) for p in many])
            page.wait_for_selector("#error:not([hidden])", timeout=15_000)
            assert "At most 32 images" in page.text_content("#error")
            assert page.locator(".result").count() == 0 and page.text_content("#status") == ""
        finally:
            browser.close()
    # the upload of one unreadable file is answered 422, which Chromium logs as a failed resource: once, and nothing
    # else (no script error)
    assert errors == ["Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"], \
        errors


def test_an_image_of_no_known_class_is_shown_as_unknown(server_url, tiny_run, tmp_path):
    import numpy as np
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright

    from imgclf.inference import Classifier

    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(noise)
    expected = Classifier.load(tiny_run).predict([str(noise)], top_k=3)[0]
    assert expected.unknown, "uniform noise must score below the tiny run's threshold"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(server_url)
            expect(page.locator("#model-info")).to_contain_text("called unknown")
            page.set_input_files("#file", str(noise))
            page.wait_for_selector(".result.unknown [data-testid=label]", timeout=15_000)
            assert page.text_content("[data-testid=label]") == "Unknown"
            trust = page.text_content(".result .trust")
            assert trust.startswith("Like none of the classes") and "unknown below" in trust
            # the closest known classes are still listed, closest first
            assert page.locator(".bars li").first.get_attribute("aria-label").startswith(f"{expected.best_label}: ")
            page.screenshot(path=str(tmp_path / "unknown.png"), full_page=True)
        finally:
            browser.close()
