"""Benchmarks that print tables (never asserted in tests): `python -m sievenet.bench [--threads 2] [--repeat 20]`.

Model table: parameters, release file size and median CPU forward latency (batch 1) per module and in total.
Pipeline table: TryOnPipeline end to end on a 1024x768 photo, median ms of each step and in total.
Compose table (`--compose N`): garment-region SSIM of the try-on at a studio scene's full resolution, composed
at that resolution vs the model's 256x192 output upsampled (`--compose-picture PATH` draws one side by side).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sievenet.models import SieveNet, get_config
from sievenet.models.sievenet import WEIGHTS_FILE
from sievenet.preprocess.garment import Garment

# Compose scenes whose camera blur is below this (sigma at 256 px height) count as sharp photos.
SHARP_BLUR = 0.3


def median_ms(fn: Callable[[], object], repeat: int, warmup: int = 3) -> float:
    """Median wall time of fn() in milliseconds, after warm-up calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def model_rows(name: str, repeat: int) -> list[tuple[str, str, int, float, float]]:
    """(config, module, parameters, file MB, median ms) for each module of one config and the whole model."""
    cfg = get_config(name)
    model = SieveNet(cfg).eval()
    h, w = cfg.height, cfg.width
    gen = torch.Generator().manual_seed(0)
    priors = torch.rand(1, cfg.prior_channels, h, w, generator=gen)
    cloth = torch.rand(1, 3, h, w, generator=gen) * 2 - 1
    tt_priors = torch.zeros(1, 3, h, w)
    mask = torch.ones(1, 1, h, w)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        file_mb = (Path(tmp) / WEIGHTS_FILE).stat().st_size / 1e6
    with torch.inference_mode():
        out = model(priors, cloth, tt_priors, mask)
        guide = out.m_exp if cfg.tt_use_segmentation else priors
        runs = {
            "warp": (model.warp, lambda: model.warp(priors, cloth, mask)),
            "seg": (model.seg, lambda: model.seg(priors, cloth)),
            "tt": (model.tt, lambda: model.tt(out.warped_fine, guide, tt_priors)),
            "total": (model, lambda: model(priors, cloth, tt_priors, mask)),
        }
        rows = []
        for module, (net, fn) in runs.items():
            params = sum(p.numel() for p in net.parameters())
            rows.append(
                (name, module, params, file_mb if module == "total" else float("nan"), median_ms(fn, repeat))
            )
    return rows


def print_table(headers: list[str], rows: list[tuple]) -> None:
    """Print a Markdown table."""
    cells = [
        [f"{c:,}" if isinstance(c, int) else f"{c:.1f}" if isinstance(c, float) else str(c) for c in r]
        for r in rows
    ]
    cells = [[("—" if c == "nan" else c) for c in r] for r in cells]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


def pipeline_rows(
    repeat: int, config: str = "sievenet-s", photo_size: tuple[int, int] = (1024, 768)
) -> list[tuple[str, float, float, float]]:
    """(step, median, min, max ms) of TryOnPipeline on a photo_size (H x W) photo of the astronaut example.

    The photo is handed over as JPEG bytes (quality 90), as an upload or a phone photo arrives, so `load`
    includes decoding it (a JPEG larger than 2048 px decodes at 1/2..1/8 scale). The model is freshly
    initialised: its latency does not depend on the weights' values.
    """
    import io

    import PIL.Image

    from sievenet.pipeline import TryOnPipeline
    from sievenet.synthetic.export import garment_image

    photo = PIL.Image.open(Path(__file__).resolve().parent.parent / "assets/examples/persons/astronaut.png")
    h, w = photo_size
    side = min(512, round(512 * w / h))  # the astronaut cut to the photo's aspect, then resized
    photo = photo.convert("RGB").crop(((512 - side) // 2, 0, (512 + side) // 2, 512))
    encoded = io.BytesIO()
    photo.resize((w, h), PIL.Image.Resampling.LANCZOS).save(encoded, format="JPEG", quality=90)
    photo = encoded.getvalue()
    garment, _ = garment_image("test", 0, 0, (1024, 768))
    pipe = TryOnPipeline(SieveNet.from_config(config))
    for _ in range(3):  # warm-up: mediapipe's first call and torch's first forward are not representative
        pipe(photo, garment)
    runs = [pipe(photo, garment).timings for _ in range(repeat)]
    return [
        (
            step,
            statistics.median(r[step] for r in runs),
            min(r[step] for r in runs),
            max(r[step] for r in runs),
        )
        for step in runs[0]
    ]


def studio_garment(sample: dict) -> Garment:
    """The studio's product image as a Garment whose `at(size)` reproduces the studio's own layout.

    lay_out scales the garment box by FILL * frame / box, centred: a box of FILL times the whole image,
    centred, makes that the identity up to resolution.
    """
    import numpy as np

    from sievenet.preprocess.garment import FILL

    image = ((sample["cloth"] + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    mask = sample["cloth_mask"][0].numpy().astype(np.float32)
    h, w = mask.shape
    bounds = (w / 2 * (1 - FILL), h / 2 * (1 - FILL), w / 2 * (1 + FILL), h / 2 * (1 + FILL))
    return Garment(
        cloth=sample["cloth"],
        mask=sample["cloth_mask"],
        image=image,
        source=image,
        source_mask=mask,
        bounds=bounds,
    )


def region_ssim(image: torch.Tensor, truth: torch.Tensor, region: torch.Tensor) -> float:
    """SSIM over the bounding box of `region` (H, W bool), with pixels outside the region set to the truth in
    both images, so only the garment is compared. image, truth: (3, H, W) in [-1, 1]."""
    from sievenet.metrics import ssim

    ys, xs = torch.nonzero(region, as_tuple=True)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    kept = torch.where(region, image, truth)[:, y0:y1, x0:x1]
    return float(ssim(kept[None], truth[None, :, y0:y1, x0:x1])[0])


def region_detail(image: torch.Tensor, truth: torch.Tensor, region: torch.Tensor) -> float:
    """Fine detail of `image` relative to the truth's inside `region`: mean |Laplacian| of the grey image,
    image over truth (1.0 = as much fine structure as the truth; an upsampled image has less)."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)

    def energy(t: torch.Tensor) -> float:
        grey = t.float().mean(0, keepdim=True)[None]
        return float(torch.nn.functional.conv2d(grey, kernel, padding=1)[0, 0].abs()[region].mean())

    return energy(image) / max(energy(truth), 1e-8)


def compose_samples(
    n: int,
    photo: tuple[int, int] = (1024, 768),
    weights: str = "weights/sievenet-s",
    seed: int = 0,
    studio: str = "2d",
):
    """Yield (sample at photo size, upsampled try-on, photo-resolution try-on) for n unpaired studio scenes.

    The model sees the scene rendered at its own size (as in training); the two try-ons are (3, H, W) in
    [-1, 1] at the photo size: I_tryon upsampled bicubically (the old paste-back), and I_tryon composed at
    the photo's resolution from the full-resolution product image (TryOnPipeline's default).
    """
    import cv2

    from sievenet.pipeline import _to_uint8, tryon_at_photo
    from sievenet.preprocess.framing import CropBox
    from sievenet.synthetic import SyntheticTryOn

    model = SieveNet.from_pretrained(weights).eval()
    size = (model.config.height, model.config.width)
    low = SyntheticTryOn("test", "unpaired", seed=seed, size=size, n=n, studio=studio)
    high = SyntheticTryOn("test", "unpaired", seed=seed, size=photo, n=n, studio=studio)
    box = CropBox(0.0, 0.0, float(photo[1]), float(photo[0]))
    for i in range(n):
        a, b = low[i], high[i]
        with torch.inference_mode():
            out = model(a["priors"][None], a["cloth"][None], a["tt_priors"][None], a["cloth_mask"][None])
        big = cv2.resize(_to_uint8(out.tryon[0]), (photo[1], photo[0]), interpolation=cv2.INTER_CUBIC)
        upsampled = torch.from_numpy(big).permute(2, 0, 1).float() / 127.5 - 1
        composed = tryon_at_photo(out, studio_garment(b), box, (0, 0, photo[1], photo[0]))
        composed = torch.from_numpy(composed).permute(2, 0, 1).float() / 127.5 - 1
        yield b, upsampled, composed


def compose_rows(
    n: int,
    photo: tuple[int, int] = (1024, 768),
    weights: str = "weights/sievenet-s",
    studio: str = "2d",
):
    """(scene, garment type, texture, photo blur, SSIM upsampled, SSIM at photo resolution, detail upsampled,
    detail at photo resolution) per scene, then the mean over all scenes and over the sharp ones (SSIM and
    detail as `region_ssim` and `region_detail`).

    The photo blur is the 3D studio's camera blur (sigma in pixels at 256 px height, drawn up to 0.9; "-" for
    the 2D studio), which the truth carries and the garment photo does not: a blurred truth favours the
    upsampled try-on, so the sharp scenes (blur < SHARP_BLUR) are averaged separately. Where the studio gives
    the exact correspondence (3D), two more columns isolate resolution from warp error: the garment photo
    warped by the true flow at the photo's size, and the same shrunk to the model's size and upsampled (SSIM
    inside the flow's valid pixels; NaN for the 2D studio).
    """
    from sievenet.synthetic import SyntheticTryOn

    specs = SyntheticTryOn("test", "unpaired", seed=0, size=photo, n=n, studio=studio)
    rows = []
    for b, upsampled, composed in compose_samples(n, photo, weights, studio=studio):
        region = b["worn_mask"][0] >= 0.5
        meta = b["meta"]
        blur = getattr(specs.spec(meta["index"]).person, "blur", None)
        rows.append(
            (
                meta["index"],
                meta["garment_type"],
                meta["texture"],
                "-" if blur is None else f"{blur:.2f}",
                region_ssim(upsampled, b["truth"], region),
                region_ssim(composed, b["truth"], region),
                region_detail(upsampled, b["truth"], region),
                region_detail(composed, b["truth"], region),
                *_flow_bound(b),
            )
        )
    summary = [("mean", "", "", f"{len(rows)} scenes", *_means(rows))]
    sharp = [r for r in rows if r[3] != "-" and float(r[3]) < SHARP_BLUR]
    if sharp:
        summary.append((f"mean, blur < {SHARP_BLUR}", "", "", f"{len(sharp)} scenes", *_means(sharp)))
    return rows + summary


def _means(rows: list[tuple]) -> list[float]:
    return [statistics.mean(r[k] for r in rows) for k in range(4, len(rows[0]))]


def _flow_bound(sample: dict, model_size: tuple[int, int] = (256, 192)) -> tuple[float, float]:
    """(SSIM upsampled, SSIM at the photo's size) of the garment photo warped by the exact flow, inside the
    flow's valid pixels: what resolution alone is worth when the warp is right. NaN without a flow."""
    import cv2

    from sievenet.pipeline import _to_uint8
    from sievenet.warp_oracle import flow_warp

    if "flow" not in sample:
        return float("nan"), float("nan")
    exact = flow_warp(sample["cloth"][None], sample["flow"][None])[0]
    h, w = exact.shape[-2:]
    small = cv2.resize(_to_uint8(exact), model_size[::-1], interpolation=cv2.INTER_AREA)
    upsampled = torch.from_numpy(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC))
    upsampled = upsampled.permute(2, 0, 1).float() / 127.5 - 1
    valid = sample["flow"][2] > 0.5
    return region_ssim(upsampled, sample["truth"], valid), region_ssim(exact, sample["truth"], valid)


def compose_picture(
    path: str | Path,
    index: int = 0,
    photo: tuple[int, int] = (1024, 768),
    weights="weights/sievenet-s",
    studio: str = "2d",
):
    """Truth | upsampled | photo-resolution, cut to the garment's box of one scene, written to `path`."""
    import numpy as np
    import PIL.Image

    scenes = compose_samples(index + 1, photo, weights, studio=studio)
    for i, (b, upsampled, composed) in enumerate(scenes):
        if i < index:
            continue
        ys, xs = torch.nonzero(b["worn_mask"][0] >= 0.5, as_tuple=True)
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        tiles = [
            ((t[:, y0:y1, x0:x1] + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
            for t in (b["truth"], upsampled, composed)
        ]
        gap = np.full((y1 - y0, 8, 3), 255, np.uint8)
        sheet = np.concatenate([tiles[0], gap, tiles[1], gap, tiles[2]], axis=1)
        PIL.Image.fromarray(sheet).save(path)
    return Path(path)


BACKDROPS = ("white", "coloured", "shadow", "hanger", "brick", "grass", "gravel", "coffee")


def product_photo(index: int, backdrop: str, size: tuple[int, int] = (512, 384)):
    """A 2D-studio product image composited on `backdrop`: (uint8 photo, true bool mask).

    "coloured" is a plain teal backdrop, "shadow" a light backdrop with a soft shadow cast down-right of the
    garment, "hanger" a grey backdrop with a wire hanger hook above the garment; the rest are skimage's
    photographic textures (brick, grass, gravel, coffee) resized to fill the frame.
    """
    import cv2
    import numpy as np
    import skimage.data

    from sievenet.synthetic.export import garment_image

    image, mask = garment_image("test", 0, index, size)
    m = mask.astype(np.float32)[..., None]
    h, w = size
    if backdrop in ("white", "shadow"):
        back = np.full((h, w, 3), 245 if backdrop == "white" else 232, np.float32)
    elif backdrop == "coloured":
        back = np.broadcast_to(np.array([40, 150, 150], np.float32), (h, w, 3)).copy()
    elif backdrop == "hanger":
        back = np.full((h, w, 3), 200, np.float32)
    else:
        texture = getattr(skimage.data, backdrop)()
        if texture.ndim == 2:
            texture = np.repeat(texture[..., None], 3, axis=2)
        back = cv2.resize(texture, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    if backdrop == "shadow":
        shift = np.float32([[1, 0, 0.04 * w], [0, 1, 0.03 * h]])
        cast = cv2.GaussianBlur(cv2.warpAffine(m[..., 0], shift, (w, h)), (0, 0), 0.02 * w)
        back *= 1 - 0.35 * cast[..., None]
    photo = back * (1 - m) + image.astype(np.float32) * m
    if backdrop == "hanger":
        ys, xs = np.nonzero(mask)
        top, cx = int(ys.min()), int(xs.mean())
        hook = max(2, w // 160)
        cv2.line(photo, (cx - w // 5, top + 4), (cx, top - h // 20), (90, 90, 90), hook, cv2.LINE_AA)
        cv2.line(photo, (cx + w // 5, top + 4), (cx, top - h // 20), (90, 90, 90), hook, cv2.LINE_AA)
        cv2.ellipse(
            photo, (cx, top - h // 12), (h // 40, h // 30), 0, 180, 450, (90, 90, 90), hook, cv2.LINE_AA
        )
    return photo.round().clip(0, 255).astype(np.uint8), mask > 0


def cutout_rows(n: int) -> list[tuple]:
    """(backdrop, mean mask IoU over n garments, refused) of the garment cut-out on each backdrop."""
    import numpy as np

    from sievenet.errors import TryOnError
    from sievenet.preprocess.garment import background_mask

    rows = []
    for backdrop in BACKDROPS:
        ious, refused = [], 0
        for i in range(n):
            photo, truth = product_photo(i, backdrop)
            try:
                found = background_mask(photo) >= 0.5
            except TryOnError:
                refused += 1
                found = np.zeros_like(truth)
            ious.append(float((found & truth).sum() / max((found | truth).sum(), 1)))
        rows.append((backdrop, f"{statistics.mean(ious):.3f}", f"{min(ious):.3f}", refused))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per row (median reported)")
    parser.add_argument("--configs", nargs="+", default=["sievenet-s", "sievenet-paper"])
    parser.add_argument(
        "--pipeline-repeat", type=int, default=10, help="timed pipeline runs (0 skips the table)"
    )
    parser.add_argument(
        "--compose", type=int, default=0, help="studio scenes for the compose table (0 skips)"
    )
    parser.add_argument(
        "--compose-picture", default=None, help="write the side-by-side picture of scene 0 here"
    )
    parser.add_argument(
        "--photo-sizes",
        nargs="+",
        default=["1024x768", "4000x3000"],
        help="HxW photos for the pipeline table",
    )
    parser.add_argument("--weights", default="weights/sievenet-s", help="release for the compose table")
    parser.add_argument(
        "--compose-studio", default="2d", choices=("2d", "3d"), help="studio of the compose scenes"
    )
    parser.add_argument("--cutout", type=int, default=0, help="garments per backdrop for the cut-out table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfgs = args.configs
    print(f"## Model forward, batch 1, CPU, {args.threads} threads, median of {args.repeat}\n")
    rows = [row for name in cfgs for row in model_rows(name, args.repeat)]
    print_table(["config", "module", "parameters", "file MB", "median ms"], rows)
    if args.pipeline_repeat > 0:
        for photo in args.photo_sizes:
            h, w = (int(v) for v in photo.split("x"))
            print(
                f"\n## TryOnPipeline, {h}x{w} photo -> sievenet-s 256x192, median of {args.pipeline_repeat}\n"
            )
            rows = pipeline_rows(args.pipeline_repeat, photo_size=(h, w))
            print_table(["step", "median ms", "min ms", "max ms"], rows)
    if args.compose > 0:
        print(
            f"\n## Try-on at 1024x768 from {args.weights} (256x192 model), {args.compose_studio.upper()} studio "
            "test scenes (unpaired): "
            "garment-region SSIM vs the 1024x768 truth, and fine detail relative to the truth's; 'upsampled' is "
            "I_tryon resized bicubically, 'composed' is composed at 1024x768 from the full-resolution garment\n"
        )
        rows = [
            (*r[:4], *(f"{v:.4f}" for v in r[4:]))
            for r in compose_rows(args.compose, weights=args.weights, studio=args.compose_studio)
        ]
        headers = ["SSIM upsampled", "SSIM composed", "detail upsampled", "detail composed"]
        headers += ["exact flow: SSIM upsampled", "exact flow: SSIM composed"]
        print_table(["scene", "garment", "texture", "photo blur", *headers], rows)
    if args.cutout > 0:
        print(
            f"\n## Garment cut-out (background_mask) on 2D-studio product images, 512x384, {args.cutout} per backdrop\n"
        )
        print_table(["backdrop", "mean IoU", "worst IoU", "refused"], cutout_rows(args.cutout))
    if args.compose_picture:
        picture = compose_picture(args.compose_picture, weights=args.weights, studio=args.compose_studio)
        print(f"\nwrote {picture}")


if __name__ == "__main__":
    main()
