"""Pose estimation behind one interface: a photo in, COCO-18 keypoints (x, y, confidence) in photo pixels out.

Backends:
  mediapipe  offline, the default: mediapipe 0.10.21 `solutions.pose` (model_complexity=1, whose model ships
             inside the wheel; 0 and 2 would try to download), its 33 landmarks mapped to COCO-18.
  openpose   controlnet-aux's OpenPose body network; weights from a local .pth (loaded with
             torch.load(weights_only=True), never unpickled), the Hugging Face cache, or the hub when
             $SIEVENET_ALLOW_DOWNLOADS=1 (without a local file and that permission it is unavailable at once).
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
# "1" lets a backend whose model file is not on this machine download it on first use. Off by default: a
# server that cannot reach the hub must not spend every request on a download that times out.
DOWNLOAD_ENV = "SIEVENET_ALLOW_DOWNLOADS"

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
        path = resolve_openpose_weights(weights)  # first: an unavailable backend is known before any import
        import torch
        from controlnet_aux.open_pose import util
        from controlnet_aux.open_pose.body import Body
        from controlnet_aux.open_pose.model import bodypose_model

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


def downloads_allowed() -> bool:
    """Whether a missing pose or mask model may be downloaded ($SIEVENET_ALLOW_DOWNLOADS=1, hub not offline)."""
    yes = ("1", "true", "yes", "on")
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in yes and (
        os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in yes
    )


def openpose_problem(weights: str | os.PathLike | None = None) -> str | None:
    """Why OpenPose cannot run here (for any user to read), or None; checks files and packages only."""
    import importlib.util

    if importlib.util.find_spec("controlnet_aux") is None:
        return "OpenPose is not installed on this server; use the mediapipe pose instead"
    chosen = weights or os.environ.get(OPENPOSE_ENV)
    if chosen:
        if Path(chosen).expanduser().is_file():
            return None
        return f"OpenPose's model file is missing on this server; use the mediapipe pose instead (check ${OPENPOSE_ENV})"
    if _hub_cached(*OPENPOSE_HUB) is not None or downloads_allowed():
        return None
    return (
        "OpenPose is not available on this server: its model file is not installed; use the mediapipe pose "
        f"instead (to install it, set ${OPENPOSE_ENV} or ${DOWNLOAD_ENV}=1)"
    )


def _hub_cached(repo_id: str, filename: str) -> str | None:
    """The local copy of a hub file if the Hugging Face cache has one (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # no huggingface_hub, or an unreadable cache: nothing cached
        return None
    return found if isinstance(found, str) else None


def resolve_openpose_weights(weights: str | os.PathLike | None) -> Path:
    """A local OpenPose body .pth: the given path, else $SIEVENET_OPENPOSE_WEIGHTS, else the hub's copy (from the
    cache, or downloaded where $SIEVENET_ALLOW_DOWNLOADS=1); without any of them it fails at once."""
    chosen = weights or os.environ.get(OPENPOSE_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise TryOnError(
                f"OpenPose weights {str(path)!r} do not exist; give the path to body_pose_model.pth"
            )
        return path
    cached = _hub_cached(*OPENPOSE_HUB)
    if cached is not None:
        return Path(cached)
    problem = openpose_problem(weights)
    if problem is not None:
        raise TryOnError(problem)
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(*OPENPOSE_HUB))
    except Exception as exc:  # offline, hub down, gated: all mean "get the file yourself"
        raise TryOnError(
            f"could not fetch OpenPose's model file from the Hugging Face hub ({type(exc).__name__}); use the "
            f"mediapipe pose instead (to install it, download {OPENPOSE_HUB[1]} from "
            f"https://huggingface.co/{OPENPOSE_HUB[0]} and set ${OPENPOSE_ENV})"
        ) from None


KEYPOINT_NAMES = (
    "nose", "neck", "right shoulder", "right elbow", "right wrist", "left shoulder", "left elbow", "left wrist",
    "right hip", "right knee", "right ankle", "left hip", "left knee", "left ankle", "right eye", "left eye",
    "right ear", "left ear",
)  # fmt: skip
MAX_KEYPOINTS_JSON_BYTES = 1_000_000  # an OpenPose file for one photo is a few kB
OFF_PHOTO_TOLERANCE = 0.05  # keypoints may lie this fraction of the photo's size beyond its edge
CONFIDENCE_TOLERANCE = 0.05  # confidences up to 1 + this are rounding (clipped to 1, with a note)


class JsonPose:
    """Keypoints from an OpenPose JSON file (COCO-18 or BODY_25), for photos already processed elsewhere.

    The file is a user's: every value is checked (a plain finite number, a confidence in 0..1, a point on the
    photo) and each problem is reported in words, naming the keypoint. Messages show the file's name only.
    """

    name = "json"

    def __init__(self, path: str | os.PathLike):
        from sievenet.data.openpose import BODY25_TO_COCO18

        shown = f"the keypoints JSON {Path(path).name!r}"
        values, self.notes = _read_keypoint_values(Path(path), shown)
        kp = np.asarray(values, dtype=np.float64).reshape(-1, 3)
        if len(kp) == 25:
            kp = kp[list(BODY25_TO_COCO18)]
        kp[kp[:, 2] <= 0] = 0.0  # OpenPose writes missing points as zeros; make sure they are
        self.keypoints = kp  # float64 until the bounds are checked: 1e39 must not turn into inf first
        self.shown = shown

    def __call__(self, rgb: np.ndarray) -> PoseResult:
        h, w = rgb.shape[:2]
        kp = self.keypoints
        seen = kp[:, 2] > 0
        if not seen.any():
            raise TryOnError(f"cannot use {self.shown}: it has no detected keypoints (every confidence is 0)")
        for axis, size in ((0, w), (1, h)):
            margin = OFF_PHOTO_TOLERANCE * size
            for k in np.flatnonzero(seen):
                value = kp[k, axis]
                if not -margin <= value <= size + margin:
                    raise TryOnError(
                        f"cannot use {self.shown}: keypoint {k} ({KEYPOINT_NAMES[k]}) has {'xy'[axis]} = {value:.6g}, outside "
                        f"the photo (0..{size}); was the file made for another image or size?"
                    )
        out = kp.copy()
        out[:, 0] = out[:, 0].clip(0, w - 1)
        out[:, 1] = out[:, 1].clip(0, h - 1)
        out[~seen] = 0.0
        return PoseResult(keypoints=out.astype(np.float32), warnings=list(self.notes))


def _read_keypoint_values(path: Path, shown: str) -> tuple[list[float], list[str]]:
    """people[0].pose_keypoints_2d of an OpenPose JSON, checked value by value; returns (values, notes)."""
    import json

    try:
        if path.stat().st_size > MAX_KEYPOINTS_JSON_BYTES:
            raise TryOnError(
                f"cannot use {shown}: it is larger than {MAX_KEYPOINTS_JSON_BYTES // 1000} kB; an OpenPose file for "
                "one photo "
                "is a few kB"
            )
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TryOnError(f"cannot use {shown}: it does not exist; check the path") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise TryOnError(
            f"cannot use {shown}: it is not a readable JSON file; give an OpenPose *_keypoints.json"
        ) from None
    people = doc.get("people") if isinstance(doc, dict) else None
    if not isinstance(people, list) or not people or not isinstance(people[0], dict):
        raise TryOnError(
            f"cannot use {shown}: it has no person in its 'people' list; run pose estimation on this photo again"
        )
    values = people[0].get("pose_keypoints_2d")
    if not isinstance(values, list):
        raise TryOnError(f"cannot use {shown}: people[0] has no 'pose_keypoints_2d' list of numbers")
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TryOnError(
                f"cannot use {shown}: value {i} of 'pose_keypoints_2d' is {type(value).__name__} {value!r:.40}, not a number; "
                "the list must hold plain numbers, x, y and confidence for each keypoint in turn"
            )
    if len(values) not in (54, 75):
        raise TryOnError(
            f"cannot use {shown}: 'pose_keypoints_2d' holds {len(values)} numbers; an OpenPose file has 54 (18 COCO "
            "keypoints x 3) or 75 (25 BODY_25 keypoints x 3)"
        )
    notes = []
    for k in range(len(values) // 3):
        x, y, confidence = (float(v) for v in values[3 * k : 3 * k + 3])
        for label, value in (("x", x), ("y", y), ("confidence", confidence)):
            if not np.isfinite(value):
                raise TryOnError(
                    f"cannot use {shown}: keypoint {k} has {label} = {value}; every value must be a finite number"
                )
        if not 0.0 <= confidence <= 1.0 + CONFIDENCE_TOLERANCE:
            raise TryOnError(
                f"cannot use {shown}: keypoint {k} has confidence {confidence:.6g}; confidences run from 0 (missing) to 1"
            )
        if confidence > 1.0:
            values[3 * k + 2] = 1.0
            notes.append(f"keypoint {k} of the keypoints JSON had confidence {confidence:.4g}; used 1")
    return values, notes


def orientation_problem(keypoints: np.ndarray, threshold: float = MIN_CONFIDENCE) -> str | None:
    """Why the person looks rotated (lying on a side or upside down), or None when upright or undecidable.

    SieveNet was trained on upright people; a photo turned by 90 or 180 degrees is dressed wrongly. The test is
    the body's axis, mid-hip to mid-shoulder (else hips to head, else shoulders to head), which points up in a
    photo of a standing or sitting person. Up to 45 degrees of lean passes.

    Args:
        keypoints: (18, 3) photo pixels (x, y, confidence), COCO-18.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    seen = kp[:, 2] >= threshold

    def middle(*indices: int) -> np.ndarray | None:
        found = [kp[i, :2] for i in indices if seen[i]]
        return np.mean(found, axis=0) if found else None

    hips, shoulders, head = middle(8, 11), middle(2, 5), middle(0, 14, 15, 16, 17)
    axes = [
        (a, b)
        for a, b in ((shoulders, hips), (head, hips), (head, shoulders))
        if a is not None and b is not None
    ]
    if not axes:
        return None
    top, bottom = axes[0]
    dx, dy = top - bottom  # image y grows downwards: upright means dy < 0
    length = float(np.hypot(dx, dy))
    if length < 1e-6:
        return None
    if -dy >= abs(dx):  # within 45 degrees of upright
        return None
    if dy > abs(dx):
        how = "upside down (the head is below the body)"
    else:
        how = f"rotated by 90 degrees (the head points to the {'left' if dx < 0 else 'right'})"
    return (
        f"the person in the photo seems {how}; rotate the photo so the person stands upright, then try again"
    )


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
