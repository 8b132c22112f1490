"""Files a user hands over are input too: releases, resume checkpoints, photos and keypoint files (issue 12).

Each hole is reproduced through the interface where it was found (the loader, the Python API, the CLI) and
must end in the project's own error with a message in words, never a traceback or a server path.
"""

import json
import os

import pytest
import torch

from sievenet import SieveNet
from sievenet.errors import WeightsError
from sievenet.models.sievenet import CONFIG_FILE, MANIFEST_FILE, WEIGHTS_FILE, sha256_file

# ---- releases -----------------------------------------------------------------------------------------------


@pytest.fixture
def release(tmp_path):
    folder = tmp_path / "release"
    SieveNet.from_config("sievenet-s", height=64, width=48).save_pretrained(folder)
    return folder


def _edit_manifest(folder, **fields):
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    for key, value in fields.items():
        if key == "file":
            manifest["weights"]["file"] = value
        else:
            manifest[key] = value
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))


def _edit_config(folder, **fields):
    """Change config.json AND re-hash it, as someone crafting a release would."""
    config = json.loads((folder / CONFIG_FILE).read_text())
    config.update(fields)
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    _edit_manifest(folder, config_sha256=sha256_file(folder / CONFIG_FILE))


@pytest.mark.parametrize("name", ["/etc/passwd", "../../../etc/hostname", "sub/model.safetensors", "..", ""])
def test_manifest_weights_file_must_be_a_plain_name_inside_the_release(release, name):
    _edit_manifest(release, file=name)
    with pytest.raises(WeightsError, match="'weights.file' must be the plain name of a file inside") as err:
        SieveNet.from_pretrained(release)
    assert sha256_file("/etc/passwd")[:8] not in str(err.value)  # the named file was never hashed


@pytest.mark.parametrize("value", [5, None, ["model.safetensors"], {"a": 1}])
def test_manifest_weights_file_of_the_wrong_type_names_the_field(release, value):
    _edit_manifest(release, file=value)
    with pytest.raises(WeightsError, match="field 'weights.file' must be a file name"):
        SieveNet.from_pretrained(release)


def test_manifest_of_the_wrong_shape_names_the_field(release):
    (release / MANIFEST_FILE).write_text("[1, 2]")
    with pytest.raises(WeightsError, match="must hold a JSON object"):
        SieveNet.from_pretrained(release)
    (release / MANIFEST_FILE).write_text('{"weights": "model.safetensors"}')
    with pytest.raises(WeightsError, match="field 'weights' must be an object"):
        SieveNet.from_pretrained(release)
    (release / MANIFEST_FILE).write_text('{"weights": {"file": "model.safetensors", "sha256": 7}}')
    with pytest.raises(WeightsError, match="'weights.sha256' must be 64 hexadecimal digits"):
        SieveNet.from_pretrained(release)


def test_a_weights_link_leading_out_of_the_release_is_refused(release, tmp_path):
    outside = tmp_path / "elsewhere.safetensors"
    (release / WEIGHTS_FILE).rename(outside)
    os.symlink(outside, release / WEIGHTS_FILE)  # same bytes, same sha256, but outside the folder
    with pytest.raises(WeightsError, match="not a regular file inside the release folder"):
        SieveNet.from_pretrained(release)
    os.symlink("/etc/passwd", release / "passwd")
    _edit_manifest(release, file="passwd")
    with pytest.raises(WeightsError, match="not a regular file inside the release folder"):
        SieveNet.from_pretrained(release)


def test_a_tampered_config_fails_its_checksum(release):
    config = json.loads((release / CONFIG_FILE).read_text())
    config["seg_widths"] = [24, 48, 96, 6000]
    (release / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=r"config\.json failed its checksum .*modified"):
        SieveNet.from_pretrained(release)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"seg_widths": [24, 48, 96, 6000]}, r"'seg_widths\[3\]' is 6000; it must be between 1 and 1024"),
        ({"width": 200000}, "'width' is 200000; it must be between 48 and 1024"),
        ({"height": "256"}, "'height' must be a whole number"),
        ({"grid_size": 1000}, "'grid_size' is 1000; it must be between 2 and 10"),
        ({"warp_features": [16, 32]}, "'warp_features' must be a list of 5 widths"),
        ({"tt_widths": [8] * 40}, "'tt_widths' must be a list of 1..6 widths"),
        ({"prior_channels": 100000}, "'prior_channels' is 100000; it must be 19"),
        ({"tt_use_segmentation": "yes"}, "'tt_use_segmentation' must be true or false"),
        ({"warp_regressor": [1.5]}, r"'warp_regressor\[0\]' must be a whole number"),
        ({"name": ["x"]}, "'name' must be a text"),
        ({"layers": 9}, r"unknown config keys \['layers'\]"),
        ({"seg_widths": [1024] * 4, "tt_widths": [1024] * 4}, "178 M parameters, more than the 150 M"),
    ],
)
def test_config_fields_are_bounded_before_anything_is_built(release, monkeypatch, fields, message):
    _edit_config(release, **fields)
    built = []
    monkeypatch.setattr(torch.nn.Conv2d, "reset_parameters", lambda self: built.append(self.weight.device))
    with pytest.raises(WeightsError, match=message):
        SieveNet.from_pretrained(release)
    assert all(device.type == "meta" for device in built)  # no real weights were allocated


def test_a_legacy_release_without_config_sha256_loads_only_if_its_manifest_agrees(release):
    manifest = json.loads((release / MANIFEST_FILE).read_text())
    del manifest["config_sha256"]
    (release / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert isinstance(SieveNet.from_pretrained(release), SieveNet)  # config.json == manifest["config"]
    config = json.loads((release / CONFIG_FILE).read_text())
    config["grid_size"] = 6
    (release / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="not covered by a config_sha256 .* differs from the config"):
        SieveNet.from_pretrained(release)


def test_the_shipped_release_carries_a_config_hash():
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "weights" / "sievenet-s"
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["config_sha256"] == sha256_file(folder / CONFIG_FILE)


def test_hf_releases_follow_the_same_rules(release, monkeypatch, tmp_path):
    """A hub download lands in the cache as snapshots/<commit>/ files linking to ../../blobs/; those links are
    fine, a manifest naming a file outside is not."""
    import huggingface_hub
    from huggingface_hub.hf_api import RepoFile

    repo = tmp_path / "models--evil--release"
    snapshot = repo / "snapshots" / "abc123"
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in release.iterdir():
        blob = repo / "blobs" / sha256_file(path)
        path.rename(blob)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / path.name)

    def paths_info(repo_id, paths, revision=None):
        return [RepoFile(path=p, size=100, oid="0") for p in paths]

    monkeypatch.setattr(huggingface_hub, "get_paths_info", paths_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: str(snapshot))
    assert isinstance(SieveNet.from_pretrained("hf://evil/release"), SieveNet)  # cache links are fine

    manifest = json.loads((snapshot / MANIFEST_FILE).read_text())
    manifest["weights"]["file"] = "../../../../../etc/passwd"
    (snapshot / MANIFEST_FILE).unlink()
    (snapshot / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="must be the plain name"):
        SieveNet.from_pretrained("hf://evil/release")
    os.symlink("/etc/hostname", snapshot / "hostname")
    manifest["weights"]["file"] = "hostname"
    (snapshot / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="not a regular file inside the release folder"):
        SieveNet.from_pretrained("hf://evil/release")
    manifest["weights"]["file"] = WEIGHTS_FILE
    (snapshot / MANIFEST_FILE).write_text(json.dumps(manifest))
    config = json.loads((snapshot / CONFIG_FILE).read_text())
    (snapshot / CONFIG_FILE).unlink()
    (snapshot / CONFIG_FILE).write_text(json.dumps({**config, "width": 200000}))
    with pytest.raises(WeightsError, match="config.json failed its checksum"):
        SieveNet.from_pretrained("hf://evil/release")


# ---- resume checkpoints -------------------------------------------------------------------------------------


def _train_cli(run, steps):
    from sievenet.train.__main__ import main as train_main
    from tests.train_helpers import tiny_overrides

    return train_main(
        ["sievenet-s-warp.yaml", *tiny_overrides(), f"run_dir={run}", f"steps={steps}", "batch_size=2",
         "ckpt_every=1", "image_every=1000", "log_every=1000", "tensorboard=false", "progress=false",
         "vgg_weights=random", "vgg_layers=2", "vgg_scale=0.5", "resume=true"]
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("ckpt") / "run"
    assert _train_cli(run, 2) == 0
    return run


@pytest.fixture
def run(trained_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def _flip_inside_largest_tensor(path):
    """Flip one byte in the middle of the biggest tensor's data: torch.load reads such a file back silently."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0x40
    path.write_bytes(bytes(data))


def _corrupt_header(path):
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_flip_inside_largest_tensor, "contents do not match the checksum"),
        (_corrupt_header, "it is unreadable ("),
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "it is unreadable ("),
        (lambda p: p.write_bytes(b""), "it is empty"),
        (lambda p: p.write_text("step: 7\nthis is a text file\n"), "it is unreadable ("),
    ],
    ids=["flipped-byte-in-the-middle", "flipped-header", "truncated", "empty", "text-file"],
)
def test_a_damaged_checkpoint_is_refused_with_the_way_back(run, capsys, damage, reason):
    last = run / "checkpoints" / "last.pt"
    previous = run / "checkpoints" / "previous.pt"
    damage(last)
    with pytest.raises(SystemExit) as exit_info:
        _train_cli(run, 3)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"cannot resume from {last}: " in err and reason in err
    assert f"kept at {previous}" in err and f"mv {previous} {last}" in err
    assert "Traceback" not in err


def test_the_way_back_works_and_resumes_exactly(run, trained_run, tmp_path):
    """Following the message (previous.pt over last.pt) resumes at the step before and ends where an intact run
    ends, bit for bit."""
    import shutil

    from sievenet.train.loop import load_checkpoint

    intact = tmp_path / "intact"
    shutil.copytree(trained_run, intact)

    checkpoints = run / "checkpoints"
    assert load_checkpoint(checkpoints / "previous.pt")["step"] == 1
    (checkpoints / "last.pt").write_bytes(b"")
    (checkpoints / "previous.pt").rename(checkpoints / "last.pt")
    assert _train_cli(run, 3) == 0
    assert _train_cli(intact, 3) == 0
    a, b = (load_checkpoint(r / "checkpoints" / "last.pt")["stage"]["model"] for r in (run, intact))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_missing_a_key_names_it(run, capsys):
    from sievenet.train.loop import load_checkpoint, save_atomic

    last = run / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(last)
    del ckpt["optimizer"]
    save_atomic(ckpt, last)  # a consistent checksum over an incomplete checkpoint
    with pytest.raises(SystemExit):
        _train_cli(run, 3)
    assert "it has no 'optimizer' (dict)" in capsys.readouterr().err
    ckpt = load_checkpoint(run / "checkpoints" / "previous.pt")
    ckpt["optimizer"] = {"state": {}, "param_groups": "nonsense"}
    save_atomic(ckpt, last)
    with pytest.raises(SystemExit):
        _train_cli(run, 3)
    assert "its state does not fit this run" in capsys.readouterr().err


def test_the_damaged_previous_checkpoint_says_there_is_no_way_back(run):
    from sievenet.train.loop import CheckpointError, load_checkpoint

    previous = run / "checkpoints" / "previous.pt"
    previous.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CheckpointError, match=f"no earlier checkpoint is kept; delete {previous}"):
        load_checkpoint(previous)


# ---- photos -------------------------------------------------------------------------------------------------


def test_a_large_rgba_png_is_reduced_before_any_float_array_exists(tmp_path):
    """The 6320x6320 RGBA case of issue 12 cost +2 GB: every float copy was full size. numpy reports its
    allocations to tracemalloc, so the float arrays' peak is measured here (PIL's 8-bit decode is not)."""
    import tracemalloc

    import numpy as np
    import PIL.Image

    from sievenet.preprocess.image_io import MAX_SIDE, load_image

    side = 4800  # 23 MP: a full-size float32 RGB copy alone would be 276 MB
    rgba = np.zeros((side, side, 4), np.uint8)
    rgba[1000:4000, 1500:3300] = (200, 30, 30, 255)
    path = tmp_path / "big.png"
    PIL.Image.fromarray(rgba).save(path)
    del rgba
    tracemalloc.start()
    photo = load_image(path, what="person photo")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert photo.rgb.size == (MAX_SIDE, MAX_SIDE) and photo.alpha.shape == (MAX_SIDE, MAX_SIDE)
    assert tuple(photo.array[5, 5]) == (255, 255, 255) and tuple(photo.array[1024, 1024]) == (200, 30, 30)
    assert peak < 80e6, f"numpy peak {peak / 1e6:.0f} MB"


@pytest.mark.parametrize("source", ["path", "bytes"])
def test_a_byte_limit_holds_for_paths_and_bytes(tmp_path, source):
    import numpy as np
    import PIL.Image

    from sievenet.errors import TryOnError
    from sievenet.preprocess.image_io import load_image

    path = tmp_path / "noise.png"
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (700, 700, 3), np.uint8)).save(path)
    given = path if source == "path" else path.read_bytes()
    assert load_image(given).rgb.size == (700, 700)  # no limit unless asked for
    with pytest.raises(TryOnError, match=r"is 1\.4 MB, over the 1 MB limit"):
        load_image(given, max_bytes=2**20, name="noise.png")


def test_data_urls_are_measured_before_they_are_decoded(monkeypatch):
    import base64
    import binascii

    from sievenet.errors import TryOnError
    from sievenet.preprocess.image_io import MAX_UPLOAD_BYTES, decode_data_url

    decoded = []
    real = base64.b64decode
    monkeypatch.setattr(base64, "b64decode", lambda *a, **k: decoded.append(1) or real(*a, **k))
    huge = "data:image/png;base64," + "A" * (4 * (MAX_UPLOAD_BYTES // 3 + 1000))
    with pytest.raises(TryOnError, match="over the 10 MB limit"):
        decode_data_url(huge, what="person photo")
    assert decoded == []
    assert decode_data_url("data:image/png;base64," + base64.b64encode(b"abc").decode()) == b"abc"
    for bad in ["data:image/png,abc", "http://example.com/a.png", "data:image/png;base64,@@@"]:
        with pytest.raises(TryOnError, match="data URL|not a base64"):
            decode_data_url(bad)
    assert binascii  # the invalid-base64 case above is binascii.Error inside


def test_messages_and_warnings_show_only_the_given_name(tmp_path):
    import numpy as np
    import PIL.Image

    from sievenet.errors import TryOnError
    from sievenet.preprocess.image_io import load_image

    frames = [PIL.Image.new("RGB", (80, 96), c) for c in [(255, 0, 0), (0, 0, 255)]]
    gif = tmp_path / "server" / "cache" / "anim.gif"
    gif.parent.mkdir(parents=True)
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    big = tmp_path / "server" / "cache" / "big.png"
    PIL.Image.new("RGB", (3000, 2500)).save(big)
    notes = load_image(gif, what="person photo", name="anim.gif").warnings
    notes += load_image(big, name="big.png").warnings
    assert len(notes) == 2 and all(str(tmp_path) not in n and "server" not in n for n in notes)
    assert "'anim.gif' is animated" in notes[0] and "'big.png' is 3000x2500; downscaled" in notes[1]
    (tmp_path / "server" / "cut.png").write_bytes(big.read_bytes()[:3000])
    (tmp_path / "server" / "text.png").write_text("hello")
    PIL.Image.new("RGB", (30, 30)).save(tmp_path / "server" / "tiny.png")
    for bad in ["cut.png", "text.png", "tiny.png", "missing.png"]:
        with pytest.raises(TryOnError) as err:
            load_image(tmp_path / "server" / bad, what="person photo", name="upload.png")
        assert "'upload.png'" in str(err.value) and str(tmp_path) not in str(err.value)
    assert load_image(np.zeros((80, 80, 3), np.uint8), name="x.png").warnings == []


@pytest.mark.parametrize(
    "array",
    [
        "object",
        "strings",
        "complex",
        "datetime",
        "structured",
    ],
)
def test_the_python_api_refuses_non_numeric_arrays_in_words(array):
    import numpy as np

    from sievenet.errors import TryOnError
    from sievenet.pipeline import TryOnPipeline

    given = {
        "object": np.full((96, 80, 3), None, dtype=object),
        "strings": np.full((96, 80, 3), "a"),
        "complex": np.zeros((96, 80, 3), np.complex64),
        "datetime": np.zeros((96, 80), "datetime64[s]"),
        "structured": np.zeros((96, 80), dtype=[("r", "u1"), ("g", "u1")]),
    }[array]
    pipe = TryOnPipeline(SieveNet.from_config("sievenet-s", height=64, width=48))
    with pytest.raises(TryOnError, match=r"the person photo array holds values of type .*not pixel numbers"):
        pipe(given, np.zeros((96, 80, 3), np.uint8))


def test_a_loaded_photo_passes_through_unchanged():
    import numpy as np

    from sievenet.preprocess.image_io import load_image

    photo = load_image(np.zeros((96, 80, 3), np.uint8), name="mine.png")
    photo.warnings.append("checked by the app")
    assert load_image(photo) is photo


# ---- keypoint files, through the CLI and the preprocessor ---------------------------------------------------

ASTRONAUT = (
    __import__("pathlib").Path(__file__).resolve().parent.parent / "assets/examples/persons/astronaut.png"
)


def _upright_keypoints() -> list[float]:
    """COCO-18 keypoints of a person standing in the middle of the 512x512 astronaut photo."""
    points = {0: (256, 100), 1: (256, 160), 2: (210, 160), 3: (190, 230), 4: (185, 300), 5: (302, 160),
              6: (322, 230), 7: (327, 300), 8: (225, 320), 9: (225, 400), 10: (225, 480), 11: (287, 320),
              12: (287, 400), 13: (287, 480), 14: (245, 90), 15: (267, 90), 16: (235, 95), 17: (277, 95)}  # fmt: skip
    return [v for k in range(18) for v in (*points[k], 0.9)]


def _keypoints_file(path, values=None, text=None):
    doc = {
        "version": 1.3,
        "people": [{"pose_keypoints_2d": values if values is not None else _upright_keypoints()}],
    }
    path.write_text(text if text is not None else json.dumps(doc))
    return path


def _garment(folder):
    import numpy as np
    import PIL.Image

    g = np.full((300, 240, 3), 245, np.uint8)
    g[60:260, 70:170] = (200, 40, 40)
    PIL.Image.fromarray(g).save(folder / "shirt.png")
    return folder / "shirt.png"


def _with(index, value):
    values = _upright_keypoints()
    values[index] = value
    return values


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    return SieveNet.from_config("sievenet-s", height=64, width=48).save_pretrained(
        tmp_path_factory.mktemp("w") / "w"
    )


BAD_KEYPOINTS = {
    "x=-1e30": (
        _with(9, -1e30),
        None,
        r"keypoint 3 \(right elbow\) has x = -1e\+30, outside the photo \(0..512\)",
    ),
    "y=1e30": (
        _with(10, 1e30),
        None,
        r"keypoint 3 \(right elbow\) has y = 1e\+30, outside the photo \(0..512\)",
    ),
    "x=600": (_with(0, 600.0), None, r"keypoint 0 \(nose\) has x = 600, outside the photo"),
    "confidence=1e39": (_with(2, 1e39), None, "keypoint 0 has confidence 1e\\+39; confidences run from 0"),
    "confidence=-0.5": (_with(5, -0.5), None, "keypoint 1 has confidence -0.5; confidences run from 0"),
    "confidence=1e400": (
        None,
        '{"people": [{"pose_keypoints_2d": [1e400' + ", 1" * 53 + "]}]}",
        "confidence = inf|x = inf",
    ),
    "NaN": (None, '{"people": [{"pose_keypoints_2d": [NaN' + ", 1" * 53 + "]}]}", "keypoint 0 has x = nan"),
    "nested": (
        [_upright_keypoints()[i : i + 3] for i in range(0, 54, 3)],
        None,
        "value 0 .* is list .*plain numbers",
    ),
    "53 values": (_upright_keypoints()[:53], None, "holds 53 numbers; an OpenPose file has 54"),
    "text value": (_with(4, "12"), None, "value 4 of 'pose_keypoints_2d' is str '12', not a number"),
    "bool value": (_with(4, True), None, "value 4 of 'pose_keypoints_2d' is bool"),
    "null value": (_with(4, None), None, "value 4 .* is NoneType"),
    "no people": (None, '{"people": {}}', "has no person in its 'people' list"),
    "not JSON": (None, "pose: [1, 2]", "is not a readable JSON file"),
    "a list": (None, "[1, 2, 3]", "has no person"),
    "deep nesting": (None, "[" * 100000 + "]" * 100000, "is not a readable JSON file"),
    "huge file": (None, " " * 1_200_000 + "{}", "larger than 1000 kB"),
    "all missing": ([0.0] * 54, None, "has no detected keypoints"),
}


@pytest.mark.parametrize("case", list(BAD_KEYPOINTS))
def test_bad_keypoint_files_are_explained_in_words_by_the_cli(tmp_path, tiny_weights, capsys, case):
    from sievenet.tryon import main as tryon_main

    values, text, message = BAD_KEYPOINTS[case]
    keypoints = _keypoints_file(tmp_path / "kp.json", values, text)
    garment = _garment(tmp_path)
    out = tmp_path / "out"
    code = tryon_main(["--person", str(ASTRONAUT), "--garment", str(garment), "--out", str(out), "--weights",
                       str(tiny_weights), "--pose", "json", "--keypoints-json", str(keypoints)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert __import__("re").search(message, err), err
    assert "the keypoints JSON 'kp.json'" in err or "'kp.json'" in err
    assert str(tmp_path) not in err.replace(str(tmp_path / "kp.json"), "")  # only the file's own name
    assert not out.exists()


def test_a_confidence_slightly_above_1_is_clipped_with_a_note(tmp_path):
    from sievenet.preprocess.pose import JsonPose

    found = JsonPose(_keypoints_file(tmp_path / "kp.json", _with(2, 1.02)))(
        __import__("numpy").zeros((512, 512, 3), "uint8")
    )
    assert found.keypoints[0, 2] == 1.0
    assert found.warnings == ["keypoint 0 of the keypoints JSON had confidence 1.02; used 1"]


def test_keypoints_written_by_the_cli_are_always_finite(tmp_path, tiny_weights):
    """A valid file with points a little off the photo is clipped onto it; what the CLI writes reads back."""
    import numpy as np

    from sievenet.data import read_openpose_json
    from sievenet.tryon import main as tryon_main

    keypoints = _keypoints_file(tmp_path / "kp.json", _with(30, 520.0))  # left ankle just past the right edge
    garment = _garment(tmp_path)
    out = tmp_path / "out"
    assert tryon_main(["--person", str(ASTRONAUT), "--garment", str(garment), "--out", str(out), "--weights",
                       str(tiny_weights), "--pose", "json", "--keypoints-json", str(keypoints)]) == 0  # fmt: skip
    written = read_openpose_json(out / "keypoints.json")
    assert np.isfinite(written).all() and written[:, 0].max() <= 511


# ---- rotated people -----------------------------------------------------------------------------------------


def _rotate(points: "list[float]", k: int, side: int = 512):
    """COCO-18 keypoints of a side x side photo turned like np.rot90(photo, k) (counter-clockwise)."""
    import numpy as np

    kp = np.asarray(points, np.float64).reshape(18, 3)
    for _ in range(k % 4):
        kp[:, 0], kp[:, 1] = kp[:, 1].copy(), side - 1 - kp[:, 0]
    return kp


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (0, None),
        (1, "rotated by 90 degrees .*to the left"),
        (2, "upside down"),
        (3, "rotated by 90 degrees .*to the right"),
    ],
)
def test_orientation_problem_on_synthetic_keypoints(k, expected):
    from sievenet.preprocess.pose import orientation_problem

    problem = orientation_problem(_rotate(_upright_keypoints(), k))
    if expected is None:
        assert problem is None
    else:
        assert __import__("re").search(expected, problem) and "rotate the photo" in problem


def test_orientation_problem_tolerates_lean_and_missing_points():
    import numpy as np

    from sievenet.preprocess.pose import orientation_problem

    kp = _rotate(_upright_keypoints(), 0)
    angle = np.deg2rad(35)  # a strong lean, still upright
    centre = kp[:, :2].mean(0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    leaning = kp.copy()
    leaning[:, :2] = (kp[:, :2] - centre) @ rotation.T + centre
    assert orientation_problem(leaning) is None
    upper_body = kp.copy()
    upper_body[8:14, 2] = 0  # no hips: shoulders against the head decide
    assert orientation_problem(upper_body) is None
    assert orientation_problem(_rotate(upper_body.reshape(-1).tolist(), 2)) is not None
    assert orientation_problem(np.zeros((18, 3))) is None  # nothing to decide on


@pytest.mark.parametrize("k", [1, 2])
def test_a_rotated_real_photo_is_refused_by_the_python_api(k):
    import numpy as np
    import skimage.data

    from sievenet.errors import TryOnError
    from sievenet.pipeline import TryOnPipeline

    photo = np.ascontiguousarray(np.rot90(skimage.data.astronaut(), k))
    pipe = TryOnPipeline(SieveNet.from_config("sievenet-s", height=64, width=48))
    with pytest.raises(TryOnError, match="seems (rotated by 90 degrees|upside down).*rotate the photo"):
        pipe(photo, np.full((240, 200, 3), 200, np.uint8))


# ---- backends -----------------------------------------------------------------------------------------------


@pytest.fixture
def offline_machine(monkeypatch, tmp_path):
    """No local OpenPose or rembg model, nothing in the hub cache, downloads not allowed; network calls recorded."""
    import huggingface_hub

    calls = []
    for var in (
        "SIEVENET_OPENPOSE_WEIGHTS",
        "SIEVENET_REMBG_MODEL",
        "SIEVENET_ALLOW_DOWNLOADS",
        "HF_HUB_OFFLINE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "u2net"))
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: calls.append(("hub", a)) or 1 / 0)
    return calls


def test_backend_problems_says_what_is_unavailable_without_building_anything(offline_machine):

    from sievenet.preprocess import backend_problems

    problems = backend_problems()
    assert problems["pose:mediapipe"] is None and problems["mask:mediapipe"] is None
    assert problems["pose:json"] is None
    assert problems["pose:openpose"].startswith("OpenPose is not available on this server")
    assert problems["mask:rembg"].startswith("rembg is not available on this server")
    for reason in (problems["pose:openpose"], problems["mask:rembg"]):
        assert "--" not in reason and "use the mediapipe" in reason
    assert offline_machine == []  # no network call


def test_unavailable_backends_fail_at_once_and_stay_failed(offline_machine, monkeypatch):
    from sievenet.errors import TryOnError
    from sievenet.preprocess import pose as pose_module
    from sievenet.preprocess.person import Preprocessor

    pre = Preprocessor()
    with pytest.raises(TryOnError, match="OpenPose is not available on this server"):
        pre.pose_backend("openpose")
    with pytest.raises(TryOnError, match="rembg is not available on this server"):
        pre.mask_backend("rembg")
    checked = []
    monkeypatch.setattr(pose_module, "openpose_problem", lambda *a: checked.append(1) or "x")
    with pytest.raises(TryOnError, match="OpenPose is not available"):  # the first answer, cached
        pre.pose_backend("openpose")
    assert checked == [] and offline_machine == []


def test_the_cli_reports_an_unavailable_backend_without_a_network_attempt(
    offline_machine, tmp_path, tiny_weights, capsys
):
    from sievenet.tryon import main as tryon_main

    garment = _garment(tmp_path)
    for option in (["--pose", "openpose"], ["--mask", "rembg"]):
        code = tryon_main(["--person", str(ASTRONAUT), "--garment", str(garment), "--out", str(tmp_path / "o"),
                           "--weights", str(tiny_weights), *option])  # fmt: skip
        assert code == 2 and "is not available on this server" in capsys.readouterr().err
    assert offline_machine == []


def test_with_downloads_allowed_the_real_loader_runs(offline_machine, monkeypatch, tmp_path):
    """The hub route is kept: with permission the weights are fetched (a small fake file here) and loaded by
    the real code, which then rejects them in words."""
    import huggingface_hub

    from sievenet.errors import TryOnError
    from sievenet.preprocess import backend_problems
    from sievenet.preprocess.pose import OpenPosePose

    fake = tmp_path / "body_pose_model.pth"
    torch.save({"conv1_1.weight": torch.zeros(2)}, fake)
    fetched = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: fetched.append(a) or str(fake))
    monkeypatch.setenv("SIEVENET_ALLOW_DOWNLOADS", "1")
    assert backend_problems()["pose:openpose"] is None and backend_problems()["mask:rembg"] is None
    with pytest.raises(TryOnError, match="does not hold OpenPose body weights"):
        OpenPosePose()
    assert fetched == [("lllyasviel/Annotators", "body_pose_model.pth")]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub's own switch wins
    assert backend_problems()["pose:openpose"] is not None


def test_a_cached_or_local_model_file_makes_a_backend_available(offline_machine, monkeypatch, tmp_path):
    import huggingface_hub

    from sievenet.preprocess import backend_problems

    cached = tmp_path / "cached.pth"
    cached.write_bytes(b"x")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: str(cached))
    (tmp_path / "u2net").mkdir()
    (tmp_path / "u2net" / "u2net_human_seg.onnx").write_bytes(b"x")
    problems = backend_problems()
    assert problems["pose:openpose"] is None and problems["mask:rembg"] is None
    problems = backend_problems(openpose_weights=tmp_path / "nope.pth", rembg_model=tmp_path / "nope.onnx")
    assert "model file is missing on this server" in problems["pose:openpose"]
    assert str(tmp_path) not in problems["pose:openpose"] + problems["mask:rembg"]


def test_the_preprocess_cli_reports_a_rotated_photo_and_goes_on(tmp_path, capsys):
    import numpy as np
    import PIL.Image

    from sievenet.preprocess.__main__ import main as preprocess_main

    rotated = tmp_path / "sideways.png"
    PIL.Image.fromarray(np.rot90(np.asarray(PIL.Image.open(ASTRONAUT).convert("RGB")), 3).copy()).save(
        rotated
    )
    out = tmp_path / "o"
    assert preprocess_main([str(rotated), str(ASTRONAUT), "--out", str(out), "--size", "128x96"]) == 2
    err = capsys.readouterr().err
    assert "sideways.png" in err and "rotated by 90 degrees (the head points to the right)" in err
    assert (out / "image" / "astronaut.jpg").exists() and not (out / "image" / "sideways.jpg").exists()
