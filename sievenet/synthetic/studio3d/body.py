"""The body: anny's parametric human (MakeHuman mesh, CC0), shaped by phenotype sliders and posed.

anny is built once per process from a persistent cache (`anny_cache_dir()`; the first build takes one to
three minutes and writes about 0.85 GB). Axes are anny's: metres, Z up, the body faces -Y, +X is the
subject's LEFT, the root at the pelvis. Every vertex gets a part (its dominant skinning bone's group), which
gives the LIP label of the skin it shows. Garment shells are skinned with the same bone transforms as the
body (`PosedBody.skin`), so a shell vertex follows the body vertex it was offset from.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sievenet.labels import LIP
from sievenet.synthetic.params import Arm3D, Person3DParams

# Parts, from each vertex's dominant bone name.
HEAD, NECK, TORSO, UPPERARM, FOREARM, HAND, UPPERLEG, LOWERLEG, FOOT, EYE = range(10)
ARM_SKIN = 0.5  # skin is arm where the arm bones carry at least this share of the skinning weight
FACE_SKIN = 0.5  # skin is face where the head bones carry at least this share


def anny_cache_dir() -> Path:
    """Where anny's built model data lives: $SIEVENET_ANNY_CACHE, else $ANNY_CACHE_DIR, else
    ~/.cache/sievenet/anny. It persists between runs and stays out of the repository."""
    env = os.environ.get("SIEVENET_ANNY_CACHE") or os.environ.get("ANNY_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "sievenet" / "anny"


def _part(bone: str) -> int:
    name = bone.split(".")[0]
    if name.startswith("eye"):
        return EYE
    if name.startswith("head"):
        return HEAD
    if name.startswith("neck"):
        return NECK
    if name.startswith("upperarm"):
        return UPPERARM
    if name.startswith("lowerarm"):
        return FOREARM
    if name.startswith(("wrist", "finger", "metacarpal")):
        return HAND
    if name.startswith("upperleg"):
        return UPPERLEG
    if name.startswith("lowerleg"):
        return LOWERLEG
    if name.startswith(("foot", "toe")):
        return FOOT
    return TORSO  # root, pelvis, spine, clavicle, shoulder01


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking direction a onto direction b."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -0.999999:  # opposite: any perpendicular axis
        axis = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


def _rot(axis: str, deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def arm_directions(arm: Arm3D, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Target directions (body frame) of the upper arm and the forearm; side +1 = the subject's left (+X)."""
    a, f = np.deg2rad(arm.abduct), np.deg2rad(arm.flex)
    upper = np.array([side * np.sin(a), 0.0, -np.cos(a)])
    upper = _rot("x", -np.rad2deg(f)) @ upper  # flexion brings the arm forward (-Y)
    e, t = np.deg2rad(arm.elbow), np.deg2rad(arm.twist)
    fwd = np.array([0.0, -1.0, 0.0])
    inward = np.array([-side, 0.0, 0.0])
    bend = np.cos(t) * fwd + np.sin(t) * inward
    bend = _unit(bend - np.dot(bend, upper) * upper)
    fore = np.cos(e) * upper + np.sin(e) * bend
    return _unit(upper), _unit(fore)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, incidence) -> np.ndarray:
    """(V, 3) unit area-weighted normals of a mesh: `faces` (M, 3) int64, `incidence` its (V, M) sparse
    vertex-triangle matrix."""
    tri = vertices[faces]
    n = incidence @ np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


@dataclass
class PosedBody:
    """One body in one pose: rest and posed vertices, per-bone skinning transforms, posed normals."""

    rest: np.ndarray  # (V, 3) float32 rest (A-pose) vertices of this phenotype
    vertices: np.ndarray  # (V, 3) float32 posed
    normals: np.ndarray  # (V, 3) float32 posed, unit
    transforms: np.ndarray  # (bones, 3, 4) float32 rest -> posed per bone
    joints: np.ndarray  # (bones, 3) posed bone heads
    model: BodyModel
    _rest_normals: np.ndarray | None = None

    @property
    def rest_normals(self) -> np.ndarray:
        if self._rest_normals is None:
            self._rest_normals = self.model.normals(self.rest).astype(np.float32)
        return self._rest_normals

    def skin(
        self, rest_points: np.ndarray, rows: np.ndarray, rest_normals: np.ndarray | None = None
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Pose rest-space points (N, 3) that follow body vertices `rows` (N,) with their skinning weights;
        with `rest_normals` (N, 3), also return them rotated by the same blended transforms."""
        idx = self.model.bone_index[rows]  # (N, K)
        w = self.model.bone_weight[rows]  # (N, K)
        blended = np.einsum("nk,nkij->nij", w, self.transforms[idx])  # (N, 3, 4): blend once, apply once
        pts = np.einsum("nij,nj->ni", blended[:, :, :3], rest_points) + blended[:, :, 3]
        if rest_normals is None:
            return pts
        n = np.einsum("nij,nj->ni", blended[:, :, :3], rest_normals)
        return pts, n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


class BodyModel:
    """anny's full-body model with what the studio derives from it once: faces, parts, labels, adjacency."""

    def __init__(self) -> None:
        os.environ.setdefault("ANNY_CACHE_DIR", str(anny_cache_dir()))
        os.environ.setdefault("WARP_CACHE_PATH", str(anny_cache_dir().parent / "warp"))
        try:
            import anny
            import torch
        except ImportError as err:
            from sievenet.errors import DataError

            raise DataError(
                f"the 3D studio needs the anny body model ({err}); install it with "
                "`pip install anny==0.6.2`, or use studio='2d'"
            ) from None
        import anny.paths
        import scipy.sparse as sp

        anny.paths.set_anny_cache_path(anny_cache_dir())
        self.torch = torch
        self.model = anny.Anny(phenotypes="all").to(torch.float32)  # float64 by default; 20 % slower
        m = self.model
        self.bones = list(m.bone_labels)
        self.faces = m.get_triangular_faces().cpu().numpy().astype(np.uint32)
        self.bone_index = m.vertex_bone_indices.cpu().numpy().astype(np.int64)
        self.bone_weight = m.vertex_bone_weights.cpu().numpy().astype(np.float32)
        dominant = self.bone_index[np.arange(len(self.bone_index)), self.bone_weight.argmax(1)]
        bone_part = np.array([_part(b) for b in self.bones])
        bone_side = np.array([1 if b.endswith(".L") else -1 if b.endswith(".R") else 0 for b in self.bones])
        self.part = bone_part[dominant]
        self.side = bone_side[dominant]
        # How much of each vertex the arm bones move, in [0, 1]: smooth over the mesh, unlike the dominant bone,
        # whose torso/upper-arm border zigzags across the shoulder (and puts the shoulder top on the arm).
        arm_bone = np.isin(bone_part, (UPPERARM, FOREARM, HAND))
        self.arm_weight = (self.bone_weight * arm_bone[self.bone_index]).sum(1).astype(np.float32)
        head_bone = np.isin(bone_part, (HEAD, EYE))  # the same for the face's border with the neck
        self.head_weight = (self.bone_weight * head_bone[self.bone_index]).sum(1).astype(np.float32)
        self.keypoint_weights = anny.KeypointsRegressor.coco(m).regression_weights.cpu().numpy()
        self.keypoint_labels = anny.KeypointsRegressor.coco(m).labels
        v = len(self.part)
        # Vertex-face incidence for normals, vertex adjacency for the shells' Laplacian.
        f = self._faces64 = self.faces.astype(np.int64)
        rows = f.reshape(-1)
        cols = np.repeat(np.arange(len(f)), 3)
        self.incidence = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(v, len(f)))
        edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        adj = sp.csr_matrix((np.ones(len(edges), np.float32), (edges[:, 0], edges[:, 1])), shape=(v, v))
        adj = ((adj + adj.T) > 0).astype(np.float32)
        deg = np.asarray(adj.sum(1)).ravel()
        self.laplacian = (sp.diags(1.0 / np.maximum(deg, 1)) @ adj).tocsr()  # uniform: mean of the neighbours
        self.mean = self.pose_phenotype(dict.fromkeys(m.phenotype_labels, 0.5), {})

    def normals(self, vertices: np.ndarray) -> np.ndarray:
        """(V, 3) unit area-weighted vertex normals of body-topology vertices (body or shell)."""
        return vertex_normals(vertices, self._faces64, self.incidence)

    def pose_phenotype(self, phenotype: dict[str, float], rotations: dict[str, np.ndarray]) -> PosedBody:
        """Forward anny with `phenotype` sliders and per-bone world-axis rotations (local-ref convention)."""
        torch = self.torch
        m = self.model
        pose = torch.eye(4, dtype=m.dtype).repeat(1, len(self.bones), 1, 1)
        for bone, r in rotations.items():
            pose[0, self.bones.index(bone), :3, :3] = torch.as_tensor(r, dtype=m.dtype)
        # One thread, whatever the caller's setting: torch's multi-threaded reductions sum in another order, and
        # the same key must give the same bytes in a DataLoader worker (1 thread) and in the main process.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                out = m(pose_parameters=pose, phenotype_kwargs={k: float(v) for k, v in phenotype.items()})
                rest_poses = out["rest_bone_poses"][0]
                t = (
                    (out["bone_poses"][0] @ torch.linalg.inv(rest_poses))[:, :3, :]
                    .cpu()
                    .numpy()
                    .astype(np.float32)
                )
        finally:
            torch.set_num_threads(threads)
        verts = out["vertices"][0].cpu().numpy().astype(np.float32)
        return PosedBody(
            rest=out["rest_vertices"][0].cpu().numpy().astype(np.float32),
            vertices=verts,
            normals=self.normals(verts).astype(np.float32),
            transforms=t,
            joints=out["bone_poses"][0, :, :3, 3].cpu().numpy().astype(np.float32),
            model=self,
        )

    def rest_joint(self, body: PosedBody, bone: str) -> np.ndarray:
        """A bone head in rest space (inverting that bone's own transform at its posed head)."""
        i = self.bones.index(bone)
        t = body.transforms[i]
        return np.linalg.solve(t[:, :3], body.joints[i] - t[:, 3])

    def rotations(self, p: Person3DParams, rest: PosedBody) -> dict[str, np.ndarray]:
        """Per-bone world-axis rotations for person p's pose, aiming limbs from the rest joints of `rest`."""
        rot: dict[str, np.ndarray] = {}
        j = {b: self.rest_joint(rest, b) for b in ("upperarm01.L", "lowerarm01.L", "wrist.L",
                                                    "upperarm01.R", "lowerarm01.R", "wrist.R")}  # fmt: skip
        for side, key, arm in ((1, "L", p.left_arm), (-1, "R", p.right_arm)):
            upper, fore = arm_directions(arm, side)
            d_up = j[f"lowerarm01.{key}"] - j[f"upperarm01.{key}"]
            d_fore = j[f"wrist.{key}"] - j[f"lowerarm01.{key}"]
            r_up = _rotation_between(d_up, upper)
            rot[f"upperarm01.{key}"] = r_up
            # A child's world rotation is its parent's times its own: aim the forearm in the parent's frame.
            rot[f"lowerarm01.{key}"] = _rotation_between(d_fore, r_up.T @ fore)
            if arm.abduct > 70:  # a raised arm lifts the shoulder girdle too
                rot[f"clavicle.{key}"] = _rot("y", -side * 0.2 * (arm.abduct - 70))
        for key, side in (("L", 1), ("R", -1)):
            rot[f"upperleg01.{key}"] = _rot("y", -side * 2.0)
            # Relaxed hands: fingers curl a little towards the palm (anny's rest hand is flat, fingers spread).
            for finger in (2, 3, 4, 5):
                for joint, deg in ((1, 12.0), (2, 22.0), (3, 14.0)):
                    rot[f"finger{finger}-{joint}.{key}"] = _rot("y", side * deg)
        rot["spine03"] = _rot("y", p.lean_deg) @ _rot("x", p.pitch_deg)
        rot["neck02"] = _rot("z", p.head_yaw_deg)
        rot["root"] = _rot("z", p.yaw_deg)
        return rot

    def pose_person(self, p: Person3DParams) -> PosedBody:
        return self.pose_phenotype(dict(p.phenotype), self.rotations(p, self.mean))

    def keypoints(self, body: PosedBody) -> dict[str, np.ndarray]:
        """anny's COCO keypoints (23, incl. feet) regressed from the posed vertices, by name."""
        pts = self.keypoint_weights @ body.vertices.astype(np.float64)
        return dict(zip(self.keypoint_labels, pts, strict=True))

    def skin_labels(self) -> np.ndarray:
        """(V,) LIP id each vertex shows when nothing covers it.

        Face, torso and arm skin are split per pixel by the renderer at `head_weight` = FACE_SKIN and
        `arm_weight` = ARM_SKIN (see `skin_side`); these per-vertex ids only say which group a vertex belongs
        to, and are the split taken at the vertex.
        """
        lip = np.full(len(self.part), int(LIP.TORSO_SKIN), np.int64)
        skin = np.isin(self.part, (HEAD, EYE, TORSO, NECK, UPPERARM, FOREARM, HAND))
        arm = skin & (self.arm_weight >= ARM_SKIN)
        lip[arm & (self.skin_side() >= 0)] = LIP.LEFT_ARM
        lip[arm & (self.skin_side() < 0)] = LIP.RIGHT_ARM
        lip[skin & (self.head_weight >= FACE_SKIN)] = LIP.FACE
        for parts, left, right in (((UPPERLEG, LOWERLEG), LIP.LEFT_LEG, LIP.RIGHT_LEG),
                                   ((FOOT,), LIP.LEFT_SHOE, LIP.RIGHT_SHOE)):  # fmt: skip
            m = np.isin(self.part, parts)
            lip[m & (self.side >= 0)] = left
            lip[m & (self.side < 0)] = right
        return lip

    def skin_side(self) -> np.ndarray:
        """(V,) +1 on the subject's left, -1 on the right: the side of an arm vertex's bone, else the side of
        the body's midline (only used where arm skin meets torso skin, far from the midline)."""
        midline = np.where(self.mean.rest[:, 0] >= 0, 1, -1)
        return np.where(self.side != 0, self.side, midline).astype(np.float32)


@functools.cache
def body_model() -> BodyModel:
    """The process's body model, built on first use (reads anny's cache; builds it the first time)."""
    return BodyModel()
