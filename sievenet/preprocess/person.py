"""The preprocessing steps in one object that builds its models once: pose, person mask, framing + parsing.

TryOnPipeline and `python -m sievenet.preprocess` both run photos through a Preprocessor, so the VITON-HD
files the command writes are exactly what the pipeline feeds the model.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from sievenet.data import representation
from sievenet.errors import TryOnError
from sievenet.preprocess.framing import CropBox, crop, keypoints_to_crop, person_box
from sievenet.preprocess.garment import Garment, prepare_garment
from sievenet.preprocess.image_io import Photo
from sievenet.preprocess.masks import MASK_BACKENDS, MediaPipeMask, RembgMask, rembg_problem, select_person
from sievenet.preprocess.parsing import parse_person
from sievenet.preprocess.pose import (
    POSE_BACKENDS,
    JsonPose,
    MediaPipe,
    MediaPipePose,
    OpenPosePose,
    PoseResult,
    openpose_problem,
    orientation_problem,
    visible,
)


def backend_problems(
    *, openpose_weights: str | os.PathLike | None = None, rembg_model: str | os.PathLike | None = None
) -> dict[str, str | None]:
    """Which pose and mask backends can run here: {"pose:openpose": None or why not, "mask:rembg": ..., ...}.

    Cheap (package lookups and file checks, no model is built, no network) so an app can call it at start to
    decide what to offer; each reason is written for any user to read.
    """
    import importlib.util

    mediapipe = (
        None
        if importlib.util.find_spec("mediapipe") is not None
        else "mediapipe is not installed on this server; reinstall the requirements"
    )
    return {
        "pose:mediapipe": mediapipe,
        "pose:openpose": openpose_problem(openpose_weights),
        "pose:json": None,  # needs only the user's file
        "mask:mediapipe": mediapipe,
        "mask:rembg": rembg_problem(rembg_model),
    }


PARSERS = ("learned", "heuristic")


def add_parser_arguments(parser) -> None:
    """--parser and --parser-weights, the same on every command that parses a person photo."""
    parser.add_argument(
        "--parser",
        default="learned",
        choices=PARSERS,
        help="human parser: learned (default, weights/parser-s) or heuristic (geometry and colours)",
    )
    parser.add_argument(
        "--parser-weights", default=None, help="human-parser release folder for --parser learned"
    )


@dataclass
class FramedPerson:
    """A person cut to the model's frame, with everything SieveNet conditions on (DESIGN §4)."""

    image: np.ndarray  # (H, W, 3) uint8 crop
    mask: np.ndarray  # (H, W) float32 person mask of the crop
    keypoints: np.ndarray  # (18, 3) crop pixels, unconfident points zeroed
    parse: np.ndarray  # (H, W) int64 model classes
    box: CropBox  # where the crop lies in the photo

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(person (3, H, W) in [-1, 1], priors (19, H, W), tt_priors (3, H, W)), built by data.representation."""
        person = torch.from_numpy(self.image).permute(2, 0, 1).float() / 127.5 - 1.0
        parse = torch.from_numpy(self.parse)
        priors = representation.priors(torch.from_numpy(self.keypoints), parse)
        return person, priors, representation.tt_priors(person, parse)


class Preprocessor:
    """Pose, masks, parsing and garment cut-out, with each backend's models built on first use and kept.

    Args:
        openpose_weights: local body_pose_model.pth for pose="openpose" (else $SIEVENET_OPENPOSE_WEIGHTS or the hub).
        rembg_model: local U^2-Net .onnx for mask="rembg" (else $SIEVENET_REMBG_MODEL or u2net_human_seg).
        device: where OpenPose runs.
        parser: "learned" (default: the shipped parser in weights/parser-s, or parser_weights) or "heuristic"
            (geometry and colours, sievenet.preprocess.parsing). Without the learned parser's weights the
            heuristic is used, with a warning (also kept in `parser_note`).
        parser_weights: a parser release folder for parser="learned".
    """

    def __init__(
        self,
        *,
        openpose_weights: str | os.PathLike | None = None,
        rembg_model: str | os.PathLike | None = None,
        device: str = "cpu",
        parser: str = "learned",
        parser_weights: str | os.PathLike | None = None,
    ):
        if parser not in PARSERS:
            raise TryOnError(f"unknown parser {parser!r}; choose one of {', '.join(PARSERS)}")
        self.parser = parser
        self.parser_weights = parser_weights
        self.parser_note: str | None = None  # why the heuristic stands in for the learned parser
        self._learned = None
        self.openpose_weights = openpose_weights
        self.rembg_model = rembg_model
        self.device = device
        self._mediapipe: MediaPipe | None = None
        self._openpose: OpenPosePose | None = None
        self._rembg: RembgMask | None = None
        self._failed: dict[str, TryOnError] = {}  # a backend that could not be built fails fast from then on

    @property
    def learned_parser(self):
        """The learned parser when this preprocessor's parser is "learned" (built on first use), or None when it
        is "heuristic" or the learned parser's default weights are absent.

        Raises:
            WeightsError: weights that exist but fail their checks, or a parser_weights path that is missing.
        """
        return self.parser_for(self.parser)

    def parser_for(self, name: str):
        """The learned parser for name "learned" (None when its default weights are absent: the heuristic stands
        in, with `parser_note`), None for "heuristic".

        Raises:
            TryOnError: an unknown name. WeightsError: as for `learned_parser`.
        """
        if name not in PARSERS:
            raise TryOnError(f"unknown parser {name!r}; choose one of {', '.join(PARSERS)}")
        if name != "learned" or self.parser_note is not None:
            return None
        if self._learned is None:
            from sievenet.parser import DEFAULT_PARSER_WEIGHTS, LearnedParser, default_parser_weights

            path = self.parser_weights or default_parser_weights()
            if self.parser_weights is None and not os.path.exists(path):
                self.parser_note = (  # shown to app visitors too: the repository's name for it, not a path
                    f"the learned human parser's weights ({DEFAULT_PARSER_WEIGHTS}) are missing; using the "
                    "heuristic parser, which may copy the old garment's hem into the result "
                    "(make them with bash sievenet/parser/reproduce.sh)"
                )
                warnings.warn(self.parser_note, stacklevel=2)
                return None
            self._learned = LearnedParser.from_pretrained(path)
        return self._learned

    def backend_problems(self) -> dict[str, str | None]:
        """backend_problems() for this preprocessor's own model files."""
        return backend_problems(openpose_weights=self.openpose_weights, rembg_model=self.rembg_model)

    def _build(self, key: str, build):
        if key in self._failed:
            raise self._failed[key]
        try:
            return build()
        except TryOnError as exc:
            self._failed[key] = exc
            raise

    @property
    def mediapipe(self) -> MediaPipe:
        """mediapipe's pose and face models (slow to construct: built once)."""
        if self._mediapipe is None:
            self._mediapipe = MediaPipe()
        return self._mediapipe

    def pose_backend(self, name: str, keypoints_json: str | os.PathLike | None = None):
        """The pose estimator called `name`: "mediapipe", "openpose" or "json" (with keypoints_json)."""
        if name == "mediapipe":
            return MediaPipePose(self.mediapipe)
        if name == "openpose":
            if self._openpose is None:
                self._openpose = self._build(
                    "pose:openpose", lambda: OpenPosePose(self.openpose_weights, device=self.device)
                )
            return self._openpose
        if name == "json":
            if keypoints_json is None:
                raise TryOnError("pose 'json' needs a keypoints JSON file (an OpenPose JSON for this photo)")
            return JsonPose(keypoints_json)
        raise TryOnError(f"unknown pose backend {name!r}; choose one of {', '.join(POSE_BACKENDS)}")

    def mask_backend(self, name: str):
        """The person-mask model called `name`: "mediapipe" or "rembg"."""
        if name == "mediapipe":
            return MediaPipeMask(self.mediapipe)
        if name == "rembg":
            if self._rembg is None:
                self._rembg = self._build("mask:rembg", lambda: RembgMask(self.rembg_model))
            return self._rembg
        raise TryOnError(f"unknown mask backend {name!r}; choose one of {', '.join(MASK_BACKENDS)}")

    def pose(self, rgb: np.ndarray, name: str = "mediapipe", keypoints_json=None) -> PoseResult:
        """COCO-18 keypoints of the (largest) person in the photo.

        Raises:
            TryOnError: no person, or a person lying on a side or upside down (the model dresses upright people).
        """
        found = self.pose_backend(name, keypoints_json)(rgb)
        problem = orientation_problem(found.keypoints)
        if problem is not None:
            raise TryOnError(problem)
        return found

    def person_mask(self, rgb: np.ndarray, found: PoseResult, name: str = "mediapipe") -> np.ndarray:
        """(H, W) soft mask of the person the keypoints belong to."""
        backend = self.mask_backend(name)
        soft = found.mask if (name == "mediapipe" and found.mask is not None) else backend(rgb)
        return select_person(soft, found.keypoints)

    def frame(
        self,
        rgb: np.ndarray,
        keypoints: np.ndarray,
        mask: np.ndarray,
        size: tuple[int, int],
        parser: str | None = None,
    ) -> FramedPerson:
        """Crop the person to an H:W box of size (H, W) and parse the crop (with `parser`, default this
        preprocessor's own)."""
        learned = self.parser_for(parser or self.parser)  # an unknown name fails before any work
        box = person_box(mask, keypoints, size)
        image = crop(rgb, box, size)
        mask_crop = crop(mask, box, size, fill=0.0)
        kp = visible(keypoints_to_crop(keypoints, box, size))
        if learned is not None:
            from sievenet.parser import neck_to_face

            # The detected face keeps the chin face (the parser can call it neck on real photos, then repainted).
            parse = neck_to_face(learned(image, mask_crop, kp), self.face_box(image, kp))
        else:
            parse = parse_person(mask_crop, kp, self.face_box(image, kp), image=image)
        return FramedPerson(image=image, mask=mask_crop, keypoints=kp, parse=parse, box=box)

    def face_box(self, rgb: np.ndarray, keypoints: np.ndarray) -> np.ndarray | None:
        """The detected face holding the nose (else the largest face), or None to fall back on keypoints."""
        faces = self.mediapipe.faces(rgb)
        if len(faces) == 0:
            return None
        if keypoints[0, 2] > 0:
            x, y = keypoints[0, :2]
            inside = (faces[:, 0] <= x) & (x <= faces[:, 2]) & (faces[:, 1] <= y) & (y <= faces[:, 3])
            if inside.any():
                return faces[np.argmax(inside)]
        return faces[0]

    def garment(self, photo: Photo, size: tuple[int, int], mask: str = "mediapipe") -> Garment:
        """The garment as a product image of size (H, W); mask="rembg" cuts it out with rembg too."""
        rembg = self.mask_backend("rembg") if mask == "rembg" else None
        return prepare_garment(photo, size, rembg=rembg)
