"""A real browser (Debian's Chromium, driven by Playwright) uses the app the way a person does.

Set SIEVENET_SCREENSHOT=path.png to keep the screenshot (the README's assets/screenshot.png is made this way).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from demo import CONCURRENCY_LIMIT, LAUNCH_SETTINGS, create_demo, load_pipeline, warm_up  # noqa: E402
from demo.ui import EXAMPLES_DIR, find_examples  # noqa: E402
from sievenet.pipeline import STAGES  # noqa: E402

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("SIEVENET_CHROMIUM", "/usr/bin/chromium")
# Playwright's own browser download cannot work offline; these flags keep Chromium off the network too.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (`apt-get install chromium`, as .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def app():
    """The app exactly as `python app.py` builds it: shipped weights, or an untrained model with a banner."""
    pipeline, banner = load_pipeline()
    warm_up(pipeline)
    app = create_demo(pipeline, banner=banner)
    app.queue(default_concurrency_limit=CONCURRENCY_LIMIT).launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        **LAUNCH_SETTINGS,
    )
    yield app.local_url, banner
    app.close()


def test_upload_pair_click_try_on_and_see_every_stage(browser, app, tmp_path):
    person = find_examples(EXAMPLES_DIR / "persons")[0]
    garment = find_examples(EXAMPLES_DIR / "garments")[0]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    url, banner = app
    page.goto(url)
    page.wait_for_selector("#tryon-button")
    if banner:  # no trained weights shipped yet: the page must say so
        assert "weights are untrained" in page.locator("#untrained-banner").inner_text()
    else:
        assert page.locator("#untrained-banner").count() == 0

    page.locator("#person input[type=file]").set_input_files(person)
    page.locator("#garment input[type=file]").set_input_files(garment)
    page.wait_for_selector("#person img")
    page.wait_for_selector("#garment img")
    start = time.perf_counter()
    page.click("#tryon-button")
    page.wait_for_function(
        f"document.querySelectorAll('#stages img').length >= {len(STAGES)}"
        " && [...document.querySelectorAll('#result img')].some(img => img.complete && img.naturalWidth > 0)",
        timeout=120_000,
    )
    click_to_result_ms = (time.perf_counter() - start) * 1000
    page.wait_for_function(
        "[...document.querySelectorAll('#stages img')].every(img => img.complete && img.naturalWidth > 0)",
        timeout=30_000,
    )

    captions = page.locator("#stages").inner_text()
    for caption in STAGES.values():
        assert caption in captions
    assert page.locator(".toast-body.error").count() == 0
    assert "Done in" in page.locator("#status").inner_text()
    assert page.locator("#comparison img").count() >= 2
    assert "sievenet-tryon" in page.locator("#bundle").inner_text()  # the "Download all" zip is offered

    # The grid overlay redraws the two warps in place, without another try-on.
    page.get_by_label("Overlay the TPS control grid on both warps").check()
    page.wait_for_function(
        "(document.querySelector('#stages').innerText.match(/TPS grid/g) || []).length == 2", timeout=30_000
    )
    assert page.locator(".toast-body.error").count() == 0
    page.get_by_label("Overlay the TPS control grid on both warps").uncheck()
    page.wait_for_function(
        "!document.querySelector('#stages').innerText.includes('TPS grid')", timeout=30_000
    )

    shot = tmp_path / "screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if target := os.environ.get("SIEVENET_SCREENSHOT"):
        shutil.copy(shot, target)
    print(f"click to final image: {click_to_result_ms:.0f} ms")
    page.close()


def test_try_on_without_a_photo_shows_a_message_not_a_trace(browser, app):
    page = browser.new_page()
    page.goto(app[0])
    page.wait_for_selector("#tryon-button")
    page.click("#tryon-button")  # nothing uploaded yet
    page.wait_for_selector(".toast-body.error", timeout=30_000)
    message = page.locator(".toast-body.error").first.inner_text()
    assert "No person photo yet" in message and "Traceback" not in message
    page.close()
