"""Fabric textures for the flat garment: solid, stripes, checks, dots, gradients, noise, photos and prints.

Each texture is drawn once per garment on the product canvas (H, W, 3) float32 in [0, 1], so the worn
garment and the product image sample the same pixels. All drawing is vectorised numpy / OpenCV.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from sievenet.synthetic.params import GarmentParams

# scikit-image's bundled images (public domain or CC0, see assets/examples/LICENSES.md); greyscale ones are
# tinted with the garment colour, so they read as jacquard, tweed or camouflage.
PHOTO_SOURCES = ("coffee", "chelsea", "rocket", "astronaut", "hubble_deep_field", "brick", "grass", "gravel")


@functools.cache
def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    img = img.astype(np.float32) / 255.0
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    img = img[..., :3]
    img.setflags(write=False)
    return img


@functools.cache
def _logo_skimage() -> np.ndarray:
    import skimage.data

    rgba = skimage.data.logo().astype(np.float32) / 255.0
    rgba.setflags(write=False)
    return rgba


def _mix(a: np.ndarray, b: tuple, c: tuple) -> np.ndarray:
    """Blend two RGB colours with weight a (H, W) in [0, 1]: a=0 -> b, a=1 -> c."""
    b = np.asarray(b, np.float32) / 255.0
    c = np.asarray(c, np.float32) / 255.0
    out = np.empty((*a.shape, 3), np.float32)
    for k in range(3):  # per channel: avoids (H, W, 3) temporaries
        np.multiply(a, c[k] - b[k], out=out[..., k])
        out[..., k] += b[k]
    return out


def _coords(height: int, width: int, unit: float) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return x / unit, y / unit


def _family(
    family: str, g: GarmentParams, height: int, width: int, unit: float, rng: np.random.Generator
) -> np.ndarray:
    x, y = _coords(height, width, unit)
    p = g.period
    if family == "solid":
        grain = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), 0.7)
        return _mix(np.zeros_like(x), g.base_rgb, g.base_rgb) * (1 + 0.025 * grain[..., None])
    if family == "stripes":
        if g.stripe_dir == "horizontal":
            t = y
        elif g.stripe_dir == "vertical":
            t = x
        else:
            t = (x + y) * 0.7071
        duty = 0.5 if g.texture_seed % 3 else 0.3
        return _mix(((t / p) % 1.0 < duty).astype(np.float32), g.base_rgb, g.accent_rgb)
    if family == "checks":
        a = ((x / p) % 1.0 < 0.5).astype(np.float32)
        b = ((y / p) % 1.0 < 0.5).astype(np.float32)
        return _mix(0.5 * (a + b), g.base_rgb, g.accent_rgb)  # gingham: three tones
    if family == "dots":
        q = p * 0.8
        row = np.floor(y / q)
        xs = x + 0.5 * q * (row % 2)  # offset rows, like a printed polka dot
        dx = (xs / q) % 1.0 - 0.5
        dy = (y / q) % 1.0 - 0.5
        return _mix((dx * dx + dy * dy < 0.07).astype(np.float32), g.base_rgb, g.accent_rgb)
    if family == "gradient":
        ang = (g.texture_seed % 360) * np.pi / 180
        t = x * np.cos(ang) + y * np.sin(ang)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        return _mix(t, g.base_rgb, g.accent_rgb)
    if family == "noise":
        small = rng.random((max(height // 24, 2), max(width // 24, 2))).astype(np.float32)
        low = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        fine = rng.random((height, width)).astype(np.float32)  # heather grain on top of the blotches
        return _mix(np.clip(0.8 * low + 0.2 * fine, 0, 1), g.base_rgb, g.accent_rgb)
    if family == "photo":
        src = _photo(PHOTO_SOURCES[g.photo % len(PHOTO_SOURCES)])
        sh, sw = src.shape[:2]
        zoom = 0.6 + (g.photo % 7) / 10.0  # fraction of the source shown across the canvas
        ch, cw = int(sh * zoom * 0.999), int(sw * zoom * 0.999)
        y0 = (g.photo * 7919) % max(sh - ch, 1)
        x0 = (g.photo * 104729) % max(sw - cw, 1)
        crop = cv2.resize(np.ascontiguousarray(src[y0 : y0 + ch, x0 : x0 + cw]), (width, height))
        if PHOTO_SOURCES[g.photo % len(PHOTO_SOURCES)] in ("brick", "grass", "gravel"):
            crop = crop * (np.asarray(g.base_rgb, np.float32) / 255.0) * 1.3
        return crop
    raise ValueError(f"unknown texture family {family!r}")


def _star(cx: float, cy: float, r: float) -> np.ndarray:
    ang = np.arange(10) * np.pi / 5 - np.pi / 2
    rad = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
    return np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], -1)


def draw_print(img: np.ndarray, g: GarmentParams, box: tuple[float, float, float, float]) -> None:
    """Draw the chest graphic (a word and a logo) inside box = (x0, y0, x1, y1), in place on img."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    colour = tuple(c / 255.0 for c in g.print_rgb)
    base = np.asarray(g.base_rgb, np.float32)
    if np.abs(np.asarray(g.print_rgb, np.float32) - base).sum() < 150:  # keep the print readable
        colour = (0.05, 0.05, 0.05) if base.mean() > 128 else (0.97, 0.97, 0.95)
    # The logo takes the top half of the box, the word the bottom half.
    r = 0.22 * min(bw, bh)
    cx, cy = x0 + bw / 2, y0 + 0.3 * bh
    shift = 4  # sub-pixel precision for cv2 drawing
    f = float(1 << shift)
    if g.logo == "circle":
        cv2.circle(img, (round(cx * f), round(cy * f)), round(r * f), colour, -1, cv2.LINE_AA, shift)
    elif g.logo == "ring":
        thick = max(1, round(0.25 * r))
        cv2.circle(img, (round(cx * f), round(cy * f)), round(r * 0.8 * f), colour, thick, cv2.LINE_AA, shift)
    elif g.logo == "triangle":
        pts = np.array([[cx, cy - r], [cx - r, cy + 0.8 * r], [cx + r, cy + 0.8 * r]])
        cv2.fillPoly(img, [np.round(pts * f).astype(np.int32)], colour, cv2.LINE_AA, shift)
    elif g.logo == "star":
        cv2.fillPoly(img, [np.round(_star(cx, cy, r) * f).astype(np.int32)], colour, cv2.LINE_AA, shift)
    elif g.logo == "heart":
        t = np.linspace(0, 2 * np.pi, 40)
        hx = 16 * np.sin(t) ** 3
        hy = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        pts = np.stack([cx + hx * r / 17, cy + hy * r / 17], -1)
        cv2.fillPoly(img, [np.round(pts * f).astype(np.int32)], colour, cv2.LINE_AA, shift)
    else:  # the scikit-image logo itself, alpha-blended
        rgba = _logo_skimage()
        side = max(int(2.2 * r), 2)
        logo = cv2.resize(rgba, (side, side), interpolation=cv2.INTER_AREA)
        lx, ly = int(cx - side / 2), int(cy - side / 2)
        h, w = img.shape[:2]
        sx0, sy0 = max(lx, 0), max(ly, 0)
        sx1, sy1 = min(lx + side, w), min(ly + side, h)
        if sx1 > sx0 and sy1 > sy0:
            patch = logo[sy0 - ly : sy1 - ly, sx0 - lx : sx1 - lx]
            a = patch[..., 3:4]
            img[sy0:sy1, sx0:sx1] = img[sy0:sy1, sx0:sx1] * (1 - a) + patch[..., :3] * a
    # The word: Hershey font scaled to fill ~85% of the box width.
    font = cv2.FONT_HERSHEY_DUPLEX if g.texture_seed % 2 else cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), _ = cv2.getTextSize(g.print_word, font, 1.0, 2)
    scale = min(0.85 * bw / tw, 0.32 * bh / th)
    thick = max(1, round(2 * scale))
    (tw, th), _ = cv2.getTextSize(g.print_word, font, scale, thick)
    org = (round(cx - tw / 2), round(y0 + 0.66 * bh + th / 2))
    cv2.putText(img, g.print_word, org, font, scale, colour, thick, cv2.LINE_AA)


def garment_texture(
    g: GarmentParams, height: int, width: int, unit: float, print_box: tuple[float, float, float, float]
) -> np.ndarray:
    """The garment's fabric over the whole product canvas, (H, W, 3) float32 in [0, 1].

    Args:
        g: the garment.
        height, width: canvas size.
        unit: pixels per garment width, so patterns scale with the garment, not the canvas.
        print_box: chest box (x0, y0, x1, y1) in canvas pixels for printed graphics.
    """
    rng = np.random.Generator(np.random.PCG64(g.texture_seed))
    family = g.print_base if g.texture == "print" else g.texture
    img = np.ascontiguousarray(_family(family, g, height, width, unit, rng), dtype=np.float32)
    if g.texture == "print":
        draw_print(img, g, print_box)
    return np.clip(img, 0.0, 1.0)
