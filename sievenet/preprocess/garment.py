"""Garment photos -> product images: separate the garment from its background, crop, centre and scale it.

The background is found from the photo's border: a plain backdrop of any colour (a product shot, a garment on
a bed sheet or a wall) is the colour the border pixels share, and soft shadows on it stay backdrop; a varied
or busy backdrop is separated by GrabCut seeded with the border. Thin attachments such as a hanger's hook are
opened away. A PNG with transparency uses its alpha; rembg can be used instead.
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
SHADOW = 0.55  # a pixel of the backdrop's colour at least this bright relative to it is shadow, not garment
SHADOW_EDGE = 0.05  # a shadow's brightness changes less than this per pixel where it meets the backdrop
GRABCUT_SIDE = 256  # varied backdrops are separated by GrabCut at this longest side (then upsampled)


@dataclass
class Garment:
    """A garment as SieveNet consumes it, plus its full-resolution cut-out for composing at the photo's size.

    `cloth`, `mask` and `image` are the product image at the model's size. `at(size)` lays the ORIGINAL
    cut-out out the same way (same centring and scale relative to the frame) at any other size, so the
    high-resolution composition samples the garment photo's own detail, not an upsampled 256 x 192 copy.
    """

    cloth: torch.Tensor  # (3, H, W) in [-1, 1], white outside the garment
    mask: torch.Tensor  # (1, H, W) in [0, 1]
    image: np.ndarray  # (H, W, 3) uint8, the product image shown to the user
    source: np.ndarray | None = None  # (h, w, 3) uint8 garment photo at its loaded resolution
    source_mask: np.ndarray | None = None  # (h, w) float32 garment mask of `source`
    bounds: tuple[float, float, float, float] | None = None  # garment box in `source`: x0, y0, x1, y1

    def at(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The product image laid out at `size` (H, W) from the full-resolution cut-out: (uint8 image, mask)."""
        return lay_out(*self._cut_out(), size)

    def sampler(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What reads the product image, as laid out at `size` (H, W), straight from the full-resolution cut-out.

        The high-resolution composition reads the cut-out once, at the points a warp asks for, with no
        laid-out copy in between: `cv2.remap(image, points * gain + offset, ...)` with white beyond the
        image gives the product image at normalised product-frame points (DESIGN §2; -1 and 1 are the frame's
        outer pixel edges). The map is affine, so it may be applied to a coarse lattice before that is
        interpolated. When the frame at `size` is smaller than the cut-out, the cut-out is area-shrunk to that
        scale first (no aliasing on fine prints).

        Returns:
            (image (h, w, 3) uint8, the garment box's cut-out composited on white; gain (2,) and offset (2,)
            float32: its pixel index (x, y) = point * gain + offset).
        """
        rgb, mask, bounds = self._cut_out()
        rows, cols, local = _garment_box(bounds)
        # Composited on white before resampling (premultiplied): the garment's edge blends into white exactly
        # as a product photo's does, and the read is one uint8 remap.
        a = mask[rows, cols, None]
        white = np.rint(rgb[rows, cols] * a + 255.0 * (1.0 - a)).clip(0, 255).astype(np.uint8)
        p = _placement(white, local, size)
        height, width = size
        # Product-frame pixel coordinate (u + 1) / 2 * W -> cut-out coordinate (P - W / 2) / scale + centre ->
        # source pixel index (times the shrink, centres at integers).
        gain = np.array([width * p.sx, height * p.sy], np.float64) / (2 * p.scale)
        offset = np.array([p.cx * p.sx - 0.5, p.cy * p.sy - 0.5])
        return p.source, gain.astype(np.float32), offset.astype(np.float32)

    def _cut_out(self) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
        if self.source is None or self.source_mask is None or self.bounds is None:
            raise ValueError("this Garment has no full-resolution cut-out; build it with prepare_garment")
        return self.source, self.source_mask, self.bounds


@dataclass
class _Placement:
    """The garment box of a cut-out placed in a frame: product = scale * (cut-out - centre) + frame centre."""

    source: np.ndarray  # (h, w, C): the box of the cut-out, area-shrunk when scale < 1
    scale: float  # frame units per cut-out pixel
    sx: float  # source pixels per cut-out pixel (1, or the shrink)
    sy: float
    cx: float  # garment box centre, in (unshrunk) cut-out pixels of `source`
    cy: float


def _garment_box(bounds: tuple[float, float, float, float]) -> tuple[slice, slice, tuple[float, ...]]:
    """The rows and columns of a cut-out that hold the garment box `bounds` (and a little soft edge), and the
    box in that region's coordinates: only this part of a big photo is ever resampled."""
    left, top = max(0, int(bounds[0]) - 2), max(0, int(bounds[1]) - 2)
    rows = slice(top, int(np.ceil(bounds[3])) + 2)
    cols = slice(left, int(np.ceil(bounds[2])) + 2)
    return rows, cols, (bounds[0] - left, bounds[1] - top, bounds[2] - left, bounds[3] - top)


def _placement(source: np.ndarray, box: tuple[float, ...], size: tuple[int, int]) -> _Placement:
    """Where the garment box `box` of `source` (h, w, C; the region `_garment_box` cut) goes in an (H, W)
    frame: centred, its longer extent FILL of it.

    Coordinates are continuous (pixel edges at integers, centres at +0.5), so every size gets the same layout
    up to scale.
    """
    x0, y0, x1, y1 = box
    height, width = size
    scale = FILL * min(height / (y1 - y0), width / (x1 - x0))
    sx = sy = 1.0
    if scale < 1:
        # Shrink first with area averaging (no aliasing on fine prints), then place it.
        h, w = source.shape[:2]
        shape = (max(1, round(w * scale)), max(1, round(h * scale)))
        source = cv2.resize(source, shape, interpolation=cv2.INTER_AREA)
        sx, sy = shape[0] / w, shape[1] / h
    return _Placement(source=source, scale=scale, sx=sx, sy=sy, cx=(x0 + x1) / 2, cy=(y0 + y1) / 2)


def lay_out(
    rgb: np.ndarray, mask: np.ndarray, bounds: tuple[float, float, float, float], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Place the garment box `bounds` of `rgb` centred in an (H, W) frame, its longer extent FILL of it.

    Returns the uint8 image (white outside the garment) and the float32 mask.
    """
    rows, cols, box = _garment_box(bounds)
    source = np.dstack([rgb[rows, cols], mask[rows, cols]]).astype(np.float32)  # resampled together, one pass
    p = _placement(source, box, size)
    height, width = size
    # Continuous map: product = scale * (photo - centre) + frame centre; the source is `source` scaled by s.
    ax, ay = p.scale / p.sx, p.scale / p.sy
    tx, ty = width / 2 - p.cx * p.scale, height / 2 - p.cy * p.scale
    # warpAffine works on pixel indices (centres at integers): shift by half a pixel on both sides.
    matrix = np.array([[ax, 0, tx + 0.5 * ax - 0.5], [0, ay, ty + 0.5 * ay - 0.5]], dtype=np.float64)
    placed = cv2.warpAffine(p.source, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
    placed_mask = np.clip(placed[..., 3], 0.0, 1.0)
    white = placed[..., :3] * placed_mask[..., None] + 255.0 * (1 - placed_mask[..., None])
    return white.round().clip(0, 255).astype(np.uint8), placed_mask.astype(np.float32)


def background_mask(rgb: np.ndarray) -> np.ndarray:
    """Garment mask of a product photo, from what its border shows of the backdrop.

    A plain backdrop of any colour is separated by colour distance, with soft shadows on it (the backdrop's
    own hue, somewhat darker) kept out; a varied or busy backdrop by GrabCut seeded with the border as
    background. Thin attachments (a hanger's hook, a string) are opened away.

    Raises:
        TryOnError: if nothing that looks like one garment stands out from the backdrop.
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
    if spread <= MAX_BORDER_SPREAD:
        pixels = rgb.astype(np.float32)
        distance = np.abs(pixels - colour).max(axis=2)
        mask = distance > max(2.5 * spread, 18.0)
        # A shadow is the backdrop darkened: the same colour up to a factor between SHADOW and 1.
        gain = (pixels * colour).sum(axis=2) / max(float((colour * colour).sum()), 1.0)
        residual = np.abs(pixels - gain[..., None] * colour).max(axis=2)
        shadow = (gain > SHADOW) & (gain < 1.0) & (residual < max(2.5 * spread, 12.0)) & mask
        mask = (mask & ~_soft(shadow, gain, ~mask)).astype(np.uint8)
    else:
        mask = _grabcut(rgb, (bh, bw))
    mask = _open_thin_parts(mask)
    filled = _largest_filled(mask)
    covered = float(filled.mean())
    # An empty mask on a plain backdrop is "no garment in the photo" (prepare_garment says so).
    if covered > 0.9 or (covered < 0.02 and spread > MAX_BORDER_SPREAD):
        raise TryOnError(
            "could not separate the garment from its background (nothing that looks like one garment stands "
            "out from it); photograph the garment flat on a plain background, give a PNG with a transparent "
            "background, or use --mask rembg"
        )
    return filled


def _soft(candidates: np.ndarray, gain: np.ndarray, backdrop: np.ndarray) -> np.ndarray:
    """The backdrop-coloured blobs that fade softly into the backdrop (shadows), not those with a sharp
    edge against it (a grey trim or a white collar of the garment itself)."""
    count, labels = cv2.connectedComponents(candidates.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(candidates)
    step = (
        np.hypot(cv2.Sobel(gain, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gain, cv2.CV_32F, 0, 1, ksize=3)) / 8
    )
    edge = candidates & (cv2.dilate(backdrop.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    total = np.bincount(labels[edge], weights=step[edge], minlength=count)
    seen = np.bincount(labels[edge], minlength=count)
    sharpness = total / np.maximum(seen, 1)
    soft = (sharpness < SHADOW_EDGE) & (seen > 0)
    soft[0] = False
    return soft[labels]


def _grabcut(rgb: np.ndarray, border: tuple[int, int]) -> np.ndarray:
    """GrabCut with the border as certain background and the rest as probable garment, at <= 256 px."""
    h, w = rgb.shape[:2]
    scale = min(1.0, GRABCUT_SIDE / max(h, w))
    small = cv2.resize(
        rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    sh, sw = small.shape[:2]
    bh, bw = max(2, round(border[0] * scale)), max(2, round(border[1] * scale))
    seed = np.full((sh, sw), cv2.GC_PR_FGD, np.uint8)
    seed[:bh], seed[-bh:], seed[:, :bw], seed[:, -bw:] = cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's colour models start from k-means: keep it deterministic
    cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), seed, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
    found = np.isin(seed, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    return (cv2.resize(found * 255, (w, h), interpolation=cv2.INTER_LINEAR) >= 128).astype(np.uint8)


def _open_thin_parts(mask: np.ndarray) -> np.ndarray:
    """Morphological opening sized to the garment: removes hooks, strings and specks thinner than ~3 %."""
    area = float(mask.sum())
    side = max(5, 2 * round(0.015 * np.sqrt(max(area, 1.0))) + 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    opened = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    return cv2.morphologyEx(opened, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))


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

    The cut-out is found at a working resolution (twice the product image is plenty) and kept at the photo's
    loaded resolution in the returned Garment, for `Garment.at`.

    Raises:
        TryOnError: no separable background, or the "garment" is a speck or the whole photo.
    """
    full = photo
    limit = 2 * max(size)
    if max(photo.rgb.size) > limit:
        scale = limit / max(photo.rgb.size)
        shape = (max(1, round(photo.rgb.width * scale)), max(1, round(photo.rgb.height * scale)))
        alpha = None if photo.alpha is None else cv2.resize(photo.alpha, shape, interpolation=cv2.INTER_AREA)
        photo = Photo(rgb=photo.rgb.resize(shape, PIL.Image.Resampling.BOX), alpha=alpha)
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
    # Box in continuous coordinates of the full-resolution photo.
    fx = full.rgb.width / photo.rgb.width
    fy = full.rgb.height / photo.rgb.height
    bounds = (xs.min() * fx, ys.min() * fy, (xs.max() + 1) * fx, (ys.max() + 1) * fy)
    source = full.array
    if source.shape[:2] == mask.shape:
        source_mask = mask.astype(np.float32)
    else:
        source_mask = cv2.resize(mask, (source.shape[1], source.shape[0]), interpolation=cv2.INTER_LINEAR)
        if full.alpha is not None:  # a transparent PNG's own edge is sharper than the upsampled one
            source_mask = np.minimum(source_mask * 2, 1.0) * full.alpha
    source_mask = np.clip(source_mask, 0.0, 1.0).astype(np.float32)
    image, placed_mask = lay_out(source, source_mask, bounds, size)
    cloth = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1.0
    return Garment(
        cloth=cloth,
        mask=torch.from_numpy(placed_mask)[None].float(),
        image=image,
        source=source,
        source_mask=source_mask,
        bounds=bounds,
    )
