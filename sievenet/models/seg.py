"""Conditional segmentation mask prediction (SieveNet §3.2): priors + product cloth -> expected parse M_exp."""

from __future__ import annotations

import torch
from torch import nn

from sievenet.labels import NUM_CLASSES
from sievenet.models.blocks import UNet
from sievenet.models.config import SieveNetConfig


class ConditionalSegmentation(nn.Module):
    """Predicts the person's segmentation as it will look wearing the target garment (8 LIP-derived classes)."""

    def __init__(self, config: SieveNetConfig):
        super().__init__()
        self.unet = UNet(config.prior_channels + 3, NUM_CLASSES, config.seg_widths)

    def forward(self, priors: torch.Tensor, cloth: torch.Tensor) -> torch.Tensor:
        """Returns (B, 8, H, W) logits; M_exp is their softmax over dim 1."""
        return self.unet(torch.cat([priors, cloth], dim=1))
