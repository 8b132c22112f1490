"""The two commands: python -m sievenet.tryon and python -m sievenet.preprocess (run in-process via main())."""

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from sievenet import SieveNet
from sievenet.data import read_openpose_json
from sievenet.labels import LIP, lip_to_label
from sievenet.pipeline import STAGES
from sievenet.preprocess.__main__ import main as preprocess_main
from sievenet.tryon import main as tryon_main

ASTRONAUT = Path(__file__).resolve().parent.parent / "assets" / "examples" / "persons" / "astronaut.png"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return SieveNet.from_config("sievenet-s", height=128, width=96).save_pretrained(
        tmp_path_factory.mktemp("w") / "tiny"
    )


@pytest.fixture(scope="module")
def garment(tmp_path_factory) -> Path:
    g = np.full((300, 240, 3), 245, np.uint8)
    g[60:260, 70:170] = (200, 40, 40)
    path = tmp_path_factory.mktemp("g") / "shirt.jpg"
    PIL.Image.fromarray(g).save(path, quality=95)
    return path


def test_tryon_writes_every_stage_keypoints_and_timings(tmp_path, weights, garment, capsys):
    out = tmp_path / "run"
    code = tryon_main(
        ["--person", str(ASTRONAUT), "--garment", str(garment), "--out", str(out), "--weights", str(weights)]
    )
    assert code == 0
    for index, key in enumerate(STAGES, start=1):
        assert PIL.Image.open(out / f"{index:02d}_{key}.png").size == (96, 128)
    assert PIL.Image.open(out / "result.png").size == (512, 512)
    kp = read_openpose_json(out / "keypoints.json")
    assert kp[0, 1] < kp[1, 1]  # nose above neck, in photo pixels
    report = json.loads((out / "timings.json").read_text())
    assert {"pose", "model", "total"} <= set(report["timings_ms"])
    parse = np.asarray(PIL.Image.open(out / "parse.png"))
    assert PIL.Image.open(out / "parse.png").mode == "P" and LIP.FACE in np.unique(parse)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_text("hello"), "not an image"),
        (lambda p: PIL.Image.new("RGB", (40, 40)).save(p, format="PNG"), "at least 64"),
        (lambda p: PIL.Image.new("RGB", (200, 150), (128, 128, 128)).save(p, format="PNG"), "no person"),
    ],
)
def test_tryon_bad_person_photo_exits_2_with_a_message(tmp_path, weights, garment, capsys, make, message):
    bad = tmp_path / "bad.png"
    make(bad)
    code = tryon_main(
        [
            "--person",
            str(bad),
            "--garment",
            str(garment),
            "--out",
            str(tmp_path / "o"),
            "--weights",
            str(weights),
        ]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_tryon_missing_weights_exit_2(tmp_path, garment, capsys):
    code = tryon_main(
        [
            "--person",
            str(ASTRONAUT),
            "--garment",
            str(garment),
            "--out",
            str(tmp_path),
            "--weights",
            str(tmp_path / "none"),
        ]
    )
    assert code == 2 and "no weights" in capsys.readouterr().err


def test_preprocess_writes_the_viton_hd_layout(tmp_path, garment):
    out = tmp_path / "test"
    code = preprocess_main(
        [str(ASTRONAUT), "--garment", str(garment), "--out", str(out), "--size", "256x192"]
    )
    assert code == 0
    image = PIL.Image.open(out / "image" / "astronaut.jpg")
    assert image.size == (192, 256)
    parse = PIL.Image.open(out / "image-parse-v3" / "astronaut.png")
    assert parse.mode == "P" and parse.size == (192, 256)
    ids = np.asarray(parse)
    labels = lip_to_label(ids)  # readable by the same LIP mapping the VITON-HD loader uses
    assert {LIP.HAIR, LIP.FACE, LIP.UPPER_CLOTHES} <= set(np.unique(ids).tolist())
    assert labels.shape == (256, 192)
    kp = read_openpose_json(out / "openpose_json" / "astronaut_keypoints.json")
    assert 0 < kp[0, 0] < 192 and 0 < kp[0, 1] < kp[1, 1] < 256  # in the written image's pixels
    mask = np.asarray(PIL.Image.open(out / "cloth-mask" / "shirt.jpg"))
    assert PIL.Image.open(out / "cloth" / "shirt.jpg").size == (192, 256)
    assert mask[128, 96] > 200 and mask[5, 5] < 50


def test_preprocess_reports_bad_photos_and_continues(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    out = tmp_path / "o"
    assert preprocess_main([str(bad), str(ASTRONAUT), "--out", str(out), "--size", "128x96"]) == 2
    err = capsys.readouterr().err
    assert "bad.jpg" in err and "not an image" in err
    assert (out / "image" / "astronaut.jpg").exists()
