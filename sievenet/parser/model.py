"""The learned human parser: a small U-Net from a framed person crop (+ person mask, + limb maps) to 8 classes.

Input channels, all at the config's H x W (the crop is resized to it, the logits back to the crop's size):
RGB in [-1, 1] (3), the person mask the pipeline already has (1, `use_mask`) and 5 limb maps drawn from the
COCO-18 keypoints (right arm, left arm, torso, legs, head; `use_pose`). The limb maps tell the network which
arm is the person's left, which no colour can.

Releases use the SieveNet release format (DESIGN §8): model.safetensors + config.json + manifest.json with the
sha256 of both, loaded with the same checks as SieveNet's (sievenet.models.sievenet) and strict=True.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from sievenet.errors import WeightsError
from sievenet.labels import NUM_CLASSES
from sievenet.models.blocks import UNet
from sievenet.models.config import check_fields
from sievenet.models.sievenet import (
    CONFIG_FILE,
    MANIFEST_FILE,
    load_checked_state,
    read_manifest,
    read_small,
    resolve_release,
    shown,
    verify_weights,
    weights_path,
    write_release,
)
from sievenet.preprocess.pose import MIN_CONFIDENCE

PARSER_FORMAT = "sievenet-parser-release/1"

# Limb maps: bones (pairs of COCO-18 keypoints) drawn as lines, one channel per group.
LIMBS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((2, 3), (3, 4)),  # right arm (the person's own right)
    ((5, 6), (6, 7)),  # left arm
    ((1, 2), (1, 5), (1, 8), (1, 11), (8, 11)),  # torso
    ((8, 9), (9, 10), (11, 12), (12, 13)),  # legs
    ((0, 1), (0, 14), (0, 15), (14, 16), (15, 17)),  # head
)
# COCO-18 left/right pairs, swapped when a crop is mirrored.
FLIP_PAIRS = ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17))


@dataclass(frozen=True)
class ParserConfig:
    """Everything that fixes the parser's weights: input size, U-Net widths (half resolution first), inputs."""

    name: str = "parser-s"
    height: int = 256
    width: int = 192
    widths: tuple[int, ...] = (16, 32, 64, 128, 128)
    use_mask: bool = True
    use_pose: bool = True

    def __post_init__(self):
        step = 2 ** len(self.widths)
        if self.height % step or self.width % step:
            raise ValueError(
                f"{len(self.widths)} U-Net levels need sides divisible by {step}, got {self.height}x{self.width}"
            )

    @property
    def in_channels(self) -> int:
        return 3 + int(self.use_mask) + len(LIMBS) * int(self.use_pose)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> ParserConfig:
        """Build from JSON, every field type- and bounds-checked first (a release's config is untrusted).

        Raises:
            ValueError: naming the field, what it holds and the bound it breaks.
        """
        return cls(
            **check_fields(
                data,
                cls,
                ints={"height": (32, 1024), "width": (32, 1024)},
                width_lists={"widths": (1, 6)},
                flags=("use_mask", "use_pose"),
                max_width=512,
                what="parser config",
            )
        )


CONFIGS: dict[str, ParserConfig] = {
    "parser-s": ParserConfig(),
    "parser-tiny": ParserConfig(name="parser-tiny", height=64, width=48, widths=(8, 16)),  # tests
}


def limb_maps(keypoints: np.ndarray, height: int, width: int) -> np.ndarray:
    """(5, H, W) float32 lines along the bones of LIMBS; bones with an unconfident end are left out.

    Args:
        keypoints: (18, 3) pixels of an H x W image (x, y, confidence).
    """
    maps = np.zeros((len(LIMBS), height, width), np.uint8)
    thickness = max(1, round(4 * height / 256))
    kp = np.asarray(keypoints, np.float32)
    for channel, bones in enumerate(LIMBS):
        for a, b in bones:
            if kp[a, 2] >= MIN_CONFIDENCE and kp[b, 2] >= MIN_CONFIDENCE:
                pa = tuple(int(v) for v in np.clip(kp[a, :2], -4 * width, 4 * width).round())
                pb = tuple(int(v) for v in np.clip(kp[b, :2], -4 * width, 4 * width).round())
                cv2.line(maps[channel], pa, pb, 1, thickness)
    return maps.astype(np.float32)


def encode(
    image: np.ndarray, mask: np.ndarray | None, keypoints: np.ndarray | None, config: ParserConfig
) -> torch.Tensor:
    """The parser's input for one crop, at the config's size: (C, H, W) float32.

    Args:
        image: (h, w, 3) uint8 person crop (any size; resized to the config's).
        mask: (h, w) person mask in [0, 1] (needed when config.use_mask).
        keypoints: (18, 3) crop pixels (needed when config.use_pose).
    """
    h, w = image.shape[:2]
    size = (config.width, config.height)
    interp = cv2.INTER_AREA if h > config.height else cv2.INTER_LINEAR
    rgb = cv2.resize(image, size, interpolation=interp).astype(np.float32) / 127.5 - 1.0
    planes = [rgb.transpose(2, 0, 1)]
    if config.use_mask:
        if mask is None:
            raise ValueError("this parser takes the person mask; pass mask=")
        planes.append(cv2.resize(np.asarray(mask, np.float32), size, interpolation=interp)[None])
    if config.use_pose:
        if keypoints is None:
            raise ValueError("this parser takes keypoints; pass keypoints=")
        kp = np.array(keypoints, np.float32, copy=True)
        kp[:, 0] *= config.width / w
        kp[:, 1] *= config.height / h
        planes.append(limb_maps(kp, config.height, config.width))
    return torch.from_numpy(np.concatenate(planes, axis=0))


class ParserNet(nn.Module):
    """U-Net over the encoded crop; returns (B, 8, H, W) logits."""

    def __init__(self, config: ParserConfig | None = None):
        super().__init__()
        self.config = config or ParserConfig()
        self.unet = UNet(self.config.in_channels, NUM_CLASSES, self.config.widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet(x)

    # ---- release I/O -------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike, manifest: dict | None = None) -> Path:
        """Write model.safetensors, config.json and manifest.json (sha256 of the weights and of the config)."""
        return write_release(directory, self, self.config.to_dict(), PARSER_FORMAT, manifest)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> ParserNet:
        """Load a parser release folder: sha256 of weights and config checked, config bounded, strict load.

        Raises:
            WeightsError: missing files, a checksum mismatch, a config out of bounds, or a shape/key mismatch.
        """
        folder = resolve_release(path)
        manifest = read_manifest(folder)  # SieveNet's checks: types, a plain weights file name, sha256 form
        if manifest.get("format") != PARSER_FORMAT:
            raise WeightsError(
                f"{shown(folder / MANIFEST_FILE)} is not a human-parser release (format "
                f"{manifest.get('format')!r:.60}, expected {PARSER_FORMAT!r})"
            )
        if "config_sha256" not in manifest:
            raise WeightsError(
                f"{shown(folder / MANIFEST_FILE)} has no config_sha256; export the parser again"
            )
        weights = weights_path(folder, manifest)
        verify_weights(weights, manifest)
        config = _read_config(folder, manifest)
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in cls(config).state_dict().items()}
        state = load_checked_state(weights, expected, "its config.json")
        model = cls(config)
        model.load_state_dict(state, strict=True)
        return model.to(device).eval()


def _read_config(folder: Path, manifest: dict) -> ParserConfig:
    path = folder / CONFIG_FILE
    try:
        raw = read_small(path, folder)
    except FileNotFoundError:
        raise WeightsError(f"{shown(path)} is missing; a parser release needs config.json") from None
    actual = hashlib.sha256(raw).hexdigest()
    if actual != manifest["config_sha256"]:
        raise WeightsError(
            f"{shown(path)} failed its checksum (sha256 {actual[:16]}…, manifest says "
            f"{manifest['config_sha256'][:16]}…): the config was modified; export the parser again"
        )
    try:
        return ParserConfig.from_dict(json.loads(raw))
    except (ValueError, TypeError) as exc:
        raise WeightsError(f"{shown(path)} is not a valid parser config: {exc}") from None
