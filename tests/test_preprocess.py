"""Photo preprocessing on a real photo (skimage's astronaut) and on constructed inputs with known answers."""

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from sievenet.errors import TryOnError
from sievenet.labels import Label
from sievenet.preprocess import (
    CropBox,
    Preprocessor,
    background_mask,
    crop,
    keypoints_to_crop,
    load_image,
    mediapipe_to_coco,
    parse_person,
    paste_back,
    person_box,
    prepare_garment,
    select_person,
)
from sievenet.preprocess.pose import OpenPosePose, PoseResult

ASTRONAUT = Path(__file__).resolve().parent.parent / "assets" / "examples" / "persons" / "astronaut.png"
NOSE, NECK, R_SHOULDER, L_SHOULDER = 0, 1, 2, 5


@pytest.fixture(scope="module")
def pre():
    return Preprocessor()


@pytest.fixture(scope="module")
def astronaut():
    return load_image(ASTRONAUT).array


@pytest.fixture(scope="module")
def astronaut_pose(pre, astronaut):
    return pre.pose(astronaut)


def test_astronaut_keypoints_are_where_a_person_would_be(astronaut_pose):
    kp = astronaut_pose.keypoints
    assert kp.shape == (18, 3) and astronaut_pose.people == 1 and astronaut_pose.warnings == []
    for k in (NOSE, NECK, R_SHOULDER, L_SHOULDER):
        assert kp[k, 2] > 0.5, f"keypoint {k} should be confidently seen"
    assert kp[NOSE, 1] < kp[NECK, 1] - 30  # the nose is well above the neck
    # The person's right shoulder is on the image's left (she faces the camera), the left on the right.
    assert kp[R_SHOULDER, 0] < kp[NECK, 0] < kp[L_SHOULDER, 0]
    assert abs(kp[NOSE, 0] - kp[NECK, 0]) < 60
    # The photo is cut at the waist: whatever mediapipe guesses for knees and ankles lies off the photo.
    assert (kp[[9, 10, 12, 13], 2] == 0).all()


def test_astronaut_mask_covers_the_figure_not_the_backdrop(pre, astronaut, astronaut_pose):
    mask = pre.person_mask(astronaut, astronaut_pose) >= 0.5
    kp = astronaut_pose.keypoints
    for k in (NOSE, NECK, R_SHOULDER, L_SHOULDER):
        assert mask[int(kp[k, 1]), int(kp[k, 0])], f"keypoint {k} should be on the person mask"
    assert 0.25 < mask.mean() < 0.6
    assert not mask[:40, :40].any() and not mask[:80, -80:].any()  # flag corner and shuttle area are backdrop


def test_astronaut_parse_puts_face_hair_and_torso_in_order(pre, astronaut, astronaut_pose):
    mask = pre.person_mask(astronaut, astronaut_pose)
    framed = pre.frame(astronaut, astronaut_pose.keypoints, mask, (256, 192))
    parse, kp = framed.parse, framed.keypoints
    assert framed.image.shape == (256, 192, 3) and parse.shape == (256, 192)
    nose = kp[NOSE, :2].round().astype(int)
    assert parse[nose[1], nose[0]] == Label.FACE
    face_rows = np.nonzero((parse == Label.FACE).any(axis=1))[0]
    hair_rows = np.nonzero((parse == Label.HAIR).any(axis=1))[0]
    upper_rows = np.nonzero((parse == Label.UPPER).any(axis=1))[0]
    assert hair_rows.min() < face_rows.min() < upper_rows.mean()
    assert (parse == Label.LEFT_ARM).sum() > 100 and (parse == Label.RIGHT_ARM).sum() > 100
    # Arms are on their owner's side: the person's left arm on the image's right.
    assert np.nonzero(parse == Label.LEFT_ARM)[1].mean() > np.nonzero(parse == Label.RIGHT_ARM)[1].mean()
    assert (parse == Label.LOWER).sum() == 0  # cut at the waist: no lower body to keep
    person, priors, tt = framed.tensors()
    assert priors.shape == (19, 256, 192) and tt.shape == (3, 256, 192)
    # The texture prior keeps the face pixels and blanks the garment.
    assert torch.equal(tt[:, nose[1], nose[0]], person[:, nose[1], nose[0]])
    y, x = np.argwhere(parse == Label.UPPER)[0]
    assert (tt[:, y, x] == 0).all()


def test_mediapipe_to_coco_mapping():
    lm = np.zeros((33, 3), np.float32)
    lm[:, 2] = 0.9
    lm[0] = [0.5, 0.1, 0.99]  # nose
    lm[11] = [0.7, 0.3, 0.8]  # left shoulder
    lm[12] = [0.3, 0.3, 0.6]  # right shoulder
    lm[5] = [0.45, 0.08, 0.9]  # right eye
    lm[2] = [0.55, 0.08, 0.9]  # left eye
    lm[27] = [0.6, 1.4, 0.9]  # left ankle, extrapolated below the photo
    kp = mediapipe_to_coco(lm, width=200, height=100)
    np.testing.assert_allclose(kp[NOSE], [100, 10, 0.99], rtol=1e-6)
    np.testing.assert_allclose(kp[NECK], [100, 30, 0.6], rtol=1e-6)  # mid-shoulders, the weaker confidence
    np.testing.assert_allclose(kp[R_SHOULDER, :2], [60, 30])
    np.testing.assert_allclose(kp[L_SHOULDER, :2], [140, 30])
    np.testing.assert_allclose(kp[14, :2], [90, 8])
    np.testing.assert_allclose(kp[15, :2], [110, 8])
    assert kp[13, 2] == 0  # off the photo = missing


def test_no_person_raises(pre):
    with pytest.raises(TryOnError, match="no person"):
        pre.pose(np.full((256, 192, 3), 128, np.uint8))


def test_two_people_use_the_largest_and_say_so(pre, astronaut):
    canvas = np.full((512, 900, 3), 200, np.uint8)
    canvas[:, 388:] = astronaut
    small = np.asarray(PIL.Image.fromarray(astronaut).resize((256, 256)))
    canvas[200:456, 10:266] = small
    found = pre.pose(canvas)
    assert found.people == 2 and "2 people found; used the largest" in found.warnings
    assert found.keypoints[NECK, 0] > 388  # the big astronaut on the right


def test_select_person_drops_other_blobs():
    mask = np.zeros((100, 100), np.float32)
    mask[10:90, 10:40] = 1.0  # the person
    mask[20:60, 70:95] = 1.0  # someone or something else
    kp = np.zeros((18, 3), np.float32)
    kp[NECK] = [25, 30, 1.0]
    kept = select_person(mask, kp)
    assert kept[50, 25] == 1.0 and kept[40, 80] == 0.0
    with pytest.raises(TryOnError, match="no person"):
        select_person(np.zeros((100, 100), np.float32), kp)


def test_framing_box_has_model_aspect_and_holds_the_person():
    mask = np.zeros((400, 600), np.float32)
    mask[50:350, 250:330] = 1
    kp = np.zeros((18, 3), np.float32)
    box = person_box(mask, kp, (256, 192))
    assert box.height / box.width == pytest.approx(256 / 192)
    assert box.y0 < 50 and box.y0 + box.height > 350 and box.x0 < 250 and box.x0 + box.width > 330
    cropped = crop(np.dstack([mask * 255] * 3).astype(np.uint8), box, (256, 192))
    assert cropped.shape == (256, 192, 3)
    kp[NECK] = [290, 50, 1.0]
    moved = keypoints_to_crop(kp, box, (256, 192))
    assert 0 < moved[NECK, 0] < 192 and moved[NECK, 2] == 1.0


def test_crop_outside_the_photo_is_white():
    rgb = np.zeros((100, 100, 3), np.uint8)
    out = crop(rgb, CropBox(-50, 0, 75, 100), (128, 96))
    assert (out[:, :20] == 255).all() and (out[:-2, -20:] == 0).all()  # the last rows blend into the edge


def test_paste_back_touches_only_the_alpha_region():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    box = CropBox(100, 50, 150, 200)
    tryon = np.full((128, 96, 3), 7, np.uint8)
    alpha = np.zeros((128, 96), np.float32)
    alpha[40:90, 30:70] = 1
    out = paste_back(photo, tryon, alpha, box, feather=1.0)
    changed = (out != photo).any(axis=2)
    ys, xs = np.nonzero(changed)
    # Crop (40..90, 30..70) maps to photo y 50 + [62.5, 140.6], x 100 + [46.9, 109.4], plus a little feather.
    assert ys.min() >= 50 + 55 and ys.max() <= 50 + 148 and xs.min() >= 100 + 40 and xs.max() <= 100 + 117
    assert (out[150, 175] == 7).all()  # the middle of the region is the try-on
    assert (paste_back(photo, tryon, np.zeros_like(alpha), box) == photo).all()


def _garment_photo(background=(245, 245, 245)) -> np.ndarray:
    g = np.empty((300, 240, 3), np.uint8)
    g[:] = background
    g[60:260, 70:170] = (30, 60, 200)
    g[60:120, 30:210] = (30, 60, 200)
    return g


def test_garment_on_light_background_is_cut_out_centred_and_scaled():
    photo = load_image(_garment_photo())
    garment = prepare_garment(photo, (256, 192))
    assert garment.cloth.shape == (3, 256, 192) and garment.mask.shape == (1, 256, 192)
    m = garment.mask[0].numpy() >= 0.5
    ys, xs = np.nonzero(m)
    assert abs((ys.min() + ys.max()) / 2 - 128) < 3 and abs((xs.min() + xs.max()) / 2 - 96) < 3
    assert max(ys.ptp() / 256, xs.ptp() / 192) == pytest.approx(0.8, abs=0.02)  # like a catalogue image
    outside = garment.mask[0] < 0.01
    assert (garment.cloth[:, outside] == 1.0).all()  # pure white outside the garment
    blue = garment.image[128, 96]
    assert blue[2] > 150 and blue[0] < 80


def test_garment_from_transparent_png(tmp_path):
    rgba = np.zeros((300, 240, 4), np.uint8)
    rgba[60:260, 70:170] = (250, 250, 250, 255)  # a white shirt: impossible on white, easy with alpha
    PIL.Image.fromarray(rgba).save(tmp_path / "shirt.png")
    garment = prepare_garment(load_image(tmp_path / "shirt.png"), (128, 96))
    assert 0.15 < float((garment.mask >= 0.5).float().mean()) < 0.6


def test_garment_without_separable_background_is_refused():
    rng = np.random.default_rng(0)
    busy = rng.integers(0, 256, (300, 240, 3), dtype=np.uint8)
    with pytest.raises(TryOnError, match="could not separate the garment"):
        background_mask(busy)
    with pytest.raises(TryOnError, match="no garment"):
        prepare_garment(load_image(np.full((300, 240, 3), 240, np.uint8)), (128, 96))


def _openpose_file(tmp_path: Path) -> Path:
    """A body_pose_model.pth in the layout of the real one (keys without the block prefix): random first
    block, zeros after it, so the heatmaps are flat and the answer is a deterministic "nobody here"."""
    from controlnet_aux.open_pose.model import bodypose_model

    with torch.device("meta"):
        shapes = {name: t.shape for name, t in bodypose_model().state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    state = {}
    for name, shape in shapes.items():
        block, key = name.split(".", 1)
        state[key] = (
            torch.randn(shape, generator=generator) * 0.01 if block == "model0" else torch.zeros(shape)
        )
    path = tmp_path / "body_pose_model.pth"
    torch.save(state, path)
    return path


@pytest.mark.slow  # writes and loads a 200 MB weights file (~8 s on 2 cores)
def test_openpose_backend_runs_on_a_local_weights_file(tmp_path, astronaut):
    weights = _openpose_file(tmp_path)
    backend = OpenPosePose(weights)
    small = np.asarray(PIL.Image.fromarray(astronaut).resize((128, 128)))
    with pytest.raises(TryOnError, match="OpenPose found no person"):
        backend(small)


def test_openpose_refuses_pickled_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pth"
    torch.save({"conv1_1.weight": Payload()}, path)
    with pytest.raises(TryOnError, match="not a plain OpenPose state dict"):
        OpenPosePose(path)
    with pytest.raises(TryOnError, match="do not exist"):
        OpenPosePose(tmp_path / "missing.pth")


def _tiny_onnx(path: Path) -> Path:
    """A stand-in U^2-Net: the mask is the mean brightness of the (320 x 320) input."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("ReduceMean", ["input"], ["mask"], axes=[1], keepdims=1)
    graph = helper.make_graph(
        [node],
        "brightness",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 320, 320])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 320, 320])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_rembg_backend_with_a_local_onnx_model(tmp_path):
    pre = Preprocessor(rembg_model=_tiny_onnx(tmp_path / "tiny.onnx"))
    rgb = np.zeros((200, 160, 3), np.uint8)
    rgb[40:180, 50:110] = 255  # a bright figure on black
    mask = pre.mask_backend("rembg")(rgb)
    assert mask.shape == (200, 160)
    assert mask[100, 80] > 0.9 and mask[10, 10] < 0.1
    found = PoseResult(keypoints=np.array([[80, 100, 1.0]] + [[0, 0, 0]] * 17, np.float32))
    kept = pre.person_mask(rgb, found, "rembg")
    assert kept[100, 80] > 0.9


def test_rembg_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(TryOnError, match="does not exist"):
        Preprocessor(rembg_model=tmp_path / "nope.onnx").mask_backend("rembg")


def test_unknown_backends_are_named(pre):
    with pytest.raises(TryOnError, match="unknown pose backend 'posenet'"):
        pre.pose_backend("posenet")
    with pytest.raises(TryOnError, match="unknown mask backend"):
        pre.mask_backend("sam")
    with pytest.raises(TryOnError, match="needs a keypoints JSON"):
        pre.pose_backend("json")


def test_parse_person_on_a_drawn_figure():
    h, w = 128, 96
    mask = np.zeros((h, w), np.float32)
    mask[10:120, 30:66] = 1
    kp = np.zeros((18, 3), np.float32)
    kp[NOSE] = [48, 22, 1]
    kp[NECK] = [48, 40, 1]
    kp[R_SHOULDER] = [36, 42, 1]
    kp[L_SHOULDER] = [60, 42, 1]
    kp[8] = [40, 80, 1]
    kp[11] = [56, 80, 1]
    parse = parse_person(mask, kp)
    assert parse[22, 48] == Label.FACE
    assert parse[60, 48] == Label.UPPER
    assert parse[100, 48] == Label.LOWER
    assert parse[5, 48] == Label.BACKGROUND
