"""The Gradio UI: `create_demo(pipeline) -> gr.Blocks`, a stage-by-stage try-on inspector."""

from __future__ import annotations

import atexit
import base64
import io
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import PIL.Image
from starlette.middleware import Middleware

from demo.guard import RequestGuard
from demo.render import (
    LEGEND_CSS,
    RequestFolders,
    bundle_name,
    control_grids,
    png_bytes,
    redraw_bundle,
    region_stage,
    stages_help_html,
    timings_markdown,
    write_request_files,
)
from sievenet.errors import SieveNetError, WeightsError
from sievenet.pipeline import TryOnPipeline, TryOnResult
from sievenet.preprocess.masks import MASK_BACKENDS, REMBG_ENV
from sievenet.preprocess.person import PARSERS
from sievenet.preprocess.pose import MIN_CONFIDENCE, OPENPOSE_ENV, POSE_BACKENDS

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "assets" / "examples"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

CSS = (
    LEGEND_CSS
    + """
#untrained-banner {background: #fff3cd; color: #3d2e00; border: 1px solid #e0b000; border-radius: 6px;
  padding: 8px 12px;}
#scope-note {font-size: 0.92em; border-left: 4px solid #6b8cff; padding: 2px 10px;}
#status .error-text {color: #c0392b;}
#stages .caption-label, #stages figcaption {white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; line-height: 1.2;}
/* Every stage on the page itself: no scroller inside the gallery, whatever the screen. */
#stages .grid-wrap {max-height: none !important; min-height: 0 !important; overflow-y: visible !important;}
@media (max-width: 700px) {
  #stages .grid-container {grid-template-columns: repeat(2, minmax(0, 1fr)) !important;}
  /* On a phone the Try on button stays on screen, above the page's end. */
  #tryon-button {position: fixed; left: 12px; right: 12px; bottom: 12px; width: auto; z-index: 60;
    box-shadow: 0 2px 12px rgba(0,0,0,.35);}
  .gradio-container {padding-bottom: 72px !important;}
}
"""
)

# Uploads above 10 MB are refused by the server before any decoding; the pipeline's own loader refuses
# decompression bombs and downscales big photos (sievenet.preprocess.image_io).
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # what Gradio's "10mb" means
# Any one request body (an API call may carry both photos as base64 data: URLs, which grow by 4/3).
MAX_REQUEST_BYTES = 2 * (MAX_UPLOAD_BYTES * 4 // 3) + 2**20
# One try-on at a time per CPU pair: torch already spreads one forward pass over the cores, and a second
# concurrent request would only make both slower (and share the pose detector between threads).
CONCURRENCY_LIMIT = max(1, (os.cpu_count() or 2) // 2)
QUEUE_SIZE = 64


class _LaunchSettings(Mapping):
    """Settings for `Blocks.launch` that belong to the app (app.py and the tests use the same ones).

    A Mapping so that `launch(**LAUNCH_SETTINGS)` gets a fresh `app_kwargs` each time: Gradio writes into that
    dict (its lifespan handler), and a shared one would chain every earlier app's handler into the next.
    """

    def _values(self) -> dict[str, Any]:
        guard = Middleware(RequestGuard, max_bytes=MAX_REQUEST_BYTES)
        return {
            "max_file_size": MAX_UPLOAD_BYTES,
            "show_error": True,
            "css": CSS,
            "app_kwargs": {"middleware": [guard]},
        }

    def __getitem__(self, key: str) -> Any:
        return self._values()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())


LAUNCH_SETTINGS: Mapping[str, Any] = _LaunchSettings()

SCOPE_NOTE = (
    "**What this model can and cannot do.** It was trained only on synthetic studio scenes (no real photos), "
    "so results on real photos are rough. It replaces **upper-body garments** (shirts, T-shirts, tops) on "
    "**one roughly front-facing person**, photographed from the head to at least the hips. It does not do "
    "trousers, dresses or shoes, side or back views, or groups. Everything runs on this server; nothing is "
    "kept after your visit."
)

BACKEND_LABELS = {
    "pose:mediapipe": "MediaPipe (built in)",
    "pose:openpose": "OpenPose",
    "pose:json": "My own keypoints (OpenPose JSON file)",
    "mask:mediapipe": "MediaPipe (built in)",
    "mask:rembg": "rembg (U²-Net)",
}


def backend_problems(pipeline: TryOnPipeline | None = None) -> dict[str, str | None]:
    """Which pose and cut-out backends can run here: key "pose:<name>" / "mask:<name>" -> None or why not.

    Uses `sievenet.preprocess.backend_problems` (cheap: files and imports only) where the library has it;
    otherwise a local check of the same kind: OpenPose and rembg count only with their model file on disk.
    """
    pre = getattr(pipeline, "preprocessor", None)
    probe = getattr(pre, "backend_problems", None)  # the pipeline's own model files
    if probe is None:
        try:
            from sievenet.preprocess import backend_problems as probe  # type: ignore[attr-defined,no-redef]
        except ImportError:
            probe = None
    if probe is not None:
        try:
            problems = dict(probe())
            for key, why in problems.items():
                if why:
                    log.info("backend %s not offered: %s", key, why)  # the operator's how-to-fix stays here
            return {key: _short_reason(why) if why else None for key, why in problems.items()}
        except Exception as exc:  # the app must start even if the probe itself breaks
            log.warning("backend probe failed (%s: %s); using the app's own check", type(exc).__name__, exc)
    openpose = getattr(pre, "openpose_weights", None) or os.environ.get(OPENPOSE_ENV)
    rembg = getattr(pre, "rembg_model", None) or os.environ.get(REMBG_ENV)
    problems: dict[str, str | None] = {f"pose:{n}": None for n in POSE_BACKENDS}
    problems.update({f"mask:{n}": None for n in MASK_BACKENDS})
    if not (openpose and Path(openpose).is_file()):
        problems["pose:openpose"] = "its model file is not installed on this server"
    if not (rembg and Path(rembg).is_file()):
        problems["mask:rembg"] = "its model file is not installed on this server"
    return problems


def _short_reason(why: str) -> str:
    """The visitor's part of a backend problem ("its model file is not installed"), without the operator's fix."""
    found = re.search(r"server: ([^;(]+)", why)
    return found.group(1).strip().rstrip(".") if found else "it cannot run on this server"


def find_examples(folder: Path) -> list[str]:
    """Example images in `folder`, sorted by name (found at start-up, so new assets need no code change)."""
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def refusal(message: str, title: str = "Try-on failed") -> gr.Error:
    """A gr.Error for something the user can fix: shown to them, logged as one line, no traceback."""
    log.info("refused: %s", message)
    return gr.Error(message, title=title, print_exception=False)


def upload_source(
    payload: dict | str | None, what: str, *, how: str = "upload one or pick an example"
) -> str | bytes:
    """The uploaded file behind an image component's raw payload: a path in Gradio's upload folder, or data: bytes.

    The try-on event skips Gradio's own image decoding on purpose (the pipeline's loader reports an unreadable,
    truncated or oversized file as a TryOnError naming the problem, where Gradio's would fail with a trace), so
    the payload arrives as the client sent it and is untrusted: only a file inside Gradio's upload folder or the
    app's own examples (after resolving symlinks and "..") is ever opened, and a data: URL is held to the same
    byte limit as an upload. Every other payload gets one message that says nothing about the server's files.
    """
    if payload is None:
        raise refusal(f"No {what} yet: {how}.")
    refused = refusal(
        f"The {what} could not be opened: this app reads only files uploaded to it. Upload the {what} again."
    )
    if not isinstance(payload, dict):
        raise refused
    path, url = payload.get("path"), payload.get("url")
    if isinstance(path, str) and path and not _is_url(path):
        if not _inside_upload_roots(path):
            raise refused
        return path
    if not path and isinstance(url, str) and url.startswith("data:"):
        return _data_url_bytes(url, what)
    raise refused


def upload_roots() -> tuple[Path, ...]:
    """The folders a request may name files in: Gradio's upload folder (its cache) and the app's examples."""
    return (Path(gr.utils.get_upload_folder()).resolve(), EXAMPLES_DIR.resolve())


def _is_url(text: str) -> bool:
    return "://" in text or text.startswith(("data:", "//"))


def _inside_upload_roots(path: str) -> bool:
    """Whether `path`, with symlinks and ".." resolved, is a regular file under one of `upload_roots()`."""
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a NUL byte
        return False
    return real.is_file() and any(real.is_relative_to(root) for root in upload_roots())


def _data_url_bytes(url: str, what: str) -> bytes:
    """Decode a base64 data: URL, refusing it before decoding when it would exceed the upload limit."""
    header, _, body = url.partition(",")
    if len(body) > MAX_UPLOAD_BYTES * 4 // 3 + 4:
        raise refusal(
            f"The {what} is larger than {MAX_UPLOAD_BYTES // 2**20} MB; send a smaller photo "
            "(a few megapixels is plenty)."
        )
    if not header.endswith(";base64"):
        raise refusal(f"The {what} did not arrive as an image file; upload it again.")
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:
        raise refusal(f"The {what} did not arrive as an image file; upload it again.") from None


def source_bytes(source: str | bytes) -> bytes:
    return source if isinstance(source, bytes) else Path(source).read_bytes()


def display_name(payload: dict | None, fallback: str) -> str:
    """The name the user knows an upload by (its original file name), never the server's cache path."""
    name = payload.get("orig_name") if isinstance(payload, dict) else None
    if not isinstance(name, str) or not name.strip():
        path = payload.get("path") if isinstance(payload, dict) else None
        name = Path(path).name if isinstance(path, str) and path and not _is_url(path) else fallback
    return Path(name).name[:80]


def user_facing(text: str, *payloads: dict | str | None) -> str:
    """`text` with every server path replaced: uploads by their own names, any other server file by its name."""
    for payload in payloads:
        if isinstance(payload, dict) and isinstance(payload.get("path"), str) and payload["path"]:
            text = text.replace(payload["path"], display_name(payload, "upload"))
    roots = {str(r) for r in upload_roots()} | {str(ROOT), tempfile.gettempdir(), str(Path.home())}
    for root in sorted(roots, key=len, reverse=True):
        text = re.sub(re.escape(root) + r"/(?:[^\s'\"/]+/)*([^\s'\"/]+)", r"\1", text)
    for cli, page in COMMAND_LINE_WORDS.items():
        text = text.replace(cli, page)
    return text


# The library's messages are written for its command line; on the page the same advice names the page's controls.
COMMAND_LINE_WORDS = {
    "use --mask rembg": "choose the rembg cut-out under Advanced options (where this server offers it)",
    "an image PIL can read": "an image this app can read",
}


def local_weights_allowed(host: str | None = None) -> bool:
    """Whether the "weights" box may name folders on the server: only on a private app, unless the owner says so.

    SIEVENET_LOCAL_WEIGHTS=1 or 0 decides explicitly. Otherwise an app that others can reach (a Hugging Face
    Space, which sets SPACE_ID, or one listening beyond 127.0.0.1/localhost) loads only hf:// ids, so its
    visitors cannot make it open paths on its machine or learn which folders exist.

    Args:
        host: the address the app listens on (default: $GRADIO_SERVER_NAME, else 127.0.0.1).
    """
    explicit = os.environ.get("SIEVENET_LOCAL_WEIGHTS")
    if explicit is not None:
        return explicit.strip().lower() not in ("0", "false", "no", "off", "")
    host = host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    return not os.environ.get("SPACE_ID") and host in ("127.0.0.1", "localhost", "::1")


class PipelineCache:
    """The pipeline built at start-up, plus the most recently requested other weights (so memory stays bounded)."""

    def __init__(self, pipeline: TryOnPipeline, *, allow_local: bool = True):
        self.default = pipeline
        self.allow_local = allow_local
        self._other: tuple[str, TryOnPipeline] | None = None
        self._lock = threading.Lock()

    def get(self, weights: str | None) -> TryOnPipeline:
        """The pipeline for `weights` ("" or None: the start-up one); loads and replaces the cached other one.

        Raises:
            WeightsError: the weights cannot be loaded, or name a server folder while those are turned off.
        """
        weights = (weights or "").strip()
        if not weights:
            return self.default
        if not self.allow_local and not weights.startswith("hf://"):
            raise WeightsError(
                "This app loads other weights only from the Hugging Face Hub, not from folders on its server. "
                "Enter hf://org/repo, or leave the box empty for the weights it started with."
            )
        with self._lock:
            if self._other is None or self._other[0] != weights:
                self._other = None  # drop the old model before loading the next one
                self._other = (weights, TryOnPipeline.from_pretrained(weights, device=self.default.device))
            return self._other[1]


def painted_region(payload: dict | None) -> np.ndarray | None:
    """The (h, w) bool mask the user painted in the region editor, or None when nothing is painted.

    The editor sends its layers as uploaded RGBA images over the photo; any pixel with paint (alpha > 0) in
    any layer is part of the region.
    """
    if not isinstance(payload, dict):
        return None
    layers = payload.get("layers") or []
    if not isinstance(layers, list) or len(layers) > 8:
        raise refusal("The painted region did not arrive as expected; paint it again.")
    region = None
    for layer in layers:
        source = upload_source(layer, "painted region")
        try:
            with PIL.Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                if image.width * image.height > 40_000_000:
                    raise ValueError("too many pixels")
                alpha = np.asarray(image.convert("RGBA"))[..., 3] > 0
        except Exception:
            raise refusal("The painted region could not be read; clear it and paint again.") from None
        if region is None:
            region = alpha
        elif region.shape == alpha.shape:
            region |= alpha
    return region if region is not None and region.any() else None


def photo_warnings(keypoints: np.ndarray) -> list[str]:
    """Warnings when a photo is outside what the model was trained on, judged from its COCO-18 keypoints."""
    seen = keypoints[:, 2] >= MIN_CONFIDENCE
    notes = []
    hips = [k for k in (8, 11) if seen[k]]
    if not hips:
        notes.append(
            "No hips in the photo: the model was trained on people shown from the head to at least the hips, "
            "so the garment's lower edge is a guess. A photo down to the hips or further works better."
        )
    if seen[1] and hips:
        neck_y = keypoints[1, 1]
        hip_y = float(np.mean([keypoints[k, 1] for k in hips]))
        if hip_y < neck_y:
            notes.append("The person seems upside down or lying: the model expects an upright person.")
        elif seen[2] and seen[5]:
            shoulders = float(np.linalg.norm(keypoints[2, :2] - keypoints[5, :2]))
            if shoulders < 0.35 * (hip_y - neck_y):
                notes.append(
                    "The person seems turned sideways: the model was trained on roughly front-facing people, "
                    "so the garment may sit wrongly."
                )
    return notes


def create_demo(
    pipeline: TryOnPipeline,
    *,
    banner: str | None = None,
    examples_dir: Path = EXAMPLES_DIR,
    output_dir: Path | None = None,
    allow_local_weights: bool | None = None,
    example_result: bool = True,
) -> gr.Blocks:
    """Build the try-on inspector around a pipeline that was loaded once.

    Args:
        pipeline: the TryOnPipeline every request uses (unless the advanced "weights" box names another release).
        banner: a warning shown at the top of the page, e.g. that the weights are untrained.
        examples_dir: folder with `persons/` and `garments/` example images.
        output_dir: where each request's images and zip are written (the newest few are kept, the folder is
            removed when the process exits); a fresh temp folder by default.
        allow_local_weights: whether the "weights" box may name folders on the server (default:
            `local_weights_allowed()`).
        example_result: show the first example pair's try-on when the page opens (computed once, on first view).

    Returns:
        The Blocks app, not launched. Its named API endpoint is `tryon`.
    """
    if allow_local_weights is None:
        allow_local_weights = local_weights_allowed()
    pipelines = PipelineCache(pipeline, allow_local=allow_local_weights)
    folders = RequestFolders(Path(output_dir or tempfile.mkdtemp(prefix="sievenet-demo-")))
    atexit.register(folders.close)
    height, width = pipeline.model.config.height, pipeline.model.config.width
    framings = [("Whole photo", "full photo"), (f"What the model saw ({height}×{width})", "crop")]
    problems = backend_problems(pipeline)
    pose_choices = [
        (BACKEND_LABELS.get(f"pose:{n}", n), n) for n in POSE_BACKENDS if not problems.get(f"pose:{n}")
    ]
    mask_choices = [
        (BACKEND_LABELS.get(f"mask:{n}", n), n) for n in MASK_BACKENDS if not problems.get(f"mask:{n}")
    ]
    unavailable = [
        f"{BACKEND_LABELS.get(key, key)}: {why}"
        for key, why in problems.items()
        if why and key in BACKEND_LABELS
    ]
    share = ["share"] if os.environ.get("SPACE_ID") else []  # Gradio's share button works only on a Space
    persons = find_examples(examples_dir / "persons")
    garments = find_examples(examples_dir / "garments")
    # The page opens on a studio example: the kind of photo the model was trained on.
    first_person = next(
        (p for p in persons if Path(p).stem.startswith("studio")), persons[0] if persons else None
    )

    def check_backend(kind: str, name: str) -> None:
        why = problems.get(f"{kind}:{name}")
        if why:
            label = BACKEND_LABELS.get(f"{kind}:{name}", name)
            raise refusal(
                f"The {'pose' if kind == 'pose' else 'cut-out'} option '{label}' cannot run here: {why}. "
                "Choose MediaPipe (built in)."
            )

    def tryon(
        person: dict | None,
        garment: dict | None,
        show_grid: bool = False,
        pose_backend: str = "mediapipe",
        keypoints_json: dict | None = None,
        mask_backend: str = "mediapipe",
        weights: str = "",
        framing: str = "full photo",
        region: dict | None = None,
        parser: str = "learned",
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress bar
        notify: bool = True,
        folder: Path | None = None,
    ):
        """Dress the person in `person` with the garment in `garment` and show every stage.

        Returns the try-on image, a before/after pair, the stage images with captions, a timings table,
        a status text (with warnings) and a zip with the inputs, settings and every stage.
        """
        start = time.perf_counter()
        person_src = upload_source(
            person, "person photo", how="upload one, take one with the webcam or pick an example"
        )
        garment_src = upload_source(garment, "garment photo")
        check_backend("pose", pose_backend)
        check_backend("mask", mask_backend)
        keypoints = None
        if pose_backend == "json":
            keypoints = upload_source(
                keypoints_json, "keypoints JSON file", how="add an OpenPose JSON file for this photo"
            )
        if framing not in ("full photo", "crop"):
            raise refusal(f"Unknown output framing {framing!r}; choose 'full photo' or 'crop'.")
        if parser not in PARSERS:
            raise refusal(f"Unknown body-part parser {str(parser)[:40]!r}; choose 'learned' or 'heuristic'.")
        mask = painted_region(region)
        names = (person, garment, keypoints_json)
        try:
            progress(0.0, desc="Loading the weights" if (weights or "").strip() else "Starting")
            active = pipelines.get(weights)
            options = {"region_mask": mask} if mask is not None else {}
            if parser != active.preprocessor.parser:
                options["parser"] = parser
            result: TryOnResult = active(
                person_src,
                garment_src,
                pose=pose_backend,
                mask=mask_backend,
                keypoints_json=keypoints,
                progress=lambda fraction, step: progress(
                    0.9 * fraction, desc=TIMING_STEPS.get(step, "Finishing the try-on")
                ),
                **options,
            )
        except SieveNetError as exc:
            # TryOnError / WeightsError messages are written for users; only name uploads as the user knows them.
            raise refusal(user_facing(str(exc), *names)) from None
        except TypeError as exc:
            if "region_mask" in str(exc):
                raise refusal(
                    "This server's pipeline cannot use a painted region yet; clear the painting."
                ) from None
            raise
        except Exception as exc:
            log.exception("try-on failed unexpectedly")
            raise gr.Error(
                f"Something went wrong inside the pipeline ({type(exc).__name__}). Try another photo; if it "
                "keeps happening, please report it with the photos.",
                title="Try-on failed",
                print_exception=False,
            ) from None
        progress(0.92, desc="Writing the result files")
        warnings = [user_facing(w, *names) for w in result.warnings] + photo_warnings(result.keypoints)
        result.warnings = warnings
        grids = control_grids(result)
        person_name = display_name(person, "person.png")
        garment_name = display_name(garment, "garment.png")
        inputs = {f"person{Path(person_name).suffix or '.png'}": source_bytes(person_src)}
        inputs[f"garment{Path(garment_name).suffix or '.png'}"] = source_bytes(garment_src)
        if keypoints is not None:
            inputs["keypoints.json"] = source_bytes(keypoints)
        region_image = None
        if mask is not None:
            full = np.asarray(PIL.Image.fromarray(mask).resize(result.photo.size, PIL.Image.NEAREST))
            region_image = region_stage(result.photo, full)
            inputs["region.png"] = png_bytes(PIL.Image.fromarray(full.astype(np.uint8) * 255))
        settings = {
            "person": person_name,
            "garment": garment_name,
            "pose_backend": pose_backend,
            "mask_backend": mask_backend,
            "weights": (weights or "").strip() or "the app's own",
            "parser": result.parser,
            "model": {"height": height, "width": width},
            "painted_region": mask is not None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        files_start = time.perf_counter()
        files = write_request_files(
            result,
            folder or folders.new(),
            inputs=inputs,
            settings=settings,
            framing=framing,
            grids=grids,
            show_grid=show_grid,
            region=region_image,
            name=bundle_name(person_name, garment_name),
        )
        now = time.perf_counter()
        server_ms = (now - start) * 1000.0
        status = f"**Done.** Server time {server_ms / 1000:.2f} s (processing and writing files)."
        if warnings:
            status += "\n\n" + "\n".join(f"- ⚠️ {w}" for w in warnings)
        for note in warnings if notify else ():
            gr.Warning(
                note, duration=6
            )  # the status keeps them; a toast that stays would cover a phone's result
        return (
            str(files.final),
            (str(files.before), str(files.final)),
            files.gallery,
            timings_markdown(result.timings, (now - files_start) * 1000.0, server_ms),
            status,
            str(files.bundle),
        )

    def tryon_without_region(
        person: dict | None,
        garment: dict | None,
        show_grid: bool = False,
        pose_backend: str = "mediapipe",
        keypoints_json: dict | None = None,
        mask_backend: str = "mediapipe",
        weights: str = "",
        framing: str = "full photo",
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ):
        """Dress the person in `person` with the garment in `garment` and show every stage.

        Returns the try-on image, a before/after pair, the stage images with captions, a timings table,
        a status text (with warnings) and a zip with the inputs, settings and every stage.
        """
        args = (person, garment, show_grid, pose_backend, keypoints_json, mask_backend, weights, framing)
        return tryon(*args, progress=progress)

    def tryon_on_page(*args, progress: gr.Progress = gr.Progress()):  # noqa: B008
        """The page's Try on button: a failure keeps the previous result on screen and says what went wrong."""
        try:
            return tryon(*args, progress=progress)
        except gr.Error as exc:
            message = str(exc.message) if hasattr(exc, "message") else str(exc)
            gr.Warning(message, title="Try-on failed")
            status = f"**Try-on failed.** {message}"
            return (gr.skip(), gr.skip(), gr.skip(), gr.skip(), status, gr.skip())

    def redraw(bundle_path: str | None, framing: str, show_grid: bool):
        """Re-render the shown result from its zip for another framing or grid setting (no new try-on)."""
        if not bundle_path:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            files = redraw_bundle(Path(bundle_path), folders.new(), framing=framing, show_grid=show_grid)
        except (ValueError, KeyError):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return str(files.final), (str(files.before), str(files.final)), files.gallery, str(files.bundle)

    example_lock = threading.Lock()
    example_cache: list = []

    def first_view():
        """The page as it opens: the first example pair, already tried on (computed once per process)."""
        if not (example_result and persons and garments):
            return (gr.skip(),) * 8
        with example_lock:
            if not example_cache:
                try:
                    payloads = [{"path": p, "orig_name": Path(p).name} for p in (first_person, garments[0])]
                    outputs = tryon(
                        *payloads,
                        progress=lambda *a, **k: None,
                        notify=False,
                        folder=folders.pinned("example"),  # served on every page load: never rotated away
                    )
                except Exception as exc:  # the page must open even if the example fails
                    log.warning("example try-on failed (%s)", type(exc).__name__)
                    outputs = (gr.skip(),) * 6
                example_cache.append(outputs)
        final, comparison_value, gallery_value, timings_value, status_value, bundle_value = example_cache[0]
        if isinstance(status_value, str):
            status_value = status_value.replace(
                "**Done.**", "**Example result.** Pick your own photos and press Try on."
            )
        return (
            first_person,
            garments[0],
            final,
            comparison_value,
            gallery_value,
            timings_value,
            status_value,
            bundle_value,
        )

    def region_canvas(payload: dict | None):
        """The region editor's canvas: the person photo, with nothing painted yet."""
        path = payload.get("path") if isinstance(payload, dict) else None
        if not isinstance(path, str) or _is_url(path) or not _inside_upload_roots(path):
            return None
        return {"background": path, "layers": [], "composite": None}

    def check_photo(payload: dict | None, what: str):
        """Tell the user at once when an uploaded file is not a readable photo, and clear it."""
        if payload is None:
            return gr.skip(), gr.skip()
        try:
            source = upload_source(payload, what)
            with PIL.Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                image.verify()
        except Exception:
            name = display_name(payload, "the file")
            message = f"'{name}' is not a photo this app can read. Choose a PNG, JPEG or WebP photo."
            gr.Warning(message, title=f"Not a {what}")
            return None, f"**Not a {what}.** {message}"
        return gr.skip(), gr.skip()

    with gr.Blocks(
        title="SieveNet Studio — try-on inspector", analytics_enabled=False, delete_cache=(600, 3600)
    ) as demo:
        gr.Markdown(
            "# SieveNet Studio — see how a virtual try-on is made\n"
            "Put a garment on a person photo and see **every stage** that made the result, so you can tell "
            "which one went wrong. Method: SieveNet (Jandial et al., WACV 2020)."
        )
        if banner:
            gr.Markdown(f"⚠️ {banner}", elem_id="untrained-banner")
        gr.Markdown(SCOPE_NOTE, elem_id="scope-note")
        with gr.Row(equal_height=False):
            with gr.Column(min_width=300):
                person = gr.Image(
                    label="Person photo (head to at least the hips, facing the camera)",
                    sources=["upload", "webcam", "clipboard"],
                    type="filepath",
                    height=320,
                    elem_id="person",
                    buttons=["fullscreen"],
                )
                if persons:
                    gr.Examples(persons, inputs=person, label="Example persons", examples_per_page=8)
            with gr.Column(min_width=300):
                garment = gr.Image(
                    label="Garment photo (a top, on a plain background)",
                    sources=["upload", "clipboard"],
                    type="filepath",
                    height=320,
                    elem_id="garment",
                    buttons=["fullscreen"],
                )
                if garments:
                    gr.Examples(garments, inputs=garment, label="Example garments", examples_per_page=8)
            with gr.Column(min_width=300):
                result_image = gr.Image(
                    label="Try-on",
                    interactive=False,
                    format="png",
                    height=420,
                    elem_id="result",
                    buttons=["download", "fullscreen", *share],
                )
                status = gr.Markdown(elem_id="status")
                gr.HTML("", elem_id="done-in")
        run = gr.Button("Try on", variant="primary", elem_id="tryon-button")
        with gr.Accordion("Paint the region to replace (optional)", open=False, elem_id="region-box"):
            gr.Markdown(
                "Paint over the part of the person photo the new garment should cover. Where you paint, your "
                "region is used instead of the automatic body parts, and only there is the photo changed. "
                "Leave it empty to let the model decide."
            )
            region = gr.ImageEditor(
                label="Region to replace",
                type="filepath",
                sources=[],
                transforms=[],
                layers=False,
                brush=gr.Brush(colors=["#ff00ff"], color_mode="fixed"),
                eraser=gr.Eraser(),
                format="png",
                height=420,
                elem_id="region",
                buttons=[],
            )
        with gr.Accordion("Advanced options", open=False):
            with gr.Row():
                with gr.Column():
                    pose_backend = gr.Radio(
                        pose_choices, value="mediapipe", label="How body joints are found"
                    )
                    keypoints_json = gr.File(
                        label="Keypoints file (OpenPose JSON for this photo)",
                        file_types=[".json"],
                        visible=False,
                    )
                mask_backend = gr.Radio(
                    mask_choices, value="mediapipe", label="How the person and the garment are cut out"
                )
                parser = gr.Radio(
                    [("Learned parser", "learned"), ("Geometric guess (heuristic)", "heuristic")],
                    value=pipeline.preprocessor.parser,
                    label="How the body is split into parts (hair, face, arms, garment, ...)",
                )
            if unavailable:
                gr.Markdown("Not available on this server: " + "; ".join(unavailable) + ".")
            with gr.Row():
                weights = gr.Textbox(
                    value="",
                    label="Weights",
                    placeholder="empty: the weights the app started with; or "
                    + ("a release folder, or hf://org/repo" if allow_local_weights else "hf://org/repo"),
                )
                framing = gr.Radio(framings, value="full photo", label="Output framing")
        comparison = gr.ImageSlider(
            label="Before / after",
            interactive=False,
            format="png",
            elem_id="comparison",
            max_height=520,
            buttons=["fullscreen", *share],
        )
        show_grid = gr.Checkbox(label="Draw the bending grid (TPS) on both garment fits", value=False)
        gallery = gr.Gallery(
            label="Every stage, in the order the model makes them",
            format="png",  # lossless: the point is to inspect each stage's artefacts
            columns=5,
            height="auto",
            object_fit="contain",
            elem_id="stages",
            buttons=["download", "fullscreen", *share],
        )
        gr.HTML(stages_help_html())
        with gr.Row():
            with gr.Column(min_width=300), gr.Accordion("Where the time went", open=False):
                timings = gr.Markdown(elem_id="timings")
            bundle = gr.File(
                label="Download all (zip: inputs, settings, every stage, keypoints, body parts)",
                interactive=False,
                elem_id="bundle",
                height=70,
                min_width=300,
            )
        api_button = gr.Button(visible=False)
        api_region_button = gr.Button(visible=False)

        inputs = [
            person,
            garment,
            show_grid,
            pose_backend,
            keypoints_json,
            mask_backend,
            weights,
            framing,
            region,
        ]
        outputs = [result_image, comparison, gallery, timings, status, bundle]
        run.click(
            tryon_on_page,
            inputs=[*inputs, parser],  # the parser choice is the page's own: the API keeps its inputs
            outputs=outputs,
            api_visibility="private",
            preprocess=False,  # the pipeline decodes uploads itself; see upload_source
            js="(...args) => { window.sievenetClick = performance.now(); return args; }",
        ).then(fn=None, js=SHOW_DONE_JS)
        # The API: `tryon` keeps its eight inputs (raw HTTP clients send them by position); `tryon_region`
        # adds the painted region (an ImageEditor value: background, layers) as a ninth.
        api_button.click(
            tryon_without_region,
            inputs=inputs[:-1],
            outputs=outputs,
            api_name="tryon",
            api_description=tryon_without_region.__doc__,
            preprocess=False,
        )
        api_region_button.click(
            tryon,
            inputs=inputs,
            outputs=outputs,
            api_name="tryon_region",
            api_description="Like tryon, with a painted region (ImageEditor value): only there the photo changes.",
            preprocess=False,
        )
        for control in (show_grid, framing):
            control.change(
                redraw,
                inputs=[bundle, framing, show_grid],
                outputs=[result_image, comparison, gallery, bundle],
                api_visibility="private",
                concurrency_limit=4,
            )
        pose_backend.change(
            lambda name: gr.update(visible=name == "json"),
            inputs=pose_backend,
            outputs=keypoints_json,
            api_visibility="private",
            queue=False,
        )
        person.upload(
            lambda p: check_photo(p, "person photo"),
            inputs=person,
            outputs=[person, status],
            preprocess=False,
            api_visibility="private",
            concurrency_limit=4,
        )
        garment.upload(
            lambda p: check_photo(p, "garment photo"),
            inputs=garment,
            outputs=[garment, status],
            preprocess=False,
            api_visibility="private",
            concurrency_limit=4,
        )
        person.change(
            region_canvas,
            inputs=person,
            outputs=region,
            api_visibility="private",
            preprocess=False,  # an unreadable upload is reported by check_photo, not by Gradio's decoder
            concurrency_limit=4,
        )
        demo.load(
            first_view,
            outputs=[person, garment, *outputs],
            api_visibility="private",
            concurrency_limit=None,
        )
    return demo


# Plain names for the pipeline's steps, shown in the progress bar.
TIMING_STEPS = {
    "load": "Reading the photos",
    "pose": "Finding the body joints",
    "mask": "Cutting out the person",
    "parse": "Finding body parts",
    "garment": "Cutting out the garment",
    "model": "Running SieveNet",
    "render": "Drawing the stages",
    "paste": "Pasting into your photo",
    "done": "Writing the result files",
}

# After a Try on click: the time from click to result as the browser saw it (queue and transfer included),
# and on a narrow screen, the result scrolled into view.
SHOW_DONE_JS = """
() => {
  const box = document.querySelector('#done-in');
  if (window.sievenetClick && box) {
    const s = (performance.now() - window.sievenetClick) / 1000;
    box.innerText = `Click to result in your browser: ${s.toFixed(1)} s (queue and transfer included).`;
  }
  if (window.innerWidth < 700) {
    document.querySelector('#result')?.scrollIntoView({behavior: 'smooth', block: 'start'});
  }
}
"""
