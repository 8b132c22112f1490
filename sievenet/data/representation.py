"""The person representation SieveNet conditions on (DESIGN §4): pose maps, body shape, texture priors, I_gt.

Every function takes one sample (no batch dimension) as torch tensors and is shared by the VITON-HD
reader, the synthetic studio and the photo preprocessor, so all three build bit-identical inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sievenet.labels import TT_KEPT, Label

NUM_KEYPOINTS = 18
PRIOR_CHANNELS = NUM_KEYPOINTS + 1  # 18 pose maps + 1 body shape


def pose_maps(keypoints: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Draw each COCO-18 keypoint as a filled square of half-size round(4*H/256) in its own channel.

    Args:
        keypoints: (18, 3) pixel (x, y, confidence); confidence 0 means missing (channel stays empty).
        height, width: size of the map.

    Returns:
        (18, H, W) float32 in {0, 1}.
    """
    if keypoints.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"expected keypoints of shape (18, 3), got {tuple(keypoints.shape)}")
    return _fill_squares(keypoints, torch.zeros(NUM_KEYPOINTS, height, width))


def _fill_squares(keypoints: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Set keypoint k's square to 1 in maps[k] (maps: (18, H, W) zeros), in place; returns maps."""
    height, width = maps.shape[-2:]
    r = round(4 * height / 256)
    # Slice-fill each square instead of comparing every pixel with every keypoint: the same map, several
    # times faster, which keeps on-the-fly data generation off the training loop's critical path.
    centres = keypoints.float()[:, :2].round()
    for k in torch.nonzero(keypoints[:, 2] > 0).flatten().tolist():
        cx, cy = int(centres[k, 0]), int(centres[k, 1])
        x0, x1 = max(cx - r, 0), min(cx + r + 1, width)
        y0, y1 = max(cy - r, 0), min(cy + r + 1, height)
        if x0 < x1 and y0 < y1:
            maps[k, y0:y1, x0:x1] = 1.0
    return maps


def body_shape(parse: torch.Tensor) -> torch.Tensor:
    """Blurry body silhouette: person mask (label > 0) area-downsampled to H/16 x W/16, upsampled bilinearly.

    Args:
        parse: (H, W) int64 model-class map.

    Returns:
        (1, H, W) float32 in [0, 1].
    """
    h, w = parse.shape
    mask = (parse > 0).float()[None, None]
    small = F.interpolate(mask, size=(max(h // 16, 1), max(w // 16, 1)), mode="area")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0]


def priors(keypoints: torch.Tensor, parse: torch.Tensor) -> torch.Tensor:
    """The paper's 19-channel pose and body-shape map: (19, H, W) = 18 pose maps + body shape."""
    if keypoints.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"expected keypoints of shape (18, 3), got {tuple(keypoints.shape)}")
    h, w = parse.shape
    out = torch.zeros(PRIOR_CHANNELS, h, w)  # filled in place: no (19, H, W) concatenation copy
    _fill_squares(keypoints, out[:NUM_KEYPOINTS])
    out[NUM_KEYPOINTS:] = body_shape(parse)
    return out


def tt_priors(person: torch.Tensor, parse: torch.Tensor) -> torch.Tensor:
    """Texture-translation priors: person pixels of hair, face and lower body; every other pixel 0 (grey).

    Background and arms are dropped on purpose: they would leak the old garment's silhouette.

    Args:
        person: (3, H, W) RGB in [-1, 1].
        parse: (H, W) int64 model-class map.
    """
    keep = torch.zeros_like(parse, dtype=torch.bool)
    for label in TT_KEPT:
        keep |= parse == label
    return person * keep.to(person.dtype)


def worn_mask(parse: torch.Tensor) -> torch.Tensor:
    """(1, H, W) float mask of the upper garment as worn (class UPPER)."""
    return (parse == Label.UPPER).float()[None]


def target_warp(person: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """I_gt for the warp: the person image inside the worn-upper mask, white (1.0) outside.

    Args:
        person: (3, H, W) RGB in [-1, 1].
        mask: (1, H, W) worn-garment mask in [0, 1].
    """
    return person * mask + (1.0 - mask)
