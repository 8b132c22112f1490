"""Garments as shells over the body, and the product photo whose pixels are the garment's UVs.

A garment is a subset of the body's own vertices, chosen by a smooth scalar field measured on the mean body
at rest (hem height, neckline scoop, sleeve length along the arm): the field is interpolated per fragment and
negative fragments are discarded, so hems and cuffs are clean cuts rather than triangle edges. Each chosen
vertex is offset along its rest normal (a loose fit stands off more towards the hem), the offsets are
smoothed with a uniform Laplacian and pushed back out to a minimum distance from the skin (this bridges the
hollows under the bust and along the spine, as fabric does). A top's front is then draped: bridged across
the hollow between the breasts and let fall from the bust instead of following the body back in (`_drape`),
and shaded with its own normals. The shell is skinned with the body's bones.

Because a garment vertex is a body vertex index, the same garment on the mean body in the product pose,
seen orthographically from the front, gives every vertex its place in the product photo. Those places are
the UVs: the product photo IS the texture, and rendering the worn garment's UVs gives, per pixel, the exact
product pixel it shows.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, replace

import numpy as np

from sievenet.synthetic.params import Arm3D, GarmentParams, Person3DParams
from sievenet.synthetic.studio3d.body import (
    FOOT,
    FOREARM,
    HEAD,
    LOWERLEG,
    NECK,
    TORSO,
    UPPERARM,
    UPPERLEG,
    BodyModel,
    PosedBody,
    vertex_normals,
)

OUTSIDE = -0.05  # field value of vertices that are not part of the garment (metres below the cut)
ARMHOLE_WEIGHT = 0.4  # a sleeveless top ends where the arm bones carry this share of the skin (< ARM_SKIN)
ARMHOLE_SLOPE = 0.1  # metres of field per unit of arm weight (the weight rises ~0.5 over ~5 cm)
NECK_OPENING = 0.08  # half-width (metres) of the neck opening over the shoulders: wider is bare shoulder
# How far (metres per metre of drop) a top's front may fall back towards the body below what sticks out
# (bust, belly): a loose top hangs nearly straight, a tight one still bridges and only slowly follows in.
DRAPE = {"tight": 0.4, "loose": 0.1}
DRAPE_CELL = 0.008  # metres: the grid the front is measured on
DRAPE_SPAN = 0.14  # metres: the widest hollow the fabric spans


@dataclass(frozen=True)
class Landmarks:
    """Heights and joints of the mean body at rest, the yardstick every garment field is measured with."""

    neck: float  # z of the neck base
    hip: float  # z of the hip joints
    chest: float
    shoulder: dict  # side -> rest position of the shoulder joint
    arm_dir: dict  # side -> unit rest direction shoulder -> wrist
    arm_len: float  # shoulder -> wrist
    leg_top: dict  # side -> rest hip joint
    leg_dir: dict
    leg_len: float  # hip -> ankle


@functools.cache
def landmarks(model: BodyModel) -> Landmarks:
    rest = model.mean
    j = {b: model.rest_joint(rest, b) for b in model.bones}
    sides = {1: "L", -1: "R"}
    shoulder = {s: j[f"upperarm01.{k}"] for s, k in sides.items()}
    wrist = {s: j[f"wrist.{k}"] for s, k in sides.items()}
    leg_top = {s: j[f"upperleg01.{k}"] for s, k in sides.items()}
    ankle = {s: j[f"foot.{k}"] for s, k in sides.items()}
    arm_len = float(np.linalg.norm(wrist[1] - shoulder[1]))
    leg_len = float(np.linalg.norm(ankle[1] - leg_top[1]))
    neck = float(j["neck01"][2])
    hip = float(leg_top[1][2])
    return Landmarks(
        neck=neck,
        hip=hip,
        chest=hip + 0.62 * (neck - hip),
        shoulder=shoulder,
        arm_dir={s: (wrist[s] - shoulder[s]) / arm_len for s in sides},
        arm_len=arm_len,
        leg_top=leg_top,
        leg_dir={s: (ankle[s] - leg_top[s]) / leg_len for s in sides},
        leg_len=leg_len,
    )


def _limb_coordinate(rest: np.ndarray, side: np.ndarray, top: dict, direction: dict) -> np.ndarray:
    """Distance along the limb (metres from its top joint) of every vertex, on the vertex's own side."""
    out = np.zeros(len(rest), np.float32)
    for s in (1, -1):
        m = side == s
        out[m] = (rest[m] - top[s]) @ direction[s]
    return out


@dataclass(frozen=True)
class ShellSpec:
    """A garment's cut as per-vertex data on the body topology."""

    field: np.ndarray  # (V,) signed distance-like cut field, >= 0 inside the garment
    rows: np.ndarray  # (N,) body vertex ids the shell uses
    triangles: np.ndarray  # (M, 3) triangles in `rows` numbering
    offset: np.ndarray  # (V,) rest offset from the skin (metres)
    smooth: int  # Laplacian iterations (loose garments drape more)
    laplacian: object  # (N, N) sparse uniform Laplacian of the shell's own vertices
    incidence: object  # (N, M) sparse vertex-triangle incidence (the shell's own normals)
    drape: float | None = None  # metres the front may fall back per metre of drop (see _drape); None: none


def _spec(
    model: BodyModel, field: np.ndarray, offset: np.ndarray, smooth: int, drape: float | None = None
) -> ShellSpec:
    import scipy.sparse as sp

    rows, tris = _submesh(model, field)
    lap = model.laplacian[rows][:, rows]  # neighbours outside the shell are dropped; rows renormalised
    total = np.asarray(lap.sum(1)).ravel()
    lap = (sp.diags(1.0 / np.maximum(total, 1e-6)) @ lap).astype(np.float32).tocsr()
    t = tris.astype(np.int64).reshape(-1)
    incidence = sp.csr_matrix(
        (np.ones(len(t), np.float32), (t, np.repeat(np.arange(len(tris)), 3))), shape=(len(rows), len(tris))
    )
    return ShellSpec(field, rows, tris, offset.astype(np.float32), smooth, lap, incidence, drape)


def _submesh(model: BodyModel, field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = model.faces.astype(np.int64)
    keep = field[f].max(1) > 0
    faces = f[keep]
    rows = np.unique(faces)
    remap = np.full(len(field), -1, np.int64)
    remap[rows] = np.arange(len(rows))
    return rows, remap[faces].astype(np.uint32)


# The longest hem, metres below the hips: 3 cm above the crotch (0.094 below the hip joints on the mean body).
# A body-topology shell cannot hang across the gap between the legs; lower, it clung to the inner thighs and
# every top read as a bodysuit. The shared length draw, U(0, 0.07), is scaled onto [0, LONGEST].
LONGEST = 0.045
LENGTH_SCALE = LONGEST / 0.07
SHALLOWEST = {"v": 0.11, "round": 0.03}  # the shallowest neckline scoop of each kind (neck_depth)


@functools.lru_cache(maxsize=32)  # bounded: every garment has its own cut, a long run sees 100k of them
def upper_spec(
    model: BodyModel, sleeve: str, neckline: str, fit: str, length: float, depth: float
) -> ShellSpec:
    """The cut of an upper garment (cached: a garment's spec depends only on its style, not on its wearer).

    Its vertices, triangles and operators are those of its style's longest, shallowest cut (built once per
    style): the field cuts this garment's shorter hem or deeper neckline per fragment.
    """
    field, offset = _upper_field(model, sleeve, neckline, fit, length, depth)
    if length > LONGEST or depth < SHALLOWEST[neckline]:
        return _spec(model, field, offset, _smoothing(fit), drape=DRAPE[fit])
    return replace(_upper_support(model, sleeve, neckline, fit), field=field, offset=offset)


def _smoothing(fit: str) -> int:
    return 10 if fit == "loose" else 3  # Laplacian iterations: loose garments drape more


@functools.cache
def _upper_support(model: BodyModel, sleeve: str, neckline: str, fit: str) -> ShellSpec:
    field, offset = _upper_field(model, sleeve, neckline, fit, LONGEST, SHALLOWEST[neckline])
    return _spec(model, field, offset, _smoothing(fit), drape=DRAPE[fit])


def _upper_field(
    model: BodyModel, sleeve: str, neckline: str, fit: str, length: float, depth: float
) -> tuple[np.ndarray, np.ndarray]:
    """An upper garment's cut field and rest offset (V,) on the mean body."""
    lm = landmarks(model)
    rest = model.mean.rest
    x, y, z = rest[:, 0], rest[:, 1], rest[:, 2]
    part = model.part
    arm = np.isin(part, (UPPERARM, FOREARM))
    # Neighbouring parts are members too, so every cut follows the field, never a part boundary.
    member = np.isin(part, (TORSO, NECK, UPPERLEG, UPPERARM, FOREARM))
    hem = lm.hip - 0.02 - length
    f_hem = z - hem
    # Necklines scoop down at the front (-Y); the back stays close to the neck base.
    front = np.clip(-y / 0.06, 0, 1)
    r = 0.095
    if neckline == "v":
        scoop = depth * np.clip(1 - np.abs(x) / r, 0, 1)
    else:
        scoop = depth * np.clip(1 - (x / r) ** 2, 0, 1)
    f_neck = (lm.neck - 0.035 - front * scoop - 0.012 * (1 - front)) - z
    # Beyond the neck opening the shoulders are covered, however high their top rises above the neck line
    # (without this a band of bare skin ran over both shoulder tops, ragged with fabric specks).
    f_neck = np.maximum(f_neck, np.abs(x) - NECK_OPENING)
    s_arm = _limb_coordinate(rest, model.side, lm.shoulder, lm.arm_dir)
    cuff = {"short": 0.3 * lm.arm_len, "long": lm.arm_len - 0.015, "sleeveless": -0.03}[sleeve]
    # The sleeve cut applies to the arms and to the torso around the shoulder, not to the hips (which lie
    # far along the A-pose arm direction too).
    shoulder_x = abs(float(lm.shoulder[1][0]))
    lateral = np.clip(
        (np.abs(x) - 0.55 * shoulder_x) / (0.25 * shoulder_x), 0, 1
    )  # 0 on the chest, 1 at the arm
    lateral = np.where(arm, 1.0, lateral * (z > lm.chest - 0.06))
    f_sleeve = lateral * (cuff - s_arm) + (1 - lateral) * 1.0
    if sleeve == "sleeveless":  # the armhole: where the arm bones start to carry the skin, a smooth line
        # (the dominant bone's border zigzags across the shoulder and frayed the straps into specks)
        f_sleeve = ARMHOLE_SLOPE * (ARMHOLE_WEIGHT - model.arm_weight)
    field = np.minimum(np.minimum(f_hem, f_neck), f_sleeve)
    field = np.where(member, field, OUTSIDE).astype(np.float32)
    loose = fit == "loose"
    base = 0.013 if loose else 0.008
    hang = np.clip((lm.chest - z) / max(lm.chest - hem, 1e-3), 0, 1)  # 0 at the chest, 1 at the hem
    offset = base + (0.03 * hang * ~arm + 0.012 * np.clip(s_arm / lm.arm_len, 0, 1) * arm) * loose
    return field, offset.astype(np.float32)


@functools.cache
def lower_spec(model: BodyModel, kind: str) -> ShellSpec:
    """Trousers or shorts: the pelvis below the waist and the legs down to the hem."""
    lm = landmarks(model)
    rest = model.mean.rest
    z = rest[:, 2]
    part = model.part
    leg = np.isin(part, (UPPERLEG, LOWERLEG))
    member = leg | (part == TORSO)
    s_leg = _limb_coordinate(rest, model.side, lm.leg_top, lm.leg_dir)
    hem = 0.32 * lm.leg_len if kind == "shorts" else lm.leg_len - 0.03
    waist = lm.hip + 0.11
    field = np.where(leg, hem - s_leg, waist - z)
    field = np.where(member, field, OUTSIDE).astype(np.float32)
    return _spec(model, field, np.full(len(z), 0.004, np.float32), 2)


@functools.cache
def shoe_spec(model: BodyModel) -> ShellSpec:
    """Shoes: the feet under a smoothed shell that bridges the toes (painted feet read as bare feet)."""
    field = np.where(model.part == FOOT, 0.05, OUTSIDE).astype(np.float32)
    spec = _spec(model, field, np.full(len(field), 0.01, np.float32), 0)
    # The smoothing, done once on the mean body and kept as each vertex's offset along its normal: a person's
    # shoes are then their own feet pushed out by it (2.4 ms a full-body scene less than relaxing each time).
    rows = spec.rows
    rest, normals = model.mean.rest[rows], model.mean.rest_normals[rows]
    pts = _relax(
        rest + normals * spec.offset[rows, None], rest, normals, spec.offset[rows], spec.laplacian, 30
    )
    offset = np.zeros(len(field), np.float32)
    offset[rows] = np.einsum("ij,ij->i", pts - rest, normals)
    return replace(spec, offset=offset)


@functools.cache
def hair_spec(model: BodyModel, style: str) -> ShellSpec:
    """The scalp under the hair: the head above a hairline that is high at the forehead and low at the nape."""
    lm = landmarks(model)
    rest = model.mean.rest
    y, z = rest[:, 1], rest[:, 2]
    head_top = float(z[model.part == HEAD].max())
    face_h = head_top - lm.neck
    front = np.clip(-y / 0.08, 0, 1)
    nape = lm.neck + (0.22 if style == "short" else 0.1) * face_h
    line = nape + front * (0.78 * face_h - (nape - lm.neck))
    field = np.where(np.isin(model.part, (HEAD, NECK)), z - line, OUTSIDE).astype(np.float32)
    offset = {"short": 0.006, "bob": 0.014, "long": 0.012}[style]
    return _spec(model, field, np.full(len(z), offset, np.float32), 4)


def shell_vertices(model: BodyModel, body: PosedBody, spec: ShellSpec) -> tuple[np.ndarray, np.ndarray]:
    """Posed shell vertices (N, 3) and normals (N, 3) of `spec` on `body`."""
    rows = spec.rows
    rest, normals, offset = body.rest[rows], body.rest_normals[rows], spec.offset[rows]
    pts = _relax(rest + normals * offset[:, None], rest, normals, offset, spec.laplacian, spec.smooth)
    if spec.drape is None:
        shading = normals  # the skin's: the shell lies on it
    else:
        draped = _drape(pts, normals, model.arm_weight[rows] < 0.4, spec.drape)
        pts = _relax(draped, rest, normals, offset, spec.laplacian, 2)
        # The fabric's own normals: no bust or navel shading under a tent.
        shading = vertex_normals(pts, spec.triangles.astype(np.int64), spec.incidence).astype(np.float32)
    # Shading normals carried by the same blended bone transforms.
    posed, nrm = body.skin(pts, rows, shading)
    return posed.astype(np.float32), nrm.astype(np.float32)


def _relax(pts, rest, normals, offset, laplacian, iterations: int) -> np.ndarray:
    """Uniform Laplacian smoothing of shell points (N, 3), each kept at least `offset` out from its skin point."""
    for _ in range(iterations):
        pts = 0.5 * pts + 0.5 * (laplacian @ pts)
        out = np.einsum("ij,ij->i", pts - rest, normals)
        pts += normals * np.maximum(offset - out, 0)[:, None]
    return pts


def _drape(pts: np.ndarray, normals: np.ndarray, torso: np.ndarray, slope: float) -> np.ndarray:
    """Fabric over the front of the torso (rest space: upright, the body faces -Y), not paint on the skin.

    On a grid over (x, z) the front surface is bridged across hollows narrower than DRAPE_SPAN (between the
    breasts, between the thighs: a morphological closing of each row's forwardness) and then falls from
    whatever sticks out (bust, belly), receding at most `slope` metres per metre of drop. Front-facing torso
    vertices move forward onto that surface; none moves back.
    """
    import cv2

    sel = np.nonzero(torso & (normals[:, 1] < -0.05))[0]
    if len(sel) < 3:
        return pts
    p = pts[sel]
    lo = p[:, [0, 2]].min(0)
    ix = np.floor((p[:, 0] - lo[0]) / DRAPE_CELL).astype(np.int64)
    iz = np.floor((p[:, 2] - lo[1]) / DRAPE_CELL).astype(np.int64)
    front = np.full((iz.max() + 1, ix.max() + 1), np.inf)
    np.minimum.at(front, (iz, ix), p[:, 1])
    # Forwardness -y; an empty cell is far behind, so the closing never bridges past the body's sides.
    ahead = np.where(np.isfinite(front), -front, -1.0).astype(np.float32)
    span = np.ones((1, 2 * int(DRAPE_SPAN / DRAPE_CELL / 2) + 1), np.uint8)
    ahead = np.maximum(ahead, cv2.morphologyEx(ahead, cv2.MORPH_CLOSE, span, borderType=cv2.BORDER_REPLICATE))
    front = np.where(np.isfinite(front), -ahead.astype(np.float64), np.inf)
    # Top down (z grows with the row): front[r] = min over r' >= r of front[r'] + slope * (r' - r) * cell.
    fall = slope * DRAPE_CELL * np.arange(front.shape[0])[:, None]
    front = np.minimum.accumulate((front + fall)[::-1], axis=0)[::-1] - fall
    # Bilinear on cell centres; an empty cell counts as far behind, so the edges fade out.
    grid = np.where(np.isfinite(front), front, 1.0).astype(np.float32)
    fx = ((p[:, 0] - lo[0]) / DRAPE_CELL - 0.5).astype(np.float32).reshape(-1, 1)
    fz = ((p[:, 2] - lo[1]) / DRAPE_CELL - 0.5).astype(np.float32).reshape(-1, 1)
    target = cv2.remap(grid, fx, fz, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).ravel()
    facing = np.clip((-normals[sel, 1] - 0.05) / 0.35, 0, 1)  # sides stay where they are
    out = pts.copy()
    out[sel, 1] += facing * np.minimum(target - p[:, 1], 0)
    return out


def neck_depth(g: GarmentParams) -> float:
    """How far the neckline scoops down at the front (metres), from the garment's own seed."""
    frac = (g.texture_seed % 1000) / 1000.0
    return 0.11 + 0.05 * frac if g.neckline == "v" else 0.03 + 0.03 * frac


def garment_upper_spec(model: BodyModel, g: GarmentParams) -> ShellSpec:
    length = round(min(g.length * LENGTH_SCALE, LONGEST), 3)
    return upper_spec(model, g.sleeve, g.neckline, g.fit, length, round(neck_depth(g), 3))


# The product photo: the garment on the mean body, arms a little down, seen orthographically from the front.
PRODUCT_ARM = Arm3D("product", abduct=28.0, flex=0.0, elbow=6.0, twist=0.0)


def product_person() -> Person3DParams:
    """A neutral stand-in wearer for the product shot (only its pose fields are used)."""
    from dataclasses import fields

    values = {f.name: 0 for f in fields(Person3DParams)}
    values.update(
        person_id="product", phenotype=(), right_arm=PRODUCT_ARM, left_arm=PRODUCT_ARM, yaw_deg=0.0,
        lean_deg=0.0, pitch_deg=0.0, head_yaw_deg=0.0,
    )  # fmt: skip
    return Person3DParams(**values)


@functools.cache
def product_body(model: BodyModel) -> PosedBody:
    return model.pose_phenotype(
        dict.fromkeys(model.model.phenotype_labels, 0.5), model.rotations(product_person(), model.mean)
    )


@dataclass(frozen=True)
class ProductView:
    """The product photo's orthographic camera: world (x, z) -> pixel (x, y), plus a depth range along +Y."""

    scale: float  # pixels per metre
    rot: np.ndarray  # (2, 2) in-plane rotation
    centre_world: np.ndarray  # (2,) world (x, z) at the photo's centre
    centre_px: np.ndarray  # (2,) pixel position of that centre
    y_near: float
    y_far: float

    def pixels(self, pts: np.ndarray) -> np.ndarray:
        """(N, 2) pixel coordinates (x right, y down; pixel centres at +0.5) of world points (N, 3)."""
        d = np.stack([pts[:, 0] - self.centre_world[0], -(pts[:, 2] - self.centre_world[1])], 1)
        return d @ self.rot.T * self.scale + self.centre_px

    def mvp(self, height: int, width: int) -> np.ndarray:
        """The 4x4 clip-space matrix of this view (GL window y up, depth from y_near to y_far)."""
        a = np.zeros((4, 4))
        # pixel = R @ (x - cx, -(z - cz)) * s + c ; ndc_x = 2 px / W - 1 ; ndc_y = 1 - 2 py / H
        r, s = self.rot, self.scale
        for row, (size, sign) in enumerate(((width, 1.0), (height, -1.0))):
            k = 2.0 / size * sign
            a[row, 0] = k * s * r[row, 0]
            a[row, 2] = -k * s * r[row, 1]
            a[row, 3] = k * (self.centre_px[row] - s * (r[row, 0] * self.centre_world[0]
                                                        - r[row, 1] * self.centre_world[1])) - sign  # fmt: skip
        a[2, 1] = 2.0 / (self.y_far - self.y_near)
        a[2, 3] = -1.0 - 2.0 * self.y_near / (self.y_far - self.y_near)
        a[3, 3] = 1.0
        return a


def product_view(g: GarmentParams, pts: np.ndarray, height: int, width: int) -> ProductView:
    """Frame the product shot: centred, 86 % of the canvas, then a small scale/offset/rotation of its own."""
    rng = np.random.Generator(np.random.PCG64(zlib.crc32(f"product3d/{g.garment_id}".encode())))
    lo, hi = pts.min(0), pts.max(0)
    ext_x, ext_z = hi[0] - lo[0], hi[2] - lo[2]
    scale = 0.86 * min(width / ext_x, height / ext_z) * float(rng.uniform(0.9, 1.04))
    a = np.deg2rad(float(rng.uniform(-4, 4)))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre_px = np.array(
        [width * (0.5 + rng.uniform(-0.04, 0.04)), height * (0.5 + rng.uniform(-0.03, 0.03))]
    )
    return ProductView(
        scale=float(scale),
        rot=rot,
        centre_world=np.array([(lo[0] + hi[0]) / 2, (lo[2] + hi[2]) / 2]),
        centre_px=centre_px,
        y_near=float(lo[1] - 0.05),
        y_far=float(hi[1] + 0.05),
    )
