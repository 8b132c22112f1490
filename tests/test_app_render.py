"""The app's rendering helpers: legend, parse PNG, captions, per-request files and the "Download all" zip."""

from __future__ import annotations

import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from demo.render import (
    RequestFolders,
    stage_gallery,
    stage_gallery_captions,
    with_legend,
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
        timings={"model": 12.5, "total": 40.0},
        warnings=["2 people found; used the largest"],
    )


def test_legend_keeps_the_image_and_shows_every_class_colour():
    m_exp = PIL.Image.new("RGB", (192, 256), (10, 20, 30))
    out = np.asarray(with_legend(m_exp))
    assert out.shape[0] > 256 and out.shape[1] == 192
    assert (out[:256] == (10, 20, 30)).all()
    legend = out[256:].reshape(-1, 3)
    for label in Label:
        assert (legend == LABEL_COLOURS[label]).all(axis=1).any(), f"no {label.name} swatch"


def test_gallery_is_in_pipeline_order_and_marks_grid_overlays():
    rng = np.random.default_rng(0)
    result = fake_result(rng)
    captions = [c for _, c in stage_gallery_captions(result.stages)]
    assert captions == [f"{i}. {c}" for i, c in enumerate(STAGES.values(), 1)]

    grids = {"warp_coarse": torch.zeros(1, 50), "warp_fine": torch.full((1, 50), 0.05)}
    items = stage_gallery(result.stages, grids=grids)
    marked = [c for _, c in items if c.endswith("+ TPS grid")]
    assert marked == ["4. I_stn^0 (coarse warp) + TPS grid", "5. I_stn^1 (fine warp) + TPS grid"]
    coarse = list(STAGES).index("warp_coarse")
    assert items[coarse][0] is not result.stages["warp_coarse"]  # drawn on a copy, the result is untouched


@pytest.mark.parametrize("crop_framing", [False, True])
def test_request_files_and_bundle_hold_every_output(tmp_path, crop_framing):
    result = fake_result(np.random.default_rng(1))
    files = write_request_files(result, tmp_path, before=result.image, crop_framing=crop_framing)

    expected = result.crop if crop_framing else result.image
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(files.final)), np.asarray(expected))  # lossless
    assert [c for _, c in files.gallery] == [c for _, c in stage_gallery_captions(result.stages)]
    with zipfile.ZipFile(files.bundle) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "unzipped")
    assert {"tryon.png", "tryon_crop.png", "parse.png", "keypoints.json", "timings.json"} <= names
    assert sorted(n for n in names if n.startswith("stages/")) == [
        f"stages/{i:02d}_{key}.png" for i, key in enumerate(STAGES, 1)
    ]
    np.testing.assert_allclose(read_openpose_json(tmp_path / "unzipped" / "keypoints.json"), result.keypoints)
    parse = PIL.Image.open(tmp_path / "unzipped" / "parse.png")
    assert parse.mode == "P"  # LIP ids, readable by every VITON-HD tool
    np.testing.assert_array_equal(lip_to_label(np.asarray(parse)), result.parse)


def test_request_folders_keep_only_the_newest(tmp_path):
    folders = RequestFolders(tmp_path, keep=3)
    made = [folders.new() for _ in range(6)]
    kept = sorted(p for p in tmp_path.iterdir())
    assert len(kept) == 3 and made[-1] in kept
