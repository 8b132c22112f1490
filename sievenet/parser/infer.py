"""LearnedParser: a shipped parser release as a callable on framed crops, and where its default weights live."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from sievenet.labels import Label
from sievenet.parser.model import ParserNet, encode

DEFAULT_PARSER_WEIGHTS = "weights/parser-s"
MASK_REACH = 0.01  # how far (share of the crop height) person classes may reach past the person mask


def default_parser_weights() -> Path:
    """weights/parser-s, relative to the working folder or else to the repository."""
    here = Path(DEFAULT_PARSER_WEIGHTS)
    if here.exists():
        return here
    return Path(__file__).resolve().parents[2] / DEFAULT_PARSER_WEIGHTS


class LearnedParser:
    """Parse a framed person crop (what Preprocessor.frame cuts) into the 8 model classes.

    Args:
        net: a ParserNet (from ParserNet.from_pretrained).
    """

    def __init__(self, net: ParserNet):
        self.net = net.eval()
        self.config = net.config

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None) -> LearnedParser:
        """Load a parser release (default weights/parser-s); raises WeightsError when it is missing or broken."""
        return cls(ParserNet.from_pretrained(default_parser_weights() if path is None else path))

    @torch.no_grad()
    def logits(
        self, image: np.ndarray, mask: np.ndarray | None, keypoints: np.ndarray | None
    ) -> torch.Tensor:
        """(8, h, w) class scores at the crop's own size (bilinear from the network's size)."""
        x = encode(image, mask, keypoints, self.config)[None]
        logits = self.net(x)
        h, w = image.shape[:2]
        if logits.shape[-2:] != (h, w):
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        return logits[0]

    def probabilities(
        self, image: np.ndarray, mask: np.ndarray | None, keypoints: np.ndarray | None
    ) -> torch.Tensor:
        """(8, h, w) class probabilities at the crop's own size."""
        return self.logits(image, mask, keypoints).softmax(0)

    def __call__(
        self, image: np.ndarray, mask: np.ndarray | None, keypoints: np.ndarray | None
    ) -> np.ndarray:
        """(h, w) int64 labels of an (h, w, 3) uint8 crop, its (h, w) person mask and (18, 3) crop keypoints.

        Person classes are kept only on and near the person mask (MASK_REACH of the crop's height around it):
        the parser sharpens the mask's outline but may not invent body parts in the backdrop (it did, on the
        flag behind the astronaut), which the paste-back would then treat as skin it may repaint.
        """
        labels = self.logits(image, mask, keypoints).numpy().argmax(0).astype(np.int64)
        if mask is not None:
            reach = 2 * max(1, round(MASK_REACH * image.shape[0])) + 1
            near = cv2.dilate((np.asarray(mask) >= 0.5).astype(np.uint8), np.ones((reach, reach), np.uint8))
            labels[near == 0] = 0
        return labels


def neck_to_face(labels: np.ndarray, face_box: np.ndarray | None) -> np.ndarray:
    """Relabel as face the neck pixels inside the face detector's ellipse (in place; returns labels).

    On real photos the parser (trained on the studios' chin line) can call the lower chin neck skin; the
    try-on may repaint skin, so the garment then rose over the chin (grace_hopper.jpg). The ellipse is the
    heuristic parser's face: centred in the box, 0.85 r wide and 1.1 r tall, r = half the box's longer side.
    """
    if face_box is None:
        return labels
    x0, y0, x1, y1 = (float(v) for v in face_box[:4])
    r = max(x1 - x0, y1 - y0) / 2
    if r <= 0:
        return labels
    h, w = labels.shape
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    inside = ((xs - (x0 + x1) / 2) / (0.85 * r)) ** 2 + ((ys - (y0 + y1) / 2) / (1.1 * r)) ** 2 <= 1.0
    labels[inside & (labels == Label.NECK)] = Label.FACE
    return labels
