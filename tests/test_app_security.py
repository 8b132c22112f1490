"""The app is a public server (DESIGN §8b): raw HTTP requests that name files the client did not upload.

These go through Gradio's plain HTTP API (`/gradio_api/call/tryon`), as an attacker would, not gradio_client:
the client library always uploads first and so never sends a bare server path.
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import httpx
import numpy as np
import PIL.Image
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from demo import CONCURRENCY_LIMIT, LAUNCH_SETTINGS, create_demo  # noqa: E402
from demo.ui import EXAMPLES_DIR, MAX_UPLOAD_BYTES, find_examples  # noqa: E402
from sievenet.models import SieveNet  # noqa: E402
from sievenet.pipeline import TryOnPipeline  # noqa: E402
from tests.test_app import free_port  # noqa: E402

REFUSED = "this app reads only files uploaded to it"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    release = tmp_path_factory.mktemp("release")
    SieveNet.from_config("sievenet-s").save_pretrained(release)
    app = create_demo(TryOnPipeline.from_pretrained(str(release)))
    app.queue(default_concurrency_limit=CONCURRENCY_LIMIT).launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        **LAUNCH_SETTINGS,
    )
    yield app.local_url.rstrip("/")
    app.close()


@pytest.fixture(scope="module")
def secret_image(tmp_path_factory) -> Path:
    """A PNG on the server, outside Gradio's upload folder: no request may ever read it."""
    path = tmp_path_factory.mktemp("server-files") / "secret.png"
    noise = np.random.default_rng(0).integers(0, 255, (300, 200, 3), dtype=np.uint8)
    PIL.Image.fromarray(noise).save(path)
    return path


def garment_payload(url: str) -> dict:
    """The example garment, uploaded the way the browser does it (POST /gradio_api/upload)."""
    garment = Path(find_examples(EXAMPLES_DIR / "garments")[0])
    with garment.open("rb") as f:
        response = httpx.post(f"{url}/gradio_api/upload", files={"files": (garment.name, f, "image/png")})
    response.raise_for_status()
    path = response.json()[0]
    return {"path": path, "orig_name": garment.name, "meta": {"_type": "gradio.FileData"}}


def call_tryon(url: str, person, garment) -> tuple[str, str]:
    """POST to the raw `tryon` endpoint, then read its event stream: (last event name, its data)."""
    data = [person, garment, False, "mediapipe", None, "mediapipe", "", "full photo"]
    response = httpx.post(f"{url}/gradio_api/call/tryon", json={"data": data}, timeout=60)
    response.raise_for_status()
    event_id = response.json()["event_id"]
    event, payload = "", ""
    with httpx.stream("GET", f"{url}/gradio_api/call/tryon/{event_id}", timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                payload = line.split(":", 1)[1].strip()
                if event in ("complete", "error"):
                    break
    return event, payload


def test_no_path_outside_the_upload_folder_is_ever_opened(app_url, secret_image, tmp_path):
    upload_folder = Path(gr.utils.get_upload_folder())
    upload_folder.mkdir(parents=True, exist_ok=True)
    link = upload_folder / f"link-to-secret-{os.getpid()}.png"
    link.unlink(missing_ok=True)
    link.symlink_to(secret_image)
    try:
        attacks = [
            {"path": str(secret_image)},  # an absolute path
            {"path": "/etc/passwd"},  # exists, not an image
            {"path": "/no/such/file.png"},  # does not exist: must read exactly like the ones that do
            {
                "path": f"{upload_folder}/../../{secret_image.relative_to('/')}"
            },  # ".." out of the upload folder
            {"path": os.path.relpath(secret_image)},  # relative to the server's working directory
            {"path": str(link)},  # a symlink inside the upload folder pointing out of it
            {"path": f"file://{secret_image}"},
            {"path": "http://127.0.0.1:9/person.png"},
            {"url": "http://127.0.0.1:9/person.png"},
            {"url": f"file://{secret_image}"},
        ]
        garment = garment_payload(app_url)
        answers = set()
        for attack in attacks:
            event, payload = call_tryon(app_url, attack, garment)
            assert event == "error", f"{attack} was accepted: {payload[:200]}"
            assert REFUSED in payload, f"{attack}: unexpected answer {payload[:300]}"
            assert str(secret_image.parent) not in payload and "passwd" not in payload
            answers.add(payload)
        # One message for all of them: nothing tells a client which server files exist.
        assert len(answers) == 1, answers
    finally:
        link.unlink(missing_ok=True)


def test_gradio_file_objects_naming_server_files_are_refused_too(app_url, secret_image):
    # With Gradio's FileData marker, or as a bare string, Gradio's own checks refuse the payload before the
    # handler runs; its message repeats only the path the client sent, alike for files that exist and not.
    garment = garment_payload(app_url)
    answers = []
    for path in (str(secret_image), str(secret_image.with_name("missing.png"))):
        event, payload = call_tryon(app_url, {"path": path, "meta": {"_type": "gradio.FileData"}}, garment)
        assert event == "error" and "not uploaded by a user" in payload, payload[:300]
        answers.append(payload.replace(path, "<path>"))
        event, payload = call_tryon(app_url, path, garment)
        assert event == "error" and "valid dictionary" in payload, payload[:300]
    assert answers[0] == answers[1]


def _png_data_url(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_data_urls_obey_the_upload_size_limit(app_url):
    garment = garment_payload(app_url)
    # Incompressible noise: the PNG is larger than the upload limit, as a file upload would be refused.
    side = int((MAX_UPLOAD_BYTES / 3) ** 0.5) + 64
    noise = np.random.default_rng(1).integers(0, 255, (side, side, 3), dtype=np.uint8)
    event, payload = call_tryon(app_url, {"url": _png_data_url(noise)}, garment)
    assert event == "error" and "larger than 10 MB" in payload

    event, payload = call_tryon(app_url, {"url": "data:image/png;base64,not base64 at all!"}, garment)
    assert event == "error" and "did not arrive as an image file" in payload


def test_a_small_data_url_still_works(app_url):
    person = PIL.Image.open(find_examples(EXAMPLES_DIR / "persons")[0]).convert("RGB")
    event, payload = call_tryon(app_url, {"url": _png_data_url(np.asarray(person))}, garment_payload(app_url))
    assert event == "complete", payload[:300]
    assert json.loads(payload)[0]["path"]


def test_request_bodies_over_the_limit_are_refused_before_the_app_reads_them(app_url):
    from demo.ui import MAX_REQUEST_BYTES

    big = b'{"data": ["' + b"A" * (MAX_REQUEST_BYTES + 10) + b'"]}'
    response = httpx.post(f"{app_url}/gradio_api/call/tryon", content=big, timeout=60)
    assert response.status_code == 413 and "larger than" in response.json()["error"]

    def chunks():  # no Content-Length: the limit holds while the body streams in
        yield b'{"data": ["'
        for _ in range(MAX_REQUEST_BYTES // 2**20 + 2):
            yield b"A" * 2**20
        yield b'"]}'

    response = httpx.post(f"{app_url}/gradio_api/queue/join", content=chunks(), timeout=60)
    assert response.status_code == 413


def test_file_objects_naming_a_url_are_refused_before_gradio_fetches_them(app_url):
    garment = garment_payload(app_url)
    for url in ("https://example.com/person.png", "http://203.0.113.7/p.png"):
        person = {"path": url, "url": url, "meta": {"_type": "gradio.FileData"}}
        data = [person, garment, False, "mediapipe", None, "mediapipe", "", "full photo"]
        response = httpx.post(f"{app_url}/gradio_api/call/tryon", json={"data": data}, timeout=60)
        assert response.status_code == 400, response.text[:300]
        assert "does not fetch files from URLs" in response.json()["error"]
    # An ordinary upload's file object (its url points back at this app) still works.
    event, payload = call_tryon(app_url, garment_payload(app_url), garment)
    assert event == "error" and REFUSED not in payload  # read and tried: the garment photo holds no person
