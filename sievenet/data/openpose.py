"""OpenPose JSON in and out: COCO-18 (18, 3) keypoints, reading BODY_25 files too (VITON-HD ships them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from sievenet.errors import DataError

# BODY_25 index of each COCO-18 keypoint (BODY_25 adds MidHip at 8 and six foot points at 19..24).
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)


def read_openpose_json(path: str | os.PathLike) -> np.ndarray:
    """Read the first person's `pose_keypoints_2d` from an OpenPose JSON file.

    Args:
        path: a `*_keypoints.json` file with 18 (COCO) or 25 (BODY_25) keypoints of (x, y, confidence).

    Returns:
        (18, 3) float32 pixel (x, y, confidence) in COCO-18 order; missing points are (0, 0, 0).

    Raises:
        DataError: the file is missing, is not JSON, holds no person, or holds a number of values other
            than 54 or 75; the message names the file.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(
            f"{path}: keypoint file not found (expected OpenPose JSON next to the image)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not a readable OpenPose JSON file ({err})") from None
    people = doc.get("people") if isinstance(doc, dict) else None
    if not people:
        raise DataError(f"{path}: no person in 'people'; re-run pose estimation on this image")
    values = people[0].get("pose_keypoints_2d") if isinstance(people[0], dict) else None
    if not isinstance(values, list):
        raise DataError(f"{path}: people[0] has no 'pose_keypoints_2d' list")
    try:
        flat = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: 'pose_keypoints_2d' holds non-numeric values") from None
    if flat.ndim != 1 or flat.size not in (54, 75):
        raise DataError(
            f"{path}: 'pose_keypoints_2d' has {flat.size} values; expected 54 (18 COCO keypoints x 3) "
            "or 75 (25 BODY_25 keypoints x 3)"
        )
    if not np.isfinite(flat).all():
        raise DataError(f"{path}: 'pose_keypoints_2d' holds NaN or infinite values")
    kp = flat.reshape(-1, 3)
    if len(kp) == 25:
        kp = kp[list(BODY25_TO_COCO18)]
    kp = kp.astype(np.float32)
    kp[kp[:, 2] <= 0] = 0.0  # OpenPose writes missing points as zeros; make sure they are
    return kp


def write_openpose_json(path: str | os.PathLike, keypoints: np.ndarray) -> None:
    """Write (18, 3) COCO-18 pixel keypoints as an OpenPose JSON file (one person), VITON-HD style.

    Each float32 is written as its exact double value, so write -> read gives back the same array.
    """
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.shape != (18, 3):
        raise ValueError(f"expected keypoints of shape (18, 3), got {kp.shape}")
    if not np.isfinite(kp).all():
        raise ValueError("keypoints hold NaN or infinite values")
    doc = {
        "version": 1.3,
        "people": [
            {
                "person_id": [-1],
                "pose_keypoints_2d": kp.reshape(-1).tolist(),
                "face_keypoints_2d": [],
                "hand_left_keypoints_2d": [],
                "hand_right_keypoints_2d": [],
            }
        ],
    }
    Path(path).write_text(json.dumps(doc))
