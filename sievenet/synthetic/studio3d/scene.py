"""Compose a 3D scene: pose the body, dress it, frame it, light it, render it, and finish it like a photo.

`render_pair(person, worn, tried, height, width)` renders the person wearing `worn` and, when `tried` is
another garment, the same person, pose, camera, light, background and photo finish wearing `tried` (the
unpaired truth), plus the product photo of `tried` and the dense correspondence (flow) from every visible
pixel of the tried garment to its product pixel.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

import cv2
import numpy as np

from sievenet.labels import LIP
from sievenet.synthetic.params import GarmentParams, Person3DParams
from sievenet.synthetic.studio3d import gl
from sievenet.synthetic.studio3d.body import (
    EYE,
    FOOT,
    FOREARM,
    HAND,
    HEAD,
    UPPERARM,
    BodyModel,
    PosedBody,
    body_model,
)
from sievenet.synthetic.studio3d.garment import (
    garment_upper_spec,
    hair_spec,
    landmarks,
    lower_spec,
    product_body,
    product_view,
    shell_vertices,
    shoe_spec,
)
from sievenet.synthetic.textures import garment_texture

# COCO-18 (OpenPose) order from anny's COCO names; the neck is the shoulder midpoint.
OPENPOSE_FROM_COCO = ("nose", None, "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
                      "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
                      "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear")  # fmt: skip
BACKGROUND_PHOTOS = ("brick", "grass", "gravel", "rocket", "coffee", "chelsea", "hubble_deep_field")


@dataclass
class Scene3D:
    """One rendered 3D scene; the fields the 2D `Scene` has, plus the flow and keypoint visibility."""

    image: np.ndarray  # (H, W, 3) uint8
    lip: np.ndarray  # (H, W) uint8 LIP ids
    keypoints: np.ndarray  # (18, 3) float32 pixel (x, y, confidence), pixel centres at integers
    cloth: np.ndarray | None  # (H, W, 3) uint8 product photo of the garment worn here, white outside it
    cloth_mask: np.ndarray | None  # (H, W) uint8 {0, 1}
    flow: np.ndarray | None  # (3, H, W) float32: product x, y (pixel centres at +0.5) and validity
    # (cloth, cloth_mask and flow are None in a person scene rendered with render_pair(person_extras=False))
    visible: np.ndarray  # (18,) bool: keypoint in frame and not hidden behind the body (depth test)


# ---- product photos ----------------------------------------------------------------------------------------


@dataclass
class Product:
    """A garment's product shot: its fabric canvas and UVs at once, the photo itself rendered on first use (a
    person's worn garment needs only the canvas and UVs when the sample shows another garment's truth)."""

    texture: np.ndarray  # (H, W, 3) uint8 fabric canvas (the product photo's layout, unshaded)
    uv: np.ndarray  # (N, 2) GL texture coordinates of the shell vertices
    pz: np.ndarray  # (N,) product depth of the shell vertices
    mesh: gl.Mesh  # the garment on the product body, in the product view
    mvp: np.ndarray  # (4, 4) the product view
    _photo: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    _gl: dict = field(default_factory=dict)  # GL textures of the canvas and the depth, uploaded once

    def gl_texture(self, name: str):
        """The canvas ("texture") or the product depth ("depth") as a GL texture (released by `release`)."""
        if name not in self._gl:
            data = self.texture if name == "texture" else self.depth[..., None]
            self._gl[name] = gl.renderer().texture(data)
        return self._gl[name]

    def release(self) -> None:
        for tex in self._gl.values():
            tex.release()
        self._gl.clear()

    def photo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image (H, W, 3) uint8 on white, mask (H, W) uint8, depth (H, W) float32, 1e3 where no garment)."""
        if self._photo is None:
            height, width = self.texture.shape[:2]
            frame = gl.renderer().draw([self.mesh], self.mvp, np.zeros(3), np.array([0.0, 1.0, 0.0]),
                                       _PRODUCT_LIGHTS, height, width, texture=self.gl_texture("texture"))  # fmt: skip
            coverage = frame.rgba[..., 3] > 127
            # Colour is premultiplied by coverage on a black clear: composite on white.
            image = frame.rgba[..., :3].astype(np.int32) + (255 - frame.rgba[..., 3:4].astype(np.int32))
            self._photo = (
                np.clip(image, 0, 255).astype(np.uint8),
                coverage.astype(np.uint8),
                np.where(coverage, frame.aux[..., 3], 1e3).astype(np.float32),
            )
        return self._photo

    @property
    def image(self) -> np.ndarray:
        return self.photo()[0]

    @property
    def mask(self) -> np.ndarray:
        return self.photo()[1]

    @property
    def depth(self) -> np.ndarray:
        return self.photo()[2]


_PRODUCT_LIGHTS = gl.Lights(
    key_dir=np.array([0.25, -0.9, 0.35]) / np.linalg.norm([0.25, -0.9, 0.35]),
    key_rgb=np.array([0.45, 0.45, 0.45]),
    fill_dir=np.array([-0.4, -0.8, 0.1]) / np.linalg.norm([-0.4, -0.8, 0.1]),
    fill_rgb=np.array([0.15, 0.15, 0.15]),
    sky_rgb=np.array([0.62, 0.62, 0.62]),
    ground_rgb=np.array([0.5, 0.5, 0.5]),
)


def _product(model: BodyModel, g: GarmentParams, height: int, width: int) -> Product:
    spec = garment_upper_spec(model, g)
    body = product_body(model)
    pts, nrm = shell_vertices(model, body, spec)
    view = product_view(g, pts, height, width)
    px = view.pixels(pts)
    # The fabric canvas: pattern scale follows the garment's width; the print sits on the chest.
    lo, hi = px.min(0), px.max(0)
    garment_w = float(hi[0] - lo[0])
    top, bottom = float(lo[1]), float(hi[1])
    cx = float(view.centre_px[0])
    chest_w = 0.34 * garment_w if g.sleeve == "long" else 0.42 * garment_w
    box = (cx - chest_w / 2, top + 0.2 * (bottom - top), cx + chest_w / 2, top + 0.52 * (bottom - top))
    canvas = garment_texture(g, height, width, max(garment_w, 8.0), box)
    texture = np.round(np.clip(canvas, 0, 1) * 255).astype(np.uint8)  # 8-bit: a quarter of the upload
    uv = np.stack([px[:, 0] / width, 1.0 - px[:, 1] / height], 1).astype(np.float32)
    pz = pts[:, 1].astype(np.float32)  # product depth: world y, what the product pass writes as view depth
    verts = gl.pack(pts, nrm, np.ones((len(pts), 3)), float(LIP.UPPER_CLOTHES), uv, pz, spec.field[spec.rows])
    mesh = gl.Mesh(verts, spec.triangles, textured=True, folds=0.03, shine=0.0)
    return Product(texture=texture, uv=uv, pz=pz, mesh=mesh, mvp=view.mvp(height, width))


_PRODUCTS: OrderedDict = OrderedDict()


def product(g: GarmentParams, height: int, width: int) -> Product:
    """The product photo of garment g (a small per-process cache: unpaired samples reuse their neighbour's)."""
    key = (g, height, width)
    if key not in _PRODUCTS:
        _PRODUCTS[key] = _product(body_model(), g, height, width)
        while len(_PRODUCTS) > 8:
            _PRODUCTS.popitem(last=False)[1].release()
    _PRODUCTS.move_to_end(key)
    return _PRODUCTS[key]


@functools.cache
def _no_depth():
    return gl.renderer().texture(np.ones((1, 1, 1), np.float32))


# ---- the scene ------------------------------------------------------------------------------------------


def _kelvin_rgb(kelvin: float) -> np.ndarray:
    """Approximate colour of a black body at `kelvin`, normalised to luminance 1."""
    table = np.array([[3000, 1.0, 0.71, 0.42], [4000, 1.0, 0.82, 0.64], [5000, 1.0, 0.89, 0.81],
                      [5600, 1.0, 0.93, 0.87], [6500, 1.0, 0.97, 0.98], [8000, 0.89, 0.92, 1.0]])  # fmt: skip
    rgb = np.array([np.interp(kelvin, table[:, 0], table[:, k]) for k in (1, 2, 3)])
    return rgb / (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2])


def _lights(p: Person3DParams, yaw_view: float = 0.0) -> gl.Lights:
    az, el = np.deg2rad(p.key_azimuth), np.deg2rad(p.key_elevation)
    key = np.array([np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)])
    faz = -np.sign(p.key_azimuth or 1.0) * np.deg2rad(45)
    fill = np.array([np.sin(faz) * 0.9, -np.cos(faz) * 0.9, 0.2])
    warm = _kelvin_rgb(p.kelvin)
    return gl.Lights(
        key_dir=key / np.linalg.norm(key),
        key_rgb=warm * p.key_intensity,
        fill_dir=fill / np.linalg.norm(fill),
        fill_rgb=_kelvin_rgb(6500) * p.fill_intensity,
        sky_rgb=np.array([1.0, 1.0, 1.03]) * p.ambient,
        ground_rgb=np.array([1.0, 0.96, 0.9]) * p.ambient * 0.6,
    )


@dataclass
class Camera:
    mvp: np.ndarray
    eye: np.ndarray
    forward: np.ndarray
    near: float
    far: float

    def project(self, pts: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (x, y) with pixel centres at integers, and the eye distance along the view axis."""
        h = np.concatenate([pts, np.ones((len(pts), 1))], 1) @ self.mvp.T
        ndc = h[:, :3] / h[:, 3:4]
        x = (ndc[:, 0] + 1) / 2 * width - 0.5
        y = (1 - ndc[:, 1]) / 2 * height - 0.5
        return np.stack([x, y], 1), h[:, 3]


def _look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    fwd = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = right, up, -fwd
    view[:3, 3] = -view[:3, :3] @ eye
    return view


def _camera(p: Person3DParams, body: PosedBody, kp: dict, height: int, width: int) -> Camera:
    v = body.vertices
    top = float(v[:, 2].max()) + 0.05
    bottom = {
        "full": float(v[:, 2].min()) - 0.05,
        "knee": float(kp["left_knee"][2] + kp["right_knee"][2]) / 2 - 0.06,
        "waist": float(kp["left_hip"][2] + kp["right_hip"][2]) / 2 - 0.1,
        "selfie": float(kp["left_shoulder"][2] + kp["right_shoulder"][2]) / 2 - 0.28,
    }[p.framing]
    extent = top - bottom
    centre_x = float((kp["left_shoulder"][0] + kp["right_shoulder"][0]) / 2) + p.cam_dx * extent
    centre_y = float(np.median(v[:, 1]))
    centre_z = (top + bottom) / 2 + p.cam_dz * extent
    fov = np.deg2rad(p.fov_deg)
    dist = extent / 2 / np.tan(fov / 2)
    eye = np.array([centre_x, centre_y - dist, centre_z])
    target = np.array([centre_x, centre_y, centre_z])
    near, far = max(dist - 1.5, 0.05), dist + 1.5
    f = 1 / np.tan(fov / 2)
    proj = np.zeros((4, 4))
    proj[0, 0], proj[1, 1] = f * height / width, f
    proj[2, 2], proj[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    proj[3, 2] = -1
    return Camera(proj @ _look_at(eye, target), eye, (target - eye) / np.linalg.norm(target - eye), near, far)


@functools.cache
def _vertex_look(model: BodyModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per vertex of the bare body: LIP label (V,), eye masks (V, 2) [eyeball, iris] and face paint weights
    (V, 2) [lips, brows] (painted on the skin: anny has no face colours; all of it is labelled face)."""
    labels = model.skin_labels()
    rest = model.mean.rest
    eye = model.part == EYE
    iris = np.zeros(len(labels), bool)
    for s in (1, -1):
        m = eye & (model.side == s)
        if m.any():
            d = rest[m] - rest[m].mean(0)
            iris[np.nonzero(m)[0]] = d[:, 1] < -0.7 * np.abs(d[:, 1]).max()
    kp = dict(zip(model.keypoint_labels, model.keypoint_weights @ rest.astype(np.float64), strict=True))
    head = model.part == HEAD
    x, y, z = rest[:, 0], rest[:, 1], rest[:, 2]
    front = head & (y < kp["nose"][1] + 0.035)
    mouth_z = kp["nose"][2] - 0.034
    lips = np.clip(1.3 - ((x / 0.024) ** 2 + ((z - mouth_z) / 0.0085) ** 2), 0, 1) * front
    brows = np.zeros(len(labels))
    for name in ("left_eye", "right_eye"):
        e = kp[name]
        t = np.clip((x - e[0]) / 0.024 * np.sign(e[0]), -1, 1)  # thicker at the inner end, arched
        ez = e[2] + 0.019 + 0.004 * (1 - t**2)
        w = np.clip(1.4 - (((x - e[0]) / 0.024) ** 2 + ((z - ez) / (0.0045 - 0.0012 * t)) ** 2), 0, 1)
        brows = np.maximum(brows, w * front)
    return labels, np.stack([eye, iris], 1), np.stack([lips, brows], 1).astype(np.float32)


# Metres of cut field under which skin is never seen (see _visible_faces); $SIEVENET_STUDIO3D_HIDDEN=0 draws it.
HIDDEN_DEPTH = float(os.environ.get("SIEVENET_STUDIO3D_HIDDEN", 0.05))


def _visible_faces(model: BodyModel, fields: tuple[np.ndarray, ...]) -> np.ndarray:
    """The body's triangles less those deep under a garment (every corner at least HIDDEN_DEPTH inside its cut
    field, arms excepted: a sleeve can be looked into). They always lie behind the shell, so leaving them out
    changes no pixel and saves setting up a garment-sized area of skin."""
    faces = model.faces
    if HIDDEN_DEPTH <= 0:
        return faces
    deep = np.zeros(len(model.part), bool)
    for cut in fields:
        deep |= cut >= HIDDEN_DEPTH
    deep &= ~_arm_vertices(model)
    return faces[~deep[faces].all(1)]


@functools.cache
def _arm_vertices(model: BodyModel) -> np.ndarray:
    return np.isin(model.part, (UPPERARM, FOREARM, HAND))


def _body_mesh(skin: np.ndarray, body: PosedBody, covered: np.ndarray, faces: np.ndarray) -> gl.Mesh:
    """The skin (`_skin_vertices`) sunk a few millimetres where a garment covers it (no poke-through)."""
    verts = skin.copy()
    verts[:, 0:3] -= body.normals * (0.008 * covered)[:, None]
    return gl.Mesh(verts, faces, shine=0.08, skin_split=True, cull=True, cut=False)


@functools.cache
def _mottle(model: BodyModel) -> np.ndarray:
    """(V,) variation of skin tone over the body in [-1, 1], blotches a few centimetres across: a uniform
    albedo reads as plastic."""
    rest = model.mean.rest.astype(np.float64)
    rng = np.random.Generator(np.random.PCG64(11))
    waves = rng.normal(size=(6, 3)) * 60.0  # spatial frequencies (radians per metre): 1.5-10 cm features
    field = np.sin(rest @ waves.T + rng.uniform(0, 6.3, 6)).sum(1)
    return (field / np.abs(field).max()).astype(np.float32)


def _skin_vertices(model: BodyModel, p: Person3DParams, body: PosedBody) -> np.ndarray:
    """The bare body's packed vertices with its face painted (the same under every garment it tries)."""
    labels, eyes, paint = _vertex_look(model)
    skin = np.asarray(p.skin_rgb, np.float32) / 255
    rgb = np.tile(skin, (len(labels), 1))
    lips = np.asarray(p.lip_rgb, np.float32) / 255
    brow = np.asarray(p.hair_rgb, np.float32) / 255 * 0.6 + 0.1 * skin
    rgb += paint[:, :1] * (lips - rgb)
    rgb += paint[:, 1:] * (brow - rgb)
    rgb *= 1.0 + (0.03 + 0.04 * ((zlib.crc32(p.person_id.encode()) % 100) / 100)) * _mottle(model)[:, None]
    rgb[model.part == FOOT] = np.asarray(p.shoe_rgb, np.float32) / 255
    rgb[eyes[:, 0]] = (0.9, 0.88, 0.85)
    rgb[eyes[:, 1]] = (0.12, 0.08, 0.06)
    split = np.stack([model.arm_weight, model.skin_side()], 1)  # face/torso/arm skin decided per pixel
    return gl.pack(
        body.vertices, body.normals, rgb, labels.astype(np.float32), uv=split, pz=model.head_weight
    )


def _shell_mesh(model, body, spec, rgb, label, folds=0.0, seed=0, uv=None, pz=None, textured=False):
    pts, nrm = shell_vertices(model, body, spec)
    colour = np.tile(np.asarray(rgb, np.float32), (len(pts), 1))
    verts = gl.pack(pts, nrm, colour, float(label), uv, pz, spec.field[spec.rows])
    rng = np.random.Generator(np.random.PCG64(seed))
    d = rng.normal(size=3) * np.array([0.4, 0.4, 1.0])
    wave = (*(d / np.linalg.norm(d) * rng.uniform(35, 60)), float(rng.uniform(0, 6.3)))
    return gl.Mesh(verts, spec.triangles, textured=textured, folds=folds, fold_wave=wave)


def _shoe_mesh(model: BodyModel, p: Person3DParams, body: PosedBody) -> gl.Mesh:
    spec = shoe_spec(model)
    pts, nrm = shell_vertices(model, body, spec)
    left = model.side[spec.rows] >= 0
    labels = np.where(left, float(LIP.LEFT_SHOE), float(LIP.RIGHT_SHOE)).astype(np.float32)
    colour = np.tile(np.asarray(p.shoe_rgb, np.float32) / 255, (len(pts), 1))
    verts = gl.pack(pts, nrm, colour, labels, field=spec.field[spec.rows])
    return gl.Mesh(verts, spec.triangles, shine=0.15)


def _hair_meshes(model: BodyModel, p: Person3DParams, body: PosedBody) -> list[gl.Mesh]:
    rgb = np.asarray(p.hair_rgb, np.float32) / 255
    meshes = [_shell_mesh(model, body, hair_spec(model, p.hair), rgb, LIP.HAIR, folds=0.12, seed=7)]
    if p.hair != "short":
        meshes.append(_hair_curtain(model, p, body, rgb))
    return meshes


def _grid_triangles(rows: int, cols: int, start: int = 0) -> list[tuple[int, int, int]]:
    tris = []
    for i in range(rows - 1):
        for j in range(cols - 1):
            a, b, c, d = i * cols + j, i * cols + j + 1, (i + 1) * cols + j, (i + 1) * cols + j + 1
            tris += [(start + a, start + b, start + c), (start + b, start + d, start + c)]
    return tris


@functools.cache
def _curtain(model: BodyModel, style: str, front: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bob or long hair as sheets of strands, built once on the mean body at rest.

    A back sheet wraps the head from temple to temple and falls to the jaw (bob) or between the shoulder
    blades (long); long front hair adds two locks that fall from the temples over the shoulders onto the
    chest, lying on the body in front of any garment (the paper's occlusion case).
    Returns (anchor vertex ids (N,), offsets from those vertices (N, 3), triangles (M, 3)). A person's hair is
    the anchors on their own body plus the offsets, skinned with the anchors: it follows head and shoulders.
    """
    lm = landmarks(model)
    rest = model.mean.rest
    head = rest[model.part == HEAD]
    centre = head.mean(0)
    rx = float(np.percentile(np.abs(head[:, 0] - centre[0]), 98)) + 0.012
    ry = float(np.percentile(np.abs(head[:, 1] - centre[1]), 98)) + 0.012
    body = rest[model.part != HEAD]

    def surface_y(x: float, z: float, side: int) -> float | None:
        near = body[(np.abs(body[:, 0] - x) < 0.03) & (np.abs(body[:, 2] - z) < 0.03)]
        if not len(near):
            return None
        return float(near[:, 1].min()) - 0.03 if side < 0 else float(near[:, 1].max()) + 0.03

    pts: list[tuple[float, float, float]] = []
    tris: list[tuple[int, int, int]] = []
    # The back sheet: angles from +X round the back of the head (+Y) to -X, a little past the temples.
    end_z = lm.neck - (0.24 if style == "long" else 0.0)
    angles = np.linspace(0.12 * np.pi, -1.12 * np.pi, 19)
    rows = 10
    for i in range(rows):
        t = i / (rows - 1)
        z = centre[2] + 0.04 - t * (centre[2] + 0.04 - end_z)
        for a in angles:
            r = 1.0 + 0.22 * np.sqrt(t)
            x = centre[0] + np.cos(a) * rx * r
            y = centre[1] - np.sin(a) * ry * r
            if z < lm.neck + 0.02:
                back = surface_y(x, z, +1)
                y = max(y, back) if back is not None else y
            pts.append((x, y, z))
    tris += _grid_triangles(rows, len(angles))
    if front:
        for side in (1, -1):  # the subject's left and right lock
            start = len(pts)
            cols = 6
            for i in range(rows):
                t = i / (rows - 1)
                z = centre[2] - 0.01 - t * (centre[2] - 0.01 - (lm.neck - 0.26))
                for j in range(cols):
                    u = j / (cols - 1)
                    width = 0.03 + 0.035 * t  # locks widen as they fall
                    x = centre[0] + side * (rx * (0.8 + 0.25 * t) + 0.03 * t + (u - 0.5) * width)
                    y = centre[1] - 0.15 * ry
                    if z < lm.neck + 0.03:
                        chest = surface_y(x, z, -1)
                        y = min(y, chest) if chest is not None else y
                    pts.append((x, y, z))
            tris += _grid_triangles(rows, cols, start)
    pts_a = np.asarray(pts, np.float32)
    # Anchor on skin the shoulder girdle does not move: a raised arm lifts the clavicle, and hair pinned to it
    # swung up across the face.
    girdle = np.array([b.split(".")[0] in ("clavicle", "shoulder01") for b in model.bones])
    still = np.nonzero(model.arm_weight + (model.bone_weight * girdle[model.bone_index]).sum(1) < 0.02)[0]
    near = np.argmin(((rest[None, still, :] - pts_a[:, None, :]) ** 2).sum(-1), axis=1)
    anchor = still[near]
    return anchor, pts_a - rest[anchor], np.asarray(tris, np.uint32)


def _hair_curtain(model: BodyModel, p: Person3DParams, body: PosedBody, rgb: np.ndarray) -> gl.Mesh:
    anchor, offset, tris = _curtain(model, p.hair, p.hair_over_garment)
    posed = body.skin(body.rest[anchor] + offset, anchor)
    tri = posed[tris.astype(np.int64)]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    nrm = np.zeros_like(posed)
    for k in range(3):
        np.add.at(nrm, tris[:, k].astype(np.int64), fn)
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-9)
    verts = gl.pack(posed, nrm, np.tile(rgb * 0.9, (len(posed), 1)), float(LIP.HAIR))
    return gl.Mesh(verts, tris, folds=0.18, fold_wave=(260.0, 0.0, 0.0, 0.0))  # strands


def _background(p: Person3DParams, height: int, width: int) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(p.background_index))
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    x = np.linspace(-1, 1, width, dtype=np.float32)[None, :, None]
    base = np.asarray(p.background_rgb, np.float32) / 255
    if p.background == "studio":  # a paper sweep: soft vertical gradient, vignette, floor shadow band
        return base * (1.0 - 0.08 * y - 0.05 * x**2) * np.ones((1, 1, 3), np.float32)
    if p.background == "photo":
        name = BACKGROUND_PHOTOS[p.background_index % len(BACKGROUND_PHOTOS)]
        src = _photo(name)
        sh, sw = src.shape[:2]
        ch = int(sh * rng.uniform(0.5, 0.9))
        cw = min(sw, int(ch * width / height))
        y0, x0 = int(rng.integers(0, sh - ch + 1)), int(rng.integers(0, sw - cw + 1))
        crop = cv2.resize(np.ascontiguousarray(src[y0 : y0 + ch, x0 : x0 + cw]), (width, height))
        return cv2.GaussianBlur(crop, (0, 0), 0.6 + 2.0 * rng.random() * height / 256)  # depth of field
    # procedural: stripes, tiles or mottled plaster in muted colours
    tone = base * rng.uniform(0.75, 1.0, size=3).astype(np.float32)
    kind = p.background_index % 3
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / height
    if kind == 0:
        t = ((xx * rng.uniform(6, 16)) % 1.0 < 0.5).astype(np.float32)
    elif kind == 1:
        n = rng.uniform(5, 12)
        t = (((xx * n) % 1.0 < 0.04) | ((yy * n) % 1.0 < 0.04)).astype(np.float32)
    else:
        small = rng.random((8, 6)).astype(np.float32)
        t = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(tone * (0.85 + 0.15 * t[..., None]), 0, 1)


@functools.cache
def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)().astype(np.float32) / 255.0
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return img[..., :3]


def _finish(p: Person3DParams, rgb: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Photographic degradations, identical for a scene and its unpaired truth: white balance, blur, the
    sensor `noise` (unit normal, (H, W, 3) float32, the same draw for both), JPEG."""
    h = rgb.shape[0]
    img = rgb * np.asarray(p.white_balance, np.float32)
    if p.blur > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), p.blur * h / 256)
    img = img + p.noise * noise
    out = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    if p.jpeg:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, p.jpeg])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()
    return out


def _cast_shadow(alpha: np.ndarray, p: Person3DParams) -> np.ndarray:
    """(H, W) darkening of a backdrop by the person's shadow: the silhouette moved away from the key light,
    blurred like an area light's. Cast by the first scene of a pair and used for both (the truth's garment
    would move it by a fraction of its blur), so a pair still differs only around the garments."""
    h = alpha.shape[0]
    az, el = np.deg2rad(p.key_azimuth), np.deg2rad(p.key_elevation)
    shift = np.float32([[1, 0, -np.sin(az) * 0.06 * h], [0, 1, np.sin(el) * 0.03 * h]])
    cast = cv2.warpAffine(alpha, shift, (alpha.shape[1], h), borderMode=cv2.BORDER_CONSTANT)
    cast = cv2.GaussianBlur(cast, (0, 0), 0.025 * h)
    return 1.0 - 0.3 * np.cos(az) ** 0.5 * cast


def _soften_edges(image: np.ndarray, lip: np.ndarray) -> np.ndarray:
    """Anti-aliasing for a render drawn at one sample per pixel: a pixel whose label (0 where nothing
    was drawn) differs from a 4-neighbour's takes its 3x3 mean, the blend supersampling would have given
    the edge (at a quarter of its cost: the studio renders ~1.5x faster than with 2x2 supersampling)."""
    edge = np.zeros(lip.shape, bool)
    step_x, step_y = lip[:, 1:] != lip[:, :-1], lip[1:] != lip[:-1]
    edge[:, 1:] |= step_x
    edge[:, :-1] |= step_x
    edge[1:] |= step_y
    edge[:-1] |= step_y
    return np.where(edge[..., None], cv2.blur(image, (3, 3)), image)


def _contact_shadow(lip: np.ndarray, height: int) -> np.ndarray:
    """(H, W) darkening of the torso and garment next to the arms: the ambient occlusion a rasteriser without
    global illumination misses where arms meet the body."""
    arms = np.isin(lip, (LIP.LEFT_ARM, LIP.RIGHT_ARM))
    shade = np.ones(lip.shape, np.float32)
    if not arms.any():
        return shade
    dist = cv2.distanceTransform((~arms).astype(np.uint8), cv2.DIST_L2, 3)
    body = np.isin(lip, (LIP.UPPER_CLOTHES, LIP.TORSO_SKIN, LIP.PANTS))
    shade[body] -= 0.28 * np.exp(-dist[body] / (0.012 * height))
    return shade


def _keypoints(kp_named: dict, camera, view_depth, height, width, ss) -> tuple[np.ndarray, np.ndarray]:
    named = dict(kp_named)
    named["neck"] = (named["left_shoulder"] + named["right_shoulder"]) / 2
    pts = np.stack([named[k or "neck"] for k in OPENPOSE_FROM_COCO])
    xy, dist = camera.project(pts, height, width)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] <= width - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= height - 1)
    kp = np.zeros((18, 3), np.float32)
    kp[inside, :2] = xy[inside]
    kp[inside, 2] = 1.0
    visible = np.zeros(18, bool)
    for k in np.nonzero(inside)[0]:
        px = min(int((xy[k, 0] + 0.5) * ss), width * ss - 1)
        py = min(int((xy[k, 1] + 0.5) * ss), height * ss - 1)
        surface = view_depth[py, px]
        visible[k] = (
            surface == 0 or dist[k] - surface < 0.12
        )  # joints sit under the skin; an arm in front hides them
    return kp, visible


def render_pair(
    person: Person3DParams,
    worn: GarmentParams,
    tried: GarmentParams | None,
    height: int,
    width: int,
    supersample: int | None = None,
    person_extras: bool = True,
) -> tuple[Scene3D, Scene3D | None]:
    """Render person in `worn` and (when `tried` is given and differs) the same scene in `tried`.

    With `person_extras=False` and a `tried` garment, the person's scene comes without its product photo and
    flow (`cloth`, `cloth_mask`, `flow` are None): an unpaired sample uses only the truth's, and the worn
    garment's product photo is then not rendered. Everything else is the same bytes either way.
    """
    gl.renderer()  # fail fast, before anny's first build, on a machine without EGL
    model = body_model()
    body = model.pose_person(person)
    # One sample per pixel and soft label edges by default; $SIEVENET_STUDIO3D_SUPERSAMPLE=2 renders 2x2
    # supersampled colour instead (the studio's look before session 8; ~1.5x slower at 256x192).
    ss = supersample or int(os.environ.get("SIEVENET_STUDIO3D_SUPERSAMPLE", 1))
    kp_named = model.keypoints(body)
    camera = _camera(person, body, kp_named, height, width)
    lights = _lights(person)
    base = _hair_meshes(model, person, body)
    lower = lower_spec(model, person.lower)
    base.append(
        _shell_mesh(model, body, lower, np.asarray(person.lower_rgb) / 255, LIP.PANTS, folds=0.05, seed=3)
    )
    if person.framing == "full":  # the only framing that shows the feet
        base.append(_shoe_mesh(model, person, body))
    background = _background(person, height, width)
    rng = np.random.Generator(np.random.PCG64(zlib.crc32(person.person_id.encode())))
    noise = rng.standard_normal((height, width, 3), dtype=np.float32)  # one draw: both scenes share it
    bare = _skin_vertices(model, person, body)
    scenes = []
    garments = (worn,) if tried is None or tried == worn else (worn, tried)
    for g in garments:
        extras = person_extras or g is not worn or len(garments) == 1
        prod = product(g, height, width)
        spec = garment_upper_spec(model, g)
        covered = np.clip(spec.field * 30, 0, 1) + np.clip(lower.field * 30, 0, 1)
        faces = _visible_faces(model, (spec.field, lower.field))
        skin = _body_mesh(bare, body, np.minimum(covered, 1), faces)
        folds = 0.09 if g.fit == "loose" else 0.05
        shirt = _shell_mesh(model, body, spec, (1, 1, 1), LIP.UPPER_CLOTHES, folds=folds,
                            seed=g.texture_seed, uv=prod.uv, pz=prod.pz, textured=True)  # fmt: skip
        # Without extras no flow is read, and any depth serves: the valid bit never reaches the labels.
        depth_tex = prod.gl_texture("depth") if extras else _no_depth()
        frame = gl.renderer().draw([shirt, *base, skin], camera.mvp, camera.eye, camera.forward, lights, height * ss,
                                   width * ss, texture=prod.gl_texture("texture"), product_depth=depth_tex,
                                   depth_eps=0.012)  # fmt: skip
        rgba = cv2.resize(frame.rgba, (width, height), interpolation=cv2.INTER_AREA) if ss > 1 else frame.rgba
        aux = frame.aux[ss // 2 :: ss, ss // 2 :: ss]
        code = np.round(aux[..., 0]).astype(np.int64)
        lip = (code % 32).astype(np.uint8)
        alpha = rgba[..., 3:4].astype(np.float32) / 255
        fg = rgba[..., :3].astype(np.float32) / 255 * _contact_shadow(lip, height)[..., None]
        if not scenes and person.background != "photo":  # a wall behind: the person's soft shadow on it
            background = background * _cast_shadow(alpha[..., 0], person)[..., None]
        composite = fg + background * (1 - alpha)  # colour is premultiplied
        image = _finish(person, _soften_edges(composite, lip) if ss == 1 else composite, noise)
        kp, visible = _keypoints(kp_named, camera, frame.aux[..., 3], height, width, ss)
        if not extras:
            scenes.append(Scene3D(image, lip, kp, None, None, None, visible))
            continue
        valid = (lip == LIP.UPPER_CLOTHES) & (code >= 32)
        flow = np.zeros((3, height, width), np.float32)
        flow[0] = np.where(valid, aux[..., 1] * width, 0)
        flow[1] = np.where(valid, (1 - aux[..., 2]) * height, 0)
        flow[2] = valid
        scenes.append(Scene3D(image, lip, kp, prod.image, prod.mask, flow, visible))
    return scenes[0], (scenes[1] if len(scenes) > 1 else None)
