"""The Gradio app: built without launching, then served on a free local port and driven through gradio_client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

import demo.loading  # noqa: E402
from demo import CONCURRENCY_LIMIT, LAUNCH_SETTINGS, create_demo, load_pipeline  # noqa: E402
from demo.render import stage_caption  # noqa: E402
from demo.ui import EXAMPLES_DIR, ROOT, backend_problems, find_examples  # noqa: E402
from sievenet.errors import WeightsError  # noqa: E402
from sievenet.models import SieveNet  # noqa: E402
from sievenet.pipeline import STAGES, TryOnPipeline  # noqa: E402


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A fresh (untrained) sievenet-s release, as the app would load trained weights."""
    folder = tmp_path_factory.mktemp("release")
    SieveNet.from_config("sievenet-s").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pipeline(release) -> TryOnPipeline:
    return TryOnPipeline.from_pretrained(str(release))


@pytest.fixture(scope="module")
def example_pair() -> tuple[str, str]:
    persons = find_examples(EXAMPLES_DIR / "persons")
    garments = find_examples(EXAMPLES_DIR / "garments")
    assert persons and garments, f"the example gallery {EXAMPLES_DIR} has no persons/ or garments/ images"
    return persons[0], garments[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("app-output")


@pytest.fixture(scope="module")
def server(pipeline, output_dir):
    """The app, launched exactly as app.py does (same queue and launch settings) on a free 127.0.0.1 port."""
    app = create_demo(pipeline, output_dir=output_dir)
    app.queue(default_concurrency_limit=CONCURRENCY_LIMIT).launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        **LAUNCH_SETTINGS,
    )
    yield app
    app.close()


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server.local_url, verbose=False, analytics_enabled=False)


def tryon(client: Client, person: str, garment: str, **options):
    return client.predict(
        person=handle_file(person), garment=handle_file(garment), api_name="/tryon", **options
    )


@pytest.fixture(scope="module")
def default_run(client, example_pair):
    """One try-on of the example pair with default options; several tests inspect it."""
    return tryon(client, *example_pair)


def test_create_demo_builds_without_launching(pipeline, tmp_path):
    for kind in ("persons", "garments"):
        (tmp_path / kind).mkdir()
        PIL.Image.new("RGB", (64, 96), "white").save(tmp_path / kind / "a.png")
    app = create_demo(pipeline, banner="These weights are untrained.", examples_dir=tmp_path)
    assert isinstance(app, gr.Blocks)
    assert not app.is_running
    assert "tryon" in {fn.api_name for fn in app.fns.values()}
    config = json.dumps(app.get_config_file(), default=str)
    assert "These weights are untrained." in config
    assert "Example persons" in config and "Example garments" in config
    assert "trained only on synthetic studio scenes" in config and "upper-body garments" in config
    # Session state would hold images per visitor for minutes: redraws read the request's zip instead.
    assert not [c for c in app.get_config_file()["components"] if c.get("type") == "state"]


def test_the_page_offers_the_parser_choice_and_the_zip_records_it(pipeline, example_pair, tmp_path):
    app = create_demo(pipeline, output_dir=tmp_path, example_result=False)
    label = "How the body is split into parts"
    radio = next(
        c for c in app.get_config_file()["components"] if label in str(c.get("props", {}).get("label"))
    )
    assert radio["props"]["value"] == "learned"
    page = next(f for f in app.fns.values() if f.name == "tryon_on_page")
    assert radio["id"] in [c._id for c in page.inputs]
    assert "parser" not in [getattr(c, "label", "") for f in app.fns.values() if f.api_name for c in f.inputs]

    def payload(path: str) -> dict:
        return {"path": path, "orig_name": Path(path).name}

    person, garment = example_pair
    args = (payload(person), payload(garment), False, "mediapipe", None, "mediapipe", "", "full photo", None)
    bundle = page.fn(*args, "heuristic", progress=lambda *a, **k: None)[-1]
    with zipfile.ZipFile(bundle) as archive:
        assert json.loads(archive.read("settings.json"))["parser"] == "heuristic"


def test_missing_shipped_weights_fall_back_to_an_untrained_model_with_a_banner(monkeypatch, tmp_path):
    monkeypatch.setattr(demo.loading, "SHIPPED_WEIGHTS", tmp_path / "no-weights-here")
    pipe, banner = load_pipeline(None)
    assert isinstance(pipe, TryOnPipeline)
    assert banner is not None and "untrained" in banner.lower()
    # A path the user names explicitly never falls back silently.
    with pytest.raises(WeightsError, match="no weights at"):
        load_pipeline(str(tmp_path / "typo"))


def test_tryon_returns_the_final_image_every_stage_and_a_bundle(default_run, example_pair):
    person, garment = example_pair
    final, (before, after), gallery, timings, status, bundle = default_run

    photo = PIL.Image.open(person)
    assert PIL.Image.open(final).size == photo.size  # full-photo framing by default
    assert PIL.Image.open(before).size == PIL.Image.open(after).size == photo.size
    assert [item["caption"] for item in gallery] == [stage_caption(i, k) for i, k in enumerate(STAGES, 1)]
    for item in gallery:
        assert np.asarray(PIL.Image.open(item["image"])).std() > 0, f"{item['caption']} is a flat image"
    assert "Server total" in timings and "Done." in status and "Server time" in status

    assert Path(bundle).name.startswith(f"sievenet_{Path(person).stem}_{Path(garment).stem}_")
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        assert {"tryon.png", "parse.png", "keypoints.json", "settings.json"} <= names
        assert {f"inputs/person{Path(person).suffix}", f"inputs/garment{Path(garment).suffix}"} <= names
        assert archive.read(f"inputs/person{Path(person).suffix}") == Path(person).read_bytes()
        settings = json.loads(archive.read("settings.json"))
        assert settings["pose_backend"] == "mediapipe" and settings["person"] == Path(person).name
        assert settings["parser"] == "learned"  # the shipped weights/parser-s, the pipeline's default
        assert len([n for n in names if n.startswith("stages/")]) == len(STAGES)
        keypoints = json.loads(archive.read("keypoints.json"))["people"][0]["pose_keypoints_2d"]
        assert len(keypoints) == 18 * 3


def test_crop_framing_and_tps_grid_overlay(client, default_run, example_pair, pipeline):
    person, garment = example_pair
    _, _, plain, *_ = default_run
    final, _, gridded, *_ = tryon(client, person, garment, show_grid=True, framing="crop")

    height, width = pipeline.size
    assert PIL.Image.open(final).size == (width, height)
    for key in ("warp_coarse", "warp_fine"):
        index = list(STAGES).index(key)
        assert gridded[index]["caption"].endswith("+ TPS grid")
        with_grid = np.asarray(PIL.Image.open(gridded[index]["image"]).convert("RGB"), dtype=np.int16)
        without = np.asarray(PIL.Image.open(plain[index]["image"]).convert("RGB"), dtype=np.int16)
        assert (np.abs(with_grid - without).max(axis=2) > 0).mean() > 0.02, f"no grid drawn on {key}"


def test_downloaded_keypoints_json_can_be_uploaded_as_the_pose(client, default_run, example_pair):
    person, garment = example_pair
    *_, bundle = default_run
    with zipfile.ZipFile(bundle) as archive:
        original = json.loads(archive.read("keypoints.json"))
    keypoints_file = Path(bundle).with_name("keypoints.json")
    keypoints_file.write_text(json.dumps(original))

    *_, again = tryon(
        client, person, garment, pose_backend="json", keypoints_json=handle_file(str(keypoints_file))
    )
    with zipfile.ZipFile(again) as archive:
        reread = json.loads(archive.read("keypoints.json"))
    before = np.reshape(original["people"][0]["pose_keypoints_2d"], (18, 3))
    after = np.reshape(reread["people"][0]["pose_keypoints_2d"], (18, 3))
    seen = before[:, 2] > 0  # missing points (confidence 0) carry no position (DESIGN §2)
    np.testing.assert_allclose(after[:, 2], before[:, 2], atol=1e-6)
    np.testing.assert_allclose(after[seen], before[seen], atol=0.01)


def test_bad_uploads_return_readable_errors_and_the_server_keeps_serving(client, example_pair, tmp_path):
    person, garment = example_pair
    not_an_image = tmp_path / "holiday.png"
    not_an_image.write_bytes(b"this is not a PNG")
    with pytest.raises(AppError) as caught:
        tryon(client, str(not_an_image), garment)
    message = str(caught.value)
    assert "holiday.png" in message and "Traceback" not in message
    assert "/tmp/gradio" not in message  # the server's cache path means nothing to the user

    too_big = tmp_path / "huge.png"
    too_big.write_bytes(b"\0" * (10 * 1024 * 1024 + 1))
    with pytest.raises(ValueError, match="maximum file size"):  # refused before anything is uploaded
        tryon(client, str(too_big), garment)

    empty_scene = tmp_path / "wall.png"
    PIL.Image.new("RGB", (300, 400), (200, 200, 200)).save(empty_scene)
    with pytest.raises(AppError) as caught:
        tryon(client, str(empty_scene), garment)
    assert "person" in str(caught.value).lower() and "Traceback" not in str(caught.value)

    with pytest.raises(AppError, match="no weights at"):
        tryon(client, person, garment, weights=str(tmp_path / "missing-release"))

    final, *_ = tryon(client, person, garment)
    assert PIL.Image.open(final).size == PIL.Image.open(person).size


def test_other_weights_by_path(client, example_pair, release):
    person, garment = example_pair
    final, *_ = tryon(client, person, garment, weights=str(release))
    assert PIL.Image.open(final).size == PIL.Image.open(person).size


def test_app_py_refuses_missing_weights_with_a_message():
    app = subprocess.run(
        [sys.executable, "app.py", "--weights", "no/such/release"], cwd=ROOT, capture_output=True, text=True
    )
    assert app.returncode != 0
    assert "no weights at 'no/such/release'" in app.stderr and "Traceback" not in app.stderr


def test_eight_concurrent_requests_all_complete(client, example_pair):
    person, garment = example_pair
    jobs = [
        client.submit(person=handle_file(person), garment=handle_file(garment), api_name="/tryon")
        for _ in range(8)
    ]
    for job in jobs:
        final, _, gallery, *_ = job.result(timeout=300)
        assert Path(final).is_file() and len(gallery) == len(STAGES)


def test_a_space_loads_other_weights_only_from_the_hub(monkeypatch, pipeline, release):
    from demo.ui import PipelineCache, local_weights_allowed

    monkeypatch.delenv("SIEVENET_LOCAL_WEIGHTS", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert local_weights_allowed()
    monkeypatch.setenv("SPACE_ID", "org/sievenet-studio")  # what Hugging Face sets in a Space
    assert not local_weights_allowed()
    monkeypatch.setenv("SIEVENET_LOCAL_WEIGHTS", "1")  # the owner's explicit choice wins
    assert local_weights_allowed()
    monkeypatch.setenv("SIEVENET_LOCAL_WEIGHTS", "False")
    assert not local_weights_allowed()

    closed = PipelineCache(pipeline, allow_local=False)
    assert closed.get("") is pipeline
    with pytest.raises(WeightsError, match="hf://org/repo") as caught:
        closed.get(str(release))  # a real release on the server, refused without being opened
    assert str(release) not in str(caught.value)
    assert PipelineCache(pipeline, allow_local=True).get(str(release)) is not pipeline


def test_an_app_reachable_from_other_machines_is_treated_like_a_space(monkeypatch):
    from demo.ui import local_weights_allowed

    monkeypatch.delenv("SIEVENET_LOCAL_WEIGHTS", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    assert local_weights_allowed("127.0.0.1") and local_weights_allowed("localhost")
    assert not local_weights_allowed("0.0.0.0")
    assert not local_weights_allowed("192.168.1.20")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    assert not local_weights_allowed()
    monkeypatch.setenv("SIEVENET_LOCAL_WEIGHTS", "1")  # the operator opts in
    assert local_weights_allowed("0.0.0.0")


def test_an_unavailable_backend_fails_at_once_while_a_normal_request_completes(client, example_pair, capfd):
    person, garment = example_pair
    problems = backend_problems()
    missing = [key for key, why in problems.items() if why]
    if not missing:
        pytest.skip("every pose and cut-out backend can run on this machine")
    kind, name = missing[0].split(":")
    option = {"pose_backend": name} if kind == "pose" else {"mask_backend": name}
    normal = client.submit(person=handle_file(person), garment=handle_file(garment), api_name="/tryon")
    with pytest.raises(AppError) as caught:
        tryon(client, person, garment, **option)
    message = str(caught.value)
    assert "cannot run here" in message and "MediaPipe" in message
    assert "--" not in message and "http" not in message  # no command-line flags, no download URLs
    final, *_ = normal.result(timeout=300)
    assert Path(final).is_file()
    assert "Traceback" not in capfd.readouterr().err  # an expected refusal is one log line, not a trace


def test_no_server_path_in_any_warning_status_or_zip(client, example_pair, tmp_path):
    person, garment = example_pair
    frames = [PIL.Image.open(person).convert("RGB"), PIL.Image.open(person).convert("RGB").rotate(1)]
    animated = tmp_path / "holiday_anim.gif"
    frames[0].save(animated, save_all=True, append_images=frames[1:], duration=100)
    _, _, _, timings, status, bundle = tryon(client, str(animated), garment)
    with zipfile.ZipFile(bundle) as archive:
        settings = archive.read("settings.json").decode()
    assert "holiday_anim.gif" in status and "holiday_anim.gif" in settings  # the warning names the upload
    for text in (status, settings, timings):
        assert "/tmp/" not in text and "gradio" not in text.lower(), text


def test_painted_region_changes_the_photo_only_where_painted(client, example_pair, tmp_path):
    import cv2

    person, garment = example_pair
    photo = np.asarray(PIL.Image.open(person).convert("RGB"))
    h, w = photo.shape[:2]
    painted = np.zeros((h, w), bool)
    painted[h // 2 : h // 2 + h // 5, w // 3 : w // 2] = True
    layer = np.zeros((h, w, 4), np.uint8)
    layer[painted] = (255, 0, 255, 255)
    layer_file = tmp_path / "layer.png"
    PIL.Image.fromarray(layer).save(layer_file)
    region = {"background": handle_file(person), "layers": [handle_file(str(layer_file))], "composite": None}

    final, _, gallery, _, _, bundle = client.predict(
        person=handle_file(person), garment=handle_file(garment), region=region, api_name="/tryon_region"
    )
    changed = (np.asarray(PIL.Image.open(final).convert("RGB")) != photo).any(axis=2)
    # The paste-back feathers its edge by a few model pixels; nothing changes beyond that margin.
    margin = cv2.dilate(painted.astype(np.uint8), np.ones((31, 31), np.uint8)) > 0
    assert not changed[~margin].any()
    assert changed[painted].mean() > 0.5
    assert gallery[0]["caption"] == "1. Your painted region"
    with zipfile.ZipFile(bundle) as archive:
        saved = np.asarray(PIL.Image.open(archive.open("inputs/region.png"))) > 0
        assert json.loads(archive.read("settings.json"))["painted_region"] is True
    np.testing.assert_array_equal(saved, painted)


def test_request_folders_stay_few(client, example_pair, output_dir):
    person, garment = example_pair
    for _ in range(6):
        tryon(client, person, garment)
    assert len([p for p in output_dir.iterdir() if p.is_dir()]) <= 4


def test_messages_for_the_page_name_uploads_and_the_pages_own_controls():
    from demo.ui import user_facing

    upload = {"path": f"{gr.utils.get_upload_folder()}/0a1b2c/IMG_0001.jpg", "orig_name": "my holiday.jpg"}
    text = user_facing(
        f"person photo '{upload['path']}' is animated; {ROOT}/weights/x/manifest.json is missing; "
        "could not separate the garment, or use --mask rembg",
        upload,
    )
    assert "my holiday.jpg" in text and "manifest.json is missing" in text
    assert str(ROOT) not in text and "gradio" not in text and "--mask" not in text
    assert "Advanced options" in text
