"""The one home for label ids: the model's 8 classes and the LIP/CIHP ids that map into them (DESIGN §3)."""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import torch


class Label(IntEnum):
    """The 8 segmentation classes SieveNet predicts (M_exp channels, in this order)."""

    BACKGROUND = 0
    HAIR = 1
    FACE = 2
    NECK = 3
    UPPER = 4
    LEFT_ARM = 5
    RIGHT_ARM = 6
    LOWER = 7


NUM_CLASSES = len(Label)

# Skin classes get the 1.5 weight in the segmentation cross-entropy together with background.
SKIN = (Label.NECK, Label.LEFT_ARM, Label.RIGHT_ARM)
# Pixels copied into the texture-translation priors; everything else is zeroed (DESIGN §4).
TT_KEPT = (Label.HAIR, Label.FACE, Label.LOWER)


class LIP(IntEnum):
    """LIP/CIHP parsing ids, as VITON-HD's `image-parse-v3` stores them on disk."""

    BACKGROUND = 0
    HAT = 1
    HAIR = 2
    GLOVE = 3
    SUNGLASSES = 4
    UPPER_CLOTHES = 5
    DRESS = 6
    COAT = 7
    SOCKS = 8
    PANTS = 9
    TORSO_SKIN = 10
    SCARF = 11
    SKIRT = 12
    FACE = 13
    LEFT_ARM = 14
    RIGHT_ARM = 15
    LEFT_LEG = 16
    RIGHT_LEG = 17
    LEFT_SHOE = 18
    RIGHT_SHOE = 19


LIP_TO_LABEL: dict[LIP, Label] = {
    LIP.BACKGROUND: Label.BACKGROUND,
    LIP.HAT: Label.HAIR,
    LIP.HAIR: Label.HAIR,
    LIP.SUNGLASSES: Label.FACE,
    LIP.FACE: Label.FACE,
    LIP.TORSO_SKIN: Label.NECK,
    LIP.UPPER_CLOTHES: Label.UPPER,
    LIP.DRESS: Label.UPPER,
    LIP.COAT: Label.UPPER,
    LIP.SCARF: Label.UPPER,
    LIP.LEFT_ARM: Label.LEFT_ARM,
    LIP.GLOVE: Label.LEFT_ARM,
    LIP.RIGHT_ARM: Label.RIGHT_ARM,
    LIP.SOCKS: Label.LOWER,
    LIP.PANTS: Label.LOWER,
    LIP.SKIRT: Label.LOWER,
    LIP.LEFT_LEG: Label.LOWER,
    LIP.RIGHT_LEG: Label.LOWER,
    LIP.LEFT_SHOE: Label.LOWER,
    LIP.RIGHT_SHOE: Label.LOWER,
}

# The LIP id written to disk for each model class (the inverse direction is many-to-one; pick the canonical id).
LABEL_TO_LIP: dict[Label, LIP] = {
    Label.BACKGROUND: LIP.BACKGROUND,
    Label.HAIR: LIP.HAIR,
    Label.FACE: LIP.FACE,
    Label.NECK: LIP.TORSO_SKIN,
    Label.UPPER: LIP.UPPER_CLOTHES,
    Label.LEFT_ARM: LIP.LEFT_ARM,
    Label.RIGHT_ARM: LIP.RIGHT_ARM,
    Label.LOWER: LIP.PANTS,
}

# Colours for visualising the 8 classes (M_exp, parse previews); RGB uint8.
LABEL_COLOURS: dict[Label, tuple[int, int, int]] = {
    Label.BACKGROUND: (0, 0, 0),
    Label.HAIR: (128, 64, 0),
    Label.FACE: (255, 200, 150),
    Label.NECK: (255, 140, 100),
    Label.UPPER: (220, 20, 60),
    Label.LEFT_ARM: (30, 144, 255),
    Label.RIGHT_ARM: (50, 205, 50),
    Label.LOWER: (255, 215, 0),
}

# The standard LIP palette, so P-mode parse PNGs look like every other LIP/CIHP tool's.
LIP_PALETTE: list[int] = [
    0, 0, 0, 128, 0, 0, 254, 0, 0, 0, 85, 0, 169, 0, 51, 254, 85, 0, 0, 0, 85, 0, 119, 220, 85, 85, 0,
    0, 85, 85, 85, 51, 0, 52, 86, 128, 0, 128, 0, 0, 0, 254, 51, 169, 220, 0, 254, 254, 85, 254, 169,
    169, 254, 85, 254, 254, 0, 254, 169, 0,
]  # fmt: skip


def _lookup(mapping: dict, size: int, fill: int) -> np.ndarray:
    table = np.full(size, fill, dtype=np.int64)
    for src, dst in mapping.items():
        table[int(src)] = int(dst)
    return table


_LIP_TABLE = _lookup(LIP_TO_LABEL, 256, -1)
_TO_LIP_TABLE = _lookup(LABEL_TO_LIP, NUM_CLASSES, 0)
_COLOUR_TABLE = np.array([LABEL_COLOURS[label] for label in Label], dtype=np.uint8)


def lip_to_label(lip: np.ndarray) -> np.ndarray:
    """Map a LIP/CIHP id map (any int dtype) to the 8 model classes (int64).

    Raises:
        ValueError: if the map holds ids outside the LIP set (0..19); the message lists them.
    """
    lip = np.asarray(lip)
    if lip.size and (lip.min() < 0 or lip.max() > 255):
        raise ValueError(f"parse ids must lie in 0..19 (LIP/CIHP), got range {lip.min()}..{lip.max()}")
    out = _LIP_TABLE[lip.astype(np.int64)]
    if (out < 0).any():
        unknown = sorted(int(v) for v in np.unique(lip[out < 0]))
        raise ValueError(f"parse holds ids {unknown} that are not LIP/CIHP ids (0..19)")
    return out


def label_to_lip(labels: np.ndarray) -> np.ndarray:
    """Map a model-class map (0..7) to canonical LIP ids (uint8), for writing VITON-HD-layout PNGs."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"labels must lie in 0..{NUM_CLASSES - 1}, got {labels.min()}..{labels.max()}")
    return _TO_LIP_TABLE[labels.astype(np.int64)].astype(np.uint8)


def colourise(labels: np.ndarray) -> np.ndarray:
    """Render a (H, W) model-class map as an RGB uint8 image with LABEL_COLOURS."""
    return _COLOUR_TABLE[np.asarray(labels, dtype=np.int64)]


def colourise_probabilities(probs: torch.Tensor) -> torch.Tensor:
    """Render (B, 8, H, W) class probabilities (M_exp) as (B, 3, H, W) colours in [0, 1].

    Each pixel is the probability-weighted mix of LABEL_COLOURS, so uncertain regions show as blends instead of
    hiding behind an arg-max.
    """
    palette = torch.from_numpy(_COLOUR_TABLE).to(probs.device, torch.float32) / 255  # (8, 3)
    return torch.einsum("bchw,cd->bdhw", probs.float(), palette)
