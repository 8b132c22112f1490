"""The upper garment: its flat layout (the product image) and its fit onto a body (the worn garment).

Flat and worn garments share one outline built from the same named landmarks (collar, shoulder tips,
armpits, waist, hem, neckline, chest). The worn torso samples the flat texture through a thin-plate spline
fitted to those landmarks plus a low-frequency fold displacement, and each sleeve follows its arm through
one affine map per arm segment. So a TPS can explain most of the mapping but not all of it: the gap the
fine warp stage exists to close.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from sievenet.geometry import tps_solve, tps_transform
from sievenet.synthetic.body import Body
from sievenet.synthetic.params import GarmentParams
from sievenet.synthetic.textures import garment_texture

LANDMARKS = ("n_r", "n_l", "nc", "s_r", "s_l", "a_r", "a_l", "w_r", "w_l", "h_r", "h_l", "hc", "c")


@dataclass
class Sleeve:
    """One sleeve as a polyline axis with half widths: points[0] is the shoulder end, points[-1] the cuff."""

    side: int  # -1 the person's right (image left), +1 left
    points: list[np.ndarray]
    half_widths: list[float]
    seam: tuple[np.ndarray, np.ndarray]  # (shoulder tip, armpit) where the sleeve joins the torso


@dataclass
class Outline:
    """Named landmarks, the torso polygon and the sleeves of a garment, in pixels of one canvas."""

    pts: dict[str, np.ndarray]
    torso: np.ndarray  # (N, 2) polygon
    sleeves: list[Sleeve] = field(default_factory=list)
    neckline: np.ndarray | None = None  # (M, 2) collar curve, for the rib band


def _neckline(n_r: np.ndarray, n_l: np.ndarray, depth: float, v_neck: bool, count: int = 11) -> np.ndarray:
    t = np.linspace(0.0, 1.0, count)[:, None]
    dip = 1.0 - np.abs(2 * t - 1) if v_neck else np.sqrt(np.clip(1.0 - (2 * t - 1) ** 2, 0, 1))
    return n_r + t * (n_l - n_r) + np.array([0.0, 1.0]) * depth * dip


def _outline(cx: float, ys: dict, xs: dict, depth: float, v_neck: bool, lean=None) -> Outline:
    """Build the landmark outline from level heights `ys` and half widths `xs` (same keys)."""
    pts = {}
    for key in ("n", "s", "a", "w", "h"):
        pts[f"{key}_r"] = np.array([cx - xs[key], ys[key]])
        pts[f"{key}_l"] = np.array([cx + xs[key], ys[key]])
    pts["nc"] = np.array([cx, ys["n"] + depth])
    pts["hc"] = np.array([cx, ys["h"] + 0.15 * depth])  # hems sag a little in the middle
    pts["c"] = np.array([cx, ys["c"]])
    neck = _neckline(pts["n_r"], pts["n_l"], depth, v_neck)
    if lean is not None:
        pts = {k: lean(v) for k, v in pts.items()}
        neck = lean(neck)
    hem = [pts["h_r"], pts["hc"], pts["h_l"]]
    ring = [pts["n_r"], pts["s_r"], pts["a_r"], pts["w_r"], *hem, pts["w_l"], pts["a_l"], pts["s_l"]]
    torso = np.concatenate([np.stack(ring), neck[::-1][:-1]], axis=0)  # close through the collar curve
    return Outline(pts=pts, torso=torso, neckline=neck)


def flat_outline(g: GarmentParams, height: int, width: int) -> tuple[Outline, float]:
    """The garment laid flat and centred on the product canvas. Returns (outline, garment unit in px)."""
    unit = min(height, width * 4 / 3) * (0.84 if g.sleeve == "long" else 1.0)
    cx = width / 2
    y0 = height / 2 - 0.52 * unit  # centre the garment vertically
    loose = g.fit == "loose"
    sleeveless = g.sleeve == "sleeveless"
    ys = {"n": 0.15, "s": 0.18, "a": 0.37 if sleeveless else 0.35, "w": 0.56, "h": 0.8 + 1.2 * g.length}
    ys["c"] = 0.36
    xs = {
        "n": 0.075,
        "s": 0.125 if sleeveless else (0.235 if loose else 0.21),
        "a": 0.225 if loose else 0.2,
        "w": 0.22 if loose else 0.18,
        "h": 0.235 if loose else 0.195,
    }
    depth = (0.15 if g.neckline == "v" else 0.055) * unit
    out = _outline(
        cx,
        {k: y0 + v * unit for k, v in ys.items()},
        {k: v * unit for k, v in xs.items()},
        depth,
        g.neckline == "v",
    )
    if not sleeveless:
        length, angle = (0.46, 12.0) if g.sleeve == "long" else (0.12, 52.0)
        for side, key in ((-1, "r"), (1, "l")):
            s, a = out.pts[f"s_{key}"], out.pts[f"a_{key}"]
            q0 = (s + a) / 2
            rad = np.deg2rad(angle)
            d = np.array([side * np.sin(rad), np.cos(rad)])
            half = float(np.linalg.norm(s - a)) / 2
            axis = [q0, q0 + length * unit * d]
            widths = [half, half * (0.7 if g.sleeve == "long" else 0.85)]
            out.sleeves.append(Sleeve(side, axis, widths, (s, a)))
    return out, unit


def worn_outline(g: GarmentParams, body: Body) -> Outline:
    """The same garment fitted to `body`: landmark positions follow the body proportions and the fit."""
    p, s = body.p, body.s
    loose = g.fit == "loose"
    sleeveless = g.sleeve == "sleeveless"
    ease = 0.026 if loose else 0.008  # extra half width of a loose fit
    collar = body.neck_w + 0.016 * s
    ys = {
        "n": body.sh_y - 0.008 * s,
        "s": body.sh_y + 0.002 * s,
        "a": body.sh_y + (0.11 if sleeveless else 0.095) * s,
        "w": body.waist_y,
        "h": body.hip_y + (0.035 + g.length) * s,
        "c": body.sh_y + 0.1 * s,
    }
    xs = {
        "n": collar,
        "s": collar + 0.034 * s if sleeveless else p.shoulder * s + (0.02 if loose else 0.01) * s,
        "a": 0.86 * p.shoulder * s + ease * 0.6 * s,
        "w": p.waist * s + ease * s,
        "h": p.hip * s + ease * s,
    }
    depth = (0.1 if g.neckline == "v" else 0.035) * s
    out = _outline(body.cx, ys, xs, depth, g.neckline == "v", lean=body.lean)
    if not sleeveless:
        grow = (1.75 if loose else 1.4) if g.sleeve == "short" else (1.45 if loose else 1.2)
        half = p.arm_width * s * grow
        for side, key in ((-1, "r"), (1, "l")):
            sh, el, wr = body.pts[f"sh_{key}"], body.pts[f"el_{key}"], body.pts[f"wr_{key}"]
            # Start the sleeve a little inside the shoulder so it covers the rounded top of the arm.
            sh = sh - 0.3 * half * (el - sh) / max(float(np.linalg.norm(el - sh)), 1e-6)
            if g.sleeve == "short":
                axis = [sh, sh + (0.55 if loose else 0.45) * (el - sh)]
                widths = [half, half * 0.92]
            else:
                cuff = wr - 0.04 * s * (wr - el) / max(float(np.linalg.norm(wr - el)), 1e-6)
                axis, widths = [sh, el, cuff], [half, half * 0.85, half * 0.7]
            out.sleeves.append(Sleeve(side, axis, widths, (out.pts[f"s_{key}"], out.pts[f"a_{key}"])))
    return out


def _rot90(v: np.ndarray) -> np.ndarray:
    return np.array([-v[1], v[0]])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def sleeve_polygons(sl: Sleeve) -> list[np.ndarray]:
    """Quads of each sleeve segment (cv2 polygons, float)."""
    quads = []
    for i in range(len(sl.points) - 1):
        p0, p1 = sl.points[i], sl.points[i + 1]
        n = _rot90(_unit(p1 - p0))
        w0, w1 = sl.half_widths[i], sl.half_widths[i + 1]
        quads.append(np.stack([p0 + w0 * n, p1 + w1 * n, p1 - w1 * n, p0 - w0 * n]))
    return quads


def flat_sleeve_polygon(sl: Sleeve) -> np.ndarray:
    """The flat sleeve from its seam to the cuff, as one polygon."""
    s, a = sl.seam
    q1 = sl.points[-1]
    n = _rot90(_unit(q1 - sl.points[0]))
    c1, c2 = q1 + sl.half_widths[-1] * n, q1 - sl.half_widths[-1] * n
    if np.linalg.norm(c1 - s) > np.linalg.norm(c2 - s):
        c1, c2 = c2, c1
    return np.stack([s, c1, c2, a])


def segment_affines(flat: Sleeve, worn: Sleeve) -> list[np.ndarray]:
    """One 2x3 affine per worn sleeve segment, mapping flat-canvas pixels to image pixels.

    The flat sleeve is a straight tube; its length is split between the worn segments in proportion to
    their lengths, so the fabric at the elbow of a long sleeve is the fabric halfway down the flat sleeve.
    """
    q0, qe = flat.points[0], flat.points[-1]
    d = _unit(qe - q0)
    n_flat = _rot90(d)
    seg_len = [
        float(np.linalg.norm(worn.points[i + 1] - worn.points[i])) for i in range(len(worn.points) - 1)
    ]
    total_flat = float(np.linalg.norm(qe - q0))
    total = max(sum(seg_len), 1e-6)
    out, t = [], 0.0
    for i, length in enumerate(seg_len):
        a = q0 + d * total_flat * t / total
        b = q0 + d * total_flat * (t + length) / total
        t += length
        fw = float(np.interp(t / total, [0, 1], flat.half_widths))
        p0, p1 = worn.points[i], worn.points[i + 1]
        n_body = _rot90(_unit(p1 - p0))
        src = np.float32([a, b, a + fw * n_flat])
        dst = np.float32([p0, p1, p0 + worn.half_widths[i] * n_body])
        out.append(cv2.getAffineTransform(src, dst))
    return out


def torso_map(
    worn: Outline,
    flat: Outline,
    height: int,
    width: int,
    fold: float,
    rng: np.random.Generator,
    roi: tuple[int, int, int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Backward map (map_x, map_y) from image pixels to flat-canvas pixels for the torso.

    A TPS through the landmark correspondences, evaluated on a 4x coarser grid and upsampled, plus a smooth
    sinusoidal displacement of amplitude `fold` pixels (drape folds a TPS cannot express exactly).

    Args:
        roi: (x, y, w, h) image window to evaluate (default: the whole image); maps have shape (h, w).
    """
    x0, y0, rw, rh = roi if roi is not None else (0, 0, width, height)
    scale = np.array([width / 2, height / 2])
    src = np.stack([worn.pts[k] for k in LANDMARKS]) / scale - 1
    dst = np.stack([flat.pts[k] for k in LANDMARKS]) / scale - 1
    coef = tps_solve(torch.from_numpy(src)[None], torch.from_numpy(dst)[None])
    gh, gw = max(rh // 4, 2), max(rw // 4, 2)
    gy, gx = np.mgrid[0:gh, 0:gw].astype(np.float64)
    # Coarse sample positions chosen so that a linear resize back to (rh, rw) lands on pixel centres.
    px = x0 + (gx + 0.5) * rw / gw - 0.5
    py = y0 + (gy + 0.5) * rh / gh - 0.5
    grid = np.stack([px + 0.5, py + 0.5], -1).reshape(-1, 2) / scale - 1
    mapped = tps_transform(torch.from_numpy(grid)[None], torch.from_numpy(src)[None], coef)[0].numpy()
    mapped = ((mapped + 1) * scale - 0.5).reshape(gh, gw, 2).astype(np.float32)
    full = cv2.resize(mapped, (rw, rh), interpolation=cv2.INTER_LINEAR)
    if fold > 0:
        y = np.arange(y0, y0 + rh, dtype=np.float32)[:, None]
        x = np.arange(x0, x0 + rw, dtype=np.float32)[None, :]
        k1, k2 = rng.uniform(2.0, 4.0), rng.uniform(1.5, 3.0)
        ph1, ph2 = rng.uniform(0, 6.3), rng.uniform(0, 6.3)
        full[..., 0] += (
            fold * np.sin(k1 * 2 * np.pi * y / height + ph1) * np.cos(k2 * np.pi * x / width + ph2)
        )
        full[..., 1] += 0.6 * fold * np.sin(k2 * 2 * np.pi * x / width + ph2)
    return np.ascontiguousarray(full[..., 0]), np.ascontiguousarray(full[..., 1])


@dataclass
class FlatGarment:
    """The product: texture over the whole canvas, the product image and its exact mask."""

    outline: Outline
    texture: np.ndarray  # (H, W, 3) float32 [0, 1], fabric everywhere (worn garment samples it)
    image: np.ndarray  # (H, W, 3) float32 [0, 1], white outside the garment
    mask: np.ndarray  # (H, W) bool


def _poly(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * 16).astype(np.int32)  # 4 fractional bits for cv2 shift=4


def fill(mask: np.ndarray, polys: list[np.ndarray]) -> np.ndarray:
    """Fill polygons (float pixel coords) into a uint8 mask with value 1, in place; returns it."""
    for p in polys:  # one call per polygon: a single call would XOR where polygons overlap
        cv2.fillPoly(mask, [_poly(p)], 1, cv2.LINE_8, 4)
    return mask


def flat_garment(g: GarmentParams, height: int, width: int) -> FlatGarment:
    """Render the product image of garment `g` on a white canvas of the given size."""
    out, unit = flat_outline(g, height, width)
    half_w = (out.pts["a_l"][0] - out.pts["a_r"][0]) / 2
    c = out.pts["c"]
    top = out.pts["nc"][1] + 0.04 * unit
    box = (c[0] - 0.8 * half_w, top, c[0] + 0.8 * half_w, top + 0.95 * half_w)
    tex = garment_texture(g, height, width, unit=2 * half_w, print_box=box)
    # Rib bands at the collar, hem and cuffs, in a darker shade of the fabric: they move with the garment.
    rib = np.asarray(g.base_rgb, np.float32) / 255.0 * 0.8
    thick = max(1, round(0.018 * unit))
    cv2.polylines(tex, [_poly(out.neckline)], False, rib.tolist(), thick, cv2.LINE_AA, 4)
    hem = np.stack([out.pts["h_r"], out.pts["hc"], out.pts["h_l"]]) + np.array([0, -thick / 2])
    cv2.polylines(tex, [_poly(hem)], False, rib.tolist(), thick, cv2.LINE_AA, 4)
    polys = [out.torso]
    for sl in out.sleeves:
        poly = flat_sleeve_polygon(sl)
        polys.append(poly)
        cv2.line(tex, tuple(_poly(poly[1])), tuple(_poly(poly[2])), rib.tolist(), thick, cv2.LINE_AA, 4)
    mask = fill(np.zeros((height, width), np.uint8), polys).astype(bool)
    image = np.where(mask[..., None], tex, np.float32(1.0))
    return FlatGarment(outline=out, texture=tex, image=image, mask=mask)
