"""The loss options of the training stages: L_pgm's stop-gradient, the feature triplet, perceptual options,
the studio a run trains on, and the YAMLs that keep the shipped release reproducible."""

from __future__ import annotations

import pytest
import torch

from sievenet.losses import warp_l1
from sievenet.train.config import CONFIG_DIR, ConfigError, TrainConfig, load_config
from sievenet.train.stages import SieveNetStage, build_dataset
from tests.train_helpers import tiny_overrides, tiny_release


def _config(tmp_path, stage="warp", **extra) -> TrainConfig:
    overrides = [*tiny_overrides(), f"stage={stage}", f"run_dir={tmp_path / 'run'}", "steps=4", "batch_size=2",
                 "progress=false", "tensorboard=false", "vgg_weights=random", "vgg_layers=2", "vgg_scale=0.5",
                 *[f"{k}={v}" for k, v in extra.items()]]  # fmt: skip
    return load_config(CONFIG_DIR / "sievenet-s-warp.yaml", overrides)


def _batch(config: TrainConfig) -> dict:
    dataset, collate = build_dataset(config)
    return collate([dataset[i] for i in range(2)])


def _coarse_grads(stage: SieveNetStage, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    params = dict(stage.model.warp.coarse.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return {
        k: torch.zeros_like(p) if g is None else g for (k, p), g in zip(params.items(), grads, strict=True)
    }


@pytest.mark.parametrize("detach", [True, False])
def test_pgm_stop_gradient_leaves_the_coarse_stage_to_its_own_l1(tmp_path, detach):
    config = _config(tmp_path, pgm=True, pgm_detach_coarse=detach)
    stage = SieveNetStage(config)
    batch = _batch(config)
    net = stage.trainable()
    full, logs = stage.loss(net, batch, 0)
    assert {"l_push", "l_align"} <= set(logs)
    from_full = _coarse_grads(stage, full)
    w = net(batch["priors"], batch["cloth"], batch["cloth_mask"])
    target = batch["target_warp"]
    # The coarse stage's own error, and the fine one's through theta + delta_theta (the model's residual).
    l1_terms = warp_l1(w.warped_coarse, target) + warp_l1(w.warped_fine, target)
    from_l1 = _coarse_grads(stage, l1_terms)
    same = all(torch.allclose(from_full[k], from_l1[k], rtol=1e-4, atol=1e-8) for k in from_full)
    # With the stop-gradient L_push and L_align move only the fine stage; without it (the paper's joint
    # gradient, the shipped release) they reach the coarse one too.
    assert same is detach
    assert any(g.abs().sum() > 0 for g in from_l1.values())
    assert logs["l_push"] == pytest.approx(stage.loss(net, batch, 0)[1]["l_push"])  # the same loss values


def test_shipped_yamls_keep_the_losses_the_release_was_trained_with():
    warp = load_config("sievenet-s-warp.yaml")
    tt = load_config("sievenet-s-tt.yaml", ["init=x"])
    assert warp.pgm and not warp.pgm_detach_coarse
    assert (tt.triplet, tt.triplet_after, tt.triplet_refresh, tt.triplet_margin) == ("pixel", 3000, 250, 0.1)
    assert (tt.vgg_normalise, tt.tt_vgg_weight, tt.tt_structural) == (False, 1.0, "none")
    assert warp.studio == tt.studio == "2d"


def test_v2_yamls_switch_on_the_new_losses():
    warp = load_config("sievenet-s-v2-warp.yaml")
    tt = load_config("sievenet-s-v2-tt.yaml", ["init=x"])
    assert warp.pgm and warp.pgm_detach_coarse
    assert tt.triplet == "feature" and tt.triplet_refresh is None and tt.vgg_normalise
    assert tt.lr_decay_from == tt.triplet_after  # the lr falls through the triplet phase


def test_feature_triplet_negative_is_the_snapshot_at_k_refreshed_only_every_r(tmp_path):
    release = tiny_release(tmp_path / "release")

    def stage(refresh):
        return SieveNetStage(_config(tmp_path, stage="tt", init=release, triplet="feature", triplet_after=2,
                                     triplet_refresh=refresh))  # fmt: skip

    def perturb(s):
        with torch.no_grad():
            for p in s.model.tt.parameters():
                p.add_(0.1)

    def same(s):
        a, b = s.previous.state_dict(), s.model.tt.state_dict()
        return all(torch.equal(a[k], b[k]) for k in a)

    never = stage("null")
    perturb(never)
    never.after_step(0)  # 1 step done < K: no snapshot yet
    assert not same(never)
    never.after_step(1)  # K = 2 steps done: the snapshot
    assert same(never)
    for step in range(2, 12):
        perturb(never)
        never.after_step(step)
        assert not same(never)  # refresh=null: the snapshot at K stays the negative
    every = stage(4)
    every.after_step(1)
    perturb(every)
    every.after_step(4)
    assert not same(every)
    every.after_step(5)  # K + R = 6 steps done
    assert same(every)


def test_tt_stage_logs_the_feature_triplet_and_its_hinge(tmp_path):
    release = tiny_release(tmp_path / "release")
    config = _config(
        tmp_path, stage="tt", init=release, triplet="feature", triplet_after=0, triplet_weight=0.5
    )
    stage = SieveNetStage(config)
    loss, logs = stage.loss(stage.trainable(), _batch(config), 0)
    assert {"l_triplet", "triplet_d_pos", "triplet_d_neg", "triplet_active"} <= set(logs)
    assert loss.item() == pytest.approx(logs["l_tt"] + 0.5 * logs["l_triplet"], rel=1e-5)


def test_tt_without_a_perceptual_term_builds_no_vgg(tmp_path):
    release = tiny_release(tmp_path / "release")
    config = _config(tmp_path, stage="tt", init=release, tt_vgg_weight=0, tt_structural="ssim",
                     tt_structural_weight=0.5)  # fmt: skip
    stage = SieveNetStage(config)
    assert stage.vgg is None and stage.info()["perceptual_backbone"] is None
    _, logs = stage.loss(stage.trainable(), _batch(config), 0)
    assert "l_tt_vgg" not in logs and 0 < logs["l_tt_ssim"] <= 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("triplet=lpips", "triplet must be 'pixel' or 'feature'"),
        ("tt_structural=msssim", "tt_structural must be none, ssim or ms-ssim"),
        ("studio=photo", "studio must be '2d', '3d' or 'mix'"),
    ],
)
def test_bad_loss_options_are_refused_with_the_valid_ones(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("sievenet-s-warp.yaml", [override])


def test_studio_only_applies_to_the_synthetic_data():
    with pytest.raises(ConfigError, match="studio=3d only applies to data=synthetic"):
        load_config("sievenet-s-warp.yaml", ["studio=3d", "data=viton-hd", "data_root=x"])


def test_studio_is_passed_to_the_synthetic_studio_only_when_not_2d(tmp_path, monkeypatch):
    import sievenet.synthetic as synthetic

    seen = []

    class WithStudios:  # what the 3D studio's SyntheticTryOn accepts
        def __init__(self, split, pairs="paired", seed=0, size=(256, 192), n=None, studio="2d"):
            seen.append(studio)

    class TwoDOnly:  # a checkout without the 3D studio
        def __init__(self, split, pairs="paired", seed=0, size=(256, 192), n=None):
            seen.append("2d-only")

    monkeypatch.setattr(synthetic, "SyntheticTryOn", WithStudios)
    build_dataset(_config(tmp_path, studio="mix"))
    assert seen == ["mix"]
    monkeypatch.setattr(synthetic, "SyntheticTryOn", TwoDOnly)
    build_dataset(_config(tmp_path))  # studio=2d: never passed, so the 2D-only studio still works
    assert seen == ["mix", "2d-only"]
    with pytest.raises(ConfigError, match="only the 2D studio.*studio=2d"):
        build_dataset(_config(tmp_path, studio="3d"))
