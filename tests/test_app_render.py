"""The app's rendering helpers: captions, legend, timings, per-request files and the "Download all" zip."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from demo.render import (
    STAGE_TEXT,
    RequestFolders,
    bundle_name,
    redraw_bundle,
    stage_caption,
    stage_gallery,
    stages_help_html,
    timings_markdown,
    write_request_files,
)
from sievenet.data import read_openpose_json
from sievenet.labels import LABEL_COLOURS, NUM_CLASSES, Label, lip_to_label
from sievenet.pipeline import STAGES, TryOnResult

H, W = 128, 96


def fake_result(rng: np.random.Generator) -> TryOnResult:
    """A TryOnResult with random pixels: the helpers only package what the pipeline produced."""

    def image(h: int, w: int) -> PIL.Image.Image:
        return PIL.Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))

    keypoints = np.concatenate([rng.uniform(0, 200, (18, 2)), rng.uniform(0.5, 1, (18, 1))], axis=1)
    return TryOnResult(
        image=image(300, 200),
        crop=image(H, W),
        photo=image(300, 200),
        person_crop=image(H, W),
        stages={key: image(H, W) for key in STAGES},
        keypoints=keypoints.astype(np.float32),
        parse=rng.integers(0, NUM_CLASSES, (H, W)).astype(np.int64),
        timings={"load": 3.0, "model": 12.5, "total": 40.0},
        warnings=["2 people found; used the largest"],
    )


GRIDS = {"warp_coarse": torch.zeros(1, 50), "warp_fine": torch.full((1, 50), 0.05)}


def write(result, folder, **options):
    inputs = {"person.jpg": b"person bytes", "garment.png": b"garment bytes"}
    settings = {"person": "me.jpg", "garment": "shirt.png", "pose_backend": "mediapipe"}
    return write_request_files(result, folder, inputs=inputs, settings=settings, grids=GRIDS, **options)


def test_every_stage_has_a_plain_caption_with_the_papers_notation_beside_it():
    assert set(STAGES) <= set(STAGE_TEXT)
    assert stage_caption(5, "warp_fine") == "5. Garment, refined fit (I_stn¹)"
    assert stage_caption(4, "warp_coarse", grid=True).endswith("(I_stn⁰) + TPS grid")
    assert stage_caption(8, "m_cm") == "8. Where the garment goes (M_cm)"
    help_text = stages_help_html()
    for plain, _, line in STAGE_TEXT.values():
        assert plain in help_text and line in help_text


def test_one_legend_with_every_class_and_a_ring_that_shows_on_dark_backgrounds():
    legend = stages_help_html()
    for label in Label:
        r, g, b = LABEL_COLOURS[label]
        assert f"rgb({r},{g},{b})" in legend
        assert label.name.lower().replace("_", " ") in legend
    from demo.render import LEGEND_CSS

    assert "box-shadow: 0 0 0 1px #fff" in LEGEND_CSS  # the black "background" swatch keeps a light ring


def test_gallery_marks_grid_overlays_and_draws_on_a_copy():
    result = fake_result(np.random.default_rng(0))
    items = stage_gallery(result.stages, grids=GRIDS)
    marked = [c for _, c in items if c.endswith("+ TPS grid")]
    assert marked == [
        "4. Garment, rough fit (I_stn⁰) + TPS grid",
        "5. Garment, refined fit (I_stn¹) + TPS grid",
    ]
    coarse = list(STAGES).index("warp_coarse")
    assert items[coarse][0] is not result.stages["warp_coarse"]


def test_timings_use_plain_step_names_and_one_total():
    table = timings_markdown({"load": 3.0, "model": 12.5, "total": 40.0}, files_ms=5.0, server_ms=50.0)
    assert "Reading the photos" in table and "SieveNet" in table and "| load |" not in table
    assert table.count("total") == 1 and "Server total" in table and "not included" in table


def test_bundle_is_named_after_the_inputs_and_the_time():
    name = bundle_name("/tmp/gradio/abc/My Photo (1).jpg", "shirt.png", when=0)
    assert name.startswith("sievenet_My-Photo-1_shirt_19") and name.endswith(".zip")
    assert "/" not in name and " " not in name


@pytest.mark.parametrize("framing", ["full photo", "crop"])
def test_zip_holds_inputs_settings_every_stage_raw_keypoints_and_parse(tmp_path, framing):
    result = fake_result(np.random.default_rng(1))
    files = write(result, tmp_path, framing=framing, name="sievenet_me_shirt_x.zip")

    expected = result.stages["tryon"] if framing == "crop" else result.image
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(files.final)), np.asarray(expected))  # lossless
    assert files.bundle.name == "sievenet_me_shirt_x.zip"
    with zipfile.ZipFile(files.bundle) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "unzipped")
        settings = json.loads(archive.read("settings.json"))
        assert archive.read("inputs/person.jpg") == b"person bytes"
        for i, key in enumerate(STAGES, 1):  # raw: exactly the pipeline's images, no legend, no grid
            raw = PIL.Image.open(io.BytesIO(archive.read(f"stages/{i:02d}_{key}.png")))
            np.testing.assert_array_equal(np.asarray(raw), np.asarray(result.stages[key]))
    assert {"tryon.png", "parse.png", "keypoints.json", "settings.json", "inputs/garment.png"} <= names
    assert "tryon_crop.png" not in names  # the crop is stage 10; no duplicate
    assert not any(n.startswith("stages_with_grid/") for n in names)
    assert (
        settings["person"] == "me.jpg" and settings["framing"] == framing and settings["show_grid"] is False
    )
    assert settings["warnings"] == result.warnings and settings["timings_ms"]["model"] == 12.5
    assert len(settings["tps"]["warp_fine"]) == 50
    np.testing.assert_allclose(read_openpose_json(tmp_path / "unzipped" / "keypoints.json"), result.keypoints)
    parse = PIL.Image.open(tmp_path / "unzipped" / "parse.png")
    assert parse.mode == "P"  # LIP ids, readable by every VITON-HD tool
    np.testing.assert_array_equal(lip_to_label(np.asarray(parse)), result.parse)


def test_redraw_from_the_zip_adds_the_grid_and_reframes_without_touching_raw_stages(tmp_path):
    result = fake_result(np.random.default_rng(2))
    first = write(result, tmp_path / "a")
    again = redraw_bundle(first.bundle, tmp_path / "b", framing="crop", show_grid=True)

    assert [c for _, c in again.gallery if c.endswith("TPS grid")] == [
        "4. Garment, rough fit (I_stn⁰) + TPS grid",
        "5. Garment, refined fit (I_stn¹) + TPS grid",
    ]
    assert PIL.Image.open(again.final).size == (W, H)
    with zipfile.ZipFile(again.bundle) as archive:
        names = archive.namelist()
        assert json.loads(archive.read("settings.json"))["show_grid"] is True
        raw = np.asarray(PIL.Image.open(io.BytesIO(archive.read("stages/04_warp_coarse.png"))))
        gridded = np.asarray(PIL.Image.open(io.BytesIO(archive.read("stages_with_grid/04_warp_coarse.png"))))
    np.testing.assert_array_equal(raw, np.asarray(result.stages["warp_coarse"]))
    assert (raw != gridded).any()
    assert sorted(n for n in names if n.startswith("stages_with_grid/")) == [
        "stages_with_grid/04_warp_coarse.png",
        "stages_with_grid/05_warp_fine.png",
    ]
    # Switching the grid off again drops the gridded copies.
    off = redraw_bundle(again.bundle, tmp_path / "c", framing="full photo", show_grid=False)
    with zipfile.ZipFile(off.bundle) as archive:
        assert not any(n.startswith("stages_with_grid/") for n in archive.namelist())


def test_a_zip_the_app_did_not_write_is_refused(tmp_path):
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(ValueError):
        redraw_bundle(other, tmp_path / "out", framing="crop", show_grid=False)
    (tmp_path / "text.zip").write_text("not a zip")
    with pytest.raises(ValueError):
        redraw_bundle(tmp_path / "text.zip", tmp_path / "out", framing="crop", show_grid=False)


def test_request_folders_keep_only_the_newest_and_close_removes_them(tmp_path):
    folders = RequestFolders(tmp_path / "root", keep=3)
    example = folders.pinned("example")
    made = [folders.new() for _ in range(6)]
    kept = sorted(p for p in (tmp_path / "root").iterdir() if p != example)
    assert len(kept) == 3 and made[-1] in kept
    assert example.is_dir()  # the first view's example outlives the rotation
    folders.close()
    assert not (tmp_path / "root").exists()
