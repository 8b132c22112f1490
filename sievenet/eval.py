"""Evaluate a release on the synthetic test split: warp, segmentation and try-on metrics, with reference rows.

    python -m sievenet.eval --weights weights/sievenet-s --n 500

    python -m sievenet.eval --weights weights/sievenet-s --n 500 --studio 3d   # the 3D studio's test split

Paired pairs (the person re-dressed in their own garment) and unpaired pairs (another garment, with the
studio's rendered ground truth) are both scored, on the whole image and on the garment region (the union of
the old and the new garment's pixels, dilated), where whole-image SSIM is dominated by pixels nobody changed. Two reference rows go through the same code: "no change"
(the person image as is) and "paste" (the product cloth affinely fitted onto the torso box). Results are
also broken down by the studio's metadata (sleeve type, texture family, arms crossing, hair over garment).
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
            region = garment_region(batch)
            values["garment_fraction"] += region.flatten(1).mean(1).tolist()
            for row, image in candidates.items():
                values[f"{row}_ssim"] += ssim(image, truth).tolist()
                values[f"{row}_psnr"] += psnr(image, truth).tolist()
                values[f"{row}_garment_ssim"] += ssim(image, truth, mask=region).tolist()
                values[f"{row}_garment_l1"] += masked_l1(image, truth, region).tolist()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sievenet.eval", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="release folder (or its .safetensors file)")
    parser.add_argument("--n", type=int, default=500, help="pairs per setting (paired and unpaired)")
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help="synthetic test-split seed")
    parser.add_argument(
        "--studio", default="2d", choices=STUDIOS, help="which synthetic studio's test split (default 2d)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--out", default=None, help="folder for eval.json and eval.md (default: WEIGHTS/eval)"
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="also write the summary into the release's manifest.json metrics",
    )
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    from sievenet.errors import DataError, WeightsError

    out = args.out or (Path(args.weights) / "eval" if Path(args.weights).is_dir() else "eval")
    try:
        report = evaluate_release(
            args.weights,
            n=args.n,
            seed=args.seed,
            batch_size=args.batch_size,
            device=args.device,
            out_dir=out,
            studio=args.studio,
        )
    except (WeightsError, DataError) as exc:
        parser.exit(2, f"error: {exc}\n")
    if args.record:
        from sievenet.export import add_metrics
        from sievenet.models.sievenet import resolve_release

        add_metrics(resolve_release(args.weights), report["summary"])
    print(to_markdown(report, title=f"Evaluation of {args.weights}"))
    print(f"wrote {Path(out) / 'eval.json'} and {Path(out) / 'eval.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
