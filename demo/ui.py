"""The Gradio UI: `create_demo(pipeline) -> gr.Blocks`, a stage-by-stage try-on inspector."""

from __future__ import annotations

import base64
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import gradio as gr
import PIL.Image

from demo.render import (
    RequestFolders,
    control_grids,
    legend_html,
    stage_gallery,
    timings_markdown,
    write_request_files,
)
from sievenet.errors import SieveNetError, WeightsError
from sievenet.pipeline import TryOnPipeline, TryOnResult
from sievenet.preprocess.masks import MASK_BACKENDS
from sievenet.preprocess.pose import POSE_BACKENDS

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "assets" / "examples"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

CSS = """
#untrained-banner {background: #fff3cd; border: 1px solid #e0b000; border-radius: 6px; padding: 8px 12px;}
#m-exp-legend {font-size: 0.9em;}
"""

# Settings for `Blocks.launch` that belong to the app rather than to a deployment: app.py and the end-to-end
# tests launch with the same ones. Uploads above 10 MB are refused by the server before any decoding; the
# pipeline's own loader refuses decompression bombs and downscales big photos (sievenet.preprocess.image_io).
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # what Gradio's "10mb" means
LAUNCH_SETTINGS: dict[str, Any] = {"max_file_size": MAX_UPLOAD_BYTES, "show_error": True, "css": CSS}
# One try-on at a time per CPU pair: torch already spreads one forward pass over the cores, and a second
# concurrent request would only make both slower (and share the pose detector between threads).
CONCURRENCY_LIMIT = max(1, (os.cpu_count() or 2) // 2)
QUEUE_SIZE = 64

# Radio labels for the pipeline's backend names; a backend added to sievenet.preprocess shows up under its name.
BACKEND_LABELS = {
    "mediapipe": "MediaPipe (bundled, offline)",
    "openpose": "OpenPose (controlnet-aux; needs its annotator weights)",
    "json": "Upload OpenPose JSON",
    "rembg": "rembg (U^2-Net; needs its ONNX model)",
}
POSE_CHOICES = [(BACKEND_LABELS.get(name, name), name) for name in POSE_BACKENDS]
MASK_CHOICES = [(BACKEND_LABELS.get(name, name), name) for name in MASK_BACKENDS]


def find_examples(folder: Path) -> list[str]:
    """Example images in `folder`, sorted by name (found at start-up, so new assets need no code change)."""
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def upload_source(payload: dict | str | None, what: str) -> str | bytes:
    """The uploaded file behind an image component's raw payload: a path in Gradio's upload folder, or data: bytes.

    The try-on event skips Gradio's own image decoding on purpose (the pipeline's loader reports an unreadable,
    truncated or oversized file as a TryOnError naming the problem, where Gradio's would fail with a trace), so
    the payload arrives as the client sent it and is untrusted: only a file inside Gradio's upload folder or the
    app's own examples (after resolving symlinks and "..") is ever opened, and a data: URL is held to the same
    byte limit as an upload. Every other payload gets one message that says nothing about the server's files.
    """
    if payload is None:
        raise gr.Error(f"No {what} yet: upload one, take one with the webcam, paste one, or pick an example.")
    refused = gr.Error(
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
        raise gr.Error(
            f"The {what} is larger than {MAX_UPLOAD_BYTES // 2**20} MB; send a smaller photo "
            "(a few megapixels is plenty)."
        )
    if not header.endswith(";base64"):
        raise gr.Error(f"The {what} did not arrive as an image file; upload it again.")
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:
        raise gr.Error(f"The {what} did not arrive as an image file; upload it again.") from None


def local_weights_allowed() -> bool:
    """Whether the "weights" box may name folders on the server: yes locally, no on a Hugging Face Space.

    SIEVENET_LOCAL_WEIGHTS=1 or 0 decides explicitly; otherwise a Space (which sets SPACE_ID) only loads hf:// ids,
    so visitors of a public app cannot make it open paths on its machine.
    """
    explicit = os.environ.get("SIEVENET_LOCAL_WEIGHTS")
    if explicit is not None:
        return explicit.strip().lower() not in ("0", "false", "no", "off", "")
    return not os.environ.get("SPACE_ID")


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
                f"This app loads other weights only from the Hugging Face Hub, not from folders on its server "
                f"(got {weights!r}). Enter hf://org/repo, or leave the box empty for the weights it started with."
            )
        with self._lock:
            if self._other is None or self._other[0] != weights:
                self._other = None  # drop the old model before loading the next one
                self._other = (weights, TryOnPipeline.from_pretrained(weights, device=self.default.device))
            return self._other[1]


def create_demo(
    pipeline: TryOnPipeline,
    *,
    banner: str | None = None,
    examples_dir: Path = EXAMPLES_DIR,
    output_dir: Path | None = None,
    allow_local_weights: bool | None = None,
) -> gr.Blocks:
    """Build the try-on inspector around a pipeline that was loaded once.

    Args:
        pipeline: the TryOnPipeline every request uses (unless the advanced "weights" box names another release).
        banner: a warning shown at the top of the page, e.g. that the weights are untrained.
        examples_dir: folder with `persons/` and `garments/` example images.
        output_dir: where each request's images and "Download all" zip are written (the newest few are kept);
            a fresh temp folder by default.
        allow_local_weights: whether the "weights" box may name folders on the server (default:
            `local_weights_allowed()`, i.e. not on a Hugging Face Space unless SIEVENET_LOCAL_WEIGHTS=1).

    Returns:
        The Blocks app, not launched. Its named API endpoint is `tryon`.
    """
    if allow_local_weights is None:
        allow_local_weights = local_weights_allowed()
    pipelines = PipelineCache(pipeline, allow_local=allow_local_weights)
    folders = RequestFolders(Path(output_dir or tempfile.mkdtemp(prefix="sievenet-demo-")))
    height, width = pipeline.model.config.height, pipeline.model.config.width
    framings = [("Full photo", "full photo"), (f"{height}×{width} crop", "crop")]

    def tryon(
        person: dict | None,
        garment: dict | None,
        show_grid: bool = False,
        pose_backend: str = "mediapipe",
        keypoints_json: dict | None = None,
        mask_backend: str = "mediapipe",
        weights: str = "",
        framing: str = "full photo",
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress bar
    ):
        start = time.perf_counter()
        person_src = upload_source(person, "person photo")
        garment_src = upload_source(garment, "garment photo")
        keypoints = None
        if pose_backend == "json":
            keypoints = upload_source(keypoints_json, "keypoints JSON file (OpenPose format)")
        try:
            progress(0.0, desc="loading weights" if (weights or "").strip() else "starting")
            active = pipelines.get(weights)
            result: TryOnResult = active(
                person_src,
                garment_src,
                pose=pose_backend,
                mask=mask_backend,
                keypoints_json=keypoints,
                progress=lambda fraction, stage: progress(fraction, desc=stage),
            )
        except SieveNetError as exc:
            # TryOnError / WeightsError messages are written for users; only name uploads as the user knows them.
            raise gr.Error(
                _with_upload_names(str(exc), person, garment, keypoints_json), title="Try-on failed"
            ) from None
        except Exception as exc:
            log.exception("try-on failed unexpectedly")
            raise gr.Error(
                f"Something went wrong inside the pipeline ({type(exc).__name__}: {exc}). "
                "Try another photo; if it keeps happening, please report it with the photos.",
                title="Try-on failed",
            ) from None
        for note in result.warnings:
            gr.Warning(note)
        grids = control_grids(result)
        files = write_request_files(
            result,
            folders.new(),
            before=_before_image(result, framing),
            crop_framing=framing == "crop",
            grids=grids if show_grid else None,
        )
        total_ms = (time.perf_counter() - start) * 1000.0
        status = f"Done in {total_ms:.0f} ms."
        if result.warnings:
            status += "\n\n" + "\n".join(f"- ⚠️ {w}" for w in result.warnings)
        inspect_state = {"stages": result.stages, "grids": grids}
        return (
            str(files.final),
            (str(files.before), str(files.final)),
            files.gallery,
            timings_markdown(result.timings, total_ms),
            status,
            str(files.bundle),
            inspect_state,
        )

    def redraw(inspect_state: dict | None, show_grid: bool):
        if not inspect_state:
            return gr.skip()
        return stage_gallery(inspect_state["stages"], grids=inspect_state["grids"] if show_grid else None)

    with gr.Blocks(
        title="SieveNet Studio — try-on inspector", analytics_enabled=False, delete_cache=(600, 3600)
    ) as demo:
        gr.Markdown(
            "# SieveNet Studio — stage-by-stage virtual try-on\n"
            "A person photo and a garment photo in; the try-on out, with **every stage** that made it "
            "(pose, body shape, coarse and fine warps, expected segmentation, composition mask, rendered "
            "person), so you can see which stage went wrong. "
            "Method: SieveNet (Jandial et al., WACV 2020)."
        )
        if banner:
            gr.Markdown(f"⚠️ {banner}", elem_id="untrained-banner")
        with gr.Row():
            with gr.Column():
                person = gr.Image(
                    label="Person photo",
                    sources=["upload", "webcam", "clipboard"],
                    type="filepath",
                    height=360,
                    elem_id="person",
                )
                persons = find_examples(examples_dir / "persons")
                if persons:
                    gr.Examples(persons, inputs=person, label="Example persons", examples_per_page=12)
            with gr.Column():
                garment = gr.Image(
                    label="Garment photo",
                    sources=["upload", "clipboard"],
                    type="filepath",
                    height=360,
                    elem_id="garment",
                )
                garments = find_examples(examples_dir / "garments")
                if garments:
                    gr.Examples(garments, inputs=garment, label="Example garments", examples_per_page=12)
            with gr.Column():
                result_image = gr.Image(
                    label="Try-on", interactive=False, format="png", height=360, elem_id="result"
                )
                status = gr.Markdown(label="Status", elem_id="status")
        run = gr.Button("Try on", variant="primary", elem_id="tryon-button")
        with gr.Accordion("Advanced options", open=False):
            with gr.Row():
                pose_backend = gr.Radio(POSE_CHOICES, value="mediapipe", label="Pose backend")
                keypoints_json = gr.File(
                    label="Keypoints JSON (OpenPose format; used with 'Upload OpenPose JSON')",
                    file_types=[".json"],
                )
                mask_backend = gr.Radio(MASK_CHOICES, value="mediapipe", label="Person mask backend")
            with gr.Row():
                weights = gr.Textbox(
                    value="",
                    label="Weights",
                    placeholder="empty: the weights the app started with; or "
                    + ("a release folder, or hf://org/repo" if allow_local_weights else "hf://org/repo"),
                )
                framing = gr.Radio(framings, value="full photo", label="Output framing")
        with gr.Row():
            comparison = gr.ImageSlider(
                label="Before / after", interactive=False, format="png", elem_id="comparison"
            )
            timings = gr.Markdown(label="Timings", elem_id="timings")
        show_grid = gr.Checkbox(label="Overlay the TPS control grid on both warps", value=False)
        gallery = gr.Gallery(
            label="Stages, in pipeline order",
            format="png",  # lossless: the point is to inspect each stage's artefacts
            columns=5,
            height="auto",
            object_fit="contain",
            elem_id="stages",
        )
        gr.HTML(legend_html())
        bundle = gr.File(
            label="Download all (zip: every stage, keypoints JSON, parse PNG)",
            interactive=False,
            elem_id="bundle",
        )
        # Only for redrawing the grid overlay; ~1.5 MB per visitor, so it expires soon after the last request.
        inspect_state = gr.State(time_to_live=900)

        run.click(
            tryon,
            inputs=[person, garment, show_grid, pose_backend, keypoints_json, mask_backend, weights, framing],
            outputs=[result_image, comparison, gallery, timings, status, bundle, inspect_state],
            api_name="tryon",
            preprocess=False,  # the pipeline decodes uploads itself; see upload_source
        )
        show_grid.change(redraw, inputs=[inspect_state, show_grid], outputs=gallery, api_visibility="private")
    return demo


def _with_upload_names(message: str, *payloads: dict | str | None) -> str:
    """Replace server cache paths of uploads in a message by the file names the user uploaded."""
    for payload in payloads:
        if isinstance(payload, dict) and payload.get("path") and payload.get("orig_name"):
            message = message.replace(payload["path"], payload["orig_name"])
    return message


def _before_image(result: TryOnResult, framing: str) -> PIL.Image.Image:
    """The "before" half of the comparison, framed like the "after" half."""
    return result.person_crop if framing == "crop" else result.photo
