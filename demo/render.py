"""Turn a TryOnResult into what the UI shows and what "Download all" packs: gallery items, legend, tables, zip."""

from __future__ import annotations

import json
import shutil
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont
import torch

from sievenet.data import write_lip_png, write_openpose_json
from sievenet.labels import LABEL_COLOURS, Label, label_to_lip
from sievenet.pipeline import STAGES, TryOnResult, draw_control_grid

LEGEND_ROW = 14  # px per legend entry; readable at the 192 px model width


def label_name(label: Label) -> str:
    """Human name of a model class: LEFT_ARM -> "left arm"."""
    return label.name.lower().replace("_", " ")


def with_legend(image: PIL.Image.Image) -> PIL.Image.Image:
    """Append a colour legend of the 8 model classes under a colourised M_exp, so the image explains itself."""
    font = PIL.ImageFont.load_default(size=max(9, LEGEND_ROW - 4))
    per_row = 2 if image.width >= 160 else 1  # two columns of names need about 80 px each
    rows = -(-len(Label) // per_row)
    out = PIL.Image.new("RGB", (image.width, image.height + rows * LEGEND_ROW + 4), "white")
    out.paste(image.convert("RGB"), (0, 0))
    draw = PIL.ImageDraw.Draw(out)
    column = image.width // per_row
    for i, label in enumerate(Label):
        x = (i % per_row) * column + 3
        y = image.height + 2 + (i // per_row) * LEGEND_ROW
        draw.rectangle(
            (x, y + 2, x + LEGEND_ROW - 5, y + LEGEND_ROW - 3), fill=LABEL_COLOURS[label], outline="grey"
        )
        draw.text((x + LEGEND_ROW, y), label_name(label), fill="black", font=font)
    return out


def legend_html() -> str:
    """The M_exp legend as inline HTML swatches, shown under the stage gallery."""
    items = []
    for label in Label:
        r, g, b = LABEL_COLOURS[label]
        items.append(
            f'<span style="display:inline-flex;align-items:center;margin-right:12px">'
            f'<span style="width:12px;height:12px;background:rgb({r},{g},{b});border:1px solid #888;'
            f'margin-right:4px;display:inline-block"></span>{label_name(label)}</span>'
        )
    return '<div id="m-exp-legend"><b>M_exp colours:</b> ' + "".join(items) + "</div>"


def control_grids(result: TryOnResult) -> dict[str, torch.Tensor] | None:
    """The TPS parameters that moved each warp image: theta for I_stn^0, theta + delta_theta for I_stn^1."""
    if result.output is None:
        return None
    # Stage 2 warps the original cloth with theta + delta_theta (DESIGN §1), so that is the grid it followed.
    return {
        "warp_coarse": result.output.theta.detach().cpu(),
        "warp_fine": (result.output.theta + result.output.delta_theta).detach().cpu(),
    }


def stage_images(
    stages: dict[str, PIL.Image.Image], *, grids: dict[str, torch.Tensor] | None = None
) -> dict[str, PIL.Image.Image]:
    """The stage images as shown, in pipeline order: M_exp gets its legend; `grids` draws TPS grids on the warps."""
    images = {key: stages[key] for key in STAGES if key in stages}
    if "m_exp" in images:
        images["m_exp"] = with_legend(images["m_exp"])
    for key, theta in (grids or {}).items():
        if key in images:
            grid_size = round((theta.shape[-1] // 2) ** 0.5)  # theta holds 2*G*G offsets
            images[key] = draw_control_grid(images[key], theta, grid_size)
    return images


def stage_gallery(
    stages: dict[str, PIL.Image.Image], *, grids: dict[str, torch.Tensor] | None = None
) -> list[tuple[PIL.Image.Image, str]]:
    """Gallery items (image, caption) in pipeline order; captions number the stages and mark grid overlays."""
    images = stage_images(stages, grids=grids)
    return [(images[key], caption) for key, caption in stage_gallery_captions(stages, grids)]


def stage_gallery_captions(
    stages: dict[str, PIL.Image.Image], grids: dict[str, torch.Tensor] | None = None
) -> list[tuple[str, str]]:
    """(stage key, caption) in pipeline order; captions number the stages and mark grid overlays."""
    captions = []
    for i, key in enumerate((key for key in STAGES if key in stages), start=1):
        caption = f"{i}. {STAGES[key]}"
        if grids and key in grids:
            caption += " + TPS grid"
        captions.append((key, caption))
    return captions


def timings_markdown(timings: dict[str, float], total_ms: float) -> str:
    """Per-step timings (ms) as a Markdown table, with the wall time of the whole request last."""
    lines = ["| step | ms |", "|---|---:|"]
    lines += [f"| {name} | {ms:.1f} |" for name, ms in timings.items()]
    lines.append(f"| **total (request)** | **{total_ms:.1f}** |")
    return "\n".join(lines)


@dataclass
class RequestFiles:
    """One request's outputs as files: what the UI shows is exactly what "Download all" packs."""

    final: Path  # the try-on as framed (full photo or crop)
    before: Path  # the person, framed like `final`
    gallery: list[tuple[str, str]]  # (stage PNG path, caption) in pipeline order
    bundle: Path  # zip of everything above plus keypoints JSON, parse PNG and timings


def save_png(image: PIL.Image.Image, path: Path) -> Path:
    """Save a lossless PNG fast: zlib level 1 is ~5x quicker than the default and only ~15% larger."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", compress_level=1)
    return path


def write_request_files(
    result: TryOnResult,
    folder: Path,
    *,
    before: PIL.Image.Image,
    crop_framing: bool = False,
    grids: dict[str, torch.Tensor] | None = None,
) -> RequestFiles:
    """Encode every output image once, into `folder`, and zip the same files for "Download all".

    Args:
        result: the pipeline's result.
        folder: a fresh folder for this request.
        before: the person image framed like the try-on (the "before" half of the comparison).
        crop_framing: show the H x W crop instead of the full photo.
        grids: TPS parameters to draw on the warps (see control_grids), or None.
    """
    photo = save_png(result.image, folder / "tryon.png")
    crop = save_png(result.crop, folder / "tryon_crop.png")
    before_path = save_png(before, folder / "before.png")
    gallery = []
    for (key, image), (_, caption) in zip(
        stage_images(result.stages, grids=grids).items(),
        stage_gallery_captions(result.stages, grids),
        strict=True,
    ):
        path = save_png(image, folder / "stages" / f"{len(gallery) + 1:02d}_{key}.png")
        gallery.append((str(path), caption))
    parse = folder / "parse.png"
    write_lip_png(parse, label_to_lip(result.parse))  # LIP ids and palette, as VITON-HD's image-parse-v3
    # The same OpenPose JSON the "Upload OpenPose JSON" pose option reads back.
    keypoints = folder / "keypoints.json"
    write_openpose_json(keypoints, result.keypoints)

    bundle = folder / "sievenet-tryon.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        # PNGs are already compressed: store them; deflate only the JSON.
        for path in [photo, crop, parse, *(Path(p) for p, _ in gallery)]:
            archive.write(path, path.relative_to(folder).as_posix(), compress_type=zipfile.ZIP_STORED)
        archive.write(keypoints, keypoints.name, compress_type=zipfile.ZIP_DEFLATED)
        timings = {"ms": result.timings, "warnings": result.warnings}
        archive.writestr("timings.json", json.dumps(timings, indent=1), compress_type=zipfile.ZIP_DEFLATED)
    return RequestFiles(
        final=crop if crop_framing else photo, before=before_path, gallery=gallery, bundle=bundle
    )


class RequestFolders:
    """Fresh per-request output folders under `root`, keeping only the newest `keep` so disk use stays bounded.

    Gradio copies returned files into its own cache (pruned by Blocks(delete_cache=...)), so an old folder
    can go as soon as its request has been answered.
    """

    def __init__(self, root: Path, keep: int = 16):
        self.root = root
        self.keep = keep

    def new(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        old = sorted((p for p in self.root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for stale in old[: max(0, len(old) - self.keep + 1)]:
            shutil.rmtree(stale, ignore_errors=True)
        folder = self.root / uuid.uuid4().hex[:12]
        folder.mkdir()
        return folder
