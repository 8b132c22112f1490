"""The procedural studio: determinism, disjoint splits, exact labels, hard-case rates, unpaired truth."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from sievenet.data import collate
from sievenet.labels import LIP, NUM_CLASSES, Label, lip_to_label
from sievenet.synthetic import SyntheticTryOn, draw_garment, draw_person, render_scene
from sievenet.synthetic.dataset import DEFAULT_LENGTH

SIZE = (128, 96)
KEYS = {"person", "cloth", "cloth_mask", "priors", "tt_priors", "parse", "worn_mask", "target_warp", "truth",
        "keypoints", "meta"}  # fmt: skip


@pytest.fixture(scope="module")
def test_set() -> SyntheticTryOn:
    return SyntheticTryOn("test", "paired", seed=3, size=SIZE, n=16)


def test_sample_has_the_design_keys_shapes_and_ranges(test_set):
    s = test_set[0]
    h, w = SIZE
    assert set(s) == KEYS
    shapes = {"person": (3, h, w), "cloth": (3, h, w), "cloth_mask": (1, h, w), "priors": (19, h, w),
              "tt_priors": (3, h, w), "parse": (h, w), "worn_mask": (1, h, w), "target_warp": (3, h, w),
              "truth": (3, h, w), "keypoints": (18, 3)}  # fmt: skip
    for key, shape in shapes.items():
        assert tuple(s[key].shape) == shape, key
        assert s[key].dtype == (torch.int64 if key == "parse" else torch.float32), key
    for key in ("person", "cloth", "truth", "target_warp"):
        assert s[key].min() >= -1 and s[key].max() <= 1, key
    assert set(s["cloth_mask"].unique().tolist()) == {0.0, 1.0}
    # The product is white outside its mask, and the garment is not white everywhere inside it.
    outside = s["cloth"][:, s["cloth_mask"][0] == 0]
    assert torch.equal(outside, torch.ones_like(outside))
    assert (s["cloth"][:, s["cloth_mask"][0] == 1] < 0.9).any()
    assert torch.equal(s["truth"], s["person"])  # paired: the truth is the person image
    meta = s["meta"]
    assert meta["sleeve"] in {"short", "long", "sleeveless"}
    assert isinstance(meta["arms_crossing"], bool) and isinstance(meta["hair_over_garment"], bool)
    assert isinstance(meta["texture"], str)


def test_samples_are_byte_identical_across_instances_and_processes(test_set):
    again = SyntheticTryOn("test", "paired", seed=3, size=SIZE, n=16)
    a, b = test_set[5], again[5]
    for key in KEYS - {"meta"}:
        assert torch.equal(a[key], b[key]), key
    assert a["meta"] == b["meta"]
    code = (
        "import hashlib; from sievenet.synthetic import SyntheticTryOn;"
        "s = SyntheticTryOn('test', 'paired', seed=3, size=(128, 96), n=16)[5];"
        "print(hashlib.sha256(s['person'].numpy().tobytes() + s['cloth'].numpy().tobytes()).hexdigest())"
    )
    import hashlib

    here = hashlib.sha256(a["person"].numpy().tobytes() + a["cloth"].numpy().tobytes()).hexdigest()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here


def test_different_indices_seeds_and_splits_give_different_scenes():
    train = SyntheticTryOn("train", seed=0, size=SIZE, n=4)
    test = SyntheticTryOn("test", seed=0, size=SIZE, n=4)
    other_seed = SyntheticTryOn("train", seed=1, size=SIZE, n=4)
    assert not torch.equal(train[0]["person"], train[1]["person"])
    assert not torch.equal(train[0]["person"], test[0]["person"])
    assert not torch.equal(train[0]["person"], other_seed[0]["person"])


def test_train_and_test_draw_from_disjoint_person_and_garment_streams():
    for kind, draw in (("person", draw_person), ("garment", draw_garment)):
        train = {
            repr({k: v for k, v in vars(draw("train", 0, i)).items() if not k.endswith("_id")})
            for i in range(300)
        }
        test = {
            repr({k: v for k, v in vars(draw("test", 0, i)).items() if not k.endswith("_id")})
            for i in range(300)
        }
        assert len(train) == 300 and len(test) == 300, kind
        assert not train & test, kind
    assert len(SyntheticTryOn("train", size=SIZE)) == DEFAULT_LENGTH["train"]
    assert len(SyntheticTryOn("test", size=SIZE)) == DEFAULT_LENGTH["test"]


@pytest.mark.parametrize("size", [(64, 48), (128, 96), (256, 192)])
def test_labels_and_keypoints_are_valid_at_every_size(size):
    lip_ids = {int(v) for v in LIP}
    for i in range(6):
        scene = render_scene(draw_person("train", 7, i), draw_garment("train", 7, i), *size)
        assert scene.image.shape == (*size, 3) and scene.lip.shape == size
        assert set(np.unique(scene.lip).tolist()) <= lip_ids
        kp = scene.keypoints
        present = kp[:, 2] > 0
        assert present[[0, 1, 2, 5]].all(), "nose, neck and shoulders are always in frame"
        assert (kp[present, 0] >= 0).all() and (kp[present, 0] <= size[1] - 1).all()
        assert (kp[present, 1] >= 0).all() and (kp[present, 1] <= size[0] - 1).all()
        assert (kp[~present] == 0).all()


def test_worn_mask_agrees_with_the_parse_and_target_warp_is_white_outside(test_set):
    for i in range(4):
        s = test_set[i]
        upper = (s["parse"] == Label.UPPER).float()
        assert torch.equal(s["worn_mask"][0], upper)
        assert upper.sum() > 0.03 * upper.numel()  # the garment is a real part of the picture
        outside = s["target_warp"][:, upper == 0]
        assert torch.equal(outside, torch.ones_like(outside))
        assert torch.equal(s["target_warp"][:, upper == 1], s["person"][:, upper == 1])
        assert s["parse"].min() >= 0 and s["parse"].max() < NUM_CLASSES


def test_hard_case_rates_over_500_scenes_from_metadata_alone():
    ds = SyntheticTryOn("train", seed=0, size=SIZE, n=500)
    metas = [ds.spec(i).meta for i in range(500)]

    def rate(pred) -> float:
        return sum(bool(pred(m)) for m in metas) / len(metas)

    assert rate(lambda m: m["arms_crossing"]) >= 0.15
    assert rate(lambda m: m["hair_over_garment"]) >= 0.20
    assert rate(lambda m: m["texture"] == "print") >= 0.20
    assert rate(lambda m: m["texture"] in ("stripes", "checks")) >= 0.25
    for sleeve in ("short", "long", "sleeveless"):
        assert rate(lambda m, s=sleeve: m["sleeve"] == s) >= 0.20, sleeve
    assert len({m["texture"] for m in metas}) == 8
    assert len({m["skin_tone"] for m in metas}) >= 8


def test_hard_case_flags_show_in_the_pixels():
    """Crossing arms cover the garment; hair-over-garment hair sits where the garment would be."""
    crossing = hair = 0
    for i in range(60):
        p, g = draw_person("train", 0, i), draw_garment("train", 0, i)
        if not (p.arms_crossing or p.hair_over_garment):
            continue
        scene = render_scene(p, g, 128, 96)
        garment = np.isin(scene.lip, [LIP.UPPER_CLOTHES])
        # The garment's silhouette (closed) minus the garment pixels = what covers it.
        closed = cv2.morphologyEx(
            garment.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8)
        ).astype(bool)
        covered = closed & ~garment
        if p.arms_crossing:
            assert np.isin(scene.lip[covered], [LIP.LEFT_ARM, LIP.RIGHT_ARM]).sum() > 10, i
            crossing += 1
        if p.hair_over_garment:
            assert (scene.lip[covered] == LIP.HAIR).sum() > 10, i
            hair += 1
    assert crossing >= 3 and hair >= 3


def test_unpaired_truth_differs_only_where_the_garment_changed():
    paired = SyntheticTryOn("test", "paired", seed=0, size=SIZE, n=8)
    unpaired = SyntheticTryOn("test", "unpaired", seed=0, size=SIZE, n=8)
    for i in range(4):
        a, b = paired[i], unpaired[i]
        assert b["meta"]["cloth_name"] != a["meta"]["cloth_name"]
        # The model's inputs about the person are the original scene's.
        for key in ("person", "priors", "tt_priors", "parse", "keypoints"):
            assert torch.equal(a[key], b[key]), key
        assert not torch.equal(a["cloth"], b["cloth"])
        # The truth is the same person and pose: pixels differ only on (near) either garment.
        changed = (a["truth"] - b["truth"]).abs().amax(0) > 1e-6
        garments = ((a["parse"] == Label.UPPER) | (b["worn_mask"][0] == 1)).numpy().astype(np.uint8)
        near = cv2.dilate(garments, np.ones((5, 5), np.uint8)).astype(bool)
        assert changed.any()
        assert not (changed.numpy() & ~near).any()
        upper_b = b["worn_mask"][0] == 1
        assert torch.equal(b["target_warp"][:, upper_b], b["truth"][:, upper_b])


def test_collate_stacks_tensors_and_keeps_meta_as_a_list(test_set):
    batch = collate([test_set[0], test_set[1]])
    assert batch["person"].shape == (2, 3, *SIZE)
    assert batch["parse"].dtype == torch.int64
    assert [m["index"] for m in batch["meta"]] == [0, 1]
    loader = torch.utils.data.DataLoader(test_set, batch_size=3, collate_fn=collate)
    first = next(iter(loader))
    assert first["priors"].shape == (3, 19, *SIZE) and len(first["meta"]) == 3


def test_bad_arguments_say_what_was_wrong():
    with pytest.raises(ValueError, match="split"):
        SyntheticTryOn("val")
    with pytest.raises(ValueError, match="pairs"):
        SyntheticTryOn("train", pairs="both")
    with pytest.raises(IndexError):
        SyntheticTryOn("test", size=SIZE, n=2)[2]
    assert lip_to_label(np.zeros((2, 2), np.uint8)).dtype == np.int64


def test_the_2d_studio_is_the_default_and_carries_no_flow(test_set):
    assert test_set.studio == "2d"
    s = test_set[0]
    assert "flow" not in s and s["meta"]["studio"] == "2d"
    assert test_set.spec(0).studio == "2d"
