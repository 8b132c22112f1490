"""Framing: a box of the model's aspect around the person, crops into it, and the feathered paste back."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import PIL.Image

from sievenet.errors import TryOnError
from sievenet.preprocess.pose import MIN_CONFIDENCE

INPAINT_MIN_SIDE = 64  # crops at least twice this size have their backdrop inpainted at half size
MARGIN = 0.08  # fraction of the person's height left around them, like VITON-HD's framing


R_SHOULDER, L_SHOULDER = 2, 5
MIN_TORSO = 0.35  # the photo must show this many shoulder widths of body below the shoulders (a bust: ~0.5)
WORKING_PHOTO = (
    "use a photo of one person facing the camera, showing them from the head to at least the waist "
    "(half-body and full-body photos, portrait or landscape, work)"
)


def check_framing(keypoints: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> list[str]:
    """Refuse photos the try-on cannot dress, saying what photo would work; note those it dresses poorly.

    Half-body photos (hips out of frame), off-centre people and portrait or landscape photos all work: the
    crop is framed around the person. What cannot work is a photo without both shoulders (a face close-up, a
    selfie cut at the neck, a back or profile view) or one that ends just under the shoulders.

    Args:
        keypoints: (18, 3) photo pixels.
        mask: (h, w) person mask of the photo.
        size: the model's (H, W).

    Returns:
        warnings for the user (e.g. a person too small in the photo for a sharp result).

    Raises:
        TryOnError: the photo does not show the upper body.
    """
    seen = keypoints[:, 2] >= MIN_CONFIDENCE
    if not (seen[R_SHOULDER] and seen[L_SHOULDER]):
        raise TryOnError(
            "the person's shoulders are not both visible (a close-up, a selfie cut at the neck, or a side "
            f"view?); {WORKING_PHOTO}"
        )
    shoulders = keypoints[[R_SHOULDER, L_SHOULDER], :2]
    width = float(np.linalg.norm(shoulders[0] - shoulders[1]))
    ys = np.nonzero((mask >= 0.5).any(axis=1))[0]
    bottom = float(ys.max() + 1) if len(ys) else float(mask.shape[0])
    if bottom - float(shoulders[:, 1].mean()) < MIN_TORSO * width:
        raise TryOnError(
            f"the photo ends just below the shoulders, so there is no torso to dress; {WORKING_PHOTO}"
        )
    notes = []
    height = float(len(ys) and ys.max() - ys.min() + 1)
    if 0 < height < size[0]:
        notes.append(
            f"the person is only {height:.0f} px tall in the photo; the result is enlarged from that, so a "
            "closer or higher-resolution photo gives a sharper try-on"
        )
    return notes


@dataclass(frozen=True)
class CropBox:
    """A region of the photo in pixels (may extend past its edges); x0, y0 top-left, width, height."""

    x0: float
    y0: float
    width: float
    height: float

    def scale_to(self, size: tuple[int, int]) -> float:
        """Crop pixels per photo pixel for an output of size (H, W)."""
        return size[0] / self.height


def person_box(mask: np.ndarray, keypoints: np.ndarray, size: tuple[int, int]) -> CropBox:
    """The smallest H:W box around the mask and the confident keypoints, plus a margin, centred on them.

    Args:
        mask: (H, W) person mask in [0, 1] of the photo.
        keypoints: (18, 3) photo pixels.
        size: the model's (H, W); the box has its aspect ratio.
    """
    ys, xs = np.nonzero(mask >= 0.5)
    kp = keypoints[keypoints[:, 2] >= MIN_CONFIDENCE, :2]
    px = np.concatenate([xs.astype(np.float32), kp[:, 0]])
    py = np.concatenate([ys.astype(np.float32), kp[:, 1]])
    x0, x1, y0, y1 = px.min(), px.max() + 1, py.min(), py.max() + 1
    aspect = size[0] / size[1]
    height = max(y1 - y0, (x1 - x0) * aspect) * (1 + 2 * MARGIN)
    width = height / aspect
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return CropBox(float(cx - width / 2), float(cy - height / 2), float(width), float(height))


def _affine(box: CropBox, size: tuple[int, int]) -> np.ndarray:
    s = box.scale_to(size)
    return np.array([[s, 0, -box.x0 * s], [0, s, -box.y0 * s]], dtype=np.float64)


def crop(
    array: np.ndarray, box: CropBox, size: tuple[int, int], *, fill: float = 255, nearest: bool = False
) -> np.ndarray:
    """Resample `array` (H, W[, C]) inside `box` to `size` (H, W); outside the photo is `fill` (white)."""
    s = box.scale_to(size)
    border = (fill,) * 4  # a bare scalar would only fill the first channel
    # Area averaging when shrinking avoids aliasing on big photos; linear when the box is upsampled.
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    if interp == cv2.INTER_AREA:
        # warpAffine has no area mode: shrink the photo first, then place the box at the reduced scale.
        small = cv2.resize(array, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        moved = np.array([[1, 0, -box.x0 * s], [0, 1, -box.y0 * s]], dtype=np.float64)
        return cv2.warpAffine(small, moved, (size[1], size[0]), flags=cv2.INTER_LINEAR, borderValue=border)
    return cv2.warpAffine(array, _affine(box, size), (size[1], size[0]), flags=interp, borderValue=border)


def keypoints_to_crop(keypoints: np.ndarray, box: CropBox, size: tuple[int, int]) -> np.ndarray:
    """Photo-pixel keypoints -> crop pixels; points outside the crop become missing."""
    s = box.scale_to(size)
    out = np.array(keypoints, dtype=np.float32, copy=True)
    out[:, 0] = (out[:, 0] - box.x0) * s
    out[:, 1] = (out[:, 1] - box.y0) * s
    outside = (out[:, 0] < 0) | (out[:, 0] > size[1] - 1) | (out[:, 1] < 0) | (out[:, 1] > size[0] - 1)
    out[outside, 2] = 0.0
    return out


def paste_back(
    photo: np.ndarray, tryon: np.ndarray, alpha: np.ndarray, box: CropBox, *, feather: float = 2.0
) -> np.ndarray:
    """Blend the H x W try-on into the photo at its own resolution, only where `alpha` says it changed.

    Args:
        photo: (h, w, 3) uint8 original photo.
        tryon: (H, W, 3) uint8 try-on crop.
        alpha: (H, W) float in [0, 1], 1 where the try-on replaces the photo.
        box: where the crop came from.
        feather: blur of the alpha edge, in crop pixels.

    Returns:
        (h, w, 3) uint8; pixels where the feathered alpha is 0 are the photo's own bytes.
    """
    size = tryon.shape[:2]
    if feather > 0:
        k = 2 * int(np.ceil(2 * feather)) + 1
        alpha = cv2.GaussianBlur(alpha.astype(np.float32), (k, k), feather)
    # Only the photo rectangle under the non-zero alpha is resampled and blended (a fraction of a big photo).
    window = photo_window(alpha > 0, box, size, photo.shape)
    if window is None:
        return photo.copy()
    x0, y0, x1, y1 = window
    inverse = cv2.invertAffineTransform(_affine(box, size))
    inverse[:, 2] -= [x0, y0]
    shape = (x1 - x0, y1 - y0)
    big = cv2.warpAffine(tryon, inverse, shape, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(alpha.astype(np.float32), inverse, shape, flags=cv2.INTER_LINEAR, borderValue=0.0)
    a = np.clip(a, 0.0, 1.0)[..., None]
    out = photo.copy()
    region = out[y0:y1, x0:x1].astype(np.float32)
    blended = region * (1 - a) + big.astype(np.float32) * a
    changed = a[..., 0] > 0
    out[y0:y1, x0:x1][changed] = np.clip(blended[changed].round(), 0, 255).astype(np.uint8)
    return out


def photo_window(
    support: np.ndarray, box: CropBox, size: tuple[int, int], photo_shape: tuple[int, ...]
) -> tuple[int, int, int, int] | None:
    """The photo rectangle (x0, y0, x1, y1) under the non-zero pixels of a crop-sized `support`, or None."""
    ys, xs = np.nonzero(support)
    if len(ys) == 0:
        return None
    s = box.scale_to(size)
    h, w = photo_shape[:2]
    x0 = max(0, int(np.floor(box.x0 + (xs.min() - 1) / s)))
    y0 = max(0, int(np.floor(box.y0 + (ys.min() - 1) / s)))
    x1 = min(w, int(np.ceil(box.x0 + (xs.max() + 2) / s)))
    y1 = min(h, int(np.ceil(box.y0 + (ys.max() + 2) / s)))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def crop_coordinates(box: CropBox, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Normalised crop coordinates (x, y) of the photo pixel centres at columns `xs` and rows `ys` (pixel
    indices, any real values): (len(ys), len(xs), 2) float32 in the geometry convention."""
    u = (np.asarray(xs, np.float64) + 0.5 - box.x0) / box.width * 2 - 1
    v = (np.asarray(ys, np.float64) + 0.5 - box.y0) / box.height * 2 - 1
    return np.stack(np.meshgrid(u, v, indexing="xy"), axis=-1).astype(np.float32)


def to_window(
    maps: np.ndarray, box: CropBox, size: tuple[int, int], window: tuple[int, int, int, int]
) -> np.ndarray:
    """Crop-sized maps (H, W[, C <= 4]) resampled bilinearly onto the photo pixels of `window` (x0, y0, x1, y1).

    The crop -> photo map is a scale and a shift, so one cv2.warpAffine does it; the same sampling as
    grid_sample at the window's `crop_coordinates` (align_corners=False, border padding), up to cv2's 1/32
    pixel interpolation table.
    """
    x0, y0, x1, y1 = window
    sx, sy = size[1] / box.width, size[0] / box.height
    # Photo pixel index X (centre X + 0.5) -> crop index sx * (X + 0.5 - box.x0) - 0.5, inside the window.
    matrix = np.array(
        [[sx, 0.0, sx * (x0 + 0.5 - box.x0) - 0.5], [0.0, sy, sy * (y0 + 0.5 - box.y0) - 0.5]],
        dtype=np.float64,
    )
    return cv2.warpAffine(
        maps,
        matrix,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def inside_photo(box: CropBox, size: tuple[int, int], photo_shape: tuple[int, ...]) -> np.ndarray:
    """(H, W) bool: crop pixels whose centre lies on the photo (the rest is `crop`'s white padding)."""
    s = box.scale_to(size)
    xs = box.x0 + (np.arange(size[1]) + 0.5) / s
    ys = box.y0 + (np.arange(size[0]) + 0.5) / s
    return ((ys >= 0) & (ys < photo_shape[0]))[:, None] & ((xs >= 0) & (xs < photo_shape[1]))[None, :]


def fill_background(image: np.ndarray, hole: np.ndarray, person: np.ndarray) -> np.ndarray:
    """Guess the backdrop inside `hole` from the backdrop around it (cv2.inpaint, Telea).

    Args:
        image: (H, W, 3) uint8.
        hole: (H, W) bool, where a backdrop is wanted.
        person: (H, W) bool, pixels that are NOT backdrop and must not be copied into the hole.

    Returns:
        (H, W, 3) uint8: `image` with the hole (and the person) painted from the surrounding backdrop.
    """
    unknown = (hole | person).astype(np.uint8)
    h, w = image.shape[:2]
    if min(h, w) < 2 * INPAINT_MIN_SIDE:
        return cv2.inpaint(image, unknown, max(3, round(min(h, w) / 64)), cv2.INPAINT_TELEA)
    # Telea's cost grows with the unknown area (most of a person crop) and a backdrop guess is smooth: paint it
    # at half size, where a pixel is unknown if any pixel under it is, and upsample it into the unknown pixels.
    half = (w // 2, h // 2)
    small = cv2.resize(image, half, interpolation=cv2.INTER_AREA)
    small_unknown = (cv2.resize(unknown * 255, half, interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)
    painted = cv2.inpaint(small, small_unknown, max(2, round(min(half) / 64)), cv2.INPAINT_TELEA)
    guess = cv2.resize(painted, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.where(unknown[..., None] > 0, guess, image)


def to_pil(array: np.ndarray) -> PIL.Image.Image:
    return PIL.Image.fromarray(np.ascontiguousarray(array))
