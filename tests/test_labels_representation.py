import numpy as np
import pytest
import torch

from sievenet.data.representation import body_shape, pose_maps, priors, target_warp, tt_priors, worn_mask
from sievenet.labels import LIP, LIP_TO_LABEL, NUM_CLASSES, Label, colourise, label_to_lip, lip_to_label


def test_every_lip_id_maps_as_the_design_table_says():
    table = {
        0: Label.BACKGROUND, 1: Label.HAIR, 2: Label.HAIR, 4: Label.FACE, 13: Label.FACE, 10: Label.NECK,
        5: Label.UPPER, 6: Label.UPPER, 7: Label.UPPER, 11: Label.UPPER, 14: Label.LEFT_ARM, 3: Label.LEFT_ARM,
        15: Label.RIGHT_ARM, 8: Label.LOWER, 9: Label.LOWER, 12: Label.LOWER, 16: Label.LOWER, 17: Label.LOWER,
        18: Label.LOWER, 19: Label.LOWER,
    }  # fmt: skip
    assert len(LIP_TO_LABEL) == len(LIP) == 20
    ids = np.arange(20)
    assert lip_to_label(ids).tolist() == [int(table[i]) for i in range(20)]


def test_unknown_lip_ids_are_named():
    with pytest.raises(ValueError, match=r"\[20, 42\]"):
        lip_to_label(np.array([[0, 20], [42, 5]]))


def test_label_to_lip_round_trips_through_the_canonical_ids():
    labels = np.arange(NUM_CLASSES).reshape(2, 4)
    assert np.array_equal(lip_to_label(label_to_lip(labels)), labels)
    assert colourise(labels).shape == (2, 4, 3)


def test_pose_maps_draw_squares_of_the_design_size_and_skip_missing_points():
    kp = torch.zeros(18, 3)
    kp[0] = torch.tensor([10.0, 20.0, 1.0])
    kp[1] = torch.tensor([30.0, 40.0, 0.0])  # missing
    maps = pose_maps(kp, 128, 96)
    r = round(4 * 128 / 256)
    assert maps[0].sum() == (2 * r + 1) ** 2
    assert maps[0, 20, 10] == 1 and maps[0, 20, 10 + r + 1] == 0
    assert maps[1:].sum() == 0
    with pytest.raises(ValueError, match=r"\(18, 3\)"):
        pose_maps(torch.zeros(17, 3), 64, 48)


def test_body_shape_is_a_blurred_silhouette():
    parse = torch.zeros(64, 48, dtype=torch.int64)
    parse[16:48, 16:32] = Label.UPPER
    shape = body_shape(parse)
    assert shape.shape == (1, 64, 48)
    assert shape[0, 32, 24] > 0.9 and shape[0, 2, 2] == 0
    assert 0 < shape[0, 16, 24] < 1  # edges are soft: the exact outline is not given away


def test_priors_and_tt_priors_keep_only_what_the_design_says():
    parse = torch.zeros(64, 48, dtype=torch.int64)
    parse[0:8] = Label.HAIR
    parse[8:16] = Label.FACE
    parse[16:32] = Label.UPPER
    parse[32:40] = Label.LEFT_ARM
    parse[40:64] = Label.LOWER
    person = torch.rand(3, 64, 48) * 2 - 1
    kept = tt_priors(person, parse)
    assert torch.equal(kept[:, :16], person[:, :16]) and torch.equal(kept[:, 40:], person[:, 40:])
    assert kept[:, 16:40].abs().sum() == 0  # the worn garment and the arms are never leaked
    assert priors(torch.zeros(18, 3), parse).shape == (19, 64, 48)
    mask = worn_mask(parse)
    target = target_warp(person, mask)
    assert torch.equal(target[:, 16:32], person[:, 16:32]) and (target[:, :16] == 1).all()


def test_m_exp_colours_are_the_label_colours_mixed_by_probability():
    from sievenet.labels import LABEL_COLOURS, colourise_probabilities

    probs = torch.zeros(1, 8, 1, 2)
    probs[0, Label.UPPER, 0, 0] = 1.0
    probs[0, Label.HAIR, 0, 1] = probs[0, Label.FACE, 0, 1] = 0.5
    rgb = colourise_probabilities(probs) * 255
    assert torch.allclose(rgb[0, :, 0, 0], torch.tensor(LABEL_COLOURS[Label.UPPER], dtype=torch.float32))
    mixed = (torch.tensor(LABEL_COLOURS[Label.HAIR]) + torch.tensor(LABEL_COLOURS[Label.FACE])) / 2
    assert torch.allclose(rgb[0, :, 0, 1], mixed.float(), atol=1e-4)
