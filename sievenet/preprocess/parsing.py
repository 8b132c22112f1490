"""A heuristic human parser: person mask + keypoints + face box -> the 8 model classes (DESIGN §3).

It is NOT a learned parser. It is good enough for what the pipeline needs from a parse: the body-shape
prior (which only uses label > 0) and the texture-translation priors (hair, face, lower body kept). Arms
are capsules along the shoulder-elbow-wrist bones, the face an ellipse in the face box, hair the rest of
the head, the neck a band between chin and shoulders, the lower body everything below the hips, and the
upper garment what is left of the torso. Sides are the person's own (COCO "left" = Label.LEFT_ARM).

Given the crop's colours, an upper garment that runs past the hip line (a long top, a jacket, a coat) is
followed down: pixels below the hips whose colour belongs to the garment above them rather than to the legs,
and that hang from the garment, stay upper. Otherwise they would be "lower body" and be copied into the
texture-translation priors, where the network never saw garment pixels in training and passes them through.
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


R_KNEE, L_KNEE = 9, 12
HEM_BINS = 16  # colour histogram bins per channel for garment-vs-legs colour likelihoods
HEM_ODDS = 1.5  # a pixel below the hips is garment when its colour is this much likelier garment than legs


def _colour_histogram(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Normalised, slightly smoothed (HEM_BINS^3) RGB histogram of `image` pixels where `where`."""
    bins = (image[where].astype(np.int32) * HEM_BINS) // 256
    hist = np.zeros((HEM_BINS,) * 3, np.float32)
    np.add.at(hist, (bins[:, 0], bins[:, 1], bins[:, 2]), 1.0)
    hist = cv2.GaussianBlur(hist.reshape(HEM_BINS, -1), (3, 3), 0).reshape(hist.shape)  # neighbouring shades
    return hist / max(float(hist.sum()), 1.0)


def _hem(image: np.ndarray, parse: np.ndarray, hip_y: float, kp: np.ndarray) -> np.ndarray:
    """Pixels labelled lower body that belong to the upper garment hanging below the hip line."""
    h = parse.shape[0]
    rows = np.arange(h)[:, None]
    garment = (parse == Label.UPPER) & (rows < hip_y)
    lower = parse == Label.LOWER
    knees = [p[1] for k in (R_KNEE, L_KNEE) if (p := _point(kp, k)) is not None]
    # The legs' colours: below the knees when they are in view, else the bottom third of the lower body.
    legs_from = float(np.mean(knees)) if knees else hip_y + 2 * (h - hip_y) / 3
    legs = lower & (rows >= legs_from)
    if garment.sum() < 50 or not lower.any():
        return np.zeros_like(lower)
    ids = (image.astype(np.int32) * HEM_BINS) // 256
    p_garment = _colour_histogram(image, garment)[ids[..., 0], ids[..., 1], ids[..., 2]]
    if legs.sum() >= 50:
        p_legs = _colour_histogram(image, legs)[ids[..., 0], ids[..., 1], ids[..., 2]]
    else:  # no legs in view to compare with: only colours common in the garment count
        p_legs = np.full_like(p_garment, 1.0 / HEM_BINS**2)
    like = lower & (p_garment > HEM_ODDS * p_legs)
    like = cv2.morphologyEx(like.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    # Only what hangs from the garment: blobs touching the first rows below the hip line.
    count, labels = cv2.connectedComponents(like, connectivity=8)
    top = int(np.ceil(hip_y))
    band = labels[top : top + 3]
    hanging = np.unique(band[band > 0])
    return np.isin(labels, hanging) & (count > 1)


def parse_person(
    mask: np.ndarray,
    keypoints: np.ndarray,
    face_box: np.ndarray | None = None,
    image: np.ndarray | None = None,
) -> np.ndarray:
    """Label every pixel of a framed person crop with one of the 8 model classes.

    Args:
        mask: (H, W) person mask in [0, 1] of the crop.
        keypoints: (18, 3) crop pixels (x, y, confidence).
        face_box: optional (x0, y0, x1, y1[, score]) face box in crop pixels (mediapipe face detection).
        image: optional (H, W, 3) uint8 crop; with it, a garment hem below the hip line stays upper.

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
    if hips and image is not None:  # last, so the garment's colours are those of the finished upper class
        parse[_hem(image, parse, hip_y, kp)] = Label.UPPER
    return parse
