"""Image and mask metrics in torch: L1, SSIM, PSNR, IoU and mean IoU over label maps.

Images are (B, C, H, W) in [-1, 1] unless `data_range` says otherwise; every function returns one value per
sample, so callers can average or break results down by category.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

# Wang et al. (2004): 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03.
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5
_K1, _K2 = 0.01, 0.03


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape != y.shape:
        raise ValueError(
            f"expected two (B, C, H, W) tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    offsets = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=dtype, device=device)
    g = torch.exp(-(offsets**2) / (2 * _SSIM_SIGMA**2))
    return g / g.sum()  # (11,)


def ssim_components(
    x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM's luminance and contrast-structure maps, in the inputs' dtype (differentiable; losses use float32).

    Statistics are computed only where the 11x11 Gaussian window fits inside the image (no padding).

    Args:
        x, y: (B, C, H, W) images; H and W at least 11.
        data_range: max - min of the value range (2 for [-1, 1]).

    Returns:
        (luminance, cs), each (B, C, H - 10, W - 10); SSIM = luminance * cs.
    """
    _check_pair(x, y)
    if min(x.shape[-2:]) < 2 * _SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {tuple(x.shape[-2:])}")
    c = x.shape[1]
    g = _gaussian_window(x.dtype, x.device)
    # Separable blur: (C, 1, 11, 1) then (C, 1, 1, 11), one group per channel.
    kv = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    kh = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kv, groups=c), kh, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    return luminance, cs


def ssim(
    x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Structural similarity per sample (Gaussian window, as skimage with gaussian_weights=True).

    Matches skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False), averaged over channels. With `mask`, the SSIM map (window centres, channel
    mean) is averaged over the masked pixels only: a region score (e.g. the garment region).

    Args:
        x, y: (B, C, H, W) images; H and W at least 11.
        data_range: max - min of the value range (2 for [-1, 1]).
        mask: optional (B, 1, H, W) weights in [0, 1]; samples whose mask is empty (inside the window
            margin) score NaN.

    Returns:
        (B,) SSIM in [-1, 1], 1 for identical images.
    """
    luminance, cs = ssim_components(
        x.double(), y.double(), data_range
    )  # variances: differences of close numbers
    s = (luminance * cs).mean(1)  # (B, H - 10, W - 10)
    if mask is None:
        return s.flatten(1).mean(1).float()
    r = _SSIM_RADIUS
    _check_mask(mask, x)
    w = mask[:, 0, r:-r, r:-r].double()  # the window centres' pixels
    total = w.flatten(1).sum(1)
    value = (s * w).flatten(1).sum(1) / total.clamp_min(1e-12)
    return torch.where(total > 0, value, torch.full_like(value, float("nan"))).float()


def _check_mask(mask: torch.Tensor, image: torch.Tensor) -> None:
    b, _, h, w = image.shape
    if mask.shape != (b, 1, h, w):
        raise ValueError(f"expected a (B, 1, H, W) = {(b, 1, h, w)} mask, got {tuple(mask.shape)}")


def masked_l1(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference per sample over the pixels of `mask` (all channels).

    Args:
        x, y: (B, C, H, W) images; mask: (B, 1, H, W) weights in [0, 1].

    Returns:
        (B,) masked mean |x - y|; NaN for a sample whose mask is empty.
    """
    _check_pair(x, y)
    _check_mask(mask, x)
    w = mask.to(x.dtype)
    total = w.flatten(1).sum(1) * x.shape[1]
    value = ((x - y).abs() * w).flatten(1).sum(1) / total.clamp_min(1e-12)
    return torch.where(total > 0, value, torch.full_like(value, float("nan")))


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation of (B, 1, H, W) masks by a (2 * radius + 1) square (max-pooling)."""
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    return F.max_pool2d(mask.float(), 2 * radius + 1, stride=1, padding=radius)


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference per sample (differentiable; the warp L1 of the evaluation and the TPS oracle).

    Args:
        x, y: (B, C, H, W) images.

    Returns:
        (B,) mean |x - y|.
    """
    _check_pair(x, y)
    return (x - y).abs().flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, max_db: float = 100.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per sample in dB, capped at `max_db` for identical images.

    Args:
        x, y: (B, C, H, W) images.
        data_range: max - min of the value range (2 for [-1, 1]).

    Returns:
        (B,) PSNR in dB.
    """
    _check_pair(x, y)
    mse = (x.double() - y.double()).square().flatten(1).mean(1)
    value = 10 * torch.log10(data_range**2 / mse.clamp_min(1e-30))
    return value.clamp(max=max_db).float()


def mask_iou(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Intersection over union of two soft masks binarised at `threshold`, per sample.

    Args:
        pred, target: (B, 1, H, W) masks in [0, 1].

    Returns:
        (B,) IoU; 1 where both masks are empty (nothing to get wrong).
    """
    _check_pair(pred, target)
    p = (pred > threshold).flatten(1)
    t = (target > threshold).flatten(1)
    inter = (p & t).sum(1).double()
    union = (p | t).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)).float()


def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Confusion counts of two label maps: (num_classes, num_classes), rows = target, columns = prediction.

    Args:
        pred, target: (B, H, W) int64 label maps with values in [0, num_classes).
    """
    if pred.shape != target.shape:
        raise ValueError(f"label maps differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    idx = target.flatten().long() * num_classes + pred.flatten().long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def iou_from_confusion(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class IoU from accumulated confusion counts, and their mean over classes that occur.

    Accumulate `confusion` over a whole test set first: per-dataset mIoU, as segmentation benchmarks report it.

    Returns:
        (per-class IoU (K,), NaN for classes absent from both prediction and target; mIoU scalar).
    """
    counts = counts.double()
    inter = counts.diag()
    union = counts.sum(0) + counts.sum(1) - inter
    per_class = torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(union, float("nan")))
    present = ~per_class.isnan()
    return per_class, per_class[present].mean()
