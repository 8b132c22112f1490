"""A real browser (Debian's Chromium, driven by Playwright) uses the app the way a person does.

Set SIEVENET_SCREENSHOT=path.png to keep the desktop screenshot (the README's assets/screenshot.png is made this
way); SIEVENET_SCREENS=folder keeps every screen the tests take (desktop and phone).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import zipfile
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from demo import CONCURRENCY_LIMIT, LAUNCH_SETTINGS, create_demo, load_pipeline, warm_up  # noqa: E402
from demo.render import STAGE_TEXT  # noqa: E402
from demo.ui import BACKEND_LABELS, EXAMPLES_DIR, backend_problems, find_examples  # noqa: E402
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
PHONE = {"width": 390, "height": 844}
# Gallery images load lazily (when scrolled near), so "shown" means: all ten present and the result drawn.
ALL_STAGES_SHOWN = (
    f"document.querySelectorAll('#stages img').length >= {len(STAGES)}"
    " && [...document.querySelectorAll('#result img')].some(img => img.complete && img.naturalWidth > 0)"
)
STAGES_LOADED = (
    "[...document.querySelectorAll('#stages img')].every(img => img.complete && img.naturalWidth > 0)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keep_screen(page, name: str) -> None:
    if folder := os.environ.get("SIEVENET_SCREENS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


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


def open_page(browser, url: str, **options):
    page = browser.new_page(**options)
    page.goto(url)
    page.wait_for_selector("#tryon-button")
    # The first view already shows an example result.
    page.wait_for_function(ALL_STAGES_SHOWN, timeout=120_000)
    return page


def upload(page, box: str, path: str) -> None:
    """Choose a file in an image box and wait until the server has it and the box shows it."""
    with page.expect_response(lambda r: "/gradio_api/upload" in r.url and r.request.method == "POST"):
        page.locator(f"{box} input[type=file]").set_input_files(path)
    page.wait_for_selector(f"{box} img")
    page.wait_for_timeout(500)  # the box's change event settles


def upload_pair(page, person: str, garment: str) -> None:
    upload(page, "#person", person)
    upload(page, "#garment", garment)


def try_on(page) -> float:
    """Click Try on and wait for a new result: the click-to-final-image time in ms."""
    page.evaluate("document.querySelector('#done-in').innerText = ''")
    start = time.perf_counter()
    page.click("#tryon-button")
    page.wait_for_function(
        "document.querySelector('#done-in').innerText.includes('Click to result')", timeout=120_000
    )
    page.wait_for_function(ALL_STAGES_SHOWN, timeout=60_000)
    return (time.perf_counter() - start) * 1000


def load_gallery(page) -> None:
    """Scroll past every stage so the lazily loaded images arrive, then wait until all are drawn."""
    images = page.locator("#stages img")
    for i in range(images.count()):
        images.nth(i).scroll_into_view_if_needed()
    page.wait_for_function(STAGES_LOADED, timeout=30_000)


def page_messages(page) -> str:
    """Everything the page says to the user: toasts, status, timings, the download box."""
    return "\n".join(
        page.locator(selector).all_inner_texts().__str__()
        for selector in (".toast-body", "#status", "#timings", "#bundle", "#done-in")
    )


def test_first_view_then_upload_pair_click_try_on_and_see_every_stage(browser, app, tmp_path):
    # The README's screenshot: a real photo (the astronaut), not one of the synthetic studio examples.
    person = find_examples(EXAMPLES_DIR / "persons")[0]
    garment = find_examples(EXAMPLES_DIR / "garments")[0]
    url, banner = app
    page = open_page(browser, url, viewport={"width": 1400, "height": 1000})
    if banner:  # no trained weights shipped yet: the page must say so
        assert "weights are untrained" in page.locator("#untrained-banner").inner_text()
    else:
        assert page.locator("#untrained-banner").count() == 0
    assert "Example result" in page.locator("#status").inner_text()
    assert "trained only on synthetic studio scenes" in page.locator("#scope-note").inner_text()
    keep_screen(page, "desktop-first-view.png")

    upload_pair(page, person, garment)
    click_to_result_ms = try_on(page)
    load_gallery(page)
    captions = page.locator("#stages").inner_text()
    for key in STAGES:
        assert STAGE_TEXT[key][0] in captions
    assert page.locator(".toast-body.error").count() == 0
    assert "Done." in page.locator("#status").inner_text()
    assert page.locator("#comparison img").count() >= 2
    zip_name = f"sievenet_{Path(person).stem}_{Path(garment).stem}_"
    assert zip_name in page.locator("#bundle").inner_text()
    # Captions are whole, not cut off with an ellipsis.
    cut = page.evaluate(
        "[...document.querySelectorAll('#stages .caption-label')].filter(e => e.scrollWidth > e.clientWidth + 1)"
        ".length"
    )
    assert cut == 0

    # The grid overlay redraws the two warps in place, without another try-on, and the zip follows.
    page.get_by_label("Draw the bending grid (TPS) on both garment fits").check()
    page.wait_for_function(
        "(document.querySelector('#stages').innerText.match(/TPS grid/g) || []).length == 2", timeout=30_000
    )
    with page.expect_download() as download:
        page.locator("#bundle a").first.click()
    saved = tmp_path / "bundle.zip"
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        names = archive.namelist()
    assert "stages_with_grid/05_warp_fine.png" in names and "stages/05_warp_fine.png" in names
    assert page.locator(".toast-body.error").count() == 0
    page.get_by_label("Draw the bending grid (TPS) on both garment fits").uncheck()
    page.wait_for_function(
        "!document.querySelector('#stages').innerText.includes('TPS grid')", timeout=30_000
    )

    load_gallery(page)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_function("document.querySelectorAll('.toast-body').length == 0", timeout=20_000)
    shot = tmp_path / "screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if target := os.environ.get("SIEVENET_SCREENSHOT"):
        shutil.copy(shot, target)
    keep_screen(page, "desktop-after-run.png")
    print(f"click to final image: {click_to_result_ms:.0f} ms")
    page.close()


def test_phone_shows_every_stage_within_the_screen_and_the_result_above_the_fold(browser, app):
    page = open_page(browser, app[0], viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    button = page.locator("#tryon-button").bounding_box()
    assert button["y"] + button["height"] <= PHONE["height"], "the Try on button is below the screen"
    keep_screen(page, "phone-first-view.png")
    person = find_examples(EXAMPLES_DIR / "persons")[0]
    garment = find_examples(EXAMPLES_DIR / "garments")[0]
    upload_pair(page, person, garment)
    try_on(page)
    page.wait_for_timeout(1500)  # the smooth scroll to the result
    result = page.locator("#result").bounding_box()
    assert 0 <= result["y"] < PHONE["height"] / 2, f"result not above the fold: {result}"
    keep_screen(page, "phone-result-in-view.png")
    load_gallery(page)
    boxes = [page.locator("#stages img").nth(i).bounding_box() for i in range(len(STAGES))]
    for box in boxes:
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, box
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    gallery = page.evaluate(
        "(() => { const g = document.querySelector('#stages .grid-wrap') || document.querySelector('#stages');"
        " return [g.scrollWidth, g.clientWidth]; })()"
    )
    assert gallery[0] <= gallery[1] + 1, f"the stage gallery scrolls sideways: {gallery}"
    page.evaluate("window.scrollTo(0, 0)")
    keep_screen(page, "phone-after-run.png")
    page.close()


def test_a_failed_run_keeps_the_good_result_and_says_why(browser, app, tmp_path):
    page = open_page(browser, app[0], viewport={"width": 1400, "height": 1000})
    before = page.locator("#result img").first.get_attribute("src")
    wall = tmp_path / "empty_wall.png"
    import PIL.Image

    PIL.Image.new("RGB", (300, 400), (200, 200, 200)).save(wall)
    upload(page, "#person", str(wall))
    page.click("#tryon-button")
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('Try-on failed')", timeout=60_000
    )
    status = page.locator("#status").inner_text()
    assert "person" in status.lower() and "Traceback" not in status
    # The previous result stays: same try-on image, every stage, no error badges on the outputs.
    assert page.locator("#result img").first.get_attribute("src") == before
    assert page.locator("#stages img").count() >= len(STAGES)
    assert page.locator("#result .error, #stages .error, #comparison .error").count() == 0
    messages = page_messages(page)
    assert "/tmp" not in messages and "gradio" not in messages.lower()
    keep_screen(page, "desktop-failed-run.png")
    page.close()


def test_a_file_that_is_not_a_photo_is_refused_at_upload(browser, app, tmp_path):
    page = open_page(browser, app[0])
    fake = tmp_path / "holiday.png"
    fake.write_bytes(b"this is a text file, not a PNG")
    page.locator("#person input[type=file]").set_input_files(str(fake))
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('Not a person photo')", timeout=30_000
    )
    status = page.locator("#status").inner_text()
    assert "holiday.png" in status and "/tmp" not in status
    assert page.locator("#person img").count() == 0  # the broken file is not kept as the input
    page.close()


def test_only_backends_that_can_run_are_offered(browser, app):
    page = open_page(browser, app[0])
    page.get_by_text("Advanced options").click()
    for key, why in backend_problems().items():
        label = BACKEND_LABELS.get(key)
        if label and why:
            assert page.get_by_label(label, exact=True).count() == 0, f"{label} is offered but cannot run"
    assert page.get_by_label("MediaPipe (built in)", exact=True).count() == 2  # pose and cut-out
    # The keypoints file box shows only with the option that uses it.
    assert not page.get_by_label("Keypoints file (OpenPose JSON for this photo)").is_visible()
    page.get_by_label("My own keypoints (OpenPose JSON file)", exact=True).check()
    page.wait_for_selector("text=Keypoints file (OpenPose JSON for this photo)")
    page.close()


def test_a_painted_region_is_used_and_shown_as_its_own_stage(browser, app, tmp_path):
    page = open_page(browser, app[0], viewport={"width": 1400, "height": 1000})
    page.get_by_text("Paint the region to replace (optional)").click()
    canvas = page.locator("#region canvas").first
    canvas.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)  # the editor lays out the photo
    page.locator("#region button[aria-label='Brush']").click()
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.45
    page.mouse.move(x - 20, y)
    page.mouse.down()
    for step in range(12):  # a short zig-zag stroke across the chest
        page.mouse.move(x - 20 + 4 * step, y + (10 if step % 2 else -10), steps=3)
    page.mouse.up()
    try_on(page)
    load_gallery(page)
    assert "1. Your painted region" in page.locator("#stages").inner_text()
    assert "Done." in page.locator("#status").inner_text()
    with page.expect_download() as download:
        page.locator("#bundle a").first.click()
    saved = tmp_path / "bundle.zip"
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert "inputs/region.png" in archive.namelist()
        assert "stages/01_region.png" in archive.namelist()
    keep_screen(page, "desktop-painted-region.png")
    page.close()
