"""SSIM/PSNR/IoU against independent references (skimage, hand-computed cases)."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sievenet.metrics import confusion, dilate, iou_from_confusion, l1, mask_iou, masked_l1, psnr, ssim


def _pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # Smooth random images (upsampled coarse noise), like photos rather than white noise.
    coarse = torch.rand(2, 3, 10, 8, generator=g) * 2 - 1
    x = torch.nn.functional.interpolate(coarse, size=(40, 32), mode="bilinear", align_corners=False)
    # A dimmed, noisy copy: similar but not equal, so SSIM lands well inside (0, 1).
    y = x * 0.8 + 0.15 * torch.randn(x.shape, generator=g)
    return x, y.clamp(-1, 1)


def test_ssim_matches_skimage():
    x, y = _pair()
    ours = ssim(x, y)
    for i in range(2):
        ref = structural_similarity(
            x[i].permute(1, 2, 0).numpy().astype(np.float64),
            y[i].permute(1, 2, 0).numpy().astype(np.float64),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=2.0,
            channel_axis=2,
        )
        assert ours[i].item() == pytest.approx(ref, abs=1e-5)
    assert 0.05 < ours.min() < ours.max() < 0.95


def test_ssim_identity_and_order():
    x, y = _pair(1)
    assert torch.allclose(ssim(x, x), torch.ones(2))
    worse = (y + 0.4 * torch.randn_like(y)).clamp(-1, 1)
    assert (ssim(x, worse) < ssim(x, y)).all()


def test_psnr_matches_skimage_and_caps_identity():
    x, y = _pair(2)
    ours = psnr(x, y)
    for i in range(2):
        ref = peak_signal_noise_ratio(
            x[i].numpy().astype(np.float64), y[i].numpy().astype(np.float64), data_range=2.0
        )
        assert ours[i].item() == pytest.approx(ref, abs=1e-4)
    assert psnr(x, x).eq(100.0).all()


def test_mask_iou_known_case():
    a = torch.zeros(1, 1, 4, 4)
    b = torch.zeros(1, 1, 4, 4)
    a[..., :2, :] = 1  # 8 pixels
    b[..., 1:3, :] = 1  # 8 pixels, 4 shared
    assert mask_iou(a, b).item() == pytest.approx(4 / 12)
    empty = torch.zeros(1, 1, 4, 4)
    assert mask_iou(empty, empty).item() == 1.0


def test_miou_from_confusion():
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, 2, 2]]])
    pred = torch.tensor([[[0, 1, 1, 1], [2, 2, 2, 0]]])
    per_class, miou = iou_from_confusion(confusion(pred, target, num_classes=4))
    # class 0: inter 1, union 3; class 1: inter 2, union 3; class 2: inter 3, union 4; class 3 absent.
    assert per_class[:3].tolist() == pytest.approx([1 / 3, 2 / 3, 3 / 4])
    assert math.isnan(per_class[3].item())
    assert miou.item() == pytest.approx((1 / 3 + 2 / 3 + 3 / 4) / 3)


def test_exception_on_shape_mismatch():
    with pytest.raises(ValueError, match="equal shape"):
        ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 12))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_l1_is_the_mean_absolute_difference_per_sample():
    x = torch.zeros(2, 3, 8, 6)
    y = x.clone()
    y[1] += 0.5
    assert l1(x, y).tolist() == [0.0, 0.5]
    with pytest.raises(ValueError, match="equal shape"):
        l1(x, y[:, :1])


def test_masked_ssim_with_a_full_mask_is_the_whole_image_ssim_and_scores_only_the_region():
    x, y = _pair(3)
    full = torch.ones(2, 1, 40, 32)
    assert torch.allclose(ssim(x, y, mask=full), ssim(x, y), atol=1e-6)
    # Equal inside the left half, different elsewhere: the left-half score is 1, the whole image's is not.
    z = y.clone()
    z[..., :16] = x[..., :16]
    left = torch.zeros(2, 1, 40, 32)
    left[..., :10] = 1  # window centres whose 11x11 window stays inside the equal half
    assert ssim(x, z, mask=left).tolist() == pytest.approx([1.0, 1.0])
    assert ssim(x, z).max() < 0.99
    assert math.isnan(ssim(x, z, mask=torch.zeros(2, 1, 40, 32))[0])  # an empty region has no score
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        ssim(x, y, mask=torch.ones(2, 40, 32))


def test_masked_l1_averages_over_the_region_only():
    x = torch.zeros(1, 3, 4, 4)
    y = torch.zeros(1, 3, 4, 4)
    y[..., :2, :] = 1.0  # top half differs by 1
    top = torch.zeros(1, 1, 4, 4)
    top[..., :2, :] = 1
    assert masked_l1(x, y, top).item() == pytest.approx(1.0)
    assert masked_l1(x, y, 1 - top).item() == 0
    assert masked_l1(x, y, torch.ones(1, 1, 4, 4)).item() == pytest.approx(l1(x, y).item())


def test_dilate_grows_a_mask_by_its_radius():
    mask = torch.zeros(1, 1, 9, 9)
    mask[..., 4, 4] = 1
    assert dilate(mask, 2).sum().item() == 25 and dilate(mask, 0).sum().item() == 1
    with pytest.raises(ValueError, match="radius"):
        dilate(mask, -1)
