"""TryOnPipeline: a person photo and a garment photo in, a try-on with every intermediate out (DESIGN §1).

Work in progress: the names below are the contract the app builds against; the body lands next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import PIL.Image
import torch

from sievenet.errors import TryOnError, WeightsError
from sievenet.models import SieveNet, TryOnOutput

DEFAULT_WEIGHTS = "weights/sievenet-s"

# Ordered stage key -> human caption, in the order the pipeline produces them.
STAGES: dict[str, str] = {
    "pose": "Pose skeleton",
    "body_shape": "Body-shape prior",
    "tt_priors": "Texture-translation priors",
    "warp_coarse": "I_stn^0 (coarse warp)",
    "warp_fine": "I_stn^1 (fine warp)",
    "warp_difference": "Coarse vs fine difference",
    "m_exp": "M_exp (expected segmentation)",
    "m_cm": "M_cm (composition mask)",
    "rendered": "I_rp (rendered person)",
    "tryon": "I_tryon",
}


@dataclass
class TryOnResult:
    """Everything one try-on produced: the pasted-back photo, the crop, every stage image and the raw tensors."""

    image: PIL.Image.Image  # full-resolution photo with the try-on pasted back
    crop: PIL.Image.Image  # H x W try-on
    stages: dict[str, PIL.Image.Image]  # keys of STAGES, in order
    keypoints: np.ndarray  # (18, 3) in original photo pixels (x, y, conf)
    parse: np.ndarray  # (H, W) int64 model classes of the crop
    timings: dict[str, float]  # ms per step
    warnings: list[str] = field(default_factory=list)
    output: TryOnOutput | None = None  # raw tensors (batch 1)


class TryOnPipeline:
    """Photo in, try-on out."""

    def __init__(self, model: SieveNet, device: str | torch.device = "cpu"):
        self.model = model.to(device).eval()
        self.device = torch.device(device)

    @classmethod
    def from_pretrained(
        cls, weights: str = DEFAULT_WEIGHTS, device: str | torch.device = "cpu"
    ) -> TryOnPipeline:
        """Load a SieveNet release and wrap it in a pipeline."""
        return cls(SieveNet.from_pretrained(weights, device=device), device=device)

    def __call__(
        self,
        person,
        garment,
        *,
        pose: str = "mediapipe",
        mask: str = "mediapipe",
        keypoints_json: str | None = None,
        progress: Callable[[float, str], None] | None = None,
    ) -> TryOnResult:
        raise NotImplementedError("TryOnPipeline.__call__ is being written (issue 5)")


def draw_control_grid(image: PIL.Image.Image, theta: torch.Tensor, grid_size: int) -> PIL.Image.Image:
    """Overlay the TPS control grid moved by theta on a warp image."""
    raise NotImplementedError("draw_control_grid is being written (issue 5)")


__all__ = [
    "DEFAULT_WEIGHTS",
    "STAGES",
    "TryOnError",
    "TryOnPipeline",
    "TryOnResult",
    "WeightsError",
    "draw_control_grid",
]
