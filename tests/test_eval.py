"""python -m sievenet.eval: metrics, reference rows and the category breakdown on the synthetic test split."""

from __future__ import annotations

import json

import pytest
import torch

from sievenet.eval import evaluate_release, main, paste_reference, to_markdown
from sievenet.metrics import mask_iou
from tests.train_helpers import tiny_release


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    release = tiny_release(tmp / "release", stages=("warp", "seg", "tt"))
    return evaluate_release(release, n=4, batch_size=4, out_dir=tmp / "out", progress=False), tmp


def test_reference_rows_and_metrics(report):
    r, _ = report
    # Paired truth is the person image itself: the "no change" row must be perfect, through the same code.
    assert r["paired"]["no_change_ssim"] == pytest.approx(1.0)
    assert r["paired"]["no_change_psnr"] == 100.0
    # Unpaired truth wears another garment: leaving the photo alone is not perfect.
    assert r["unpaired"]["no_change_ssim"] < 0.99
    for pairs in ("paired", "unpaired"):
        for key in ("model_ssim", "paste_ssim", "warp_iou_coarse", "warp_iou_fine"):
            assert -1 <= r[pairs][key] <= 1
        assert r[pairs]["warp_l1_fine"] > 0
    assert 0 <= r["paired"]["m_exp_miou"] <= 1
    assert r["lpips"] is None and r["fid"] is None and "random" in r["not_computed"]


def test_breakdown_covers_every_sample(report):
    r, _ = report
    for key in ("sleeve", "texture", "arms_crossing", "hair_over_garment"):
        groups = r["by_category"]["unpaired"][key]
        assert sum(g["n"] for g in groups.values()) == 4


def test_writes_json_and_markdown(report):
    r, tmp = report
    assert json.loads((tmp / "out" / "eval.json").read_text())["summary"] == r["summary"]
    md = (tmp / "out" / "eval.md").read_text()
    assert md == to_markdown(r, title=md.splitlines()[0][2:])
    assert "| no change (person as is) | 1.0000 | 100.00 |" in md
    assert "paste (cloth fitted to torso box)" in md and "| sleeve |" in md


def test_paste_fills_the_torso_box():
    h, w = 64, 48
    cloth_mask = torch.zeros(1, 1, h, w)
    cloth_mask[..., 8:56, 4:44] = 1
    keypoints = torch.zeros(1, 18, 3)
    for k, (x, y) in {2: (14, 20), 5: (34, 20), 8: (16, 44), 11: (32, 44)}.items():
        keypoints[0, k] = torch.tensor([x, y, 1.0])
    batch = {
        "person": -torch.ones(1, 3, h, w),
        "cloth": torch.ones(1, 3, h, w),
        "cloth_mask": cloth_mask,
        "keypoints": keypoints,
        "parse": torch.zeros(1, h, w, dtype=torch.long),
    }
    pasted = paste_reference(batch)
    expected = torch.zeros(1, 1, h, w)
    expected[..., 20:44, 14:34] = 1
    assert mask_iou((pasted[:, :1] + 1) / 2, expected).item() > 0.9


def test_cli_reports_missing_weights(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--weights", str(tmp_path / "none"), "--n", "2"])
    assert exit_info.value.code == 2
    assert "no weights" in capsys.readouterr().err


def test_cli_records_metrics_in_manifest(tmp_path):
    release = tiny_release(tmp_path / "release", stages=("warp", "seg", "tt"))
    assert main(["--weights", release, "--n", "1", "--out", str(tmp_path / "out"), "--record"]) == 0
    manifest = json.loads((tmp_path / "release" / "manifest.json").read_text())
    assert manifest["metrics"] == json.loads((tmp_path / "out" / "eval.json").read_text())["summary"]
    from sievenet.models import SieveNet

    SieveNet.from_pretrained(release)  # the weights' checksum still holds


def test_garment_region_scores_where_the_try_on_changes_the_picture(report):
    r, _ = report
    p, u = r["paired"], r["unpaired"]
    # Paired, the person image is the truth: perfect inside the region too, through the same code.
    assert p["no_change_garment_ssim"] == pytest.approx(1.0) and p["no_change_garment_l1"] == 0
    # Unpaired, leaving the photo alone is worse inside the garment region than over the whole image,
    # where pixels nobody changed lift the score.
    assert u["no_change_garment_ssim"] < u["no_change_ssim"]
    assert u["no_change_garment_l1"] > 0 and 0 < u["garment_fraction"] < 1
    assert r["summary"]["unpaired_garment_ssim"] == u["model_garment_ssim"]
    assert r["studio"] == "2d"
    md = to_markdown(r)
    assert "Garment region (old and new garment, dilated" in md and "Synthetic 2D studio" in md


def test_garment_region_is_the_dilated_union_of_the_old_and_new_garment():
    from sievenet.eval import garment_region
    from sievenet.labels import Label

    parse = torch.zeros(1, 50, 40, dtype=torch.long)
    parse[0, 10:20, 10:20] = Label.UPPER  # the garment the person wears
    worn = torch.zeros(1, 1, 50, 40)
    worn[..., 25:30, 10:20] = 1  # the tried one, as it should look
    region = garment_region({"parse": parse, "worn_mask": worn, "person": torch.zeros(1, 3, 50, 40)})
    assert region[0, 0, 15, 15] == 1 and region[0, 0, 27, 15] == 1
    assert region[0, 0, 20, 15] == 1 and region[0, 0, 22, 15] == 0  # dilated by 1 px (2 % of 50)
    assert region[0, 0, 40, 35] == 0


def test_studio_3d_needs_the_3d_studio(tmp_path, monkeypatch, capsys):
    import sievenet.synthetic as synthetic

    class TwoDOnly:
        def __init__(self, split, pairs="paired", seed=0, size=(256, 192), n=None):
            raise AssertionError("not reached")

    monkeypatch.setattr(synthetic, "SyntheticTryOn", TwoDOnly)
    release = tiny_release(tmp_path / "release", stages=("warp", "seg", "tt"))
    with pytest.raises(SystemExit) as exit_info:
        main(["--weights", release, "--n", "1", "--studio", "3d", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "only the 2D studio" in err and "--studio 2d" in err


def test_studio_is_passed_to_the_studio_that_has_it(monkeypatch):
    import sievenet.synthetic as synthetic
    from sievenet.eval import studio_test_split

    class WithStudios:
        def __init__(self, split, pairs="paired", seed=0, size=(256, 192), n=None, studio="2d"):
            self.studio = studio

    monkeypatch.setattr(synthetic, "SyntheticTryOn", WithStudios)
    assert studio_test_split("3d", "unpaired", 0, (64, 48), 2).studio == "3d"
