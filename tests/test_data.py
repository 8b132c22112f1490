"""The VITON-HD reader: a studio export reads back as the in-memory samples; malformed data fails clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sievenet.data import VitonHD, collate, read_openpose_json, write_openpose_json
from sievenet.data.openpose import BODY25_TO_COCO18
from sievenet.errors import DataError
from sievenet.synthetic import SyntheticTryOn
from sievenet.synthetic.export import export

SIZE = (64, 48)
N = 5  # odd on purpose: the last person's unpaired partner garment lies outside the exported range


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("studio")
    export(root, "test", N, seed=2, size=SIZE)
    return root


def _assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        if key == "meta":
            assert a[key] == b[key]
        else:
            assert a[key].dtype == b[key].dtype, key
            assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("pairs", ["paired", "unpaired"])
def test_export_reads_back_as_the_in_memory_samples(exported, pairs):
    on_disk = VitonHD(exported, "test", pairs=pairs, size=SIZE)
    in_memory = SyntheticTryOn("test", pairs, seed=2, size=SIZE, n=N)
    assert len(on_disk) == N
    for i in range(N):
        _assert_same(on_disk[i], in_memory[i])


def test_export_writes_the_viton_hd_layout(exported):
    split = exported / "test"
    for folder in (
        "image",
        "cloth",
        "cloth-mask",
        "image-parse-v3",
        "openpose_json",
        "image-unpaired",
        "meta",
    ):
        assert (split / folder).is_dir(), folder
    parse = Image.open(split / "image-parse-v3" / "000000_00.png")
    assert parse.mode == "P"
    assert set(np.unique(np.asarray(parse)).tolist()) <= set(range(20))
    doc = json.loads((split / "openpose_json" / "000000_00_keypoints.json").read_text())
    assert len(doc["people"][0]["pose_keypoints_2d"]) == 54
    lines = (exported / "test_pairs_unpaired.txt").read_text().split("\n")
    assert lines[0] == "000000_00.png 000001_00.png"
    assert (split / "image-unpaired" / "000000_00__000001_00.png").is_file()
    assert (split / "cloth" / "000005_00.png").is_file()  # partner of person 4


def test_reader_resizes_larger_data_and_scales_keypoints(exported, tmp_path):
    root = tmp_path / "big"
    export(root, "train", 2, seed=0, size=(128, 96))
    big = VitonHD(root, "train", size=(128, 96))[1]
    small = VitonHD(root, "train", size=SIZE)[1]
    assert small["person"].shape == (3, *SIZE)
    present = big["keypoints"][:, 2] > 0
    expected = (big["keypoints"][present, :2] + 0.5) / 2 - 0.5
    assert torch.allclose(small["keypoints"][present, :2], expected)
    assert set(small["parse"].unique().tolist()) <= set(range(8))
    batch = collate([small, small])
    assert batch["priors"].shape == (2, 19, *SIZE)


def test_real_unpaired_pairs_have_no_truth_and_say_so(exported, tmp_path):
    root = tmp_path / "real"
    shutil.copytree(exported, root)
    shutil.rmtree(root / "test" / "image-unpaired")
    (root / "test_pairs_unpaired.txt").unlink()
    (root / "test_pairs.txt").write_text("000000_00.png 000002_00.png\n")
    s = VitonHD(root, "test", pairs="unpaired", size=SIZE)[0]
    assert s["meta"]["has_truth"] is False
    assert torch.isnan(s["truth"]).all() and torch.isnan(s["worn_mask"]).all()
    assert not torch.isnan(s["person"]).any()


def test_openpose_json_round_trip_and_body25(tmp_path):
    kp = np.zeros((18, 3), np.float32)
    kp[:, 0] = np.linspace(1.1, 40.7, 18)
    kp[:, 1] = np.linspace(3.3, 60.1, 18)
    kp[:, 2] = 0.9
    kp[7] = 0  # missing
    path = tmp_path / "a_keypoints.json"
    write_openpose_json(path, kp)
    assert np.array_equal(read_openpose_json(path), kp)
    body25 = np.zeros((25, 3), np.float32)
    body25[list(BODY25_TO_COCO18)] = kp
    body25[8] = (99, 99, 1)  # MidHip, which COCO-18 does not have
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": body25.reshape(-1).tolist()}]}))
    assert np.array_equal(read_openpose_json(path), kp)


# ---- malformed data: every case names the file and the problem ----


@pytest.fixture()
def broken(exported, tmp_path) -> Path:
    root = tmp_path / "broken"
    shutil.copytree(exported, root)
    return root


def _read_all(root: Path, pairs: str = "paired") -> None:
    ds = VitonHD(root, "test", pairs=pairs, size=SIZE)
    for i in range(len(ds)):
        ds[i]


def test_missing_pairs_file(broken):
    (broken / "test_pairs.txt").unlink()
    with pytest.raises(DataError, match=r"test_pairs\.txt: pairs file not found"):
        _read_all(broken)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("000000_00.png", "expected 'person_image cloth_image'"),
        ("nobody.png nobody.png", "names 'nobody.png'.*does not exist"),
    ],
)
def test_bad_pairs_line(broken, line, message):
    (broken / "test_pairs.txt").write_text(f"000001_00.png 000001_00.png\n{line}\n")
    with pytest.raises(DataError, match=rf"test_pairs\.txt:2: .*{message}"):
        _read_all(broken)


def test_missing_parse_file(broken):
    (broken / "test" / "image-parse-v3" / "000002_00.png").unlink()
    with pytest.raises(DataError, match=r"000002_00\.png: file not found"):
        _read_all(broken)


def test_parse_with_unknown_ids(broken):
    path = broken / "test" / "image-parse-v3" / "000001_00.png"
    original = Image.open(path)
    lip = np.asarray(original).copy()
    lip[0, 0] = 42
    bad = Image.fromarray(lip, mode="P")
    bad.putpalette(list(range(256)) * 3)  # a full palette, so PIL keeps index 42 as written
    bad.save(path)
    assert np.asarray(Image.open(path))[0, 0] == 42
    with pytest.raises(DataError, match=r"000001_00\.png: .*\[42\]"):
        _read_all(broken)


def test_parse_in_rgb_is_rejected(broken):
    path = broken / "test" / "image-parse-v3" / "000001_00.png"
    Image.open(path).convert("RGB").save(path)
    with pytest.raises(DataError, match=r"000001_00\.png: parse must be a P-mode"):
        _read_all(broken)


@pytest.mark.parametrize("values", [[1.0] * 51, [1.0] * 60])
def test_keypoint_json_with_the_wrong_number_of_values(broken, values):
    path = broken / "test" / "openpose_json" / "000003_00_keypoints.json"
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": values}]}))
    with pytest.raises(DataError, match=rf"000003_00_keypoints\.json: .*has {len(values)} values"):
        _read_all(broken)


def test_keypoint_json_that_is_not_json_or_has_no_person(broken):
    path = broken / "test" / "openpose_json" / "000003_00_keypoints.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match=r"000003_00_keypoints\.json: not a readable OpenPose JSON"):
        _read_all(broken)
    path.write_text(json.dumps({"people": []}))
    with pytest.raises(DataError, match=r"000003_00_keypoints\.json: no person"):
        _read_all(broken)


def test_missing_keypoint_file(broken):
    (broken / "test" / "openpose_json" / "000004_00_keypoints.json").unlink()
    with pytest.raises(DataError, match=r"000004_00_keypoints\.json: keypoint file not found"):
        _read_all(broken)


def test_image_of_the_wrong_size(broken):
    path = broken / "test" / "image" / "000001_00.png"
    Image.open(path).resize((48, 48)).save(path)
    with pytest.raises(
        DataError, match=r"000001_00\.png: parse is 48x64 but its image 000001_00\.png is 48x48"
    ):
        _read_all(broken)


def test_image_with_the_wrong_aspect_ratio(broken):
    split = broken / "test"
    for folder in ("image", "image-parse-v3"):
        path = split / folder / "000001_00.png"
        img = Image.open(path)
        img.resize((64, 64), Image.NEAREST).save(path)
    with pytest.raises(DataError, match=r"000001_00\.png: image is 64x64 .*aspect ratios differ"):
        _read_all(broken)


def test_missing_cloth_mask_and_unreadable_image(broken):
    (broken / "test" / "cloth-mask" / "000002_00.png").unlink()
    with pytest.raises(DataError, match=r"cloth-mask/000002_00\.png: cloth mask not found"):
        _read_all(broken)
    (broken / "test" / "image" / "000000_00.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"000000_00\.png: not a readable image"):
        _read_all(broken)
