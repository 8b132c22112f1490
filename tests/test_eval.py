"""python -m sievenet.eval: metrics, reference rows and the category breakdown on the synthetic test split."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sievenet.eval import evaluate_release, main, paste_reference, to_markdown
from sievenet.metrics import mask_iou
from tests.train_helpers import tiny_release

ONLY_2D = ["--studio", "2d", "--photo-n", "0", "--no-panel"]  # the CLI tests need neither 3D nor mediapipe


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
        main(["--weights", str(tmp_path / "none"), "--n", "2", *ONLY_2D])
    assert exit_info.value.code == 2
    assert "no weights" in capsys.readouterr().err


def test_cli_records_metrics_in_manifest(tmp_path):
    release = tiny_release(tmp_path / "release", stages=("warp", "seg", "tt"))
    assert main(["--weights", release, "--n", "1", "--out", str(tmp_path / "out"), "--record", *ONLY_2D]) == 0
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
        main(["--weights", release, "--n", "1", "--studio", "3d", "--photo-n", "0", "--no-panel", "--out",
              str(tmp_path / "out")])  # fmt: skip
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


# ---- the photo path, the real-photo panel, the whole suite ---------------------------------------------------


class _Result:
    def __init__(self, image, warnings=()):
        self.image, self.warnings = image, list(warnings)


def _unpaired_2d(n=2):
    from sievenet.synthetic import SyntheticTryOn

    return SyntheticTryOn("test", pairs="unpaired", seed=0, size=(64, 48), n=n)


def test_photo_path_scores_what_the_pipeline_returns_against_the_truth():
    from PIL import Image

    from sievenet.eval import _to_uint8, photo_path

    dataset = _unpaired_2d()
    truths = [_to_uint8(dataset[i]["truth"]) for i in range(2)]
    calls = []

    def perfect(person, garment):  # a pipeline that returns exactly the rendered truth
        calls.append((person.shape, garment.shape))
        return _Result(Image.fromarray(truths[len(calls) - 1]), warnings=["a note"])

    r = photo_path(perfect, n=2, dataset=dataset, progress=False, examples=1)
    assert calls == [((64, 48, 3), (64, 48, 3))] * 2  # person photo and garment photo, as uploads
    assert r["model"]["ssim"] == pytest.approx(1.0) and r["model"]["garment_l1"] == pytest.approx(0, abs=1e-6)
    assert r["no_change"]["ssim"] < 0.99 and r["refused"] == 0 and r["warnings"] == {"a note": 2}
    assert r["per_sample_ssim_gain"]["ssim"]["mean"] > 0
    assert len(r["pictures"]) == 1 and r["pictures"][0].shape == (64, 4 * 48, 3)  # photo|garment|result|truth


def test_photo_path_counts_a_refused_photo_as_no_change():
    from sievenet.errors import TryOnError
    from sievenet.eval import photo_path

    def refuses(person, garment):
        raise TryOnError("no person found")

    r = photo_path(refuses, n=2, dataset=_unpaired_2d(), progress=False)
    assert r["refused"] == 2 and r["refusals"][0]["reason"] == "no person found"
    assert r["model"] == r["no_change"]


def test_real_photo_panel_is_one_picture_of_every_photo_in_every_garment(tmp_path):
    from PIL import Image

    from sievenet.errors import TryOnError
    from sievenet.eval import EXAMPLES, real_photo_panel, real_photos

    names = [p.name for p in real_photos()]
    assert "astronaut.png" in names and not any(n.startswith("studio") for n in names)
    garments = sorted((EXAMPLES / "garments").glob("*.png"))[:2]

    def pipeline(photo, garment):
        if garment == garments[1]:
            raise TryOnError("garment refused")
        return _Result(Image.open(photo))

    photos = [EXAMPLES / "persons" / "astronaut.png"] * 2
    picture, info = real_photo_panel(pipeline, photos, garments, height=64)
    assert picture.size == (3 * 48, 3 * 64)  # header row + one row per photo; photo column + one per garment
    assert len(info["refused"]) == 2 and info["refused"][0]["reason"] == "garment refused"
    grey = np.asarray(picture)[64 + 32, 2 * 48 + 24]
    assert tuple(grey) == (128, 128, 128)  # a refused try-on is a grey tile


def test_real_photo_panel_dresses_the_astronaut_through_the_real_pipeline(tmp_path):
    from sievenet.eval import EXAMPLES, real_photo_panel
    from sievenet.models import SieveNet
    from sievenet.pipeline import TryOnPipeline

    release = tiny_release(tmp_path / "release", stages=("warp", "seg", "tt"))
    pipeline = TryOnPipeline(SieveNet.from_pretrained(release))
    photo = EXAMPLES / "persons" / "astronaut.png"
    picture, info = real_photo_panel(pipeline, [photo], [sorted((EXAMPLES / "garments").glob("*.png"))[0]])
    assert info["refused"] == [] and info["parser"]
    tiles = np.asarray(picture)[256:].reshape(256, 2, 192, 3)
    assert np.abs(tiles[:, 0].astype(int) - tiles[:, 1]).mean() > 1  # the try-on changed the photo


def test_suite_writes_each_studio_and_the_targets(tmp_path):
    from sievenet.eval import evaluate_suite, suite_markdown

    release = tiny_release(tmp_path / "release", stages=("warp", "seg", "tt"))
    r = evaluate_suite(release, studios=("2d",), n=2, photo_n=0, panel=False, out_dir=tmp_path / "out",
                       progress=False)  # fmt: skip
    assert list(r["studios"]) == ["2d"] and r["summary"]["2d"] == r["studios"]["2d"]["summary"]
    assert {t["target"].split(" ")[0] for t in r["targets"]} == {"2D"}
    gain = r["studios"]["2d"]["unpaired"]["model_ssim"] - r["studios"]["2d"]["unpaired"]["no_change_ssim"]
    assert r["targets"][0]["met"] == (gain >= 0.03)
    saved = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert saved["summary"] == r["summary"]
    md = (tmp_path / "out" / "eval.md").read_text()
    assert md == suite_markdown(r, title=md.splitlines()[0][2:])
    assert "## Targets (issue 15)" in md and "### Unpaired, by category" in md and "## 2D studio" in md
