"""Coarse-to-fine TPS warping (SieveNet §3.1): two stages, each regressing TPS parameters from a correlation.

Stage 1 (coarse) compares the priors with the product cloth and predicts theta; stage 2 (fine) compares the
priors with I_stn^0 and predicts a correction delta_theta. I_stn^1 samples the ORIGINAL cloth with
theta + delta_theta, so the fine result is one interpolation away from the product image, never two.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from sievenet.geometry import tps_grid, warp
from sievenet.models.config import SieveNetConfig

# Correlation maps are pooled to this size before the fully connected layer, so any multiple of 64 works.
_REGRESSOR_POOL = (4, 3)


class FeatureExtractor(nn.Module):
    """4 stride-2 convs + 2 convs, features L2-normalised over channels: (B, C, H, W) -> (B, C', H/16, W/16)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]):
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"expected 5 widths (4 stride-2 convs, then the last width twice), got {widths}")
        layers: list[nn.Module] = []
        prev = in_channels
        for width in widths[:4]:
            layers += [nn.Conv2d(prev, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(True)]
            prev = width
        for _ in range(2):
            layers += [nn.Conv2d(prev, widths[4], 3, padding=1), nn.BatchNorm2d(widths[4]), nn.ReLU(True)]
            prev = widths[4]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=1)


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dense correlation: channel k of the output at (i, j) is <a[:, :, i, j], b at flat position k>.

    Args:
        a, b: (B, C, h, w) L2-normalised features.

    Returns:
        (B, h*w, h, w), ReLU'd and L2-normalised over the h*w channels.
    """
    bsz, c, h, w = a.shape
    corr = torch.einsum("bci,bcj->bji", a.flatten(2), b.flatten(2))  # (B, h*w [b], h*w [a])
    corr = corr.view(bsz, h * w, h, w)
    return F.normalize(F.relu(corr), dim=1)


class Regressor(nn.Module):
    """Correlation map -> 2*G*G TPS offsets; the last layer is zero-initialised (identity warp at start)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], grid_size: int):
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for width in widths:
            layers += [nn.Conv2d(prev, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(True)]
            prev = width
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(prev * _REGRESSOR_POOL[0] * _REGRESSOR_POOL[1], 2 * grid_size * grid_size)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, corr: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.convs(corr), _REGRESSOR_POOL)
        return self.fc(x.flatten(1))  # (B, 2*G*G)


class WarpStage(nn.Module):
    """One matching stage: extract features of the priors and of a cloth image, correlate, regress TPS offsets."""

    def __init__(self, config: SieveNetConfig):
        super().__init__()
        self.person_features = FeatureExtractor(config.prior_channels, config.warp_features)
        self.cloth_features = FeatureExtractor(3, config.warp_features)
        cells = (config.height // 16) * (config.width // 16)
        self.regressor = Regressor(cells, config.warp_regressor, config.grid_size)

    def forward(self, priors: torch.Tensor, cloth: torch.Tensor) -> torch.Tensor:
        corr = correlation(self.person_features(priors), self.cloth_features(cloth))
        return self.regressor(corr)


@dataclass
class WarpOutput:
    """Everything the two warp stages produce; grids are (B, H, W, 2), images (B, 3, H, W), masks (B, 1, H, W)."""

    theta: torch.Tensor
    delta_theta: torch.Tensor
    grid_coarse: torch.Tensor
    grid_fine: torch.Tensor
    warped_coarse: torch.Tensor
    warped_fine: torch.Tensor
    warped_mask_coarse: torch.Tensor | None
    warped_mask_fine: torch.Tensor | None


class CoarseToFineWarp(nn.Module):
    """SieveNet's two-stage warp; with config.warp_stages == 1 it is CP-VTON's single GMM (for the ablation)."""

    def __init__(self, config: SieveNetConfig):
        super().__init__()
        self.config = config
        self.coarse = WarpStage(config)
        self.fine = WarpStage(config) if config.warp_stages == 2 else None

    def forward(
        self,
        priors: torch.Tensor,
        cloth: torch.Tensor,
        cloth_mask: torch.Tensor | None = None,
        fine: nn.Module | None = None,
    ) -> WarpOutput:
        """`fine` stands in for self.fine when given: the cascaded training passes its DDP wrapper of it."""
        cfg = self.config
        fine = self.fine if fine is None else fine
        h, w = cloth.shape[-2:]
        theta = self.coarse(priors, cloth)  # (B, 2*G*G)
        grid_coarse = tps_grid(theta, cfg.grid_size, h, w)
        warped_coarse = warp(cloth, grid_coarse)
        if fine is None:
            delta_theta = torch.zeros_like(theta)
            grid_fine, warped_fine = grid_coarse, warped_coarse
        else:
            delta_theta = fine(priors, warped_coarse)
            grid_fine = tps_grid(theta + delta_theta, cfg.grid_size, h, w)
            warped_fine = warp(cloth, grid_fine)  # the original cloth: one interpolation
        mask_coarse = mask_fine = None
        if cloth_mask is not None:
            mask_coarse = warp(cloth_mask, grid_coarse, padding="zeros")
            mask_fine = mask_coarse if fine is None else warp(cloth_mask, grid_fine, padding="zeros")
        return WarpOutput(
            theta, delta_theta, grid_coarse, grid_fine, warped_coarse, warped_fine, mask_coarse, mask_fine
        )
