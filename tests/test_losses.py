import pytest
import torch

from sievenet.labels import Label
from sievenet.losses import (
    VGGFeatures,
    align_loss,
    duelling_triplet_loss,
    perceptual_loss,
    push_loss,
    segmentation_class_weights,
    segmentation_loss,
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
