"""Turn a TryOnResult into what the UI shows and what "Download all" packs: gallery items, legend, tables, zip.

The zip is the request's one record: the UI's later redraws (TPS grid on/off, output framing) read it back
instead of keeping images in server memory, and replace it with an updated copy.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from sievenet.data import write_lip_png, write_openpose_json
from sievenet.labels import LABEL_COLOURS, Label, label_to_lip
from sievenet.pipeline import STAGES, TryOnResult, draw_control_grid

# Stage key -> (plain caption, the paper's notation or None, one line for a newcomer). "region" is the app's
# own stage: the user's painted override, shown first when there is one.
STAGE_TEXT: dict[str, tuple[str, str | None, str]] = {
    "region": ("Your painted region", None, "the area you painted: only this part of the photo is replaced"),
    "pose": ("Body joints", "pose", "the 18 joints found in the photo; the garment is fitted to these"),
    "body_shape": ("Body outline", "shape prior", "a blurred silhouette: how wide and tall the body is"),
    "tt_priors": ("Kept from the photo", "TT priors", "hair, face and lower body, copied unchanged"),
    "warp_coarse": ("Garment, rough fit", "I_stn⁰", "the garment bent once to match the pose"),
    "warp_fine": ("Garment, refined fit", "I_stn¹", "the second, finer bend that fixes the rough fit"),
    "warp_difference": ("What the refinement moved", "|I_stn¹−I_stn⁰|", "bright = the second bend moved it"),
    "m_exp": ("Predicted body parts", "M_exp", "which part of the body each pixel should be (colours below)"),
    "m_cm": ("Where the garment goes", "M_cm", "white = garment pixels, black = the redrawn person"),
    "rendered": ("Person, redrawn", "I_rp", "the person drawn again without the old garment"),
    "tryon": ("Try-on at model size", "I_tryon", "garment and redrawn person combined, before pasting back"),
}
GRIDDED = ("warp_coarse", "warp_fine")
MAX_MEMBER_BYTES = 64 * 2**20  # a zip read back is one this app wrote; refuse anything larger


def label_name(label: Label) -> str:
    """Human name of a model class: LEFT_ARM -> "left arm"."""
    return label.name.lower().replace("_", " ")


def stage_caption(number: int, key: str, *, grid: bool = False) -> str:
    """Gallery caption: number, plain name, and the paper's notation in brackets ("5. Garment, refined fit (I_stn¹)")."""
    plain, notation, _ = STAGE_TEXT.get(key, (STAGES.get(key, key), None, ""))
    caption = f"{number}. {plain}" + (f" ({notation})" if notation else "")
    return caption + (" + TPS grid" if grid else "")


def stages_help_html() -> str:
    """One line per stage for a newcomer, and the one colour legend of the body-part map (M_exp)."""
    rows = "".join(
        f"<li><b>{plain}</b>{f' <code>{notation}</code>' if notation else ''}: {line}</li>"
        for plain, notation, line in STAGE_TEXT.values()
    )
    swatches = []
    for label in Label:
        r, g, b = LABEL_COLOURS[label]
        # A light ring inside a grey one keeps dark swatches (background is black) visible in dark mode too.
        swatches.append(
            f'<span class="swatch-item"><span class="swatch" style="background:rgb({r},{g},{b})"></span>'
            f"{label_name(label)}</span>"
        )
    return (
        '<div id="stage-help"><details><summary>What each stage shows</summary><ul>'
        + rows
        + '</ul></details><div id="m-exp-legend"><b>Body-part colours (M_exp):</b> '
        + "".join(swatches)
        + "</div></div>"
    )


LEGEND_CSS = """
#m-exp-legend {font-size: 0.9em; line-height: 1.8;}
#m-exp-legend .swatch-item {display: inline-flex; align-items: center; margin-right: 12px; white-space: nowrap;}
#m-exp-legend .swatch {width: 14px; height: 14px; display: inline-block; margin-right: 5px; border-radius: 2px;
  box-shadow: 0 0 0 1px #fff, 0 0 0 2px #777;}
"""


def control_grids(result: TryOnResult) -> dict[str, torch.Tensor] | None:
    """The TPS parameters that moved each warp image: theta for I_stn^0, theta + delta_theta for I_stn^1."""
    if result.output is None:
        return None
    # Stage 2 warps the original cloth with theta + delta_theta (DESIGN §1), so that is the grid it followed.
    return {
        "warp_coarse": result.output.theta.detach().cpu(),
        "warp_fine": (result.output.theta + result.output.delta_theta).detach().cpu(),
    }


def with_grids(
    images: dict[str, PIL.Image.Image], grids: dict[str, torch.Tensor] | None
) -> dict[str, PIL.Image.Image]:
    """A copy of `images` with the TPS control grid drawn on the warps named in `grids`."""
    images = dict(images)
    for key, theta in (grids or {}).items():
        if key in images:
            theta = torch.as_tensor(theta, dtype=torch.float32).reshape(1, -1)
            grid_size = round((theta.shape[-1] // 2) ** 0.5)  # theta holds 2*G*G offsets
            images[key] = draw_control_grid(images[key], theta, grid_size)
    return images


def ordered_stages(
    stages: dict[str, PIL.Image.Image], region: PIL.Image.Image | None = None
) -> dict[str, PIL.Image.Image]:
    """The stages to show, in pipeline order (STAGES), the painted region first when there is one."""
    ordered = {"region": region} if region is not None else {}
    ordered.update({key: stages[key] for key in STAGES if key in stages})
    return ordered


def stage_gallery(
    stages: dict[str, PIL.Image.Image], *, grids: dict[str, torch.Tensor] | None = None
) -> list[tuple[PIL.Image.Image, str]]:
    """Gallery items (image, caption) in order; `grids` draws the TPS grids on the warps."""
    images = with_grids(stages, grids)
    return [
        (images[key], stage_caption(i, key, grid=bool(grids) and key in grids))
        for i, key in enumerate(images, start=1)
    ]


TIMING_NAMES = {
    "load": "Reading the photos",
    "pose": "Finding the body joints",
    "mask": "Cutting out the person",
    "parse": "Finding body parts, framing",
    "garment": "Cutting out the garment",
    "model": "SieveNet (warps, parts, rendering)",
    "render": "Drawing the stage images",
    "paste": "Pasting into your photo",
}


def timings_markdown(timings: dict[str, float], files_ms: float, server_ms: float) -> str:
    """Per-step timings in plain words, then the one total that covers everything the server did."""
    lines = ["| step | ms |", "|---|---:|"]
    lines += [
        f"| {TIMING_NAMES.get(name, name)} | {ms:.0f} |" for name, ms in timings.items() if name != "total"
    ]
    lines.append(f"| Writing the result files and zip | {files_ms:.0f} |")
    lines.append(f"| **Server total** (upload, queue and download not included) | **{server_ms:.0f}** |")
    return "\n".join(lines)


@dataclass
class RequestFiles:
    """One request's outputs as files: what the UI shows is exactly what "Download all" packs."""

    final: Path  # the try-on as framed (full photo or crop)
    before: Path  # the person, framed like `final`
    gallery: list[tuple[str, str]]  # (stage PNG path, caption) in order
    bundle: Path  # zip of inputs, settings, every stage raw, keypoints JSON, parse PNG


def save_png(image: PIL.Image.Image, path: Path) -> Path:
    """Save a lossless PNG fast: zlib level 1 is ~5x quicker than the default and only ~15% larger."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", compress_level=1)
    return path


def png_bytes(image: PIL.Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def bundle_name(person: str, garment: str, when: float | None = None) -> str:
    """`sievenet_<person>_<garment>_<YYYYmmdd-HHMMSS>.zip`, from the uploads' own names (safe characters only)."""

    def stem(name: str) -> str:
        return re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name).stem).strip("-")[:40] or "photo"

    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    return f"sievenet_{stem(person)}_{stem(garment)}_{stamp}.zip"


def write_request_files(
    result: TryOnResult,
    folder: Path,
    *,
    inputs: dict[str, bytes],
    settings: dict,
    framing: str = "full photo",
    grids: dict[str, torch.Tensor] | None = None,
    show_grid: bool = False,
    region: PIL.Image.Image | None = None,
    name: str = "sievenet-tryon.zip",
) -> RequestFiles:
    """Encode every output once into `folder` and pack the request's zip.

    Args:
        result: the pipeline's result.
        folder: a fresh folder for this request.
        inputs: archive name under inputs/ -> the bytes the user sent (photos, keypoints JSON, painted region).
        settings: the options of the request (written to settings.json with timings, warnings, TPS parameters).
        framing: "full photo" or "crop" (the H x W the model saw).
        grids: TPS parameters of both warps (see control_grids); kept in settings.json for redraws.
        show_grid: draw them on the warps shown (the zip then also holds the gridded copies).
        region: the painted-region stage image, when the user painted one.
        name: the zip's file name.
    """
    stages = ordered_stages(result.stages, region)
    members: dict[str, bytes] = {f"inputs/{key}": data for key, data in inputs.items()}
    members["tryon.png"] = png_bytes(result.image)
    members["model_input/photo.png"] = png_bytes(result.photo)
    members["model_input/person_crop.png"] = png_bytes(result.person_crop)
    for i, (key, image) in enumerate(stages.items(), start=1):
        members[f"stages/{i:02d}_{key}.png"] = png_bytes(image)
    lip = folder / "parse.png"
    folder.mkdir(parents=True, exist_ok=True)
    write_lip_png(lip, label_to_lip(result.parse))  # LIP ids and palette, as VITON-HD's image-parse-v3
    members["parse.png"] = lip.read_bytes()
    keypoints = folder / "keypoints.json"
    write_openpose_json(keypoints, result.keypoints)  # what the "Upload OpenPose JSON" option reads back
    members["keypoints.json"] = keypoints.read_bytes()
    record = {
        **settings,
        "timings_ms": {k: round(v, 1) for k, v in result.timings.items()},
        "warnings": list(result.warnings),
        "tps": {key: theta.reshape(-1).tolist() for key, theta in (grids or {}).items()},
        "stages": list(stages),
    }
    members["settings.json"] = json.dumps(record, indent=1).encode()
    return _write_outputs(members, folder, framing=framing, show_grid=show_grid, name=name)


def redraw_bundle(bundle: Path, folder: Path, *, framing: str, show_grid: bool) -> RequestFiles:
    """Re-render a request from its zip with another framing or grid setting; writes an updated zip to `folder`.

    Raises:
        ValueError: `bundle` is not a zip this app wrote.
    """
    members = read_bundle(bundle)
    return _write_outputs(members, folder, framing=framing, show_grid=show_grid, name=bundle.name)


def read_bundle(bundle: Path) -> dict[str, bytes]:
    """The members of a request zip, without the gridded copies (they are redrawn from settings.json)."""
    try:
        with zipfile.ZipFile(bundle) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            if not any(i.filename == "settings.json" for i in infos) or len(infos) > 64:
                raise ValueError("not a SieveNet request zip")
            if any(i.file_size > MAX_MEMBER_BYTES for i in infos):
                raise ValueError("a member is too large")
            return {
                i.filename: archive.read(i) for i in infos if not i.filename.startswith("stages_with_grid/")
            }
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"not a readable zip ({type(exc).__name__})") from None


def _write_outputs(
    members: dict[str, bytes], folder: Path, *, framing: str, show_grid: bool, name: str
) -> RequestFiles:
    """Write the shown files and the zip from the zip's members (the one place both paths go through)."""
    folder.mkdir(parents=True, exist_ok=True)
    record = json.loads(members["settings.json"])
    stage_files = sorted(k for k in members if re.fullmatch(r"stages/\d\d_[a-z_]+\.png", k))
    images = {k.split("_", 1)[1][: -len(".png")]: k for k in stage_files}
    grids = {k: torch.tensor(v) for k, v in record.get("tps", {}).items()} if show_grid else None
    members = dict(members)
    record["show_grid"] = show_grid
    record["framing"] = framing
    members["settings.json"] = json.dumps(record, indent=1).encode()
    gallery = []
    for i, (key, member) in enumerate(images.items(), start=1):
        path = folder / member
        path.parent.mkdir(parents=True, exist_ok=True)
        gridded = bool(grids) and key in grids
        if gridded:
            image = with_grids({key: PIL.Image.open(io.BytesIO(members[member])).convert("RGB")}, grids)[key]
            members[f"stages_with_grid/{Path(member).name}"] = png_bytes(image)
            save_png(image, path)
        else:
            path.write_bytes(members[member])
        gallery.append((str(path), stage_caption(i, key, grid=gridded)))
    crop = framing == "crop"
    final = folder / ("tryon_crop.png" if crop else "tryon.png")
    final.write_bytes(members[images["tryon"]] if crop else members["tryon.png"])
    before = folder / ("before_crop.png" if crop else "before.png")
    before.write_bytes(members["model_input/person_crop.png" if crop else "model_input/photo.png"])
    bundle = folder / name
    with zipfile.ZipFile(bundle, "w") as archive:
        for member, data in members.items():
            # PNGs and photos are already compressed: store them; deflate only the JSON.
            kind = zipfile.ZIP_DEFLATED if member.endswith(".json") else zipfile.ZIP_STORED
            archive.writestr(member, data, compress_type=kind)
    return RequestFiles(final=final, before=before, gallery=gallery, bundle=bundle)


def region_stage(photo: PIL.Image.Image, region: np.ndarray) -> PIL.Image.Image:
    """The painted-region stage: the photo dimmed, the painted pixels tinted magenta."""
    rgb = np.asarray(photo.convert("RGB"), dtype=np.float32)
    inside = region[..., None]
    tint = np.array([255, 0, 255], np.float32)
    shown = np.where(inside, 0.5 * rgb + 0.5 * tint, 0.45 * rgb)
    return PIL.Image.fromarray(shown.round().astype(np.uint8))


class RequestFolders:
    """Fresh per-request output folders under `root`, keeping only the newest `keep` so disk use stays bounded.

    Gradio copies returned files into its own cache (pruned by Blocks(delete_cache=...)), so an old folder
    can go as soon as its request has been answered; `close()` removes the root itself.
    """

    def __init__(self, root: Path, keep: int = 4):
        self.root = root
        self.keep = keep

    def new(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        requests = (p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("_"))
        old = sorted(requests, key=lambda p: p.stat().st_mtime)
        for stale in old[: max(0, len(old) - self.keep + 1)]:
            shutil.rmtree(stale, ignore_errors=True)
        folder = self.root / uuid.uuid4().hex[:12]
        folder.mkdir()
        return folder

    def pinned(self, name: str) -> Path:
        """A folder that `new()` never removes (e.g. the first view's example result)."""
        folder = self.root / f"_{name}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
