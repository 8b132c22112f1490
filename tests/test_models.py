import pytest
import torch
from torch import nn

from sievenet import SieveNet
from sievenet.geometry import tps_grid, warp
from sievenet.losses import VGGFeatures, duelling_triplet_loss, segmentation_loss, texture_loss, warp_loss


def inputs(b: int, h: int, w: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    priors = torch.rand(b, 19, h, w, generator=gen)
    cloth = torch.rand(b, 3, h, w, generator=gen) * 2 - 1
    tt_priors = torch.rand(b, 3, h, w, generator=gen) * 2 - 1
    mask = (torch.rand(b, 1, h, w, generator=gen) > 0.5).float()
    return priors, cloth, tt_priors, mask


@pytest.mark.parametrize("name", ["sievenet-s", "sievenet-paper"])
@pytest.mark.parametrize("size", [(64, 48), (128, 96)])
def test_output_shapes(name, size):
    h, w = size
    model = SieveNet.from_config(name, height=h, width=w).eval()
    with torch.no_grad():
        out = model(*inputs(2, h, w))
    assert out.theta.shape == out.delta_theta.shape == (2, 50)
    assert out.grid_coarse.shape == out.grid_fine.shape == (2, h, w, 2)
    for t in (out.warped_coarse, out.warped_fine, out.rendered, out.tryon):
        assert t.shape == (2, 3, h, w)
    for t in (out.warped_mask_coarse, out.warped_mask_fine, out.composition_mask):
        assert t.shape == (2, 1, h, w)
    assert out.seg_logits.shape == out.m_exp.shape == (2, 8, h, w)
    assert torch.allclose(out.m_exp.sum(1), torch.ones(2, h, w), atol=1e-5)
    assert (
        out.rendered.abs().max() <= 1 and 0 <= out.composition_mask.min() <= out.composition_mask.max() <= 1
    )


def test_fresh_model_is_identity_warp():
    model = SieveNet.from_config("sievenet-s", height=64, width=48).eval()
    priors, cloth, tt, mask = inputs(2, 64, 48)
    with torch.no_grad():
        out = model(priors, cloth, tt, mask)
    assert (out.warped_coarse - cloth).abs().max() < 1e-5
    assert (out.warped_fine - cloth).abs().max() < 1e-5
    assert (out.warped_mask_coarse - mask).abs().max() < 1e-5


def test_fine_stage_with_zero_delta_reproduces_coarse():
    model = SieveNet.from_config("sievenet-s", height=64, width=48).eval()
    nn.init.normal_(model.warp.coarse.regressor.fc.bias, std=0.1)  # a non-trivial coarse warp
    priors, cloth, tt, _ = inputs(1, 64, 48)
    with torch.no_grad():
        out = model(priors, cloth, tt)
    assert out.delta_theta.abs().max() == 0
    assert (out.warped_coarse - cloth).abs().max() > 0.05
    assert torch.equal(out.warped_fine, out.warped_coarse)


def test_fine_warp_samples_the_original_cloth_once():
    model = SieveNet.from_config("sievenet-s", height=64, width=48).eval()
    nn.init.normal_(model.warp.coarse.regressor.fc.bias, std=0.1)
    nn.init.normal_(model.warp.fine.regressor.fc.bias, std=0.05)
    priors, cloth, tt, _ = inputs(1, 64, 48)
    with torch.no_grad():
        out = model(priors, cloth, tt)
        direct = warp(cloth, tps_grid(out.theta + out.delta_theta, 5, 64, 48))
        twice = warp(out.warped_coarse, tps_grid(out.delta_theta, 5, 64, 48))
    assert torch.equal(out.warped_fine, direct)
    assert not torch.allclose(out.warped_fine, twice, atol=1e-3)


def test_single_stage_config_is_cp_vton_gmm():
    model = SieveNet.from_config("sievenet-s", height=64, width=48, warp_stages=1, tt_use_segmentation=False)
    assert model.warp.fine is None
    out = model(*inputs(1, 64, 48))
    assert torch.equal(out.warped_fine, out.warped_coarse) and out.delta_theta.abs().max() == 0


def test_every_parameter_gets_a_gradient_from_the_full_loss():
    model = SieveNet.from_config("sievenet-s", height=64, width=48).train()
    # The regressors' last layers start at zero (identity warp), which blocks gradient to the layers before
    # them on the very first step only; give them the small values any first update would.
    for stage in (model.warp.coarse, model.warp.fine):
        nn.init.normal_(stage.regressor.fc.weight, std=1e-3)
    vgg = VGGFeatures("random", layers=3)
    priors, cloth, tt, mask = inputs(2, 64, 48)
    target = torch.rand(2, 3, 64, 48) * 2 - 1
    labels = torch.randint(0, 8, (2, 64, 48))
    out = model(priors, cloth, tt, mask)
    l_warp, _ = warp_loss(out.warped_coarse, out.warped_fine, target, vgg)
    l_tt, _ = texture_loss(out.tryon, target, out.composition_mask, mask, vgg)
    negative = out.tryon.detach() + 0.1
    loss = (
        l_warp
        + segmentation_loss(out.seg_logits, labels)
        + l_tt
        + duelling_triplet_loss(out.tryon, target, negative)
    )
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_wrong_input_size_is_refused_with_the_expected_size():
    model = SieveNet.from_config("sievenet-s", height=64, width=48)
    with pytest.raises(ValueError, match="runs at 64x48"):
        model(*inputs(1, 128, 96))


def test_config_rejects_sizes_the_network_cannot_divide():
    with pytest.raises(ValueError, match="multiples of 16"):
        SieveNet.from_config("sievenet-s", height=100, width=64)
    with pytest.raises(ValueError, match="unknown model config"):
        SieveNet.from_config("sievenet-xl")
