"""Pose estimation behind one interface: a photo in, COCO-18 keypoints (x, y, confidence) in photo pixels out.

Backends:
  mediapipe  offline, the default: mediapipe 0.10.21 `solutions.pose` (model_complexity=1, whose model ships
             inside the wheel; 0 and 2 would try to download), its 33 landmarks mapped to COCO-18.
  openpose   controlnet-aux's OpenPose body network; weights from a local .pth (loaded with
             torch.load(weights_only=True), never unpickled) or the Hugging Face hub.
  json       an OpenPose JSON the user supplies (COCO-18 or BODY_25), read by sievenet.data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import PIL.Image

from sievenet.data.representation import NUM_KEYPOINTS
from sievenet.errors import TryOnError

POSE_BACKENDS = ("mediapipe", "openpose", "json")
MIN_CONFIDENCE = 0.3  # keypoints below this are treated as missing wherever they are used
OPENPOSE_ENV = "SIEVENET_OPENPOSE_WEIGHTS"  # local body_pose_model.pth, used when no path is given
OPENPOSE_HUB = ("lllyasviel/Annotators", "body_pose_model.pth")

# COCO-18 index -> mediapipe landmark index; the neck (1) has no landmark and is the mid-shoulder point.
_MEDIAPIPE_TO_COCO = {
    0: 0,  # nose
    2: 12,  # right shoulder
    3: 14,  # right elbow
    4: 16,  # right wrist
    5: 11,  # left shoulder
    6: 13,  # left elbow
    7: 15,  # left wrist
    8: 24,  # right hip
    9: 26,  # right knee
    10: 28,  # right ankle
    11: 23,  # left hip
    12: 25,  # left knee
    13: 27,  # left ankle
    14: 5,  # right eye
    15: 2,  # left eye
    16: 8,  # right ear
    17: 7,  # left ear
}

# OpenPose's COCO-18 limbs and colours, so skeletons look like every other OpenPose tool's.
LIMBS = [
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
]  # fmt: skip
LIMB_COLOURS = [
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
]  # fmt: skip


@dataclass
class PoseResult:
    """Keypoints of the person to dress, plus what the backend saw around them."""

    keypoints: np.ndarray  # (18, 3) photo pixels (x, y, confidence); missing = confidence 0
    people: int = 1  # how many people the backend found (the keypoints are the largest one's)
    mask: np.ndarray | None = None  # (H, W) float32 person mask in [0, 1], when the backend segments too
    warnings: list[str] = field(default_factory=list)


def visible(keypoints: np.ndarray, threshold: float = MIN_CONFIDENCE) -> np.ndarray:
    """Keypoints with every point under `threshold` set to confidence 0 (missing), as the priors expect."""
    out = np.array(keypoints, dtype=np.float32, copy=True)
    out[out[:, 2] < threshold] = 0.0
    return out


def mediapipe_to_coco(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """Map mediapipe's 33 pose landmarks to COCO-18 pixel keypoints.

    Args:
        landmarks: (33, 3) normalised (x, y, visibility).
        width, height: photo size in pixels.

    Returns:
        (18, 3) (x, y, confidence); confidence is mediapipe's visibility, and 0 for points off the photo.
    """
    if landmarks.shape != (33, 3):
        raise ValueError(f"expected (33, 3) mediapipe landmarks, got {landmarks.shape}")
    coco = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
    for k, m in _MEDIAPIPE_TO_COCO.items():
        coco[k] = landmarks[m]
    left, right = landmarks[11], landmarks[12]
    coco[1] = [(left[0] + right[0]) / 2, (left[1] + right[1]) / 2, min(left[2], right[2])]
    coco[:, 0] *= width
    coco[:, 1] *= height
    off = (coco[:, 0] < 0) | (coco[:, 0] > width - 1) | (coco[:, 1] < 0) | (coco[:, 1] > height - 1)
    coco[off, 2] = 0.0  # mediapipe extrapolates cropped limbs off the photo; those are not observed
    return coco


def keypoint_extent(keypoints: np.ndarray, threshold: float = MIN_CONFIDENCE) -> float:
    """Area of the bounding box of the confident keypoints (ranks people by size)."""
    pts = keypoints[keypoints[:, 2] >= threshold, :2]
    if len(pts) < 2:
        return 0.0
    span = pts.max(axis=0) - pts.min(axis=0)
    return float(span[0] * span[1])


class MediaPipe:
    """mediapipe's pose (with segmentation) and face detector, built once and reused for every photo."""

    def __init__(self):
        import mediapipe as mp

        # model_complexity=1 is the only pose model inside the 0.10.21 wheel; 0 and 2 download at first use.
        self.pose = mp.solutions.pose.Pose(
            static_image_mode=True, model_complexity=1, enable_segmentation=True, min_detection_confidence=0.5
        )
        # model_selection=1: the full-range face model, for people a few metres from the camera.
        self.face = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)

    def faces(self, rgb: np.ndarray) -> np.ndarray:
        """Face boxes (N, 5) in pixels (x0, y0, x1, y1, score), largest first."""
        h, w = rgb.shape[:2]
        found = self.face.process(np.ascontiguousarray(rgb)).detections or []
        boxes = []
        for det in found:
            box = det.location_data.relative_bounding_box
            boxes.append(
                [
                    box.xmin * w,
                    box.ymin * h,
                    (box.xmin + box.width) * w,
                    (box.ymin + box.height) * h,
                    det.score[0],
                ]
            )
        boxes = np.array(boxes, dtype=np.float32).reshape(-1, 5)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        return boxes[np.argsort(-area)]

    def pose_and_mask(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """COCO-18 keypoints and the person mask of the most prominent person, or None if nobody is found."""
        h, w = rgb.shape[:2]
        result = self.pose.process(np.ascontiguousarray(rgb))
        if result.pose_landmarks is None:
            return None
        lm = np.array([[p.x, p.y, p.visibility] for p in result.pose_landmarks.landmark], dtype=np.float32)
        mask = result.segmentation_mask
        mask = np.zeros((h, w), np.float32) if mask is None else np.asarray(mask, dtype=np.float32)
        return mediapipe_to_coco(lm, w, h), mask


class MediaPipePose:
    """The default pose backend. mediapipe follows one person; a second look, with that person greyed out,
    tells whether anyone else is in the photo, and the larger of the two is the one dressed."""

    name = "mediapipe"

    def __init__(self, models: MediaPipe | None = None):
        self.models = models or MediaPipe()

    def __call__(self, rgb: np.ndarray) -> PoseResult:
        first = self.models.pose_and_mask(rgb)
        if first is None:
            raise TryOnError(
                "no person found in the photo; use a photo where one person is clearly visible from the "
                "head to at least the waist, facing the camera"
            )
        h, w = rgb.shape[:2]
        taken = (first[1] >= 0.3).astype(np.uint8)
        grow = 2 * max(3, round(0.03 * max(h, w))) + 1
        taken = cv2.dilate(taken, np.ones((grow, grow), np.uint8)) > 0
        hidden = rgb.copy()
        hidden[taken] = 127
        second = self.models.pose_and_mask(hidden)
        people = [first]
        if second is not None and _separate_person(second, taken):
            people.append(second)
        people.sort(key=lambda p: float((p[1] >= 0.5).sum()), reverse=True)
        keypoints, mask = people[0]
        notes = [f"{len(people)} people found; used the largest"] if len(people) > 1 else []
        return PoseResult(keypoints=keypoints, people=len(people), mask=mask, warnings=notes)


def _separate_person(found: tuple[np.ndarray, np.ndarray], taken: np.ndarray) -> bool:
    """Whether a second detection is a real, different person (not a remnant of the first one)."""
    keypoints, mask = found
    person = mask >= 0.5
    area = int(person.sum())
    if area < 0.02 * mask.size:
        return False
    if (person & taken).sum() > 0.3 * area:
        return False
    return int((keypoints[:, 2] >= 0.5).sum()) >= 6


class OpenPosePose:
    """controlnet-aux's OpenPose body model (CMU weights, non-commercial licence) on the photo."""

    name = "openpose"

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu"):
        import torch
        from controlnet_aux.open_pose import util
        from controlnet_aux.open_pose.body import Body
        from controlnet_aux.open_pose.model import bodypose_model

        path = resolve_openpose_weights(weights)
        try:
            # Body(path) would call torch.load without weights_only; a .pth is a pickle, so load tensors only.
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling refusals and corrupt files come as many types
            raise TryOnError(
                f"{path} is not a plain OpenPose state dict ({type(exc).__name__}: {exc}); "
                "use body_pose_model.pth from lllyasviel/Annotators"
            ) from None
        model = bodypose_model()
        try:
            model.load_state_dict(util.transfer(model, state), strict=True)
        except (KeyError, RuntimeError, TypeError) as exc:
            raise TryOnError(f"{path} does not hold OpenPose body weights ({exc})") from None
        self.body = Body.__new__(Body)  # the estimator minus its unsafe loader
        self.body.model = model.to(device).eval()

    def __call__(self, rgb: np.ndarray) -> PoseResult:
        import torch
        from controlnet_aux.open_pose.body import Body

        with torch.no_grad():
            candidate, subset = self.body(np.ascontiguousarray(rgb[:, :, ::-1]))  # OpenPose wants BGR
        people = []
        for body in Body.format_body_result(candidate, subset):
            kp = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
            for k, point in enumerate(body.keypoints):
                if point is not None:
                    kp[k] = [point.x, point.y, point.score]
            people.append(kp)
        if not people:
            raise TryOnError(
                "OpenPose found no person in the photo; use a photo where one person is clearly visible, "
                "or try --pose mediapipe"
            )
        people.sort(key=keypoint_extent, reverse=True)
        notes = [f"{len(people)} people found; used the largest"] if len(people) > 1 else []
        return PoseResult(keypoints=people[0], people=len(people), warnings=notes)


def resolve_openpose_weights(weights: str | os.PathLike | None) -> Path:
    """A local OpenPose body .pth: the given path, else $SIEVENET_OPENPOSE_WEIGHTS, else the hub's copy."""
    chosen = weights or os.environ.get(OPENPOSE_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise TryOnError(
                f"OpenPose weights {str(path)!r} do not exist; give the path to body_pose_model.pth"
            )
        return path
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(*OPENPOSE_HUB))
    except Exception as exc:  # offline, hub down, gated: all mean "get the file yourself"
        raise TryOnError(
            f"could not fetch {OPENPOSE_HUB[1]} from the Hugging Face hub ({type(exc).__name__}); download it "
            f"from https://huggingface.co/{OPENPOSE_HUB[0]} and pass its path with --openpose-weights or "
            f"${OPENPOSE_ENV}, or use --pose mediapipe (offline)"
        ) from None


class JsonPose:
    """Keypoints from an OpenPose JSON file (COCO-18 or BODY_25), for photos already processed elsewhere."""

    name = "json"

    def __init__(self, path: str | os.PathLike):
        from sievenet.data import read_openpose_json

        try:
            self.keypoints = np.asarray(read_openpose_json(path), dtype=np.float32)
        except Exception as exc:  # the reader raises DataError; a user file may fail in other ways too
            raise TryOnError(f"cannot use the keypoints JSON {str(path)!r}: {exc}") from None

    def __call__(self, rgb: np.ndarray) -> PoseResult:
        h, w = rgb.shape[:2]
        kp = self.keypoints
        seen = kp[:, 2] > 0
        if not seen.any():
            raise TryOnError("the keypoints JSON has no detected keypoints (every confidence is 0)")
        if (kp[seen, 0] > w * 1.05).any() or (kp[seen, 1] > h * 1.05).any():
            raise TryOnError(
                f"the keypoints JSON has points outside the {w}x{h} photo; was it made for another image or size?"
            )
        return PoseResult(keypoints=kp.copy())


def draw_skeleton(
    image: PIL.Image.Image | np.ndarray, keypoints: np.ndarray, *, dim: float = 0.5
) -> PIL.Image.Image:
    """OpenPose-style skeleton over a dimmed copy of the image (the "pose" stage)."""
    canvas = (np.asarray(image, dtype=np.float32) * dim).astype(np.uint8).copy()
    scale = max(canvas.shape[:2]) / 256
    thickness = max(1, round(2 * scale))
    kp = visible(keypoints)
    for (a, b), colour in zip(LIMBS, LIMB_COLOURS, strict=False):
        if kp[a, 2] > 0 and kp[b, 2] > 0:
            pa = (round(float(kp[a, 0])), round(float(kp[a, 1])))
            pb = (round(float(kp[b, 0])), round(float(kp[b, 1])))
            cv2.line(canvas, pa, pb, colour, thickness, cv2.LINE_AA)
    for k in range(NUM_KEYPOINTS):
        if kp[k, 2] > 0:
            centre = (round(float(kp[k, 0])), round(float(kp[k, 1])))
            cv2.circle(canvas, centre, thickness + 1, LIMB_COLOURS[k], -1, cv2.LINE_AA)
    return PIL.Image.fromarray(canvas)
