"""Evaluate a release: each synthetic studio's test split, the photo path, and a real-photo panel.

    python -m sievenet.eval --weights weights/sievenet-s --n 500                  # 2D and 3D studios, photo path, panel
    python -m sievenet.eval --weights weights/sievenet-s --n 500 --studio 2d --photo-n 0 --no-panel

Each studio's test split (2D, 3D) is scored separately. Paired pairs (the person re-dressed in their own
garment) and unpaired pairs (another garment, with the studio's rendered ground truth) are both scored, on the
whole image and on the garment region (the union of the old and the new garment's pixels, dilated), where
whole-image SSIM is dominated by pixels nobody changed. Two reference rows go through the same code: "no
change" (the person image as is) and "paste" (the product cloth affinely fitted onto the torso box). Results
are also broken down by the studio's metadata (sleeve type, texture family, arms crossing, hair over garment).

The photo path is what a user sees: 3D-studio renders at 512x384 handed to the whole `TryOnPipeline` as
photographs (automatic pose, person mask, parsing, garment cut-out, model, paste-back at photo resolution),
scored against the rendered unpaired truth with the same reference rows. The real-photo panel puts the same
garments on every real photo (no truth exists: a picture, not a number).

LPIPS and FID are not computed: their backbones (AlexNet/VGG-LPIPS heads, Inception) are not available
offline, and a random-weight FID would not be FID.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from torch.nn import functional as F

from sievenet.geometry import warp
from sievenet.labels import NUM_CLASSES, Label
from sievenet.metrics import confusion, dilate, iou_from_confusion, l1, mask_iou, masked_l1, psnr, ssim
from sievenet.models import SieveNet

EVAL_SEED = 0  # the synthetic test split every reported number uses
CATEGORIES = ("sleeve", "texture", "arms_crossing", "hair_over_garment")
ROWS = ("model", "no_change", "paste")
STUDIOS = ("2d", "3d")
PHOTO_SIZE = (512, 384)  # the photo path's renders, H x W: photographs larger than the model's input
PHOTO_N = 50  # photo-path pairs by default (each runs the whole pipeline: about a second on a CPU)
# Real photos of the panel: the examples that are not studio renders, and matplotlib's sample portrait.
PANEL_GARMENTS = (
    "studio3d_garment_0000_print.png",
    "studio3d_garment_0001_checks.png",
    "studio3d_garment_0006_stripes.png",
    "studio_garment_0003_solid.png",
    "studio_garment_0022_dots.png",
    "studio_garment_0007_gradient.png",
)
EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
# The garment region is dilated by this fraction of the image height (5 px at 256x192), so a try-on that
# draws the garment's edge a little off is scored where it went wrong.
GARMENT_DILATION = 0.02
NOT_COMPUTED = (
    "LPIPS and FID need pretrained AlexNet/VGG-LPIPS and Inception weights, which this offline setup does not "
    "have; they are left out rather than computed with random weights"
)
# COCO-18 keypoints that bound the torso: right/left shoulder, right/left hip.
_TORSO_KEYPOINTS = (2, 5, 8, 11)


def _bbox(mask: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool -> (B, 4) pixel boxes x0, y0, x1, y1 (exclusive ends); empty masks give the whole image."""
    b, h, w = mask.shape
    ys = torch.arange(h, device=mask.device).view(1, h, 1).expand(b, h, w)
    xs = torch.arange(w, device=mask.device).view(1, 1, w).expand(b, h, w)
    big = torch.tensor(10**9, device=mask.device)
    x0 = torch.where(mask, xs, big).flatten(1).amin(1)
    y0 = torch.where(mask, ys, big).flatten(1).amin(1)
    x1 = torch.where(mask, xs, -1).flatten(1).amax(1) + 1
    y1 = torch.where(mask, ys, -1).flatten(1).amax(1) + 1
    box = torch.stack([x0, y0, x1, y1], 1).float()
    full = torch.tensor([0.0, 0.0, w, h], device=mask.device).expand(b, 4)
    return torch.where(mask.flatten(1).any(1, keepdim=True), box, full)


def torso_box(keypoints: torch.Tensor, parse: torch.Tensor) -> torch.Tensor:
    """Shoulder-to-hip box from the keypoints; the upper-garment box of the parse where they are missing.

    Args:
        keypoints: (B, 18, 3) pixel (x, y, confidence).
        parse: (B, H, W) model classes.

    Returns:
        (B, 4) x0, y0, x1, y1 in pixels.
    """
    kp = keypoints[:, _TORSO_KEYPOINTS]  # (B, 4, 3)
    seen = kp[..., 2] > 0
    inf = torch.tensor(float("inf"), device=kp.device)
    x0 = torch.where(seen, kp[..., 0], inf).amin(1)
    x1 = torch.where(seen, kp[..., 0], -inf).amax(1)
    y0 = torch.where(seen, kp[..., 1], inf).amin(1)
    y1 = torch.where(seen, kp[..., 1], -inf).amax(1)
    from_kp = torch.stack([x0, y0, x1, y1], 1)
    ok = seen.all(1) & (x1 - x0 > 2) & (y1 - y0 > 2)
    return torch.where(ok[:, None], from_kp, _bbox(parse == Label.UPPER))


def paste_reference(batch: dict) -> torch.Tensor:
    """The "paste" reference: the product cloth scaled and shifted so its box fills the torso box.

    Returns:
        (B, 3, H, W) the person image with the fitted cloth composited over it.
    """
    person, cloth, cloth_mask = batch["person"], batch["cloth"], batch["cloth_mask"]
    b, _, h, w = person.shape
    src = _bbox(cloth_mask[:, 0] > 0.5)
    dst = torso_box(batch["keypoints"], batch["parse"])

    def norm(box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        # Box centre and half-size in normalised coordinates (align_corners=False: pixel edges at +-1).
        cx = (box[:, 0] + box[:, 2]) / w - 1
        cy = (box[:, 1] + box[:, 3]) / h - 1
        return cx, cy, (box[:, 2] - box[:, 0]) / w, (box[:, 3] - box[:, 1]) / h

    scx, scy, sw, sh = norm(src)
    dcx, dcy, dw, dh = norm(dst)
    ax, ay = sw / dw.clamp_min(1e-6), sh / dh.clamp_min(1e-6)
    theta = torch.zeros(b, 2, 3, device=person.device)  # output (torso) coords -> input (cloth) coords
    theta[:, 0, 0], theta[:, 0, 2] = ax, scx - ax * dcx
    theta[:, 1, 1], theta[:, 1, 2] = ay, scy - ay * dcy
    grid = F.affine_grid(theta, [b, 3, h, w], align_corners=False)
    fitted = warp(cloth, grid)
    mask = warp(cloth_mask, grid, padding="zeros")
    return mask * fitted + (1 - mask) * person


def score_rows(
    values: dict[str, list[float]],
    candidates: dict[str, torch.Tensor],
    truth: torch.Tensor,
    region: torch.Tensor,
) -> None:
    """Append each row's whole-image SSIM/PSNR and garment-region SSIM/L1 against `truth` to `values`, and
    the garment region's share of the image."""
    values["garment_fraction"] += region.flatten(1).mean(1).tolist()
    for row, image in candidates.items():
        values[f"{row}_ssim"] += ssim(image, truth).tolist()
        values[f"{row}_psnr"] += psnr(image, truth).tolist()
        values[f"{row}_garment_ssim"] += ssim(image, truth, mask=region).tolist()
        values[f"{row}_garment_l1"] += masked_l1(image, truth, region).tolist()


def garment_region(batch: dict) -> torch.Tensor:
    """(B, 1, H, W) the union of the person's own upper garment (parse) and the tried one as worn
    (worn_mask), dilated by GARMENT_DILATION of the height: every pixel a try-on should change."""
    old = (batch["parse"] == Label.UPPER).unsqueeze(1)
    new = batch["worn_mask"] > 0.5
    radius = max(1, round(GARMENT_DILATION * batch["person"].shape[-2]))
    return dilate(old | new, radius)


def studio_test_split(studio: str, pairs: str, seed: int, size: tuple[int, int], n: int):
    """The synthetic test split of `studio`; "2d" works with any studio version, "3d" needs the 3D studio."""
    from sievenet.errors import DataError
    from sievenet.synthetic import SyntheticTryOn

    if studio not in STUDIOS:
        raise DataError(f"studio must be one of {STUDIOS}, got {studio!r}")
    if studio == "2d":
        return SyntheticTryOn("test", pairs=pairs, seed=seed, size=size, n=n)
    if "studio" not in inspect.signature(SyntheticTryOn).parameters:
        raise DataError(
            f"studio={studio}: this checkout's synthetic studio has only the 2D studio; "
            "update to a version with the 3D studio or evaluate with --studio 2d"
        )
    return SyntheticTryOn("test", pairs=pairs, seed=seed, size=size, n=n, studio=studio)


@torch.no_grad()
def evaluate(
    model: SieveNet,
    *,
    n: int = 500,
    seed: int = EVAL_SEED,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    progress: bool = True,
    studio: str = "2d",
) -> dict:
    """Score `model` on n paired and n unpaired test pairs of the synthetic `studio` ("2d" or "3d").

    Returns:
        {"summary": headline numbers, "paired"/"unpaired": per-row means, "by_category": breakdowns, ...}.
    """
    from sievenet.data import collate

    model = model.to(device).eval()
    size = (model.config.height, model.config.width)
    report: dict = {"n": n, "seed": seed, "split": "test", "studio": studio, "size": list(size),
                    "model": model.config.name}  # fmt: skip
    per_sample: dict[str, dict[str, list[float]]] = {}
    metas: dict[str, list[dict]] = {}
    for pairs in ("paired", "unpaired"):
        dataset = studio_test_split(studio, pairs, seed, size, n)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
        values: dict[str, list[float]] = defaultdict(list)
        counts = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
        batches: Iterable = loader
        if progress:
            from tqdm import tqdm

            batches = tqdm(loader, desc=f"eval {pairs}", unit="batch")
        metas[pairs] = []
        for batch in batches:
            metas[pairs] += batch["meta"]
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            out = model(batch["priors"], batch["cloth"], batch["tt_priors"], batch["cloth_mask"])
            truth, target = batch["truth"], batch["target_warp"]
            values["warp_l1_coarse"] += l1(out.warped_coarse, target).tolist()
            values["warp_l1_fine"] += l1(out.warped_fine, target).tolist()
            values["warp_iou_coarse"] += mask_iou(out.warped_mask_coarse, batch["worn_mask"]).tolist()
            values["warp_iou_fine"] += mask_iou(out.warped_mask_fine, batch["worn_mask"]).tolist()
            candidates = {"model": out.tryon, "no_change": batch["person"], "paste": paste_reference(batch)}
            score_rows(values, candidates, truth, garment_region(batch))
            if pairs == "paired":  # `parse` is the person in this very garment: the M_exp target
                counts += confusion(out.m_exp.argmax(1), batch["parse"], NUM_CLASSES).cpu()
        report[pairs] = {k: _mean(v) for k, v in values.items()}
        if pairs == "paired":
            per_class, miou = iou_from_confusion(counts)
            report[pairs]["m_exp_miou"] = miou.item()
            report[pairs]["m_exp_iou_per_class"] = {
                label.name.lower(): (None if math.isnan(v) else v)
                for label, v in zip(Label, per_class.tolist(), strict=True)
            }
        per_sample[pairs] = dict(values)
    report["by_category"] = {
        pairs: _breakdown(per_sample[pairs], metas[pairs]) for pairs in ("paired", "unpaired")
    }
    u, p = report["unpaired"], report["paired"]
    report["summary"] = {
        "n": n,
        "seed": seed,
        "unpaired_ssim": u["model_ssim"],
        "unpaired_psnr": u["model_psnr"],
        "paired_ssim": p["model_ssim"],
        "paired_psnr": p["model_psnr"],
        "warp_l1_coarse": u["warp_l1_coarse"],
        "warp_l1_fine": u["warp_l1_fine"],
        "warp_fine_vs_coarse": u["warp_l1_fine"] / u["warp_l1_coarse"] - 1,
        "warp_iou_fine": u["warp_iou_fine"],
        "m_exp_miou": p["m_exp_miou"],
        "reference_no_change_unpaired_ssim": u["no_change_ssim"],
        "reference_paste_unpaired_ssim": u["paste_ssim"],
        "unpaired_garment_ssim": u["model_garment_ssim"],
        "unpaired_garment_l1": u["model_garment_l1"],
        "reference_no_change_unpaired_garment_ssim": u["no_change_garment_ssim"],
        "reference_paste_unpaired_garment_ssim": u["paste_garment_ssim"],
    }
    report["lpips"] = report["fid"] = None
    report["not_computed"] = NOT_COMPUTED
    return report


def _mean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]  # an empty region scores NaN: not part of its mean
    return sum(kept) / len(kept) if kept else float("nan")


def _breakdown(values: dict[str, list[float]], metas: list[dict]) -> dict:
    """{category: {value: {"n": count, metric: mean}}} for each metadata category the samples carry."""
    out: dict = {}
    for key in CATEGORIES:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, meta in enumerate(metas):
            if key in meta:
                groups[str(meta[key]).lower()].append(i)
        if groups:
            out[key] = {
                value: {"n": len(idx), **{m: _mean([v[i] for i in idx]) for m, v in values.items()}}
                for value, idx in sorted(groups.items())
            }
    return out


def to_markdown(report: dict, title: str = "Evaluation") -> str:
    """The report as Markdown tables (headline rows, warp and segmentation, per-category breakdown)."""
    lines = [
        f"# {title}",
        "",
        f"Synthetic {report.get('studio', '2d').upper()} studio, test split, seed {report['seed']}, "
        f"{report['n']} pairs per setting, {report['size'][0]}x{report['size'][1]}, model `{report['model']}`"
        + (
            f", perceptual backbone in training: {_backbones(report['perceptual_backbone'])}."
            if report.get("perceptual_backbone")
            else "."
        ),
        "",
        "| row | paired SSIM | paired PSNR (dB) | unpaired SSIM | unpaired PSNR (dB) |",
        "|---|---|---|---|---|",
    ]
    names = {"model": "SieveNet (this release)", "no_change": "no change (person as is)", "paste": "paste (cloth fitted to torso box)"}  # fmt: skip
    p, u = report["paired"], report["unpaired"]
    for row in ROWS:
        lines.append(
            f"| {names[row]} | {p[f'{row}_ssim']:.4f} | {p[f'{row}_psnr']:.2f} | "
            f"{u[f'{row}_ssim']:.4f} | {u[f'{row}_psnr']:.2f} |"
        )
    if "model_garment_ssim" in u:
        lines += [
            "",
            f"Garment region (old and new garment, dilated; {100 * u['garment_fraction']:.1f} % of the image "
            "unpaired):",
            "",
            "| row | paired SSIM | paired L1 | unpaired SSIM | unpaired L1 |",
            "|---|---|---|---|---|",
        ]
        for row in ROWS:
            lines.append(
                f"| {names[row]} | {p[f'{row}_garment_ssim']:.4f} | {p[f'{row}_garment_l1']:.4f} | "
                f"{u[f'{row}_garment_ssim']:.4f} | {u[f'{row}_garment_l1']:.4f} |"
            )
    lines += [
        "",
        "| warp | paired L1 | paired worn-mask IoU | unpaired L1 | unpaired worn-mask IoU |",
        "|---|---|---|---|---|",
    ]
    for stage, name in (("coarse", "I_stn^0 (coarse)"), ("fine", "I_stn^1 (fine)")):
        lines.append(
            f"| {name} | {p[f'warp_l1_{stage}']:.4f} | {p[f'warp_iou_{stage}']:.4f} | "
            f"{u[f'warp_l1_{stage}']:.4f} | {u[f'warp_iou_{stage}']:.4f} |"
        )
    lines += ["", f"M_exp mIoU (paired, 8 classes): {p['m_exp_miou']:.4f}", ""]
    per_class = p["m_exp_iou_per_class"]
    lines += [
        "| " + " | ".join(per_class) + " |",
        "|" + "---|" * len(per_class),
        "| " + " | ".join("-" if v is None else f"{v:.3f}" for v in per_class.values()) + " |",
        "",
        "## Unpaired, by category",
        "",
        "| category | value | n | SSIM | PSNR | no-change SSIM | paste SSIM | garment SSIM | no-change garment "
        "SSIM | warp L1 fine | warp IoU fine |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, groups in report["by_category"]["unpaired"].items():
        for value, r in groups.items():
            lines.append(
                f"| {key} | {value} | {r['n']} | {r['model_ssim']:.4f} | {r['model_psnr']:.2f} | "
                f"{r['no_change_ssim']:.4f} | {r['paste_ssim']:.4f} | {r.get('model_garment_ssim', math.nan):.4f} | "
                f"{r.get('no_change_garment_ssim', math.nan):.4f} | {r['warp_l1_fine']:.4f} | "
                f"{r['warp_iou_fine']:.4f} |"
            )
    lines += ["", f"LPIPS, FID: not computed. {report['not_computed']}.", ""]
    return "\n".join(lines)


def _backbones(per_stage: dict) -> str:
    """'warp: random, tt: random' from the manifest's per-stage perceptual backbones."""
    return ", ".join(f"{stage}: {name}" for stage, name in per_stage.items()) or "none"


def evaluate_release(
    weights: str | Path,
    *,
    n: int = 500,
    seed: int = EVAL_SEED,
    batch_size: int = 8,
    device: str = "cpu",
    out_dir: str | Path | None = None,
    progress: bool = True,
    studio: str = "2d",
) -> dict:
    """Load a release, evaluate it, and (if out_dir) write eval.json and eval.md there."""
    from sievenet.models.sievenet import read_manifest, resolve_release

    model = SieveNet.from_pretrained(weights, device=device)
    manifest = read_manifest(resolve_release(weights))
    t0 = time.perf_counter()
    report = evaluate(
        model, n=n, seed=seed, batch_size=batch_size, device=device, progress=progress, studio=studio
    )
    report["weights"] = str(weights)
    report["weights_sha256"] = manifest["weights"]["sha256"]
    report["trained_stages"] = manifest.get("trained_stages", [])
    report["perceptual_backbone"] = manifest.get("perceptual_backbone", {})
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "eval.md").write_text(to_markdown(report, title=f"Evaluation of {weights}"))
    return report


# ---- the photo path: studio renders as photographs through the whole TryOnPipeline --------------------------


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8, the photograph a user would upload."""
    return ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def _from_uint8(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1


def parser_name(pipeline) -> str:
    """Which human parser the pipeline's preprocessor actually uses, for the report: the learned one (and its
    weights) when it has it, else the heuristic (and why)."""
    pre = pipeline.preprocessor
    heuristic = "heuristic (sievenet.preprocess.parsing.parse_person)"
    if getattr(pre, "parser", "heuristic") != "learned":
        return heuristic
    learned = getattr(pre, "learned_parser", None)  # built on first use; None when its weights are missing
    if learned is None:
        return f"{heuristic}: the learned parser's weights are missing"
    return f"learned ({getattr(pre, 'parser_weights', None) or 'default weights'})"


@torch.no_grad()
def photo_path(
    pipeline,
    *,
    n: int = PHOTO_N,
    seed: int = EVAL_SEED,
    size: tuple[int, int] = PHOTO_SIZE,
    studio: str = "3d",
    dataset=None,
    progress: bool = True,
    examples: int = 4,
) -> dict:
    """Score the whole pipeline on studio renders used as photographs, against the rendered unpaired truth.

    Each unpaired test pair's person render (at `size`) and the tried garment's product image go through
    `pipeline(person, garment)` exactly as two uploaded photos would (pose, mask, parsing and garment cut-out
    are its own, automatic). A photo the pipeline refuses counts as "no change" (the user gets no try-on) and
    is counted in `refused`. The reference rows use the studio's own keypoints and parse (so "paste" is
    given the true torso box the pipeline has to find).

    Args:
        pipeline: a TryOnPipeline (or anything called as pipeline(person_rgb, garment_rgb) -> .image).
        dataset: the unpaired samples to use (default: the studio's test split at `size`, n pairs).
        examples: how many (photo, garment, result, truth) rows to keep as pictures in report["pictures"].

    Returns:
        {"n", "refused", "model"/"no_change"/"paste": {ssim, psnr, garment_ssim, garment_l1}, "warnings", ...}.
    """
    from sievenet.data import collate
    from sievenet.errors import TryOnError

    if dataset is None:
        dataset = studio_test_split(studio, "unpaired", seed, size, n)
    n = min(n, len(dataset))
    values: dict[str, list[float]] = defaultdict(list)
    refused: list[dict] = []
    warnings: dict[str, int] = defaultdict(int)
    pictures: list[np.ndarray] = []
    indices: Iterable = range(n)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="photo path", unit="photo")
    for i in indices:
        batch = collate([dataset[i]])
        person, cloth = _to_uint8(batch["person"][0]), _to_uint8(batch["cloth"][0])
        try:
            result = pipeline(person, cloth)
            image = np.asarray(result.image.convert("RGB"))
            if image.shape != person.shape:  # the pipeline may shrink large photos; score at the truth's size
                image = np.asarray(result.image.convert("RGB").resize(person.shape[1::-1], resample=3))
            for note in result.warnings:
                warnings[note] += 1
        except TryOnError as exc:
            refused.append({"index": i, "reason": str(exc)})
            image = person
        truth = batch["truth"]
        candidates = {
            "model": _from_uint8(image)[None],
            "no_change": _from_uint8(person)[None],
            "paste": paste_reference(batch),
        }
        score_rows(values, candidates, truth, garment_region(batch))
        if len(pictures) < examples:
            pictures.append(np.concatenate([person, cloth, image, _to_uint8(truth[0])], axis=1))
    means = {k: _mean(v) for k, v in values.items()}
    report = {
        "n": n,
        "seed": seed,
        "studio": studio,
        "size": list(size),
        "refused": len(refused),
        "refusals": refused,
        "warnings": dict(sorted(warnings.items(), key=lambda kv: -kv[1])),
        "parser": parser_name(pipeline) if hasattr(pipeline, "preprocessor") else None,
        "garment_fraction": means["garment_fraction"],
    }
    for row in ROWS:
        report[row] = {m: means[f"{row}_{m}"] for m in ("ssim", "psnr", "garment_ssim", "garment_l1")}
    report["per_sample_ssim_gain"] = {  # model minus no change, mean and standard error over the photos
        key: _mean_se(
            [a - b for a, b in zip(values[f"model_{key}"], values[f"no_change_{key}"], strict=True)]
        )
        for key in ("ssim", "garment_ssim")
    }
    report["pictures"] = pictures
    return report


def _mean_se(values: list[float]) -> dict[str, float]:
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return {"mean": float("nan"), "se": float("nan")}
    mean = sum(kept) / len(kept)
    var = sum((v - mean) ** 2 for v in kept) / max(1, len(kept) - 1)
    return {"mean": mean, "se": math.sqrt(var / len(kept))}


def real_photos() -> list[Path]:
    """Every real photo the panel dresses: the example persons that are not studio renders, and matplotlib's
    grace_hopper.jpg (when matplotlib is installed)."""
    photos = sorted(p for p in (EXAMPLES / "persons").glob("*") if not p.name.startswith("studio"))
    try:
        from matplotlib import cbook

        photos.append(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    except (ImportError, OSError, ValueError):
        pass
    return photos


def real_photo_panel(
    pipeline,
    photos: list[Path] | None = None,
    garments: list[Path] | None = None,
    *,
    height: int = 256,
) -> tuple[PIL.Image.Image, dict]:
    """The same garments on every real photo, as one picture: a header row of the garments, then one row per
    photo (the photo, then each try-on). A refused try-on is a grey tile with its reason in the report.

    Returns:
        (picture, {"photos": names, "garments": names, "refused": [...], "warnings": {...}}).
    """
    from sievenet.errors import TryOnError

    photos = real_photos() if photos is None else photos
    garments = [EXAMPLES / "garments" / g for g in PANEL_GARMENTS] if garments is None else garments
    width = round(height * 3 / 4)

    def tile(image: PIL.Image.Image) -> PIL.Image.Image:
        image = image.convert("RGB")
        image.thumbnail((width, height), PIL.Image.LANCZOS)
        canvas = PIL.Image.new("RGB", (width, height), "white")
        canvas.paste(image, ((width - image.width) // 2, (height - image.height) // 2))
        return canvas

    rows = [[PIL.Image.new("RGB", (width, height), "white")] + [tile(PIL.Image.open(g)) for g in garments]]
    refused, warnings = [], defaultdict(list)
    for photo in photos:
        row = [tile(PIL.Image.open(photo))]
        for garment in garments:
            try:
                result = pipeline(photo, garment)
                row.append(tile(result.image))
                for note in result.warnings:
                    warnings[photo.name].append(note)
            except TryOnError as exc:
                refused.append({"photo": photo.name, "garment": garment.name, "reason": str(exc)})
                row.append(PIL.Image.new("RGB", (width, height), (128, 128, 128)))
        rows.append(row)
    picture = PIL.Image.new("RGB", (width * len(rows[0]), height * len(rows)), "white")
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            picture.paste(image, (c * width, r * height))
    info = {
        "photos": [p.name for p in photos],
        "garments": [g.name for g in garments],
        "refused": refused,
        "warnings": {k: sorted(set(v)) for k, v in warnings.items()},
        "parser": parser_name(pipeline) if hasattr(pipeline, "preprocessor") else None,
    }
    return picture, info


# ---- everything at once: what `python -m sievenet.eval` runs -----------------------------------------------


def targets(report: dict) -> list[dict]:
    """The issue's targets against what `report` (evaluate_suite's) measured: [{target, measured, met}]."""
    rows = []
    for studio, r in report["studios"].items():
        u = r["unpaired"]
        gain = u["model_ssim"] - u["no_change_ssim"]
        garment_gain = u["model_garment_ssim"] - u["no_change_garment_ssim"]
        fine = r["summary"]["warp_fine_vs_coarse"]
        rows += [
            {"target": f"{studio.upper()} unpaired SSIM >= no change + 0.03",
             "measured": f"{u['model_ssim']:.4f} vs {u['no_change_ssim']:.4f} ({gain:+.4f})", "met": gain >= 0.03},
            {"target": f"{studio.upper()} unpaired garment-region SSIM >= no change + 0.15",
             "measured": f"{u['model_garment_ssim']:.4f} vs {u['no_change_garment_ssim']:.4f} ({garment_gain:+.4f})",
             "met": garment_gain >= 0.15},
            {"target": f"{studio.upper()} fine warp L1 >= 10 % below coarse (unpaired)",
             "measured": f"{u['warp_l1_fine']:.4f} vs {u['warp_l1_coarse']:.4f} ({100 * fine:+.1f} %)",
             "met": fine <= -0.10},
        ]  # fmt: skip
        if studio == "3d":
            miou = r["paired"]["m_exp_miou"]
            rows.append({"target": "3D M_exp mIoU >= 0.85", "measured": f"{miou:.4f}", "met": miou >= 0.85})
    photo = report.get("photo_path")
    if photo:
        gain = photo["model"]["ssim"] - photo["no_change"]["ssim"]
        rows.append({
            "target": "photo path (3D renders through TryOnPipeline) beats no change (SSIM)",
            "measured": f"{photo['model']['ssim']:.4f} vs {photo['no_change']['ssim']:.4f} ({gain:+.4f})",
            "met": gain > 0,
        })  # fmt: skip
    return rows


def evaluate_suite(
    weights: str | Path,
    *,
    studios: tuple[str, ...] = STUDIOS,
    n: int = 500,
    photo_n: int = PHOTO_N,
    panel: bool = True,
    seed: int = EVAL_SEED,
    batch_size: int = 8,
    device: str = "cpu",
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate a release on each studio's test split, the photo path and the real-photo panel.

    Writes (if out_dir) eval.json (everything; "summary" is what --record puts in the manifest), eval.md,
    photo-path.png (a few photo-path rows: photo | garment | pipeline result | truth) and real-photos.png.
    """
    from sievenet.models.sievenet import read_manifest, resolve_release

    t0 = time.perf_counter()
    model = SieveNet.from_pretrained(weights, device=device)
    manifest = read_manifest(resolve_release(weights))
    report: dict = {
        "weights": str(weights),
        "weights_sha256": manifest["weights"]["sha256"],
        "trained_stages": manifest.get("trained_stages", []),
        "perceptual_backbone": manifest.get("perceptual_backbone", {}),
        "n": n,
        "seed": seed,
        "studios": {},
    }
    for studio in studios:
        r = evaluate(
            model, n=n, seed=seed, batch_size=batch_size, device=device, progress=progress, studio=studio
        )
        r["perceptual_backbone"] = report["perceptual_backbone"]
        report["studios"][studio] = r
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    pipeline = None
    if photo_n > 0 or panel:
        from sievenet.pipeline import TryOnPipeline

        pipeline = TryOnPipeline(model, device=device)
    if photo_n > 0:
        photo = photo_path(pipeline, n=photo_n, seed=seed, progress=progress)
        pictures = photo.pop("pictures")
        if out is not None and pictures:
            PIL.Image.fromarray(np.concatenate(pictures, axis=0)).save(out / "photo-path.png")
            photo["picture"] = "photo-path.png"
        report["photo_path"] = photo
    if panel:
        picture, info = real_photo_panel(pipeline)
        if out is not None:
            picture.save(out / "real-photos.png")
            info["picture"] = "real-photos.png"
        report["real_photo_panel"] = info
    report["summary"] = {
        "n": n,
        "seed": seed,
        **{studio: r["summary"] for studio, r in report["studios"].items()},
    }
    if "photo_path" in report:
        p = report["photo_path"]
        report["summary"]["photo_path"] = {
            "n": p["n"], "refused": p["refused"], "parser": p["parser"],
            **{f"{row}_{m}": p[row][m] for row in ROWS for m in ("ssim", "garment_ssim")},
        }  # fmt: skip
    report["targets"] = targets(report)
    report["lpips"] = report["fid"] = None
    report["not_computed"] = NOT_COMPUTED
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if out is not None:
        (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "eval.md").write_text(suite_markdown(report, title=f"Evaluation of {weights}"))
    return report


def suite_markdown(report: dict, title: str = "Evaluation") -> str:
    """evaluate_suite's report as Markdown: headline per studio, targets, photo path, panel, then each
    studio's full tables."""
    names = {"model": "SieveNet (this release)", "no_change": "no change (person as is)", "paste": "paste (cloth fitted to torso box)"}  # fmt: skip
    lines = [
        f"# {title}",
        "",
        f"Test splits, seed {report['seed']}, {report['n']} pairs per setting and studio; perceptual backbone "
        f"in training: {_backbones(report.get('perceptual_backbone') or {})}. Weights sha256 "
        f"`{report['weights_sha256'][:16]}...`.",
        "",
        "## Unpaired, each studio (whole image and garment region)",
        "",
        "| studio | row | SSIM | PSNR (dB) | garment SSIM | garment L1 |",
        "|---|---|---|---|---|---|",
    ]
    for studio, r in report["studios"].items():
        u = r["unpaired"]
        for row in ROWS:
            lines.append(
                f"| {studio.upper()} | {names[row]} | {u[f'{row}_ssim']:.4f} | {u[f'{row}_psnr']:.2f} | "
                f"{u[f'{row}_garment_ssim']:.4f} | {u[f'{row}_garment_l1']:.4f} |"
            )
    photo = report.get("photo_path")
    if photo:
        h, w = photo["size"]
        lines += [
            "",
            f"## The photo path ({photo['studio'].upper()} renders at {h}x{w} as photographs, whole TryOnPipeline)",
            "",
            f"{photo['n']} unpaired test pairs; pose and person mask: mediapipe; parser: {photo['parser']}; "
            f"garment cut out of its product photo by the pipeline; paste-back at photo resolution. Refused: "
            f"{photo['refused']} (scored as no change). Scored against the rendered truth at {h}x{w}; the garment "
            f"region is {100 * photo['garment_fraction']:.1f} % of the image. Model minus no change, per photo: "
            f"SSIM {photo['per_sample_ssim_gain']['ssim']['mean']:+.4f} ± "
            f"{photo['per_sample_ssim_gain']['ssim']['se']:.4f}, garment SSIM "
            f"{photo['per_sample_ssim_gain']['garment_ssim']['mean']:+.4f} ± "
            f"{photo['per_sample_ssim_gain']['garment_ssim']['se']:.4f} (mean ± s.e.).",
            "",
            "| row | SSIM | PSNR (dB) | garment SSIM | garment L1 |",
            "|---|---|---|---|---|",
        ]
        for row in ROWS:
            p = photo[row]
            label = names[row] if row != "paste" else "paste (cloth fitted to the studio's true torso box)"
            lines.append(
                f"| {label} | {p['ssim']:.4f} | {p['psnr']:.2f} | {p['garment_ssim']:.4f} | {p['garment_l1']:.4f} |"
            )
        if photo.get("picture"):
            lines += ["", f"![photo | garment | pipeline | truth]({photo['picture']})"]
        if photo["refusals"]:
            lines += [
                "",
                "Refusals: " + "; ".join(f"#{x['index']}: {x['reason']}" for x in photo["refusals"]),
            ]
    panel = report.get("real_photo_panel")
    if panel:
        lines += [
            "",
            f"## Real photos ({', '.join(panel['photos'])}), parser: {panel['parser']}",
            "",
            "First row: the garments; then each photo and its try-ons (no truth exists for these).",
        ]
        if panel.get("picture"):
            lines += ["", f"![real-photo panel]({panel['picture']})"]
        if panel["refused"]:
            lines += ["", "Refused: " + "; ".join(f"{x['photo']} + {x['garment']}: {x['reason']}" for x in panel["refused"])]  # fmt: skip
    lines += ["", "## Targets (issue 15)", "", "| target | measured | met? |", "|---|---|---|"]
    lines += [
        f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no'} |" for t in report["targets"]
    ]
    for studio, r in report["studios"].items():
        body = to_markdown(r, title=f"{studio.upper()} studio").splitlines()
        lines += ["", *("#" + line if line.startswith("#") else line for line in body)]  # a level down
    lines += ["", f"LPIPS, FID: not computed. {report['not_computed']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sievenet.eval", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="release folder (or its .safetensors file)")
    parser.add_argument(
        "--n", type=int, default=500, help="pairs per setting (paired and unpaired) and studio"
    )
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help="synthetic test-split seed")
    parser.add_argument(
        "--studio",
        nargs="+",
        default=list(STUDIOS),
        choices=STUDIOS,
        help="which synthetic studios' test splits, each scored separately (default: 2d 3d)",
    )
    parser.add_argument(
        "--photo-n",
        type=int,
        default=PHOTO_N,
        help=f"photo-path pairs: 3D renders at {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} through the whole TryOnPipeline "
        f"(default {PHOTO_N}; 0 skips it)",
    )
    parser.add_argument("--no-panel", action="store_true", help="skip the real-photo panel (real-photos.png)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--out", default=None, help="folder for eval.json, eval.md and the pictures (default: WEIGHTS/eval)"
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="also write the summary into the release's manifest.json metrics",
    )
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    if args.photo_n < 0:
        parser.error("--photo-n must be 0 (skip) or more")
    from sievenet.errors import DataError, TryOnError, WeightsError

    out = args.out or (Path(args.weights) / "eval" if Path(args.weights).is_dir() else "eval")
    try:
        report = evaluate_suite(
            args.weights,
            studios=tuple(dict.fromkeys(args.studio)),
            n=args.n,
            photo_n=args.photo_n,
            panel=not args.no_panel,
            seed=args.seed,
            batch_size=args.batch_size,
            device=args.device,
            out_dir=out,
        )
    except (WeightsError, DataError, TryOnError) as exc:
        parser.exit(2, f"error: {exc}\n")
    if args.record:
        from sievenet.export import add_metrics
        from sievenet.models.sievenet import resolve_release

        add_metrics(resolve_release(args.weights), report["summary"])
    print(suite_markdown(report, title=f"Evaluation of {args.weights}"))
    print(f"wrote {Path(out) / 'eval.json'} and {Path(out) / 'eval.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
