"""The learned human parser: release checks, accuracy of the shipped weights on studio renders, the hem leak,
the fallback to the heuristic, and the --parser option."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sievenet.errors import TryOnError, WeightsError
from sievenet.labels import TT_KEPT, Label
from sievenet.parser import CONFIGS, LearnedParser, ParserConfig, ParserNet, default_parser_weights, encode
from sievenet.parser.data import TEST_PHOTOS, frame_sample, render_scene
from sievenet.parser.train import confusion, iou_table

SHIPPED = default_parser_weights()
TINY = CONFIGS["parser-tiny"]


@pytest.fixture
def tiny_release(tmp_path):
    torch.manual_seed(0)
    return ParserNet(TINY).save_pretrained(tmp_path / "parser-tiny", manifest={"steps": 0})


@pytest.fixture(scope="module")
def shipped():
    return LearnedParser.from_pretrained(SHIPPED)


def _crop_inputs(h=64, w=48):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.float32)
    mask[8:60, 12:36] = 1
    kp = np.zeros((18, 3), np.float32)
    kp[[1, 2, 5, 8, 11]] = [[24, 16, 1], [16, 17, 1], [32, 17, 1], [19, 40, 1], [29, 40, 1]]
    return image, mask, kp


def test_release_round_trip_is_exact(tiny_release):
    net = ParserNet.from_pretrained(tiny_release)
    assert net.config == TINY
    x = encode(*_crop_inputs(), TINY)[None]
    torch.manual_seed(0)
    fresh = ParserNet(TINY).eval()
    assert torch.equal(net(x), fresh(x))
    manifest = json.loads((tiny_release / "manifest.json").read_text())
    assert len(manifest["weights"]["sha256"]) == 64 and len(manifest["config_sha256"]) == 64


def test_tampered_weights_are_refused(tiny_release):
    weights = tiny_release / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum"):
        ParserNet.from_pretrained(tiny_release)


def test_tampered_config_is_refused(tiny_release):
    config = tiny_release / "config.json"
    data = json.loads(config.read_text())
    data["widths"] = [8, 32]
    config.write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="checksum"):
        ParserNet.from_pretrained(tiny_release)


def test_config_is_bounded_even_when_its_hash_matches(tiny_release):
    """A release whose manifest covers a hostile config (a huge width) is refused before anything is built."""
    import hashlib

    config = tiny_release / "config.json"
    data = json.loads(config.read_text())
    data["widths"] = [8, 100_000]
    raw = json.dumps(data).encode()
    config.write_bytes(raw)
    manifest = json.loads((tiny_release / "manifest.json").read_text())
    manifest["config_sha256"] = hashlib.sha256(raw).hexdigest()
    (tiny_release / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match=r"widths\[1\]"):
        ParserNet.from_pretrained(tiny_release)


def test_config_fields_are_validated():
    with pytest.raises(ValueError, match="unknown parser config keys"):
        ParserConfig.from_dict({**TINY.to_dict(), "extra": 1})
    with pytest.raises(ValueError, match="use_mask"):
        ParserConfig.from_dict({**TINY.to_dict(), "use_mask": "yes"})
    with pytest.raises(ValueError, match="divisible"):
        ParserConfig.from_dict({**TINY.to_dict(), "height": 66})


def test_a_sievenet_release_is_not_a_parser(tmp_path):
    from sievenet.models import SieveNet

    folder = SieveNet.from_config("sievenet-s", height=64, width=48).save_pretrained(tmp_path / "model")
    with pytest.raises(WeightsError, match="not a human-parser release"):
        ParserNet.from_pretrained(folder)


def test_shipped_weights_verify_and_load_strictly(shipped):
    assert shipped.config == CONFIGS["parser-s"]
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    assert manifest["format"] == "sievenet-parser-release/1" and manifest["steps"] > 0


def _studio_samples(studio: str, n: int, size=(384, 288)):
    from sievenet.synthetic import SyntheticTryOn

    ds = SyntheticTryOn("test", seed=0, size=size, studio=studio, n=n)
    return [render_scene(ds, i, seed=0, photos=TEST_PHOTOS, keep_own_backdrop=0.0) for i in range(n)]


def test_shipped_parser_matches_2d_studio_truth_on_unseen_scenes_and_backdrops(shipped):
    """Test-split persons and garments on background photos never used in training, truth mask and keypoints."""
    conf = np.zeros((8, 8), np.int64)
    for sample in _studio_samples("2d", 12):
        image, truth, mask, kp = frame_sample(sample, (256, 192), augment=False)
        conf += confusion(shipped(image, mask, kp), truth)
    table = iou_table(conf)  # measured: mIoU 0.759, face 0.839, upper 0.875, lower 0.877, arms 0.561 / 0.453
    assert table["mIoU"] > 0.70, table
    for name in ("face", "upper", "lower"):
        assert table[name] > 0.75, table
    assert min(table["left_arm"], table["right_arm"]) > 0.35, table


def test_shipped_parser_matches_3d_studio_truth_on_unseen_scenes_and_backdrops(shipped):
    conf = np.zeros((8, 8), np.int64)
    for sample in _studio_samples("3d", 4):
        image, truth, mask, kp = frame_sample(sample, (256, 192), augment=False)
        conf += confusion(shipped(image, mask, kp), truth)
    table = iou_table(conf)  # measured: mIoU 0.774, face 0.901, upper 0.879, lower 0.932
    assert table["mIoU"] > 0.70, table
    for name in ("face", "upper", "lower"):
        assert table[name] > 0.8, table


def test_untrained_parser_fails_the_same_floor():
    """The floor above can fail: a parser with fresh weights is far under it."""
    fresh = LearnedParser(ParserNet(CONFIGS["parser-s"]))
    conf = np.zeros((8, 8), np.int64)
    for sample in _studio_samples("2d", 2):
        image, truth, mask, kp = frame_sample(sample, (256, 192), augment=False)
        conf += confusion(fresh(image, mask, kp), truth)
    assert iou_table(conf)["mIoU"] < 0.5


def _long_tops(n: int = 3, search: int = 60):
    """Test-split 2D scenes whose top hangs furthest below the hip line."""
    from sievenet.synthetic import SyntheticTryOn

    ds = SyntheticTryOn("test", seed=0, size=(384, 288), studio="2d", n=search)
    longest = sorted(range(search), key=lambda i: -ds.spec(i).worn.length)[:n]
    return [render_scene(ds, i, seed=0, photos=TEST_PHOTOS, keep_own_backdrop=0.0) for i in longest]


def test_a_hem_below_the_hip_line_stays_out_of_the_texture_priors(shipped):
    from sievenet.preprocess.parsing import parse_person

    for sample in _long_tops():
        image, truth, mask, kp = frame_sample(sample, (256, 192), augment=False)
        hip_y = kp[[8, 11], 1].mean()
        rows = np.arange(truth.shape[0])[:, None]
        hem = (truth == Label.UPPER) & (rows > hip_y + 2)
        assert hem.sum() > 150, "the scene should have a hem below the hips"
        kept = np.isin(shipped(image, mask, kp), [int(k) for k in TT_KEPT])
        old = np.isin(parse_person(mask, kp), [int(k) for k in TT_KEPT])  # geometry only: the leak
        assert (old & hem).sum() > 0.8 * hem.sum()
        assert (kept & hem).sum() <= 0.03 * hem.sum(), f"{(kept & hem).sum()} of {hem.sum()} hem pixels kept"


def test_missing_weights_fall_back_to_the_heuristic_with_a_warning(monkeypatch, tmp_path):
    import sievenet.parser
    from sievenet.preprocess import Preprocessor

    monkeypatch.setattr(sievenet.parser, "default_parser_weights", lambda: tmp_path / "absent")
    pre = Preprocessor()
    with pytest.warns(UserWarning, match="heuristic"):
        assert pre.learned_parser is None
    assert "weights/parser-s" in pre.parser_note and "heuristic" in pre.parser_note
    assert str(tmp_path) not in pre.parser_note  # app visitors see this note: no server paths
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once, not on every photo
        assert pre.learned_parser is None


def test_named_but_missing_weights_are_an_error_not_a_fallback(tmp_path):
    from sievenet.preprocess import Preprocessor

    with pytest.raises(WeightsError):
        _ = Preprocessor(parser_weights=tmp_path / "nowhere").learned_parser


def test_parser_option(tmp_path):
    from sievenet.preprocess import Preprocessor
    from sievenet.tryon import build_parser

    assert Preprocessor(parser="heuristic").learned_parser is None
    with pytest.raises(TryOnError, match="unknown parser"):
        Preprocessor(parser="magic")
    assert build_parser().parse_args(["--person", "a", "--garment", "b", "--out", "c"]).parser == "learned"
    args = build_parser().parse_args(
        ["--person", "a", "--garment", "b", "--out", "c", "--parser", "heuristic"]
    )
    assert args.parser == "heuristic"


def test_preprocess_cli_with_each_parser(tmp_path):
    """`python -m sievenet.preprocess PHOTO --parser heuristic` and the default (learned) both write a parse."""
    import PIL.Image

    from sievenet.preprocess.__main__ import main

    photo = (
        Path(__file__).resolve().parent.parent
        / "assets"
        / "examples"
        / "persons"
        / "studio3d_person_0000.png"
    )
    parses = {}
    for name in ("heuristic", "learned"):
        out = tmp_path / name
        assert main([str(photo), "--out", str(out), "--size", "256x192", "--parser", name]) == 0
        parses[name] = np.asarray(PIL.Image.open(out / "image-parse-v3" / f"{photo.stem}.png"))
    assert parses["heuristic"].shape == parses["learned"].shape == (256, 192)
    assert not np.array_equal(parses["heuristic"], parses["learned"])


def test_pipeline_refuses_broken_parser_weights_when_built(tiny_release):
    """A tampered parser release stops the pipeline at start, before any photo (the app fails at launch)."""
    from sievenet.models import SieveNet
    from sievenet.pipeline import TryOnPipeline

    weights = tiny_release / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    model = SieveNet.from_config("sievenet-s", height=64, width=48)
    with pytest.raises(WeightsError, match="checksum"):
        TryOnPipeline(model, parser_weights=tiny_release)
    assert TryOnPipeline(model, parser="heuristic").preprocessor.learned_parser is None


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory):
    """Four 2D-studio scenes at 128x96 written as one rendered shard (truth only, mediapipe not run)."""
    from sievenet.parser.data import FILES
    from sievenet.synthetic import SyntheticTryOn

    ds = SyntheticTryOn("train", seed=0, size=(128, 96), studio="2d", n=4)
    samples = [render_scene(ds, i, seed=0) for i in range(4)]
    shard = tmp_path_factory.mktemp("shards") / "shard_0000"
    shard.mkdir()
    for key in FILES:
        np.save(shard / f"{key}.npy", np.stack([s[key] for s in samples]))
    (shard / "done.json").write_text("{}")
    return shard.parent


def test_mirrored_samples_keep_each_arm_under_its_own_keypoints(tiny_shards):
    """Mirroring swaps the arm labels and the keypoints together (else left and right would be noise)."""
    from sievenet.parser.data import Shards, _flip

    shards, checked = Shards([tiny_shards]), 0
    pairs = (
        (3, 6, Label.RIGHT_ARM, Label.LEFT_ARM),
        (4, 7, Label.RIGHT_ARM, Label.LEFT_ARM),
        (6, 3, Label.LEFT_ARM, Label.RIGHT_ARM),
        (7, 4, Label.LEFT_ARM, Label.RIGHT_ARM),
    )
    for i in range(len(shards)):
        image, label, mask, kp = frame_sample(shards[i], (128, 96), augment=False)
        _, flipped, _, flipped_kp = _flip(image, label, mask, kp, 96)
        # The mirrored person's right elbow/wrist is the original's left one, mirrored: where that is bare arm
        # (sleeves are garment), the mirrored label must be the mirrored person's right arm, and vice versa.
        for joint, mirror, arm, mirror_arm in pairs:
            x, y = kp[mirror, :2].round().astype(int)
            if kp[mirror, 2] > 0 and label[y, x] == mirror_arm:
                fx, fy = flipped_kp[joint, :2].round().astype(int)
                assert flipped[fy, fx] == arm
                checked += 1
    assert checked >= 3


def test_training_resumes_to_the_same_weights(tiny_shards, tmp_path):
    """A run resumed from its step-2 checkpoint ends where the uninterrupted run ends; a damaged one is refused."""
    import shutil

    from sievenet.parser.train import train
    from sievenet.train.loop import CheckpointError, load_checkpoint

    torch.set_num_threads(1)
    settings = dict(model="parser-tiny", steps=4, batch_size=2, seed=0, ckpt_every=2, log_every=2, command=[])
    straight = load_checkpoint(train(tmp_path / "a", [str(tiny_shards)], **settings))
    resumed = tmp_path / "b" / "checkpoints"
    resumed.mkdir(parents=True)
    shutil.copy(tmp_path / "a" / "checkpoints" / "previous.pt", resumed / "last.pt")  # step 2
    assert load_checkpoint(resumed / "last.pt")["step"] == 2
    end = load_checkpoint(train(tmp_path / "b", [str(tiny_shards)], **settings))
    assert end["step"] == 4
    for key, value in straight["stage"]["model"].items():
        assert torch.equal(value, end["stage"]["model"][key]), key
    damaged = resumed / "last.pt"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # a write cut short
    with pytest.raises(CheckpointError):
        load_checkpoint(damaged)
    # Contents changed under an unchanged checksum (a flipped bit torch.load reads back without noticing).
    ckpt = torch.load(tmp_path / "a" / "checkpoints" / "last.pt", weights_only=True)
    next(iter(ckpt["stage"]["model"].values())).view(-1)[0] += 1.0
    torch.save(ckpt, damaged)
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(damaged)


def test_neck_inside_the_detected_face_becomes_face():
    from sievenet.parser import neck_to_face

    labels = np.full((64, 48), int(Label.NECK), np.int64)
    labels[:, :4] = Label.UPPER
    out = neck_to_face(labels.copy(), np.array([14, 10, 34, 30, 0.9]))  # a 20 px face box
    assert out[20, 24] == Label.FACE and out[30, 24] == Label.FACE  # the chin, just under the box
    assert out[50, 24] == Label.NECK and out[20, 2] == Label.UPPER  # the neck below; other classes untouched
    assert np.array_equal(neck_to_face(labels.copy(), None), labels)
