"""The ablation runner: every row trained at one budget, exported, evaluated and tabulated."""

from __future__ import annotations

import json

import pytest

from sievenet.models import SieveNet
from sievenet.train.ablation import PAPER, run_ablation
from tests.train_helpers import tiny_overrides


@pytest.mark.slow  # eight tiny trainings and evaluations
def test_ablation_runs_every_row(tmp_path):
    overrides = [*tiny_overrides(), "batch_size=2", "tensorboard=false", "image_every=100", "vgg_weights=random",
                 "vgg_layers=1", "vgg_scale=0.5"]  # fmt: skip
    results = run_ablation(tmp_path, steps=2, n=2, overrides=overrides, progress=False)
    assert set(results["runs"]) == {
        "warp-c2f",
        "warp-c2f-nopgm",
        "warp-single",
        "seg",
        "warp-cascade",
        "cpvton",
        "c2f-satt",
        "sievenet",
    }
    releases = tmp_path / "releases"
    cpvton = SieveNet.from_pretrained(releases / "cpvton").config
    assert cpvton.warp_stages == 1 and not cpvton.tt_use_segmentation
    full = json.loads((releases / "sievenet" / "manifest.json").read_text())
    satt = json.loads((releases / "c2f-satt" / "manifest.json").read_text())
    assert full["trained_stages"] == satt["trained_stages"] == ["warp", "seg", "warp-fine", "tt"]
    assert (
        full["stages"]["tt"]["config"]["triplet_after"] == 1
        and satt["stages"]["tt"]["config"]["triplet_after"] is None
    )
    assert full["stages"]["warp"]["config"]["pgm"] is True
    # The shipped warp-fine YAML decays its lr over the last quarter; the ablation keeps that fraction.
    assert full["stages"]["warp-fine"]["config"]["lr_decay_from"] == 2 * 4500 // 6000
    assert full["stages"]["warp"]["config"]["lr_decay_from"] is None
    nopgm = json.loads((releases / "warp-c2f-nopgm" / "manifest.json").read_text())
    assert nopgm["stages"]["warp"]["config"]["pgm"] is False
    table = (tmp_path / "ablation.md").read_text()
    for label, ssim, fid in PAPER.values():
        assert f"| {label} |" in table and f"| {ssim} | {fid} |" in table
    assert "coarse-to-fine, no L_pgm" in table and "one stage (GMM)" in table and "(warp-fine)" in table
    assert "warp-cascade: lr decays linearly to 0 from step 1" in table
    # A rerun (e.g. after a kill) trains and evaluates nothing that is already done.
    stamps = {
        p: p.stat().st_mtime_ns
        for p in [*releases.glob("*/model.safetensors"), *tmp_path.glob("eval/*/eval.json")]
    }
    assert len(stamps) == 16
    again = run_ablation(tmp_path, steps=2, n=2, overrides=overrides, progress=False)
    assert again == results and all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def test_v2_configs_train_with_the_new_losses_and_decay_through_the_triplet_phase():
    from sievenet.train.ablation import _scaled_lr_decay, plan, stage_config

    assert stage_config("sievenet-s-v2", "sievenet-s", "warp") == "sievenet-s-v2-warp.yaml"
    assert stage_config("sievenet-s-v2", "sievenet-s", "seg") == "sievenet-s-v2-seg.yaml"
    assert stage_config("sievenet-s-v2", "sievenet-s", "tt") == "sievenet-s-v2-tt.yaml"
    assert stage_config("sievenet-s", "sievenet-s", "tt") == "sievenet-s-tt.yaml"
    # v2 tt decays from its triplet_after: in the ablation from K, whatever K is; the shipped tt never decays.
    assert _scaled_lr_decay("sievenet-s-v2-tt.yaml", 1000, triplet_after=600) == 600
    assert _scaled_lr_decay("sievenet-s-tt.yaml", 1000, triplet_after=600) is None
    assert _scaled_lr_decay("sievenet-s-warp-fine.yaml", 1000, triplet_after=600) == 750
    runs = {run.name: run for run in plan(1000, 600, None)}
    assert "triplet_refresh=null" in runs["sievenet"].overrides
    assert "triplet_after=null" in runs["c2f-satt"].overrides


def test_the_table_has_one_section_per_studio_with_that_studios_numbers():
    from sievenet.train.ablation import to_markdown

    def metrics(ssim: float) -> dict:
        u = {"model_ssim": ssim, "model_psnr": 20.0, "model_garment_ssim": 0.5, "warp_l1_fine": 0.1,
             "warp_l1_coarse": 0.2, "warp_iou_coarse": 0.6, "warp_iou_fine": 0.7}  # fmt: skip
        return {"paired": {"model_ssim": ssim, "model_psnr": 21.0}, "unpaired": u}

    runs = {name: {**metrics(0.1111), "studios": {"2d": metrics(0.1111), "3d": metrics(0.3333)}}
            for name in ("cpvton", "c2f-satt", "sievenet", "warp-c2f")}  # fmt: skip
    results = {"steps_per_stage": 10, "n": 4, "model": "sievenet-s", "configs": "sievenet-s", "triplet_after": 6,
               "triplet_refresh": None, "lr_decay_from": {}, "studios": ["2d", "3d"], "runs": runs}  # fmt: skip
    table = to_markdown(results)
    two, three = table.split("**3D studio test split**")
    assert "**2D studio test split**" in two and "0.1111" in two and "0.3333" not in two
    assert "0.3333" in three and "0.1111" not in three
    assert three.count("| coarse-to-fine + L_pgm (push + align) |") == 1
