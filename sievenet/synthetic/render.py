"""Compose a scene: backdrop, legs and lower garment, torso, the worn upper garment, head, hair and arms.

Every layer paints colour and its LIP id together, so the parse is exact by construction. Painting order is
depth order (back to front); arms that cross the torso are painted after it, long hair over the shoulders
after the garment.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from sievenet.labels import LIP
from sievenet.synthetic.body import Body
from sievenet.synthetic.garment import (
    FlatGarment,
    flat_garment,
    segment_affines,
    sleeve_polygons,
    torso_map,
    worn_outline,
)
from sievenet.synthetic.params import GarmentParams, PersonParams


@dataclass
class Scene:
    """One rendered scene: the person photo, its LIP parse and pose, and the product image of the garment."""

    image: np.ndarray  # (H, W, 3) uint8
    lip: np.ndarray  # (H, W) uint8 LIP ids
    keypoints: np.ndarray  # (18, 3) float32
    cloth: np.ndarray  # (H, W, 3) uint8 product image, white outside the garment
    cloth_mask: np.ndarray  # (H, W) uint8 {0, 1}


class _Canvas:
    """Colour image plus LIP map, painted together.

    Flat colours are drawn straight into both buffers with OpenCV (it touches only the shape's pixels);
    textured layers go through a mask.
    """

    def __init__(self, height: int, width: int) -> None:
        self.h, self.w = height, width
        self.img = np.zeros((height, width, 3), np.float32)
        self.lip = np.zeros((height, width), np.uint8)

    @staticmethod
    def _draw(dst: np.ndarray, value, polys, ellipses, circles) -> None:
        for poly in polys:
            cv2.fillPoly(dst, [np.round(np.asarray(poly) * 16).astype(np.int32)], value, cv2.LINE_8, 4)
        for centre, axes, angle in ellipses:
            c = (round(centre[0] * 16), round(centre[1] * 16))
            a = (max(round(axes[0] * 16), 1), max(round(axes[1] * 16), 1))
            cv2.ellipse(dst, c, a, float(angle), 0, 360, value, -1, cv2.LINE_8, 4)
        for centre, radius in circles:
            c = (round(centre[0] * 16), round(centre[1] * 16))
            cv2.circle(dst, c, max(round(radius * 16), 1), value, -1, cv2.LINE_8, 4)

    def mask(self, polys=(), ellipses=(), circles=()) -> np.ndarray:
        m = np.zeros((self.h, self.w), np.uint8)
        self._draw(m, 1, polys, ellipses, circles)
        return m.astype(bool)

    def shape(self, colour: tuple, lip_id: int | None, polys=(), ellipses=(), circles=()) -> None:
        """Paint a flat RGB (0..255) colour into the shapes; label them `lip_id` unless None."""
        self._draw(self.img, tuple(float(c) / 255.0 for c in colour), polys, ellipses, circles)
        if lip_id is not None:
            self._draw(self.lip, int(lip_id), polys, ellipses, circles)

    def paint_sampled(self, m: np.ndarray, sample, lip_id: int) -> None:
        """Paint where m is set with pixels from `sample(roi) -> (h, w, 3)`, evaluated only on m's bounding box."""
        x, y, w, h = cv2.boundingRect(m.astype(np.uint8))
        if w == 0 or h == 0:
            return
        sub = m[y : y + h, x : x + w]
        np.copyto(self.img[y : y + h, x : x + w], sample((x, y, w, h)), where=sub[..., None])
        self.lip[y : y + h, x : x + w][sub] = lip_id

    def paint(self, m: np.ndarray, colour, lip_id: int | None) -> None:
        """Paint `colour` (RGB 0..255 tuple, or an (H, W, 3) float image in [0, 1]) where m is set."""
        if isinstance(colour, np.ndarray) and colour.ndim == 3:
            np.copyto(self.img, colour, where=m[..., None])
        else:
            self.img[m] = np.asarray(colour, np.float32) / 255.0
        if lip_id is not None:
            self.lip[m] = lip_id


def _tube(points: list[np.ndarray], widths: list[float]) -> list[np.ndarray]:
    """Quads along a polyline with tapering half widths (joints are covered by circles drawn separately)."""
    quads = []
    for i in range(len(points) - 1):
        p0, p1 = points[i], points[i + 1]
        d = p1 - p0
        n = np.array([-d[1], d[0]]) / max(float(np.linalg.norm(d)), 1e-9)
        quads.append(
            np.stack([p0 + widths[i] * n, p1 + widths[i + 1] * n, p1 - widths[i + 1] * n, p0 - widths[i] * n])
        )
    return quads


def _rng(*keys: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(zlib.crc32("/".join(keys).encode())))


def _shade(rgb: tuple, k: float) -> tuple:
    return tuple(float(np.clip(c * k, 0, 255)) for c in rgb)


def _backdrop(c: _Canvas, p: PersonParams) -> None:
    y = np.arange(c.h, dtype=np.float32)[:, None] / c.h
    x = np.arange(c.w, dtype=np.float32)[None, :] / c.w
    # Vertical gradient, a slight horizontal falloff and a soft floor band near the bottom (a studio sweep).
    grad = (1.0 - p.backdrop_gradient * y - 0.04 * np.clip((y - 0.8) * 5, 0, 1)) - 0.02 * ((x - 0.5) * 2) ** 2
    np.multiply(grad[..., None], np.asarray(p.backdrop_rgb, np.float32) / 255.0, out=c.img)


def _lower_sampler(p: PersonParams, stripe_period: float):
    """Fabric of the lower garment on a window (x, y, w, h): flat colour, denim grain or pinstripes."""
    base = np.asarray(p.lower_rgb, np.float32) / 255.0

    def sample(roi: tuple[int, int, int, int]) -> np.ndarray:
        x0, _, w, h = roi
        tex = np.empty((h, w, 3), np.float32)
        tex[:] = base
        if p.lower_pattern == "denim":
            rng = _rng(p.person_id, "lower", str(roi))
            grain = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 0.6)
            tex *= (1 + 0.08 * grain)[..., None]
        elif p.lower_pattern == "pinstripe":
            x = np.arange(x0, x0 + w, dtype=np.float32)
            lines = 0.35 * ((x / stripe_period) % 1.0 < 0.15).astype(np.float32)[None, :, None]
            tex = tex * (1 - lines) + lines * 0.9
        return tex

    return sample


def _legs(c: _Canvas, body: Body) -> None:
    p, s, pts = body.p, body.s, body.pts
    for key, lip_leg, lip_shoe in (("r", LIP.RIGHT_LEG, LIP.RIGHT_SHOE), ("l", LIP.LEFT_LEG, LIP.LEFT_SHOE)):
        hip, knee, ank = pts[f"hip_{key}"], pts[f"knee_{key}"], pts[f"ank_{key}"]
        widths = [0.052 * s, 0.034 * s, 0.022 * s]
        c.shape(p.skin_rgb, lip_leg, _tube([hip, knee, ank], widths), circles=[(knee, 0.034 * s)])
        side = -1 if key == "r" else 1
        shoe = (ank + np.array([side * 0.01 * s, 0.018 * s]), (0.036 * s, 0.02 * s), 0)
        c.shape(p.shoe_rgb, lip_shoe, ellipses=[shoe])
    tex = _lower_sampler(p, max(0.04 * c.w, 2.0))
    waist = body.waist_y + 0.06 * s
    wx = p.waist * s + 0.004 * s
    hx = p.hip * s + 0.006 * s
    crotch = np.array([body.cx, body.hip_y + 0.09 * s])
    pelvis = np.stack(
        [[body.cx - wx, waist], [body.cx + wx, waist], [body.cx + hx, body.hip_y + 0.03 * s], crotch,
         [body.cx - hx, body.hip_y + 0.03 * s]]
    )  # fmt: skip
    if p.lower == "skirt":
        hem_y = body.hip_y + 0.2 * s
        flare = hx + 0.05 * s
        skirt = np.stack(
            [[body.cx - wx, waist], [body.cx + wx, waist], [body.cx + flare, hem_y], [body.cx - flare, hem_y]]
        )
        c.paint_sampled(c.mask([skirt]), tex, LIP.SKIRT)
        return
    legs = []
    for key in ("r", "l"):
        hip, knee, ank = pts[f"hip_{key}"], pts[f"knee_{key}"], pts[f"ank_{key}"]
        if p.lower == "shorts":
            end = hip + 0.45 * (knee - hip)
            legs += _tube([hip, end], [0.062 * s, 0.056 * s])
        else:
            legs += _tube([hip, knee, ank + np.array([0, 0.006 * s])], [0.062 * s, 0.046 * s, 0.034 * s])
    circles = [] if p.lower == "shorts" else [(pts["knee_r"], 0.046 * s), (pts["knee_l"], 0.046 * s)]
    c.paint_sampled(c.mask([pelvis, *legs], circles=circles), tex, LIP.PANTS)


def _torso_skin(c: _Canvas, body: Body) -> None:
    p, s, cx = body.p, body.s, body.cx
    neck = body.lean(np.array([
        [cx - body.neck_w, body.chin_y - 0.03 * s], [cx + body.neck_w, body.chin_y - 0.03 * s],
        [cx + body.neck_w * 1.1, body.sh_y + 0.01 * s], [cx - body.neck_w * 1.1, body.sh_y + 0.01 * s]]))  # fmt: skip
    c.shape(_shade(p.skin_rgb, 0.9), LIP.TORSO_SKIN, [neck])  # the neck sits in the chin's shadow
    sh = p.shoulder * s
    up = [
        [cx - body.neck_w * 1.1, body.sh_y - 0.004 * s], [cx - sh, body.sh_y + 0.008 * s],
        [cx - sh, body.sh_y + 0.03 * s], [cx - 0.85 * sh, body.sh_y + 0.1 * s],
        [cx - p.waist * s, body.waist_y], [cx - p.hip * s, body.hip_y],
        [cx + p.hip * s, body.hip_y], [cx + p.waist * s, body.waist_y], [cx + 0.85 * sh, body.sh_y + 0.1 * s],
        [cx + sh, body.sh_y + 0.03 * s], [cx + sh, body.sh_y + 0.008 * s],
        [cx + body.neck_w * 1.1, body.sh_y - 0.004 * s],
    ]  # fmt: skip
    c.shape(p.skin_rgb, LIP.TORSO_SKIN, [body.lean(np.array(up))])


def _head(c: _Canvas, body: Body) -> None:
    p, pts = body.p, body.pts
    hc, hh, hw, lean = pts["head_c"], body.head_h, body.head_w, p.lean_deg
    skin = p.skin_rgb
    for key in ("ear_r", "ear_l"):
        c.shape(_shade(skin, 0.93), LIP.FACE, ellipses=[(pts[key], (0.09 * hh, 0.15 * hh), lean)])
    c.shape(skin, LIP.FACE, ellipses=[(hc, (hw / 2, hh / 2), lean)])
    if p.hair == "short":  # a short cut hugs the skull
        cap = c.mask(ellipses=[(hc - np.array([0, 0.08 * hh]), (0.54 * hw, 0.44 * hh), lean)])
    else:
        cap = c.mask(ellipses=[(hc - np.array([0, 0.1 * hh]), (0.58 * hw, 0.43 * hh), lean)])
    # Keep the face visible below the hairline: the fringe stops at 30% of the head height.
    hairline = body.lean(np.array([hc[0], hc[1] - 0.2 * hh]))[1]
    rows = np.arange(c.h)[:, None] < hairline
    side_locks = np.zeros_like(cap)
    if p.hair != "short":
        for side in (-1, 1):
            lock = [hc + np.array([side * 0.42 * hw, -0.25 * hh]), hc + np.array([side * 0.58 * hw, -0.1 * hh]),
                    hc + np.array([side * 0.56 * hw, 0.35 * hh]), hc + np.array([side * 0.44 * hw, 0.3 * hh])]  # fmt: skip
            side_locks |= c.mask([np.stack(lock)])
    c.paint((cap & (rows | ~(c.lip == LIP.FACE))) | side_locks, p.hair_rgb, LIP.HAIR)
    # Facial features (all labelled face): eyes, brows, nose shadow, mouth.
    for key in ("eye_r", "eye_l"):
        e = pts[key]
        c.shape((245, 245, 240), None, ellipses=[(e, (0.085 * hh, 0.045 * hh), lean)])
        c.shape(p.eye_rgb, None, circles=[(e, 0.038 * hh)])
        c.shape((15, 12, 10), None, circles=[(e, 0.017 * hh)])
        brow = [e + np.array([-0.09 * hh, -0.08 * hh]), e + np.array([0.09 * hh, -0.085 * hh]),
                e + np.array([0.09 * hh, -0.065 * hh]), e + np.array([-0.09 * hh, -0.06 * hh])]  # fmt: skip
        c.shape(_shade(p.hair_rgb, 0.8), None, [np.stack(brow)])
    nose = pts["nose"]
    c.shape(
        _shade(skin, 0.82), None, ellipses=[(nose + np.array([0, 0.02 * hh]), (0.05 * hh, 0.025 * hh), lean)]
    )
    mouth = body.lean(np.array([hc[0], hc[1] + 0.3 * hh]))
    c.shape(p.lip_rgb, None, ellipses=[(mouth, (0.11 * hh, 0.035 * hh), lean)])


def _back_hair(c: _Canvas, body: Body) -> None:
    p, hc, hh, hw = body.p, body.pts["head_c"], body.head_h, body.head_w
    if p.hair == "short":
        return
    end = body.chin_y + (0.01 if p.hair == "bob" else 0.16) * body.s
    half = 0.6 * hw if p.hair == "bob" else 0.62 * hw
    rect = np.stack(
        [[hc[0] - half, hc[1]], [hc[0] + half, hc[1]], [hc[0] + half * 0.95, end], [hc[0] - half * 0.95, end]]
    )
    c.shape(
        _shade(p.hair_rgb, 0.85), LIP.HAIR, [body.lean(rect)], ellipses=[(hc, (half, 0.55 * hh), p.lean_deg)]
    )


def _front_hair(c: _Canvas, body: Body) -> None:
    """Long hair falling over the shoulders onto the chest, in front of the garment (occlusion case)."""
    p, s, hc, hw = body.p, body.s, body.pts["head_c"], body.head_w
    polys = []
    for side in (-1, 1):
        x0 = hc[0] + side * 0.5 * hw
        x1 = body.cx + side * (body.neck_w + 0.03 * s)
        end = body.sh_y + 0.15 * s
        strand = np.stack([
            [x0 - side * 0.06 * hw, hc[1]], [x0 + side * 0.12 * hw, hc[1]],
            [x1 + side * 0.045 * s, body.sh_y], [x1 + side * 0.03 * s, end],
            [x1 - side * 0.005 * s, end - 0.01 * s], [x1 - side * 0.015 * s, body.sh_y],
        ])  # fmt: skip
        polys.append(body.lean(strand))
    c.shape(p.hair_rgb, LIP.HAIR, polys)


def _affine_sampler(flat: FlatGarment, affine: np.ndarray):
    def sample(roi: tuple[int, int, int, int]) -> np.ndarray:
        x, y, w, h = roi
        shifted = affine.copy()
        shifted[:, 2] -= (x, y)  # warp straight into the window
        return cv2.warpAffine(
            flat.texture, shifted, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )

    return sample


def _arm(c: _Canvas, body: Body, key: str, worn, flat: FlatGarment) -> None:
    p, s, pts = body.p, body.s, body.pts
    sh, el, wr = pts[f"sh_{key}"], pts[f"el_{key}"], pts[f"wr_{key}"]
    lip_arm = LIP.RIGHT_ARM if key == "r" else LIP.LEFT_ARM
    w = p.arm_width * s
    d = (wr - el) / max(float(np.linalg.norm(wr - el)), 1e-9)
    hand = (wr + 0.035 * s * d, (0.03 * s, 0.019 * s), float(np.degrees(np.arctan2(d[1], d[0]))))
    tube = _tube([sh, el, wr], [w, 0.85 * w, 0.6 * w])
    # The shoulder joint sits half a radius below the keypoint so it rounds the shoulder without a bump.
    down = body.lean(np.array([0.0, 1.0])) - body.lean(np.zeros(2))  # the torso's "down" after the lean
    joint = sh + 0.7 * w * down
    c.shape(p.skin_rgb, lip_arm, tube, ellipses=[hand], circles=[(joint, w), (el, 0.85 * w)])
    side = -1 if key == "r" else 1
    sleeve = next((sl for sl in worn.sleeves if sl.side == side), None)
    if sleeve is None:
        return
    flat_sl = next(sl for sl in flat.outline.sleeves if sl.side == side)
    affines = segment_affines(flat_sl, sleeve)
    quads = sleeve_polygons(sleeve)
    for i, (aff, quad) in enumerate(zip(affines, quads, strict=True)):
        polys = [quad]
        circles = [(sleeve.points[i], sleeve.half_widths[i])] if i > 0 else []
        if i == 0:  # the shoulder cap joins the sleeve to the torso
            cap = np.concatenate([np.stack(sleeve.seam), quad[[0, 3]]], 0).astype(np.float32)
            polys.append(cv2.convexHull(cap)[:, 0])
        c.paint_sampled(c.mask(polys, circles=circles), _affine_sampler(flat, aff), LIP.UPPER_CLOTHES)


def _garment_shading(c: _Canvas, body: Body, g: GarmentParams) -> None:
    """Low-frequency light and fold shading on the worn garment, so it is not a flat paste."""
    m = c.lip == LIP.UPPER_CLOTHES
    if not m.any():
        return
    p, s = body.p, body.s
    rng = _rng(p.person_id, g.garment_id, "folds")
    ys, xs = np.nonzero(m)
    y, x = ys.astype(np.float32), xs.astype(np.float32)
    u = (x - body.cx) / (p.shoulder * s)
    amp = 0.07 if g.fit == "loose" else 0.04
    lam = float(rng.uniform(0.05, 0.09)) * s
    folds = np.sin(2 * np.pi * x / lam + 2.5 * np.sin(2 * np.pi * y / (0.3 * s)) + float(rng.uniform(0, 6.3)))
    shade = 1.0 + 0.08 * p.light_x * np.clip(u, -1.5, 1.5) - 0.1 * np.clip(u * u, 0, 1.2) + amp * folds
    shade -= (
        0.12 * np.exp(-(((y - body.chin_y - 0.045 * s) / (0.02 * s)) ** 2)) * (np.abs(u) < 0.5)
    )  # collar shadow
    c.img[ys, xs] *= shade[:, None]


def render_scene(person: PersonParams, garment: GarmentParams, height: int, width: int) -> Scene:
    """Render `person` wearing `garment` at height x width, with the garment's product image."""
    body = Body(person, height, width)
    flat = flat_garment(garment, height, width)
    worn = worn_outline(garment, body)
    c = _Canvas(height, width)
    _backdrop(c, person)
    _back_hair(c, body)
    _legs(c, body)
    _torso_skin(c, body)
    fold = (0.012 if garment.fit == "loose" else 0.006) * min(height, width * 4 / 3)
    rng = _rng(person.person_id, garment.garment_id)

    def torso_sample(roi: tuple[int, int, int, int]) -> np.ndarray:
        mx, my = torso_map(worn, flat.outline, height, width, fold, rng, roi)
        return cv2.remap(flat.texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    c.paint_sampled(c.mask([worn.torso]), torso_sample, LIP.UPPER_CLOTHES)
    _head(c, body)
    if person.hair_over_garment:
        _front_hair(c, body)
    crossing = [k for k, a in (("r", person.right_arm), ("l", person.left_arm)) if a.pose == "crossing"]
    behind = [k for k in ("r", "l") if k not in crossing]
    if len(crossing) == 2 and person.cross_order == 1:
        crossing.reverse()
    for key in behind + crossing:
        _arm(c, body, key, worn, flat)
    _garment_shading(c, body, garment)
    sigma = 0.45 * height / 256  # a touch of lens softness; hides the polygon staircase
    image = np.clip(np.round(c.img * 255), 0, 255).astype(np.uint8)
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    cloth = np.clip(np.round(flat.image * 255), 0, 255).astype(np.uint8)
    return Scene(
        image=image, lip=c.lip, keypoints=body.keypoints(), cloth=cloth, cloth_mask=flat.mask.astype(np.uint8)
    )
