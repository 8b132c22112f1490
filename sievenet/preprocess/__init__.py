"""Photo -> PersonRepresentation: pose backends, person masks, parsing (the learned parser in sievenet.parser,
or the heuristic in parsing.py), garment cut-out, framing."""

from sievenet.preprocess.framing import CropBox, crop, keypoints_to_crop, paste_back, person_box
from sievenet.preprocess.garment import Garment, background_mask, prepare_garment
from sievenet.preprocess.image_io import Photo, load_image
from sievenet.preprocess.masks import MASK_BACKENDS, MediaPipeMask, RembgMask, select_person
from sievenet.preprocess.parsing import parse_person
from sievenet.preprocess.person import FramedPerson, Preprocessor, backend_problems
from sievenet.preprocess.pose import (
    POSE_BACKENDS,
    JsonPose,
    MediaPipe,
    MediaPipePose,
    OpenPosePose,
    PoseResult,
    draw_skeleton,
    mediapipe_to_coco,
    visible,
)

__all__ = [
    "MASK_BACKENDS",
    "POSE_BACKENDS",
    "CropBox",
    "FramedPerson",
    "Garment",
    "JsonPose",
    "MediaPipe",
    "MediaPipeMask",
    "MediaPipePose",
    "OpenPosePose",
    "Photo",
    "PoseResult",
    "Preprocessor",
    "RembgMask",
    "background_mask",
    "backend_problems",
    "crop",
    "draw_skeleton",
    "keypoints_to_crop",
    "load_image",
    "mediapipe_to_coco",
    "parse_person",
    "paste_back",
    "person_box",
    "prepare_garment",
    "select_person",
    "visible",
]
