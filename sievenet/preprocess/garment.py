"""Garment photos -> product images: separate the garment from its background, crop, centre and scale it.

The background is found from the photo's border: a light or uniform backdrop (any product shot, a garment
on a bed sheet or a wall) is the colour the border pixels share. A PNG with transparency uses its alpha.
rembg can be used instead for busier backgrounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import PIL.Image
import torch

from sievenet.errors import TryOnError
from sievenet.preprocess.image_io import Photo

FILL = 0.8  # the garment's longer extent fills this fraction of the frame, like a catalogue image
BORDER = 0.03  # fraction of each side sampled for the background colour
MAX_BORDER_SPREAD = 30.0  # colour spread (per channel, 0..255) above which the border is not one backdrop


@dataclass
class Garment:
    """A garment as SieveNet consumes it: (3, H, W) in [-1, 1] white outside the garment, and its mask."""

    cloth: torch.Tensor  # (3, H, W)
    mask: torch.Tensor  # (1, H, W) in [0, 1]
    image: np.ndarray  # (H, W, 3) uint8, the product image shown to the user


def background_mask(rgb: np.ndarray) -> np.ndarray:
    """Garment mask of a photo on a light or uniform background, from the colour of its border.

    Raises:
        TryOnError: if the border is not one colour or nothing stands out from it.
    """
    h, w = rgb.shape[:2]
    bh, bw = max(1, round(h * BORDER)), max(1, round(w * BORDER))
    border = np.concatenate(
        [
            rgb[:bh].reshape(-1, 3),
            rgb[-bh:].reshape(-1, 3),
            rgb[:, :bw].reshape(-1, 3),
            rgb[:, -bw:].reshape(-1, 3),
        ]
    ).astype(np.float32)
    colour = np.median(border, axis=0)
    spread = np.percentile(np.abs(border - colour).max(axis=1), 90)
    if spread > MAX_BORDER_SPREAD:
        raise TryOnError(
            "could not separate the garment from its background (the photo's border is not one plain colour); "
            "photograph the garment flat on a plain light background, give a PNG with a transparent "
            "background, or use --mask rembg"
        )
    distance = np.abs(rgb.astype(np.float32) - colour).max(axis=2)
    mask = (distance > max(2.5 * spread, 18.0)).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    return _largest_filled(mask)


def _largest_filled(mask: np.ndarray) -> np.ndarray:
    """The largest blob with its holes filled (prints and buttons close to the backdrop colour stay garment)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return np.zeros(mask.shape, np.float32)
    blob = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(blob)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(np.float32)


def garment_mask(photo: Photo, rembg=None) -> np.ndarray:
    """(H, W) float mask of the garment: alpha if the file is transparent, else rembg if given, else the backdrop."""
    if photo.alpha is not None:
        mask = (photo.alpha >= 0.5).astype(np.uint8)
        return _largest_filled(mask) * photo.alpha
    if rembg is not None:
        return _largest_filled((rembg(photo.array) >= 0.5).astype(np.uint8))
    return background_mask(photo.array)


def prepare_garment(photo: Photo, size: tuple[int, int], *, rembg=None) -> Garment:
    """Cut out the garment and lay it out like a product image of size (H, W): centred, FILL of the frame.

    Raises:
        TryOnError: no separable background, or the "garment" is a speck or the whole photo.
    """
    limit = 2 * max(size)
    if max(photo.rgb.size) > limit:
        # The product image is small; separating the garment at twice its size is plenty and much faster.
        scale = limit / max(photo.rgb.size)
        shape = (max(1, round(photo.rgb.width * scale)), max(1, round(photo.rgb.height * scale)))
        alpha = None if photo.alpha is None else cv2.resize(photo.alpha, shape, interpolation=cv2.INTER_AREA)
        photo = Photo(rgb=photo.rgb.resize(shape, PIL.Image.Resampling.BOX), alpha=alpha)
    rgb = photo.array
    mask = garment_mask(photo, rembg)
    covered = float((mask >= 0.5).mean())
    if covered < 0.02:
        raise TryOnError(
            "found no garment in the garment photo (nothing stands out from the background); give a photo of "
            "the garment filling a good part of the frame"
        )
    if covered > 0.97:
        raise TryOnError(
            "could not separate the garment from its background (it covers the whole photo); leave some plain "
            "background around the garment"
        )
    ys, xs = np.nonzero(mask >= 0.5)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    height, width = size
    scale = FILL * min(height / (y1 - y0), width / (x1 - x0))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    matrix = np.array(
        [[scale, 0, width / 2 - cx * scale], [0, scale, height / 2 - cy * scale]], dtype=np.float64
    )
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    if interp == cv2.INTER_AREA:
        # Shrink first (area averaging, no aliasing on fine prints), then place it.
        small_rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(mask, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        moved = matrix.copy()
        moved[:, :2] = np.eye(2)
        placed = cv2.warpAffine(
            small_rgb, moved, (width, height), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255)
        )
        placed_mask = cv2.warpAffine(
            small_mask, moved, (width, height), flags=cv2.INTER_LINEAR, borderValue=0
        )
    else:
        placed = cv2.warpAffine(rgb, matrix, (width, height), flags=interp, borderValue=(255, 255, 255))
        placed_mask = cv2.warpAffine(mask, matrix, (width, height), flags=interp, borderValue=0)
    placed_mask = np.clip(placed_mask, 0.0, 1.0)
    white = placed.astype(np.float32) * placed_mask[..., None] + 255.0 * (1 - placed_mask[..., None])
    image = white.round().astype(np.uint8)
    cloth = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1.0
    return Garment(cloth=cloth, mask=torch.from_numpy(placed_mask)[None].float(), image=image)
