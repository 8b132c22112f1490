"""Person masks: mediapipe's pose segmentation (offline, default) or rembg (a U^2-Net ONNX model).

Both give a soft (H, W) mask; `select_person` then keeps only the blob the chosen keypoints sit on, so a
second person or a prop next to the subject does not end up in the body-shape prior.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import PIL.Image

from sievenet.errors import TryOnError
from sievenet.preprocess.pose import DOWNLOAD_ENV, MIN_CONFIDENCE, MediaPipe, downloads_allowed

MASK_BACKENDS = ("mediapipe", "rembg")
REMBG_ENV = "SIEVENET_REMBG_MODEL"  # local U^2-Net ONNX file, used when no path is given
REMBG_DEFAULT_MODEL = "u2net_human_seg.onnx"  # rembg's file name for the session used without a local file
MIN_PERSON_FRACTION = 0.01  # a "person" covering less of the photo than this is a detection failure


class MediaPipeMask:
    """The segmentation mask of mediapipe's pose model (reused from the pose step when that was mediapipe too)."""

    name = "mediapipe"

    def __init__(self, models: MediaPipe | None = None):
        self.models = models or MediaPipe()

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        found = self.models.pose_and_mask(rgb)
        if found is None:
            return np.zeros(rgb.shape[:2], np.float32)
        return found[1]


class RembgMask:
    """rembg's U^2-Net: a local ONNX file (session "u2net_custom"), else "u2net_human_seg" from rembg's model
    folder (downloaded on first use only where $SIEVENET_ALLOW_DOWNLOADS=1)."""

    name = "rembg"

    def __init__(self, model_path: str | os.PathLike | None = None):
        chosen = model_path or os.environ.get(REMBG_ENV)
        if chosen and not Path(chosen).expanduser().is_file():
            raise TryOnError(
                f"rembg model {str(Path(chosen).expanduser())!r} does not exist; give the path to a U^2-Net .onnx"
            )
        problem = rembg_problem(model_path)
        if problem is not None:  # known before importing rembg or trying the network
            raise TryOnError(problem)
        from rembg import new_session

        try:
            if chosen:
                self.session = new_session("u2net_custom", model_path=str(Path(chosen).expanduser()))
            else:
                self.session = new_session("u2net_human_seg")
        except Exception as exc:  # download failures and onnxruntime load errors
            raise TryOnError(
                f"could not load the rembg model ({type(exc).__name__}); use the mediapipe mask instead "
                f"(to install it, set ${REMBG_ENV} to a U^2-Net .onnx file)"
            ) from None

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        mask = self.session.predict(PIL.Image.fromarray(rgb))[0]
        return np.asarray(mask, dtype=np.float32) / 255.0


def rembg_model_home() -> Path:
    """Where rembg keeps its downloaded models (its own rule: $U2NET_HOME, else $XDG_DATA_HOME/.u2net or ~/.u2net)."""
    home = os.environ.get("U2NET_HOME") or os.path.join(os.environ.get("XDG_DATA_HOME", "~"), ".u2net")
    return Path(home).expanduser()


def rembg_problem(model_path: str | os.PathLike | None = None) -> str | None:
    """Why rembg cannot run here (for any user to read), or None; checks files and packages only."""
    import importlib.util

    if importlib.util.find_spec("rembg") is None or importlib.util.find_spec("onnxruntime") is None:
        return "rembg is not installed on this server; use the mediapipe mask instead"
    chosen = model_path or os.environ.get(REMBG_ENV)
    if chosen:
        if Path(chosen).expanduser().is_file():
            return None
        return f"rembg's model file is missing on this server; use the mediapipe mask instead (check ${REMBG_ENV})"
    if (rembg_model_home() / REMBG_DEFAULT_MODEL).is_file() or downloads_allowed():
        return None
    return (
        "rembg is not available on this server: its model file is not installed; use the mediapipe mask "
        f"instead (to install it, set ${REMBG_ENV} or ${DOWNLOAD_ENV}=1)"
    )


def select_person(mask: np.ndarray, keypoints: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Keep the connected blobs of `mask` that hold the person's confident keypoints (else the largest blob).

    Args:
        mask: (H, W) soft mask in [0, 1].
        keypoints: (18, 3) photo pixels.

    Returns:
        (H, W) float32 soft mask, zero outside the kept blobs.

    Raises:
        TryOnError: if nothing of a person is left.
    """
    binary = (mask >= threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1 or binary.mean() < MIN_PERSON_FRACTION:
        raise TryOnError(
            "no person found in the photo (the person mask is empty); use a photo with one person clearly "
            "visible against the background"
        )
    h, w = mask.shape
    kp = keypoints[keypoints[:, 2] >= MIN_CONFIDENCE]
    xs = np.clip(kp[:, 0].round().astype(int), 0, w - 1)
    ys = np.clip(kp[:, 1].round().astype(int), 0, h - 1)
    hit = np.unique(labels[ys, xs])
    hit = hit[hit > 0]
    if len(hit) == 0:
        hit = np.array([1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))])
    # Small blobs touching a keypoint (a hand beside the body) belong to the person; so do sizeable ones.
    kept = np.zeros(count, np.uint8)
    kept[hit] = 1
    keep = kept[labels]  # a lookup per pixel: cheaper than np.isin on a big photo
    # Soft edges around kept blobs are kept; isolated soft haze far from them is dropped.
    near = cv2.dilate(keep, np.ones((7, 7), np.uint8)) > 0
    return np.where(near & ((keep > 0) | (binary == 0)), mask, 0.0).astype(np.float32)
