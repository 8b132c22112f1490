"""Building blocks shared by the segmentation and texture-translation U-Nets."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn
from torch.nn import functional as F


def conv_norm_act(in_ch: int, out_ch: int, *, stride: int = 1) -> nn.Sequential:
    """3x3 conv -> InstanceNorm (affine) -> ReLU; stride 2 halves the size."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.InstanceNorm2d(out_ch, affine=True),
        nn.ReLU(inplace=True),
    )


class UpBlock(nn.Module):
    """Decoder step: project the deeper features to the skip's width at low resolution, upsample, add, refine.

    Adding (instead of concatenating) the skip keeps the full-resolution convs at width a->a, which halves
    the U-Nets' CPU cost at 256x192 with no loss of the skip path.
    """

    def __init__(self, deep: int, skip: int):
        super().__init__()
        self.project = nn.Conv2d(deep, skip, 1)
        self.refine = conv_norm_act(skip, skip)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.project(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(x + skip)


class UNet(nn.Module):
    """Encoder-decoder with skip connections, working from half resolution like pix2pix's U-Net.

    The stem is a stride-2 conv and every level after it halves again, so the network does len(widths)
    stride-2 steps (input sides must divide by 2**len(widths)). At full resolution there is only the head,
    which sees the upsampled features together with the raw input, so fine input detail (the warped cloth's
    print, the kept face in tt_priors) reaches the output without paying for full-resolution feature maps.

    Args:
        in_channels: input channels.
        out_channels: raw output channels (no activation; the caller applies tanh/sigmoid/softmax).
        widths: channels per level, half resolution first, e.g. (24, 48, 96, 128).
    """

    def __init__(self, in_channels: int, out_channels: int, widths: tuple[int, ...]):
        super().__init__()
        self.stem = conv_norm_act(in_channels, widths[0], stride=2)
        self.down = nn.ModuleList(
            nn.Sequential(conv_norm_act(a, b, stride=2), conv_norm_act(b, b)) for a, b in pairwise(widths)
        )
        self.up = nn.ModuleList(UpBlock(b, a) for a, b in pairwise(widths))
        self.head = nn.Conv2d(widths[0] + in_channels, out_channels, 3, padding=1)
        self.levels = len(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        step = 2**self.levels
        if h % step or w % step:
            raise ValueError(f"input sides must be multiples of {step}, got {h}x{w}")
        inputs = x
        x = self.stem(x)  # (B, widths[0], H/2, W/2)
        skips = [x]
        for down in self.down:
            x = down(x)
            skips.append(x)
        skips.pop()  # the bottleneck is x itself
        for up in reversed(self.up):
            x = up(x, skips.pop())
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        return self.head(torch.cat([x, inputs], dim=1))
