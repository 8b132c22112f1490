"""TryOnPipeline end to end on a real photo, with a fresh (untrained) model saved and loaded like a release."""

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from sievenet import SieveNet
from sievenet.data import read_openpose_json, write_openpose_json
from sievenet.errors import TryOnError, WeightsError
from sievenet.labels import Label
from sievenet.pipeline import STAGES, TryOnPipeline, TryOnResult, draw_control_grid

ASTRONAUT = Path(__file__).resolve().parent.parent / "assets" / "examples" / "persons" / "astronaut.png"
SIZE = (128, 96)


def garment_photo() -> np.ndarray:
    g = np.full((300, 240, 3), 245, np.uint8)
    g[60:260, 70:170] = (30, 60, 200)
    g[60:120, 30:210] = (30, 60, 200)
    return g


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = SieveNet.from_config("sievenet-s", height=SIZE[0], width=SIZE[1])
    return model.save_pretrained(tmp_path_factory.mktemp("weights") / "tiny")


@pytest.fixture(scope="module")
def pipe(release) -> TryOnPipeline:
    return TryOnPipeline.from_pretrained(release)


@pytest.fixture(scope="module")
def result(pipe) -> TryOnResult:
    calls = []
    out = pipe(str(ASTRONAUT), garment_photo(), progress=lambda f, s: calls.append((f, s)))
    out.progress_calls = calls  # kept for the progress test
    return out


def test_every_stage_is_produced_in_order_at_model_size(result):
    assert list(result.stages) == list(STAGES)
    for key, image in result.stages.items():
        assert image.mode == "RGB" and image.size == (SIZE[1], SIZE[0]), key
    assert result.crop.size == (SIZE[1], SIZE[0])
    assert result.image.size == (512, 512)  # the photo's own resolution
    # The "before" images, framed like the two "after" images.
    assert result.photo.size == result.image.size and result.person_crop.size == result.crop.size
    assert result.parse.shape == SIZE and result.parse.dtype == np.int64
    assert result.output.tryon.shape == (1, 3, *SIZE)
    np.testing.assert_array_equal(np.asarray(result.crop), np.asarray(result.stages["tryon"]))


def test_keypoints_are_in_photo_pixels(result):
    kp = result.keypoints
    assert kp.shape == (18, 3)
    assert kp[0, 1] < kp[1, 1] and kp[2, 0] < kp[1, 0] < kp[5, 0]  # nose above neck, shoulders either side
    assert 150 < kp[0, 0] < 300 and 60 < kp[0, 1] < 200  # the astronaut's nose, in the 512 x 512 photo


def test_parse_and_stages_show_the_person(result):
    parse = result.parse
    assert (parse == Label.FACE).sum() > 50 and (parse == Label.UPPER).sum() > 500
    body = np.asarray(result.stages["body_shape"])[..., 0]
    assert body[parse == Label.UPPER].mean() > 150 and body[:, :3].mean() < body.mean()
    tt = np.asarray(result.stages["tt_priors"])
    assert (tt[parse == Label.UPPER] == 128).all()  # garment blanked to grey in the texture prior
    # A fresh model warps with the identity: I_stn^0 = I_stn^1, so the difference stage is black.
    assert np.asarray(result.stages["warp_difference"]).max() < 10


def test_timings_cover_each_step(result):
    steps = ["load", "pose", "mask", "parse", "garment", "model", "render", "paste", "total"]
    assert list(result.timings) == steps
    assert all(v >= 0 for v in result.timings.values())
    assert result.timings["total"] >= sum(v for k, v in result.timings.items() if k != "total") * 0.99


def test_progress_reports_each_step_in_order(result):
    fractions = [f for f, _ in result.progress_calls]
    names = [s for _, s in result.progress_calls]
    assert names == ["load", "pose", "mask", "parse", "garment", "model", "render", "paste", "done"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_paste_back_keeps_the_face_and_the_backdrop(result):
    photo = np.asarray(PIL.Image.open(ASTRONAUT).convert("RGB"))
    pasted = np.asarray(result.image)
    kp = result.keypoints
    nose = kp[0, :2].round().astype(int)
    np.testing.assert_array_equal(
        pasted[nose[1] - 3 : nose[1] + 3, nose[0] - 3 : nose[0] + 3],
        photo[nose[1] - 3 : nose[1] + 3, nose[0] - 3 : nose[0] + 3],
    )
    np.testing.assert_array_equal(pasted[:20, :20], photo[:20, :20])  # flag corner, far from the garment
    assert (pasted != photo).any()  # and the torso did change


def test_inputs_as_pil_array_and_path_agree(pipe, result):
    image = PIL.Image.open(ASTRONAUT)
    again = pipe(image, PIL.Image.fromarray(garment_photo()))
    np.testing.assert_array_equal(np.asarray(again.crop), np.asarray(result.crop))


def test_no_person_and_bad_garment_raise_try_on_errors(pipe):
    with pytest.raises(TryOnError, match="no person"):
        pipe(np.full((256, 192, 3), 128, np.uint8), garment_photo())
    rng = np.random.default_rng(0)
    with pytest.raises(TryOnError, match="could not separate the garment"):
        pipe(str(ASTRONAUT), rng.integers(0, 256, (200, 160, 3), dtype=np.uint8))
    with pytest.raises(TryOnError, match="unknown pose backend"):
        pipe(str(ASTRONAUT), garment_photo(), pose="posenet")
    with pytest.raises(TryOnError, match="at least 64"):
        pipe(np.zeros((32, 32, 3), np.uint8), garment_photo())


def test_json_keypoints_from_the_synthetic_studio_round_trip_exactly(pipe, tmp_path):
    from sievenet.synthetic.export import export

    folder = export(tmp_path / "studio", "train", n=1, size=SIZE)
    image = next((folder / "image").iterdir())
    keypoints_file = folder / "openpose_json" / f"{image.stem}_keypoints.json"
    garment = next((folder / "cloth").iterdir())
    out = pipe(image, garment, pose="json", keypoints_json=keypoints_file)
    np.testing.assert_array_equal(out.keypoints, read_openpose_json(keypoints_file))
    write_openpose_json(tmp_path / "again.json", out.keypoints)
    assert (
        json.loads((tmp_path / "again.json").read_text())["people"][0]["pose_keypoints_2d"]
        == json.loads(keypoints_file.read_text())["people"][0]["pose_keypoints_2d"]
    )


def test_json_keypoints_for_another_image_are_refused(pipe, tmp_path):
    kp = np.zeros((18, 3), np.float32)
    kp[:, 2] = 1.0
    kp[:, 0] = 3000  # far outside the 512 x 512 photo
    write_openpose_json(tmp_path / "k.json", kp)
    with pytest.raises(TryOnError, match="outside"):
        pipe(str(ASTRONAUT), garment_photo(), pose="json", keypoints_json=tmp_path / "k.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(TryOnError, match="cannot use the keypoints JSON"):
        pipe(str(ASTRONAUT), garment_photo(), pose="json", keypoints_json=tmp_path / "broken.json")


def test_missing_default_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import sievenet.pipeline as pipeline

    monkeypatch.setattr(pipeline, "__file__", str(tmp_path / "sievenet" / "pipeline.py"))
    with pytest.raises(WeightsError, match="train them"):
        TryOnPipeline.from_pretrained()
    with pytest.raises(WeightsError, match="no weights"):
        TryOnPipeline.from_pretrained(tmp_path / "nowhere")


def test_control_grid_is_regular_for_identity_and_moves_with_theta():
    image = PIL.Image.new("RGB", (96, 128), (255, 255, 255))
    g = 5
    still = np.asarray(draw_control_grid(image, torch.zeros(2 * g * g), g))
    assert still.shape == (128, 96, 3)
    assert (still != 255).any()
    shift = torch.zeros(g * g, 2)
    shift[:, 0] = 0.2  # every output pixel reads 0.2 further right: the drawing moves left
    moved = np.asarray(draw_control_grid(image, shift.reshape(1, -1), g))
    marked = lambda a: np.nonzero((a != 255).any(axis=2))[1].mean()  # noqa: E731
    assert marked(moved) < marked(still) - 3


def _crop_index(box, size, xs, ys):
    """Crop pixel (row, col) under photo pixels (xs, ys)."""
    s = box.scale_to(size)
    cols = np.clip(np.floor((xs + 0.5 - box.x0) * s).astype(int), 0, size[1] - 1)
    rows = np.clip(np.floor((ys + 0.5 - box.y0) * s).astype(int), 0, size[0] - 1)
    return rows, cols


@pytest.mark.parametrize("resolution", ["photo", "model"])
def test_paste_back_changes_only_garment_skin_and_restored_backdrop(pipe, resolution):
    import cv2

    from sievenet.pipeline import EDITABLE, PROTECTED

    photo = np.asarray(PIL.Image.open(ASTRONAUT).convert("RGB"))
    out = pipe(photo, garment_photo(), resolution=resolution)
    pasted = np.asarray(out.image)
    assert out.changed.shape == photo.shape[:2] and out.changed.any()
    # Byte-identical everywhere the result says it did not touch.
    np.testing.assert_array_equal(pasted[~out.changed], photo[~out.changed])
    # And what it touched lies on the old garment/skin or the new garment, never on the face or hair the
    # photo's parse found (give or take the feathered edge: 4 crop pixels, plus 1 of upsampling).
    warped = out.output.warped_mask_fine[0, 0].numpy() >= 0.5
    allowed = np.isin(out.parse, EDITABLE) | warped
    allowed = cv2.dilate(allowed.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
    protected = cv2.erode(np.isin(out.parse, PROTECTED).astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
    ys, xs = np.nonzero(out.changed)
    rows, cols = _crop_index(out.box, SIZE, xs, ys)
    assert allowed[rows, cols].all()
    assert not protected[rows, cols].any()


def test_unknown_resolution_is_refused(pipe):
    with pytest.raises(TryOnError, match="unknown resolution"):
        pipe(str(ASTRONAUT), garment_photo(), resolution="4k")


def test_old_garment_outside_the_new_one_gets_the_backdrop_back():
    """Where the model calls an old-garment pixel background, the backdrop around it is painted in (not
    I_rp's studio white) and the rest of the photo is untouched."""
    from sievenet.models import TryOnOutput
    from sievenet.pipeline import paste_plan

    h, w = SIZE
    before = np.zeros((h, w, 3), np.uint8)
    before[:] = (40, 90, 200)  # a blue backdrop
    parse = np.zeros((h, w), np.int64)
    parse[30:120, 20:76] = Label.UPPER  # a wide old garment (a coat)
    parse[10:30, 35:60] = Label.FACE
    before[parse == Label.UPPER] = (220, 120, 30)
    predicted = np.zeros((h, w), np.int64)
    predicted[30:90, 35:60] = Label.UPPER  # a narrower new one
    m_exp = torch.nn.functional.one_hot(torch.from_numpy(predicted), 8).permute(2, 0, 1)[None].float()
    warped = torch.from_numpy((predicted == Label.UPPER).astype(np.float32))[None, None]
    after = np.full((h, w, 3), 255, np.uint8)  # I_rp's white everywhere outside the new garment
    after[predicted == Label.UPPER] = (10, 200, 10)
    output = TryOnOutput(
        **{k: None for k in TryOnOutput.__dataclass_fields__},
    )
    output.m_exp, output.warped_mask_fine, output.composition_mask = m_exp, warped, warped
    plan = paste_plan(parse, output, before, after, (parse > 0).astype(np.float32))
    uncovered = (parse == Label.UPPER) & (predicted == Label.BACKGROUND)
    assert plan.restore[uncovered].all() and not plan.restore[predicted == Label.UPPER].any()
    assert plan.network[predicted == Label.UPPER].all() and not plan.network[uncovered].any()
    # The restored backdrop is the photo's blue, not white and not the old garment's orange.
    restored = plan.fill[plan.restore].astype(int)
    assert np.abs(restored - [40, 90, 200]).max(axis=1).mean() < 20
    assert not (plan.network | plan.restore)[parse == Label.FACE].any()


def test_one_pipeline_parses_each_photo_with_the_parser_asked_for(pipe):
    """The parser can be chosen per call (the app's choice): the pipeline's own by default, the result says
    which made the parse, and an unknown name is refused before any work."""
    learned = pipe(str(ASTRONAUT), garment_photo())
    heuristic = pipe(str(ASTRONAUT), garment_photo(), parser="heuristic")
    assert (learned.parser, heuristic.parser) == ("learned", "heuristic")
    assert not np.array_equal(learned.parse, heuristic.parse)
    with pytest.raises(TryOnError, match="unknown parser 'crf'"):
        pipe(str(ASTRONAUT), garment_photo(), parser="crf")
