import pytest
import torch
from torch.nn import functional as F

from sievenet.labels import Label
from sievenet.losses import (
    VGG_LAYER_WEIGHTS,
    VGGFeatures,
    align_loss,
    duelling_triplet_loss,
    feature_distance,
    feature_triplet_loss,
    perceptual_loss,
    push_loss,
    segmentation_class_weights,
    segmentation_loss,
    ssim_loss,
    texture_loss,
    vgg_layer_weights,
    warp_l1,
    warp_loss,
)


@pytest.fixture(scope="module")
def vgg():
    return VGGFeatures("random", layers=3)


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_align_is_zero_for_parallel_differences_and_positive_otherwise():
    target = [rand(2, 8, 4, 4, seed=1), rand(2, 16, 2, 2, seed=2)]
    direction = [rand(2, 8, 4, 4, seed=3), rand(2, 16, 2, 2, seed=4)]
    coarse = [t + d for t, d in zip(target, direction, strict=True)]
    fine = [t + 0.3 * d for t, d in zip(target, direction, strict=True)]  # same direction, smaller residual
    assert align_loss(coarse, fine, target).item() == pytest.approx(0.0, abs=1e-10)
    other = [t + rand(*d.shape, seed=9) for t, d in zip(target, direction, strict=True)]
    assert align_loss(coarse, other, target).item() > 0.1
    opposite = [t - d for t, d in zip(target, direction, strict=True)]
    assert align_loss(coarse, opposite, target).item() == pytest.approx(4.0)  # (cos = -1) -> (−2)^2


def test_align_uses_flattened_tensors_not_per_layer_scalars():
    """Differences with the same per-channel mean but opposite spatial pattern are not parallel."""
    target = [torch.zeros(1, 1, 2, 2)]
    coarse = [torch.tensor([[[[1.0, -1.0], [1.0, -1.0]]]])]
    fine = [torch.tensor([[[[-1.0, 1.0], [-1.0, 1.0]]]])]
    assert align_loss(coarse, fine, target).item() == pytest.approx(4.0)


def test_push_is_lower_when_the_fine_warp_is_closer_to_the_target():
    target, coarse = rand(2, 3, 16, 12, seed=1), rand(2, 3, 16, 12, seed=2)
    near = target + 0.1 * (coarse - target)
    far = target + 0.9 * (coarse - target)
    assert push_loss(near, coarse, target) < push_loss(far, coarse, target)


def test_warp_loss_sums_its_terms(vgg):
    target, coarse = rand(2, 3, 32, 24, seed=1), rand(2, 3, 32, 24, seed=2)
    fine = target + 0.5 * (coarse - target)
    loss, logs = warp_loss(coarse, fine, target, vgg)
    expected = logs["l_s0"] + logs["l_s1"] + 0.5 * logs["l_push"] + 0.5 * logs["l_align"]
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # VGG is non-linear, so a pixel-parallel residual is only nearly parallel in feature space; an unrelated
    # fine warp must still cost more alignment than one that shrinks the coarse residual.
    _, unrelated = warp_loss(coarse, rand(2, 3, 32, 24, seed=5), target, vgg)
    assert logs["l_align"] < unrelated["l_align"]
    plain, plain_logs = warp_loss(coarse, fine, target, None, pgm=False)
    assert set(plain_logs) == {"l_s0", "l_s1", "l_warp"}
    assert plain.item() == pytest.approx(logs["l_s0"] + logs["l_s1"], rel=1e-5)


def test_triplet_is_zero_when_the_anchor_beats_the_negative_by_the_margin():
    positive = rand(2, 3, 8, 8, seed=1)
    anchor = positive + 0.05
    negative = positive + 0.5  # |a-n| - |a-p| = 0.45 - 0.05 = 0.4 > margin
    assert duelling_triplet_loss(anchor, positive, negative, margin=0.3).item() == 0
    close = positive + 0.1  # now the anchor wins by only 0.05 - ... below the margin
    loss = duelling_triplet_loss(anchor, positive, close, margin=0.3)
    assert loss.item() == pytest.approx(0.05 - 0.05 + 0.3, abs=1e-5)


def test_triplet_never_trains_the_negative():
    negative = rand(1, 3, 4, 4, seed=2).requires_grad_()
    duelling_triplet_loss(rand(1, 3, 4, 4, seed=1).requires_grad_(), rand(1, 3, 4, 4), negative).backward()
    assert negative.grad is None


def test_cross_entropy_weights_land_on_background_and_skin():
    weights = segmentation_class_weights(1.5)
    heavy = {Label.BACKGROUND, Label.NECK, Label.LEFT_ARM, Label.RIGHT_ARM}
    for label in Label:
        assert weights[label].item() == (1.5 if label in heavy else 1.0)
    logits = torch.zeros(1, 8, 1, 1)  # uniform prediction: plain CE = log 8 for any label
    for label in Label:
        loss = segmentation_loss(logits, torch.full((1, 1, 1), int(label)))
        assert loss.item() == pytest.approx(
            (1.5 if label in heavy else 1.0) * torch.log(torch.tensor(8.0)).item()
        )


def test_vgg_random_is_fixed_and_reports_its_backbone(vgg):
    again = VGGFeatures("random", layers=3)
    assert vgg.backbone == again.backbone == "random"
    x = rand(1, 3, 32, 24)
    assert all(torch.equal(a, b) for a, b in zip(vgg(x), again(x), strict=True))
    assert [f.shape[1] for f in vgg(x)] == [64, 128, 256]


def test_vgg_imagenet_without_cache_or_network_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(RuntimeError, match="weights='random'"):
        VGGFeatures("imagenet", allow_download=False)
    assert VGGFeatures("auto", layers=1, allow_download=False).backbone == "random"


def test_vgg_auto_loads_imagenet_weights_from_the_torch_cache(monkeypatch, tmp_path):
    """The real loading path, fed a file this test writes where torchvision would have cached it."""
    from torchvision.models import vgg19

    (tmp_path / "checkpoints").mkdir()
    reference = vgg19(weights=None)
    for p in reference.parameters():
        torch.nn.init.constant_(p, 0.01)
    torch.save(reference.state_dict(), tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    import sievenet.losses as losses

    real = torch.hub.load_state_dict_from_url
    monkeypatch.setattr(
        torch.hub, "load_state_dict_from_url", lambda url, **kw: real(url, **{**kw, "check_hash": False})
    )
    net = losses.VGGFeatures("auto", layers=1, allow_download=False)
    assert net.backbone == "imagenet"
    assert torch.all(net.slices[0][0].weight == 0.01)


def test_perceptual_loss_is_zero_for_identical_images_and_grows_with_difference(vgg):
    x = rand(1, 3, 32, 24, seed=1)
    assert perceptual_loss(vgg, x, x).item() == 0
    assert perceptual_loss(vgg, x, x + 0.1).item() < perceptual_loss(vgg, x, x + 0.5).item()


# ---- L_pgm's stop-gradient ----------------------------------------------------------------------------


def _coarse_grad(vgg, detach_coarse: bool) -> torch.Tensor:
    target = rand(2, 3, 32, 24, seed=1)
    coarse = rand(2, 3, 32, 24, seed=2).requires_grad_()
    fine = target + 0.4 * (rand(2, 3, 32, 24, seed=3) - target)
    loss, _ = warp_loss(coarse, fine, target, vgg, detach_coarse=detach_coarse)
    (grad,) = torch.autograd.grad(loss, coarse)
    return grad


def test_detached_coarse_warp_learns_from_its_own_l1_only(vgg):
    target, coarse = rand(2, 3, 32, 24, seed=1), rand(2, 3, 32, 24, seed=2).requires_grad_()
    (l_s0_only,) = torch.autograd.grad(warp_l1(coarse, target), coarse)
    assert torch.allclose(_coarse_grad(vgg, detach_coarse=True), l_s0_only, atol=1e-9)
    # Without the stop-gradient (the paper's joint gradient, the shipped release) L_push and L_align reach
    # I_stn^0 too: the push term alone moves 1/N of gradient per pixel.
    joint = _coarse_grad(vgg, detach_coarse=False)
    assert (joint - l_s0_only).abs().mean() > 0.1 * l_s0_only.abs().mean()


def test_detaching_the_coarse_warp_does_not_change_the_loss_or_the_fine_gradient(vgg):
    target, coarse = rand(2, 3, 32, 24, seed=1), rand(2, 3, 32, 24, seed=2)
    fine = (target + 0.4 * (coarse - target)).requires_grad_()
    grads, values = [], []
    for detach in (False, True):
        loss, logs = warp_loss(coarse, fine, target, vgg, detach_coarse=detach)
        grads.append(torch.autograd.grad(loss, fine)[0])
        values.append(logs)
    assert values[0] == pytest.approx(values[1])
    assert torch.allclose(grads[0], grads[1], atol=1e-9)


# ---- perceptual and structural terms --------------------------------------------------------------------


def test_normalised_vgg_weights_keep_their_ratios_and_sum_to_one(vgg):
    assert vgg_layer_weights(3) == VGG_LAYER_WEIGHTS[:3]  # the shipped release: 1/32, 1/16, 1/8
    normalised = vgg_layer_weights(3, normalise=True)
    assert sum(normalised) == pytest.approx(1.0)
    assert normalised[2] / normalised[0] == pytest.approx(4.0)
    x, y = rand(1, 3, 32, 24, seed=1), rand(1, 3, 32, 24, seed=2)
    ratio = perceptual_loss(vgg, x, y, normalise=True) / perceptual_loss(vgg, x, y)
    assert ratio.item() == pytest.approx(1 / sum(VGG_LAYER_WEIGHTS[:3]), rel=1e-5)  # 4.57x for 3 layers


@pytest.mark.parametrize("kind", ["ssim", "ms-ssim"])
def test_structural_loss_is_zero_for_identical_images_and_grows_with_noise(kind):
    x = F.interpolate(rand(2, 3, 16, 12, seed=1), size=(256, 192), mode="bilinear", align_corners=False)
    assert ssim_loss(x, x, kind).item() == pytest.approx(0.0, abs=1e-5)
    noise = rand(2, 3, 256, 192, seed=2)
    assert 0 < ssim_loss(x, x + 0.1 * noise, kind).item() < ssim_loss(x, x + 0.5 * noise, kind).item() <= 1


def test_ms_ssim_uses_the_scales_the_image_allows():
    x, y = rand(1, 3, 24, 24, seed=1), rand(1, 3, 24, 24, seed=2)  # 24 -> 12 only: two scales
    assert torch.isfinite(ssim_loss(x, y, "ms-ssim"))
    with pytest.raises(ValueError, match="ms-ssim"):
        ssim_loss(x, y, "msssim")


def test_texture_loss_terms_follow_their_weights(vgg):
    tryon, truth = rand(2, 3, 32, 24, seed=1), rand(2, 3, 32, 24, seed=2)
    m_cm, worn = torch.rand(2, 1, 32, 24), torch.rand(2, 1, 32, 24)
    paper, logs = texture_loss(tryon, truth, m_cm, worn, vgg)
    assert paper.item() == pytest.approx(logs["l_tt_l1"] + logs["l_tt_vgg"] + logs["l_tt_mask"], rel=1e-5)
    heavy, heavy_logs = texture_loss(tryon, truth, m_cm, worn, vgg, vgg_weight=5, normalise_vgg=True)
    expected = logs["l_tt_l1"] + 5 * logs["l_tt_vgg"] / sum(VGG_LAYER_WEIGHTS[:3]) + logs["l_tt_mask"]
    assert heavy.item() == pytest.approx(expected, rel=1e-5)
    plain, plain_logs = texture_loss(tryon, truth, m_cm, worn, None, vgg_weight=0, structural="ms-ssim")
    assert "l_tt_vgg" not in plain_logs
    assert plain.item() == pytest.approx(
        logs["l_tt_l1"] + logs["l_tt_mask"] + plain_logs["l_tt_msssim"], rel=1e-5
    )
    with pytest.raises(ValueError, match="VGGFeatures"):
        texture_loss(tryon, truth, m_cm, worn, None)


# ---- the duelling triplet in feature space -------------------------------------------------------------


def test_feature_triplet_pulls_the_anchor_to_the_truth_and_away_from_the_older_output(vgg):
    positive = rand(2, 3, 32, 24, seed=1)
    negative = positive + 0.6 * rand(2, 3, 32, 24, seed=2)  # the older network: far from the truth
    anchor = (positive + 0.5 * (negative - positive)).requires_grad_()  # halfway: the hinge is on
    optimiser = torch.optim.SGD([anchor], lr=20.0)
    _, before = feature_triplet_loss(vgg, anchor, positive, negative, margin=0.1)
    assert before["triplet_active"] == 1.0
    for _ in range(5):
        loss, _ = feature_triplet_loss(vgg, anchor, positive, negative, margin=0.1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    _, after = feature_triplet_loss(vgg, anchor, positive, negative, margin=0.1)
    assert after["triplet_d_pos"] < before["triplet_d_pos"]
    assert after["triplet_d_neg"] > before["triplet_d_neg"]


def test_feature_triplet_hinge_switches_off_once_the_anchor_beats_the_negative_by_the_margin(vgg):
    positive = rand(2, 3, 32, 24, seed=1)
    anchor = (positive + 0.05 * rand(2, 3, 32, 24, seed=3)).requires_grad_()
    far = positive + 0.8 * rand(2, 3, 32, 24, seed=2)
    loss, logs = feature_triplet_loss(vgg, anchor, positive, far, margin=0.1)
    assert logs["triplet_d_neg"] > 1.1 * logs["triplet_d_pos"]
    assert loss.item() == 0 and logs["triplet_active"] == 0
    loss.backward()
    assert not anchor.grad.any()
    # The margin is a fraction of d_pos: an anchor exactly as good as the older network pays margin * d_pos.
    same, same_logs = feature_triplet_loss(vgg, anchor, positive, anchor.detach(), margin=0.1)
    assert same.item() == pytest.approx(
        0.1 * same_logs["triplet_d_pos"] + same_logs["triplet_d_pos"], rel=1e-4
    )


def test_feature_triplet_is_not_a_reweighted_pixel_l1(vgg):
    """Its gradient points elsewhere than L_tt's L1, unlike the pixel triplet's (the shipped one)."""

    def smooth(seed):  # photo-like rather than white noise
        return F.interpolate(rand(2, 3, 8, 6, seed=seed), size=(32, 24), mode="bilinear", align_corners=False)

    positive, negative = smooth(1), smooth(2)
    anchor = (positive + 0.5 * (negative - positive)).requires_grad_()

    def grad(loss):
        return torch.autograd.grad(loss, anchor)[0].flatten()

    l1 = grad(F.l1_loss(anchor, positive))
    feature = grad(feature_triplet_loss(vgg, anchor, positive, negative)[0])
    pixel = grad(duelling_triplet_loss(anchor, positive, negative))
    # Halfway between truth and negative, sign(a - n) = -sign(a - p): the pixel triplet IS 3x L1's gradient.
    assert F.cosine_similarity(pixel, l1, dim=0) > 0.99
    assert F.cosine_similarity(feature, l1, dim=0) < 0.6


def test_feature_triplet_never_trains_the_positive_or_the_negative(vgg):
    positive, negative = (
        rand(1, 3, 32, 24, seed=1).requires_grad_(),
        rand(1, 3, 32, 24, seed=2).requires_grad_(),
    )
    feature_triplet_loss(vgg, rand(1, 3, 32, 24, seed=3).requires_grad_(), positive, negative)[0].backward()
    assert positive.grad is None and negative.grad is None


def test_feature_distance_is_zero_for_equal_features_and_bounded():
    f = [rand(2, 4, 6, 5, seed=1), rand(2, 8, 3, 2, seed=2)]
    assert torch.all(feature_distance(f, f) == 0)
    opposite = [-t for t in f]
    assert feature_distance(f, opposite).tolist() == pytest.approx([4.0, 4.0], rel=1e-5)
