"""Turn a TryOnResult into what the UI shows and what "Download all" packs: gallery items, legend, tables, zip."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont
import torch

from sievenet.labels import LABEL_COLOURS, LIP_PALETTE, Label, label_to_lip
from sievenet.pipeline import STAGES, TryOnResult, draw_control_grid

LEGEND_ROW = 14  # px per legend entry; readable at the 192 px model width


def label_name(label: Label) -> str:
    """Human name of a model class: LEFT_ARM -> "left arm"."""
    return label.name.lower().replace("_", " ")


def with_legend(image: PIL.Image.Image) -> PIL.Image.Image:
    """Append a colour legend of the 8 model classes under a colourised M_exp, so the image explains itself."""
    font = PIL.ImageFont.load_default(size=max(9, LEGEND_ROW - 4))
    per_row = 2
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
    items = []
    for i, (key, image) in enumerate(stage_images(stages, grids=grids).items(), start=1):
        caption = f"{i}. {STAGES[key]}"
        if grids and key in grids:
            caption += " + TPS grid"
        items.append((image, caption))
    return items


def timings_markdown(timings: dict[str, float], total_ms: float) -> str:
    """Per-step timings (ms) as a Markdown table, with the wall time of the whole request last."""
    lines = ["| step | ms |", "|---|---:|"]
    lines += [f"| {name} | {ms:.1f} |" for name, ms in timings.items()]
    lines.append(f"| **total (request)** | **{total_ms:.1f}** |")
    return "\n".join(lines)


def keypoints_openpose(keypoints: np.ndarray) -> dict:
    """(18, 3) COCO-18 keypoints as an OpenPose JSON document (the format the "upload JSON" pose option reads)."""
    flat = [round(float(v), 3) for v in np.asarray(keypoints, dtype=np.float64).reshape(-1)]
    return {"version": 1.3, "people": [{"pose_keypoints_2d": flat}]}


def parse_png(parse: np.ndarray) -> PIL.Image.Image:
    """A model-class map as a P-mode PNG with LIP/CIHP ids and palette, as VITON-HD's image-parse-v3 stores it."""
    image = PIL.Image.fromarray(label_to_lip(parse), mode="P")
    image.putpalette(LIP_PALETTE)
    return image


def bundle_bytes(result: TryOnResult, *, show_grid: bool = False) -> bytes:
    """Every stage, the try-on (photo and crop), keypoints JSON, parse PNG and timings, zipped in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        def add_png(name: str, image: PIL.Image.Image) -> None:
            png = io.BytesIO()
            image.save(png, format="PNG")
            archive.writestr(name, png.getvalue())

        add_png("tryon.png", result.image)
        add_png("tryon_crop.png", result.crop)
        grids = control_grids(result) if show_grid else None
        for i, (key, image) in enumerate(stage_images(result.stages, grids=grids).items(), start=1):
            add_png(f"stages/{i:02d}_{key}.png", image)
        add_png("parse.png", parse_png(result.parse))
        archive.writestr("keypoints.json", json.dumps(keypoints_openpose(result.keypoints), indent=1))
        archive.writestr(
            "timings.json", json.dumps({"ms": result.timings, "warnings": result.warnings}, indent=1)
        )
    return buffer.getvalue()


def write_bundle(result: TryOnResult, directory: Path, *, show_grid: bool = False, keep: int = 16) -> Path:
    """Write the zip into `directory`, deleting all but the newest `keep` bundles so disk use stays bounded."""
    directory.mkdir(parents=True, exist_ok=True)
    old = sorted(directory.glob("sievenet-tryon-*.zip"), key=lambda p: p.stat().st_mtime)
    for stale in old[: max(0, len(old) - keep + 1)]:
        stale.unlink(missing_ok=True)
    path = directory / f"sievenet-tryon-{uuid.uuid4().hex[:12]}.zip"
    path.write_bytes(bundle_bytes(result, show_grid=show_grid))
    return path
