"""Segmentation-assisted texture translation (SieveNet §3.3): render the person and the composition mask."""

from __future__ import annotations

import torch
from torch import nn

from sievenet.labels import NUM_CLASSES
from sievenet.models.blocks import UNet
from sievenet.models.config import SieveNetConfig


class TextureTranslation(nn.Module):
    """(I_stn^1, M_exp, tt_priors) -> (I_rp, M_cm); I_tryon = M_cm * I_stn^1 + (1 - M_cm) * I_rp.

    With config.tt_use_segmentation False the M_exp input is replaced by the 19-channel priors, which makes it
    CP-VTON's try-on module (the ablation's first row).
    """

    def __init__(self, config: SieveNetConfig):
        super().__init__()
        self.use_segmentation = config.tt_use_segmentation
        guide = NUM_CLASSES if config.tt_use_segmentation else config.prior_channels
        self.unet = UNet(3 + guide + 3, 4, config.tt_widths)

    def forward(
        self, warped: torch.Tensor, guide: torch.Tensor, tt_priors: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (rendered (B, 3, H, W) in [-1, 1], composition_mask (B, 1, H, W) in [0, 1], tryon)."""
        out = self.unet(torch.cat([warped, guide, tt_priors], dim=1))
        rendered = torch.tanh(out[:, :3])
        composition_mask = torch.sigmoid(out[:, 3:])
        tryon = composition_mask * warped + (1 - composition_mask) * rendered
        return rendered, composition_mask, tryon
