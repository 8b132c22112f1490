"""A heuristic human parser: person mask + keypoints + face box -> the 8 model classes (DESIGN §3).

It is NOT a learned parser. It is good enough for what the pipeline needs from a parse: the body-shape
prior (which only uses label > 0) and the texture-translation priors (hair, face, lower body kept). Arms
are capsules along the shoulder-elbow-wrist bones, the face an ellipse in the face box, hair the rest of
the head, the neck a band between chin and shoulders, the lower body everything below the hips, and the
upper garment what is left of the torso. Sides are the person's own (COCO "left" = Label.LEFT_ARM).
"""

from __future__ import annotations

import cv2
import numpy as np

from sievenet.labels import Label
from sievenet.preprocess.pose import MIN_CONFIDENCE

NOSE, NECK, R_SHOULDER, R_ELBOW, R_WRIST, L_SHOULDER, L_ELBOW, L_WRIST = range(8)
R_HIP, L_HIP, R_EYE, L_EYE, R_EAR, L_EAR = 8, 11, 14, 15, 16, 17


def _point(kp: np.ndarray, k: int) -> np.ndarray | None:
    return kp[k, :2] if kp[k, 2] >= MIN_CONFIDENCE else None


def _head(
    kp: np.ndarray, face_box: np.ndarray | None, shoulder_width: float
) -> tuple[np.ndarray, float] | None:
    """Face centre and radius from the face box, else from the nose/eyes/ears."""
    if face_box is not None:
        x0, y0, x1, y1 = face_box[:4]
        return np.array([(x0 + x1) / 2, (y0 + y1) / 2]), max(x1 - x0, y1 - y0) / 2
    pts = [p for k in (NOSE, R_EYE, L_EYE, R_EAR, L_EAR) if (p := _point(kp, k)) is not None]
    if not pts:
        return None
    centre = np.mean(pts, axis=0)
    ears = [_point(kp, R_EAR), _point(kp, L_EAR)]
    if ears[0] is not None and ears[1] is not None:
        radius = np.linalg.norm(ears[0] - ears[1]) / 2
    else:
        radius = 0.3 * shoulder_width
    return centre, max(float(radius), 2.0)


def parse_person(mask: np.ndarray, keypoints: np.ndarray, face_box: np.ndarray | None = None) -> np.ndarray:
    """Label every pixel of a framed person crop with one of the 8 model classes.

    Args:
        mask: (H, W) person mask in [0, 1] of the crop.
        keypoints: (18, 3) crop pixels (x, y, confidence).
        face_box: optional (x0, y0, x1, y1[, score]) face box in crop pixels (mediapipe face detection).

    Returns:
        (H, W) int64 labels.
    """
    h, w = mask.shape
    person = mask >= 0.5
    parse = np.where(person, int(Label.UPPER), int(Label.BACKGROUND)).astype(np.int64)
    kp = np.asarray(keypoints, dtype=np.float32)
    rs, ls = _point(kp, R_SHOULDER), _point(kp, L_SHOULDER)
    shoulder_width = float(np.linalg.norm(rs - ls)) if rs is not None and ls is not None else 0.35 * w
    neck = _point(kp, NECK)
    if neck is None and rs is not None and ls is not None:
        neck = (rs + ls) / 2
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]

    # Lower body: below the hip line. Hips missing (a waist-up photo) means no lower body in view.
    hips = [p for k in (R_HIP, L_HIP) if (p := _point(kp, k)) is not None]
    if hips:
        hip_y = float(np.mean([p[1] for p in hips]))
        parse[person & (ys >= hip_y)] = Label.LOWER

    # Arms: capsules along the bones, minus the torso between the shoulders and hips.
    thickness = max(2, round(0.28 * shoulder_width))
    torso = np.zeros((h, w), np.uint8)
    corners = [p for p in (rs, ls) if p is not None]
    if len(corners) == 2:
        bottom = hips if len(hips) == 2 else None
        if bottom is None:
            # No hips in view: the torso runs straight down from the shoulders to the bottom of the crop.
            bottom = [np.array([ls[0], h]), np.array([rs[0], h])]
        else:
            bottom = [_point(kp, L_HIP), _point(kp, R_HIP)]
        polygon = np.array([rs, ls, bottom[0], bottom[1]], dtype=np.float32)
        cv2.fillPoly(torso, [polygon.round().astype(np.int32)], 1)
    for label, chain in (
        (Label.RIGHT_ARM, (R_SHOULDER, R_ELBOW, R_WRIST)),
        (Label.LEFT_ARM, (L_SHOULDER, L_ELBOW, L_WRIST)),
    ):
        arm = np.zeros((h, w), np.uint8)
        pts = [_point(kp, k) for k in chain]
        for a, b in zip(pts[:-1], pts[1:], strict=True):
            if a is not None and b is not None:
                cv2.line(
                    arm, tuple(int(v) for v in a.round()), tuple(int(v) for v in b.round()), 1, thickness
                )
        if pts[2] is not None:
            cv2.circle(arm, tuple(int(v) for v in pts[2].round()), thickness, 1, -1)  # the hand
        parse[person & (arm > 0) & (torso == 0)] = label

    # Head: face ellipse, hair = the rest of the person above the chin, neck = band from chin to shoulders.
    head = _head(kp, face_box, shoulder_width)
    if head is not None:
        (cx, cy), r = head
        face = ((xs - cx) / (0.85 * r)) ** 2 + ((ys - cy) / (1.1 * r)) ** 2 <= 1.0
        chin = cy + 1.1 * r
        near_head = np.abs(xs - cx) <= 1.6 * r
        parse[person & near_head & (ys < chin)] = Label.HAIR
        parse[person & face] = Label.FACE
        if neck is not None and neck[1] > chin:
            band = (ys >= chin) & (ys < neck[1]) & (np.abs(xs - cx) <= 0.7 * r)
            parse[person & band & (parse == Label.UPPER)] = Label.NECK
    return parse
