"""TryOnPipeline: a person photo and a garment photo in, a try-on with every intermediate out (DESIGN §1).

    pipe = TryOnPipeline.from_pretrained("weights/sievenet-s")
    result = pipe("me.jpg", "shirt.png")
    result.image.save("me_tryon.png")        # the photo at its own resolution, garment swapped
    result.stages["warp_fine"]               # I_stn^1, and every other stage named in STAGES

The person representation is built by sievenet.data.representation, the same code the VITON-HD reader and
the synthetic studio use, so a photo reaches the model exactly as training data did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import PIL.Image
import torch

from sievenet.errors import TryOnError, WeightsError
from sievenet.geometry import control_points, tps_grid, tps_points, warp
from sievenet.labels import Label, colourise_probabilities
from sievenet.models import SieveNet, TryOnOutput
from sievenet.preprocess.framing import (
    CropBox,
    check_framing,
    crop,
    crop_coordinates,
    fill_background,
    inside_photo,
    paste_back,
    photo_window,
    to_window,
)
from sievenet.preprocess.garment import Garment
from sievenet.preprocess.image_io import ImageSource, load_image
from sievenet.preprocess.person import Preprocessor
from sievenet.preprocess.pose import PoseResult, draw_skeleton

DEFAULT_WEIGHTS = "weights/sievenet-s"

# Ordered stage key -> human caption, in the order the pipeline produces them.
STAGES: dict[str, str] = {
    "pose": "Pose skeleton",
    "body_shape": "Body-shape prior",
    "tt_priors": "Texture-translation priors",
    "warp_coarse": "I_stn^0 (coarse warp)",
    "warp_fine": "I_stn^1 (fine warp)",
    "warp_difference": "Coarse vs fine difference",
    "m_exp": "M_exp (expected segmentation)",
    "m_cm": "M_cm (composition mask)",
    "rendered": "I_rp (rendered person)",
    "tryon": "I_tryon",
}

# Classes the try-on is allowed to repaint when pasted back: the garment and the skin it can cover or reveal.
EDITABLE = (Label.UPPER, Label.LEFT_ARM, Label.RIGHT_ARM, Label.NECK)
# Classes of the photo that are never repainted, whatever the model predicts: they identify the person.
PROTECTED = (Label.HAIR, Label.FACE)
CHANGED = 6 / 255  # per-pixel change (on 0..1) below which the photo's own pixel is kept
SKIN = (Label.LEFT_ARM, Label.RIGHT_ARM, Label.NECK)
FEATHER = 2.0  # blur of the paste-back edges, in crop pixels
WHITE = (255, 255, 255)  # the product image's backdrop
GRID_STEP = 8  # photo pixels between exact TPS evaluations; bilinear in between (error ~0.01 px)
RESOLUTIONS = ("photo", "model")
POSE_SIDE = 1024  # mediapipe sees a photo at a few hundred pixels: bigger photos are shrunk to this first
SMALL_PERSON_PHOTO = 1000  # photos this large that show no person may show one too small to find
DIFFERENCE_GAIN = 4.0  # |I_stn^1 - I_stn^0| of 0.25 (in [-1, 1] units) shows at full brightness

# (fraction of the work done when the step starts, step name) for progress callbacks.
_STEPS = {
    "load": 0.0,
    "pose": 0.05,
    "mask": 0.25,
    "parse": 0.35,
    "garment": 0.45,
    "model": 0.55,
    "render": 0.8,
    "paste": 0.9,
}


@dataclass
class TryOnResult:
    """Everything one try-on produced: the pasted-back photo, the crop, every stage image and the raw tensors."""

    image: PIL.Image.Image  # the photo at its (loaded) resolution with the try-on pasted back
    crop: PIL.Image.Image  # H x W try-on
    photo: PIL.Image.Image  # the person photo as loaded (upright, RGB, maybe downscaled): "before" of .image
    person_crop: PIL.Image.Image  # H x W framed person the model saw: "before" of .crop
    stages: dict[str, PIL.Image.Image]  # keys of STAGES, in order, each H x W RGB
    keypoints: np.ndarray  # (18, 3) photo pixels (x, y, confidence)
    parse: np.ndarray  # (H, W) int64 model classes of the crop
    timings: dict[str, float]  # ms per step: load, pose, mask, parse, garment, model, render, paste, total
    warnings: list[str] = field(default_factory=list)  # e.g. "2 people found; used the largest"
    output: TryOnOutput | None = None  # raw tensors (batch 1), for researchers
    box: CropBox | None = None  # where the crop lies in the photo
    changed: np.ndarray | None = None  # (h, w) bool: the only photo pixels the paste-back may have altered
    restored: np.ndarray | None = None  # (H, W) bool crop pixels whose backdrop was restored from the photo
    parser: str = "learned"  # the human parser that made `parse`: "learned" or "heuristic"


class TryOnPipeline:
    """Photo in, try-on out: preprocessing, SieveNet, stage rendering and paste-back, with its models built once.

    Args:
        model: a SieveNet (its config fixes the crop size H x W).
        device: where the network runs; preprocessing runs on the CPU.
        openpose_weights: local body_pose_model.pth for pose="openpose" (else $SIEVENET_OPENPOSE_WEIGHTS; the
            hub only with SIEVENET_ALLOW_DOWNLOADS=1).
        rembg_model: local U^2-Net .onnx for mask="rembg" (else $SIEVENET_REMBG_MODEL; u2net_human_seg is
            downloaded only with SIEVENET_ALLOW_DOWNLOADS=1).
        parser: "learned" (default; weights/parser-s or parser_weights, the heuristic with a warning when the
            default weights are absent) or "heuristic".
        parser_weights: a human-parser release folder for parser="learned".
    """

    def __init__(
        self,
        model: SieveNet,
        device: str | torch.device = "cpu",
        *,
        openpose_weights: str | Path | None = None,
        rembg_model: str | Path | None = None,
        parser: str = "learned",
        parser_weights: str | Path | None = None,
    ):
        self.device = torch.device(device)
        # channels_last: the same arithmetic in a faster memory layout on CPUs (1.08x measured on the model).
        self.model = model.to(self.device).eval().to(memory_format=torch.channels_last)
        self.size = (model.config.height, model.config.width)
        self.preprocessor = Preprocessor(
            openpose_weights=openpose_weights,
            rembg_model=rembg_model,
            device=str(self.device),
            parser=parser,
            parser_weights=parser_weights,
        )
        _ = self.preprocessor.learned_parser  # built now: broken parser weights fail here, not on a photo

    @classmethod
    def from_pretrained(
        cls, weights: str | Path = DEFAULT_WEIGHTS, device: str | torch.device = "cpu", **options
    ) -> TryOnPipeline:
        """Load a SieveNet release (folder, .safetensors file or hf://org/repo) and wrap it in a pipeline.

        Raises:
            WeightsError: the release is missing or broken; the message says how to get or make one.
        """
        path = Path(weights)
        if str(weights) == DEFAULT_WEIGHTS and not path.exists():
            # The default path is relative to the repository: look there too when run from elsewhere.
            repo_default = Path(__file__).resolve().parent.parent / DEFAULT_WEIGHTS
            if repo_default.exists():
                weights = repo_default
            else:
                raise WeightsError(
                    f"no SieveNet weights at {DEFAULT_WEIGHTS!r}: train them with "
                    "`python -m sievenet.train sievenet/train/configs/sievenet-s.yaml` (see README), "
                    "or pass --weights PATH / from_pretrained(PATH) to a release folder or hf://org/repo"
                )
        return cls(SieveNet.from_pretrained(weights, device=device), device=device, **options)

    # ---- the try-on ---------------------------------------------------------------------------------------

    def __call__(
        self,
        person: ImageSource,
        garment: ImageSource,
        *,
        pose: str = "mediapipe",
        mask: str = "mediapipe",
        keypoints_json: str | Path | None = None,
        progress: Callable[[float, str], None] | None = None,
        resolution: str = "photo",
        region_mask: np.ndarray | None = None,
        parser: str | None = None,
    ) -> TryOnResult:
        """Dress the person in `person` with the garment in `garment`.

        Args:
            person: photo of one person (path, bytes, array or PIL image), any size.
            garment: photo of a garment on a plain background, or a PNG with transparency.
            pose: "mediapipe" (offline), "openpose" or "json" (with keypoints_json).
            mask: "mediapipe" (offline) or "rembg"; rembg also cuts out the garment.
            keypoints_json: an OpenPose JSON with this photo's keypoints, for pose="json".
            progress: called as progress(fraction, step) when each step starts.
            resolution: "photo" composes the garment at the photo's own resolution from the full-resolution
                garment photo (the TPS is evaluated there); "model" pastes the H x W try-on, upsampled.
            region_mask: (h, w) bool, any size (resized to the photo): a region the user painted. It is the
                garment region instead of the automatic parse there, and only there may the photo change.
            parser: "learned" or "heuristic" for this photo; None: the pipeline's own (its Preprocessor's).

        Returns:
            TryOnResult; result.warnings lists what the pipeline had to decide for you.

        Raises:
            TryOnError: any input that cannot be used; the message says what to do.
        """
        timings: dict[str, float] = {}
        start = time.perf_counter()
        clock = [start]

        order = list(_STEPS)

        def begin(name: str) -> None:
            now = time.perf_counter()
            index = order.index(name)
            if index > 0:  # starting a step closes the previous step's timer
                timings[order[index - 1]] = (now - clock[0]) * 1e3
            clock[0] = now
            if progress is not None:
                progress(_STEPS[name], name)

        if resolution not in RESOLUTIONS:
            raise TryOnError(f"unknown resolution {resolution!r}; choose one of {', '.join(RESOLUTIONS)}")
        parser = parser or self.preprocessor.parser
        learned = self.preprocessor.parser_for(parser)  # an unknown parser fails before any work
        begin("load")
        photo = load_image(person, what="person photo")
        cloth_photo = load_image(garment, what="garment photo")
        notes = [*photo.warnings, *cloth_photo.warnings]
        rgb = photo.array

        begin("pose")
        pre = self.preprocessor
        pre.mask_backend(mask)  # built before the pose runs so a bad mask option fails fast
        try:
            found = _pose_on_reduced(pre, rgb, pose, keypoints_json)
        except TryOnError as error:
            if max(rgb.shape[:2]) < SMALL_PERSON_PHOTO:
                raise
            # Pose models see the photo at a few hundred pixels: a small person in a big photo vanishes.
            raise TryOnError(
                f"{error}; if the person is small in a large photo, crop it around them"
            ) from None
        notes += found.warnings
        keypoints = found.keypoints

        begin("mask")
        soft = pre.person_mask(rgb, found, mask)
        notes += check_framing(keypoints, soft, self.size)

        begin("parse")
        framed = pre.frame(rgb, keypoints, soft, self.size, parser=parser)
        if parser == "learned" and pre.parser_note:
            notes.append(pre.parser_note)
        region = None
        if region_mask is not None:
            region = _region_in_crop(region_mask, rgb.shape[:2], framed.box, self.size)
            framed.parse[region] = Label.UPPER
        person_crop, kp_crop, parse = framed.image, framed.keypoints, framed.parse
        _, priors, tt_priors = framed.tensors()

        begin("garment")
        cloth = pre.garment(cloth_photo, self.size, mask)

        begin("model")
        with torch.no_grad():
            output = self.model(
                *(
                    t[None].to(self.device, memory_format=torch.channels_last)
                    for t in (priors, cloth.cloth, tt_priors, cloth.mask)
                )
            )
        output = _to_cpu(output)

        begin("render")
        tryon = _to_uint8(output.tryon[0])
        stages = {
            "pose": draw_skeleton(person_crop, kp_crop),
            "body_shape": _gray(priors[-1]),
            "tt_priors": PIL.Image.fromarray(_to_uint8(tt_priors)),
            "warp_coarse": PIL.Image.fromarray(_to_uint8(output.warped_coarse[0])),
            "warp_fine": PIL.Image.fromarray(_to_uint8(output.warped_fine[0])),
            "warp_difference": _difference(output.warped_fine[0], output.warped_coarse[0]),
            "m_exp": _m_exp_image(output.m_exp[0]),
            "m_cm": _gray(output.composition_mask[0, 0]),
            "rendered": PIL.Image.fromarray(_to_uint8(output.rendered[0])),
            "tryon": PIL.Image.fromarray(tryon),
        }

        begin("paste")
        inside = inside_photo(framed.box, self.size, rgb.shape)
        plan = paste_plan(parse, output, person_crop, tryon, framed.mask, inside)
        if region is not None:  # the painted override: the try-on everywhere inside it, nothing outside
            plan.network = (plan.network | (region & ~plan.restore)) & region
            plan.restore &= region
        if resolution == "photo":
            pasted, changed = compose_in_photo(rgb, output, cloth, framed.box, plan)
        else:
            alpha = (plan.network | plan.restore).astype(np.float32)
            pasted = paste_back(rgb, tryon, alpha, framed.box, feather=FEATHER)
            changed = (pasted != rgb).any(axis=2)
        timings["paste"] = (time.perf_counter() - clock[0]) * 1e3
        timings["total"] = (time.perf_counter() - start) * 1e3
        if progress is not None:
            progress(1.0, "done")
        return TryOnResult(
            image=PIL.Image.fromarray(pasted),
            crop=stages["tryon"],
            photo=PIL.Image.fromarray(rgb),
            person_crop=PIL.Image.fromarray(person_crop),
            stages=stages,
            keypoints=keypoints,
            parse=parse,
            timings=timings,
            warnings=notes,
            output=output,
            box=framed.box,
            changed=changed,
            restored=plan.restore,
            parser="learned" if learned is not None else "heuristic",
        )


# ---- rendering helpers ------------------------------------------------------------------------------------


def _pose_on_reduced(pre: Preprocessor, rgb: np.ndarray, pose: str, keypoints_json) -> PoseResult:
    """Run mediapipe on the photo shrunk to POSE_SIDE (it runs twice: a second look finds other people);
    keypoints and mask come back in the photo's own pixels. Other backends see the photo as it is."""
    h, w = rgb.shape[:2]
    factor = POSE_SIDE / max(h, w)
    if pose != "mediapipe" or factor >= 1:
        return pre.pose(rgb, pose, keypoints_json)
    small = cv2.resize(rgb, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)
    found = pre.pose(small, pose, keypoints_json)
    sx, sy = w / small.shape[1], h / small.shape[0]
    keypoints = found.keypoints.copy()
    keypoints[:, 0] = (keypoints[:, 0] + 0.5) * sx - 0.5
    keypoints[:, 1] = (keypoints[:, 1] + 0.5) * sy - 0.5
    mask = None if found.mask is None else cv2.resize(found.mask, (w, h), interpolation=cv2.INTER_LINEAR)
    return PoseResult(keypoints=keypoints, people=found.people, mask=mask, warnings=found.warnings)


def _region_in_crop(
    region: np.ndarray, photo_size: tuple[int, int], box: CropBox, size: tuple[int, int]
) -> np.ndarray:
    """A painted (h, w) region of the photo, resized to the photo and cut like the crop: (H, W) bool."""
    region = np.asarray(region, dtype=np.float32)
    if region.ndim != 2:
        raise TryOnError(f"the painted region must be a 2-D mask, got shape {region.shape}")
    resized = cv2.resize(region, photo_size[::-1], interpolation=cv2.INTER_NEAREST)
    return crop(resized, box, size, fill=0.0) >= 0.5


def _to_cpu(output: TryOnOutput) -> TryOnOutput:
    fields = {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in vars(output).items()}
    return TryOnOutput(**fields)


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def _gray(values: torch.Tensor) -> PIL.Image.Image:
    """(H, W) in [0, 1] -> RGB grey image."""
    v = (values.clamp(0, 1) * 255).round().byte().numpy()
    return PIL.Image.fromarray(np.repeat(v[..., None], 3, axis=2))


def _difference(fine: torch.Tensor, coarse: torch.Tensor) -> PIL.Image.Image:
    """Where stage 2 moved the garment: mean |I_stn^1 - I_stn^0| on a fixed scale, inferno colour map."""
    diff = (fine - coarse).abs().mean(0).mul(DIFFERENCE_GAIN / 2).clamp(0, 1)
    heat = cv2.applyColorMap((diff * 255).round().byte().numpy(), cv2.COLORMAP_INFERNO)
    return PIL.Image.fromarray(heat[..., ::-1].copy())


def _m_exp_image(m_exp: torch.Tensor) -> PIL.Image.Image:
    """(8, H, W) class probabilities -> RGB image, each pixel the probability-weighted class colour."""
    rgb = colourise_probabilities(m_exp[None])[0]  # (3, H, W) in [0, 1]
    return PIL.Image.fromarray(rgb.mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy())


@dataclass
class PastePlan:
    """Where each crop pixel of the result comes from; every pixel in neither mask is the photo's own."""

    network: np.ndarray  # (H, W) bool: the try-on (new garment, skin it reveals)
    restore: np.ndarray  # (H, W) bool: backdrop the old garment covered and the new one does not
    fill: np.ndarray  # (H, W, 3) uint8 crop with the backdrop restored from the photo (used where `restore`)


def paste_plan(
    parse: np.ndarray,
    output: TryOnOutput,
    before: np.ndarray,
    after: np.ndarray,
    person: np.ndarray,
    inside: np.ndarray | None = None,
) -> PastePlan:
    """Decide, per crop pixel, between the try-on, a restored backdrop and the photo itself.

    The try-on may change only the old garment and skin (the photo's parse) and the new garment (where I_tryon
    shows the warped product: M_cm * warped mask, near the person); never hair or face. The new garment and
    the skin the model predicts there come from the network; old-garment pixels the model calls background
    get the backdrop back, guessed from the photo's own backdrop (the network never saw this backdrop: its
    I_rp paints the studio's white there); whatever else the old garment covered (e.g. what the model calls
    lower body) stays the photo's.

    Args:
        parse: (H, W) model classes of the photo crop.
        output: the model's output (batch 1, CPU).
        before: (H, W, 3) uint8 person crop; after: (H, W, 3) uint8 I_tryon.
        person: (H, W) person mask of the crop in [0, 1].
        inside: (H, W) bool, crop pixels on the photo (the rest is padding, never a backdrop to copy).
    """
    predicted = output.m_exp[0].numpy().argmax(0)  # numpy: several times faster than torch for one small map
    # A new garment may be a little larger than the old one, but never reaches far into the backdrop.
    reach = 2 * max(1, parse.shape[1] // 16) + 1
    near_person = cv2.dilate((parse > 0).astype(np.uint8), np.ones((reach, reach), np.uint8)) > 0
    old = np.isin(parse, EDITABLE)
    warped = output.warped_mask_fine
    warped = warped[0, 0].numpy() if warped is not None else np.isin(predicted, EDITABLE).astype(np.float32)
    new = (output.composition_mask[0, 0].numpy() * warped >= 0.5) & near_person
    skin = np.isin(predicted, SKIN) & (old | (warped >= 0.5))
    protected = np.isin(parse, PROTECTED)
    changed = np.abs(after.astype(np.float32) - before.astype(np.float32)).max(axis=2) > CHANGED * 255
    network = (new | skin) & ~protected & changed
    restore = old & ~(new | skin) & (predicted == Label.BACKGROUND) & ~protected
    fill = before
    if restore.any():
        body = (person >= 0.3) | (parse > 0)
        body = cv2.dilate(body.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        if inside is not None:
            body |= ~inside
        fill = fill_background(before, restore, body)
    return PastePlan(network=network, restore=restore, fill=fill)


def tryon_at_photo(
    output: TryOnOutput, garment: Garment, box: CropBox, window: tuple[int, int, int, int]
) -> np.ndarray:
    """I_tryon at the photo's resolution over `window` (x0, y0, x1, y1) of the photo: (h', w', 3) uint8.

    I_stn^1 is read from the full-resolution garment cut-out (`Garment.sampler`, as laid out at the crop's size
    in the photo) by the fine grid (theta + delta_theta) evaluated at every photo pixel: exactly on a lattice
    every GRID_STEP pixels, bilinear in between (the spline is smooth; the error is far below a pixel). M_cm and
    I_rp (both smooth) are upsampled bilinearly, then composed as in the model: M_cm * I_stn^1 + (1 - M_cm) * I_rp.
    """
    x0, y0, x1, y1 = window
    width, height = x1 - x0, y1 - y0
    theta = (output.theta + output.delta_theta).float()  # (1, 2*G*G)
    grid_size = round((theta.shape[1] // 2) ** 0.5)
    size = output.tryon.shape[-2:]
    hi_size = (max(size[0], round(box.height)), max(size[1], round(box.width)))
    source, gain, offset = garment.sampler(hi_size)
    # The lattice sits where cv2.resize's half-pixel mapping puts its samples, one step beyond the window on
    # every side, so resizing it by GRID_STEP interpolates every window pixel between exact evaluations; the
    # map to garment pixels is affine, so it is applied to the lattice first.
    lattice = crop_coordinates(box, _lattice(x0, width), _lattice(y0, height))
    exact = tps_points(theta, grid_size, torch.from_numpy(lattice))[0].numpy() * gain + offset
    rows, cols = exact.shape[:2]
    dense = cv2.resize(exact, (cols * GRID_STEP, rows * GRID_STEP), interpolation=cv2.INTER_LINEAR)
    pixels = np.ascontiguousarray(dense[GRID_STEP : GRID_STEP + height, GRID_STEP : GRID_STEP + width])
    warped = cv2.remap(
        source, pixels, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=WHITE
    )
    m_cm = np.clip(to_window(output.composition_mask[0, 0].numpy(), box, size, window), 0.0, 1.0)
    rendered = to_window(_to_uint8(output.rendered[0]), box, size, window)
    # M_cm * I_stn^1 + (1 - M_cm) * I_rp (cv2.blendLinear normalises by the weights' sum, here 1).
    return cv2.blendLinear(rendered, warped, 1.0 - m_cm, m_cm)


def _lattice(start: int, length: int) -> np.ndarray:
    """Photo pixel indices of the TPS lattice along one side of a window: one GRID_STEP beyond each end, and
    placed so that cv2.resize by GRID_STEP lands window pixel i at output index GRID_STEP + i."""
    count = -(-length // GRID_STEP) + 2
    return start - GRID_STEP + (np.arange(count) + 0.5) * GRID_STEP - 0.5


def compose_in_photo(
    photo: np.ndarray,
    output: TryOnOutput,
    garment: Garment,
    box: CropBox,
    plan: PastePlan,
    *,
    feather: float = FEATHER,
) -> tuple[np.ndarray, np.ndarray]:
    """Compose the try-on at the photo's own resolution and paste it back (DESIGN §2: the TPS is parametric).

    I_tryon = M_cm * I_stn^1 + (1 - M_cm) * I_rp, with I_stn^1 sampled from the full-resolution garment
    cut-out by the grid of theta + delta_theta evaluated at every photo pixel, and M_cm, I_rp upsampled.
    Only the photo rectangle under the plan's masks is resampled; a pixel whose feathered alpha is 0 keeps the
    photo's own bytes (x + 0 * (y - x) is x exactly).

    Args:
        photo: (h, w, 3) uint8.
        output: the model's output for the crop (batch 1, CPU).
        garment: the garment, with its full-resolution cut-out (`Garment.sampler`).
        box: where the crop lies in the photo.
        plan: the crop-resolution paste plan.

    Returns:
        (the photo with the try-on pasted, (h, w) bool of the pixels that differ from the photo).
    """
    size = plan.network.shape
    alphas = np.dstack([plan.network, plan.restore]).astype(np.float32)  # (H, W, 2)
    if feather > 0:
        k = 2 * int(np.ceil(2 * feather)) + 1
        alphas = cv2.GaussianBlur(alphas, (k, k), feather)
    out = photo.copy()
    changed = np.zeros(photo.shape[:2], bool)
    window = photo_window(alphas.max(axis=2) > 0, box, size, photo.shape)
    if window is None:
        return out, changed
    x0, y0, x1, y1 = window
    up = np.clip(to_window(alphas, box, size, window), 0.0, 1.0)
    alpha_net, alpha_fill = up[..., 0], up[..., 1]
    region = photo[y0:y1, x0:x1]
    blended = region
    # cv2.blendLinear: (w1 * a + w2 * b) / (w1 + w2 + 1e-5) in uint8, so alpha 0 keeps a's bytes exactly.
    if alpha_fill.any():
        backdrop = to_window(plan.fill, box, size, window)  # (h', w', 3) uint8
        blended = cv2.blendLinear(blended, backdrop, 1.0 - alpha_fill, alpha_fill)
    net = photo_window(alphas[..., 0] > 0, box, size, photo.shape)
    if net is not None:
        # The garment is composed only over its own window (a fraction of a big photo).
        rows, cols = slice(net[1] - y0, net[3] - y0), slice(net[0] - x0, net[2] - x0)
        tryon = tryon_at_photo(output, garment, box, net)
        a = np.ascontiguousarray(alpha_net[rows, cols])
        blended = blended.copy() if blended is region else blended  # never write into the caller's photo
        blended[rows, cols] = cv2.blendLinear(np.ascontiguousarray(blended[rows, cols]), tryon, 1.0 - a, a)
    out[y0:y1, x0:x1] = blended
    difference = cv2.absdiff(blended, region)
    changed[y0:y1, x0:x1] = (difference[..., 0] | difference[..., 1] | difference[..., 2]) != 0
    return out, changed


def draw_control_grid(image: PIL.Image.Image, theta: torch.Tensor, grid_size: int) -> PIL.Image.Image:
    """Overlay the TPS control grid moved by `theta` on a warp image (the app's "show TPS grid" option).

    The lines are the product image's regular grid carried through the same warp as the garment, so they bend
    where the garment bends; the dots are where the product image's control points land in the warp.

    Args:
        image: a warp stage (I_stn^0 or I_stn^1), any size.
        theta: (2*G*G,) or (1, 2*G*G) TPS offsets (theta, or theta + delta_theta for the fine warp).
        grid_size: G.
    """
    theta = theta.detach().float().cpu().reshape(1, -1)
    w, h = image.size
    lines = np.zeros((h, w), np.float32)
    cells = 2 * (grid_size - 1)  # draw midlines too, so the bending between control points shows
    for i in range(cells + 1):
        x = round(i * (w - 1) / cells)
        y = round(i * (h - 1) / cells)
        lines[:, x] = 1.0
        lines[y, :] = 1.0
    grid = tps_grid(theta, grid_size, h, w)  # (1, h, w, 2)
    bent = warp(torch.from_numpy(lines)[None, None], grid, padding="zeros")[0, 0].numpy()
    canvas = np.asarray(image.convert("RGB"), dtype=np.float32)
    colour = np.array([0, 255, 255], np.float32)
    a = np.clip(bent * 1.5, 0, 1)[..., None]
    canvas = canvas * (1 - a) + colour * a
    # Each source control point shows up where the sampling grid reads closest to it.
    sources = control_points(grid_size)  # (G*G, 2)
    flat = grid[0].reshape(-1, 2)
    nearest = torch.cdist(sources, flat).argmin(dim=1)
    out = np.ascontiguousarray(canvas.round().clip(0, 255).astype(np.uint8))
    radius = max(2, round(min(w, h) / 64))
    for index in nearest.tolist():
        cy, cx = divmod(index, w)
        cv2.circle(out, (cx, cy), radius, (255, 64, 0), -1, cv2.LINE_AA)
    return PIL.Image.fromarray(out)


__all__ = [
    "DEFAULT_WEIGHTS",
    "RESOLUTIONS",
    "STAGES",
    "TryOnError",
    "TryOnPipeline",
    "TryOnResult",
    "WeightsError",
    "compose_in_photo",
    "draw_control_grid",
    "paste_plan",
    "tryon_at_photo",
]
