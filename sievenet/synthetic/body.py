"""The body in pixels: COCO-18 keypoints and the torso landmarks a garment is fitted to.

Lengths in PersonParams are in units of body height; `Body` turns them into pixel positions for one
image size. Everything is built upright and then the upper body is rotated by the lean angle about the hip
centre, so arm angles stay relative to the torso.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sievenet.synthetic.params import Arm, PersonParams

# COCO-18 indices (DESIGN §2). "r" is the person's right side, which appears on the image's left.
NOSE, NECK, R_SHO, R_ELB, R_WRI, L_SHO, L_ELB, L_WRI = range(8)
R_HIP, R_KNE, R_ANK, L_HIP, L_KNE, L_ANK, R_EYE, L_EYE, R_EAR, L_EAR = range(8, 18)
SKELETON = (
    (NECK, R_SHO), (R_SHO, R_ELB), (R_ELB, R_WRI), (NECK, L_SHO), (L_SHO, L_ELB), (L_ELB, L_WRI),
    (NECK, R_HIP), (R_HIP, R_KNE), (R_KNE, R_ANK), (NECK, L_HIP), (L_HIP, L_KNE), (L_KNE, L_ANK),
    (NECK, NOSE), (NOSE, R_EYE), (R_EYE, R_EAR), (NOSE, L_EYE), (L_EYE, L_EAR),
)  # fmt: skip


def _dir(deg: float, side: int) -> np.ndarray:
    """Unit vector at `deg` from straight down, turned away from the body on `side` (-1 image left, +1 right)."""
    a = np.deg2rad(deg)
    return np.array([side * np.sin(a), np.cos(a)])


@dataclass
class Body:
    """Pixel geometry of one person at one image size. Points are (x, y) float64 arrays."""

    p: PersonParams
    height: int
    width: int

    def __post_init__(self) -> None:
        p, h = self.p, self.height
        self.s = s = p.scale * h  # pixels per body-height unit
        self.cx = cx = self.width / 2 + p.centre * self.width
        top = p.top * h
        self.head_h = p.head * s
        self.head_w = 0.74 * p.head * s
        self.head_c = np.array([cx, top + self.head_h / 2])
        self.chin_y = top + self.head_h
        self.sh_y = self.chin_y + p.neck_len * s
        self.waist_y = self.sh_y + 0.2 * s
        self.hip_y = self.sh_y + 0.31 * s
        self.neck_w = 0.034 * s  # half width
        a = np.deg2rad(p.lean_deg)
        self._rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        self._pivot = np.array([cx, self.hip_y])

        up = {}  # upright upper-body points, rotated below
        up["neck"] = np.array([cx, self.sh_y])
        up["sh_r"] = np.array([cx - p.shoulder * s, self.sh_y + 0.012 * s])
        up["sh_l"] = np.array([cx + p.shoulder * s, self.sh_y + 0.012 * s])
        for side, key, arm in ((-1, "r", p.right_arm), (1, "l", p.left_arm)):
            sh = up[f"sh_{key}"]
            el, wr = self._arm(sh, arm, side)
            up[f"el_{key}"], up[f"wr_{key}"] = el, wr
        up["nose"] = np.array([cx, top + 0.64 * self.head_h])
        up["eye_r"] = np.array([cx - 0.2 * self.head_h, top + 0.47 * self.head_h])
        up["eye_l"] = np.array([cx + 0.2 * self.head_h, top + 0.47 * self.head_h])
        up["ear_r"] = np.array([cx - 0.5 * self.head_w, top + 0.52 * self.head_h])
        up["ear_l"] = np.array([cx + 0.5 * self.head_w, top + 0.52 * self.head_h])
        up["head_c"] = self.head_c
        self.pts = {k: self.lean(v) for k, v in up.items()}
        # Legs stay upright (the lean is from the hips up).
        half_stance = p.stance * s
        for side, key in ((-1, "r"), (1, "l")):
            hip = np.array([cx + side * 0.6 * p.hip * s, self.hip_y])
            ank = np.array([cx + side * (0.5 * p.hip * s + half_stance), self.hip_y + p.leg_len * s])
            knee = (hip + ank) / 2 + np.array([side * 0.004 * s, 0.0])
            self.pts[f"hip_{key}"], self.pts[f"knee_{key}"], self.pts[f"ank_{key}"] = hip, knee, ank

    def lean(self, pt: np.ndarray) -> np.ndarray:
        """Apply the torso lean (rotation about the hip centre) to upright points (..., 2)."""
        return (np.asarray(pt, np.float64) - self._pivot) @ self._rot.T + self._pivot

    def _arm(self, shoulder: np.ndarray, arm: Arm, side: int) -> tuple[np.ndarray, np.ndarray]:
        el = shoulder + self.p.upper_arm * self.s * _dir(arm.shoulder_deg, side)
        wr = el + self.p.forearm * self.s * _dir(arm.shoulder_deg + arm.elbow_deg, side)
        return el, wr

    def keypoints(self) -> np.ndarray:
        """(18, 3) float32 COCO-18 pixel keypoints; points outside the image get (0, 0, 0) as OpenPose writes."""
        order = (
            "nose", "neck", "sh_r", "el_r", "wr_r", "sh_l", "el_l", "wr_l", "hip_r", "knee_r", "ank_r",
            "hip_l", "knee_l", "ank_l", "eye_r", "eye_l", "ear_r", "ear_l",
        )  # fmt: skip
        xy = np.stack([self.pts[k] for k in order]).astype(np.float32)
        # Keep a half-pixel margin so a keypoint's pixel always exists.
        inside = (
            (xy[:, 0] >= 0) & (xy[:, 0] <= self.width - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= self.height - 1)
        )
        kp = np.zeros((18, 3), np.float32)
        kp[inside, :2] = xy[inside]
        kp[inside, 2] = 1.0
        return kp
