"""Benchmarks that print tables (never asserted in tests): `python -m sievenet.bench [--threads 2] [--repeat 20]`.

Model table: parameters, release file size and median CPU forward latency (batch 1) per module and in total.
Pipeline table: TryOnPipeline end to end on a 1024x768 photo, median ms of each step and in total.
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


def pipeline_rows(repeat: int, config: str = "sievenet-s") -> list[tuple[str, float, float, float]]:
    """(step, median, min, max ms) of TryOnPipeline on a 1024x768 (H x W) photo of the astronaut example.

    The model is freshly initialised: its latency does not depend on the weights' values.
    """
    import PIL.Image

    from sievenet.pipeline import TryOnPipeline
    from sievenet.synthetic.export import garment_image

    photo = PIL.Image.open(Path(__file__).resolve().parent.parent / "assets/examples/persons/astronaut.png")
    photo = photo.convert("RGB").crop((64, 0, 448, 512)).resize((768, 1024), PIL.Image.Resampling.LANCZOS)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per row (median reported)")
    parser.add_argument("--configs", nargs="+", default=["sievenet-s", "sievenet-paper"])
    parser.add_argument(
        "--pipeline-repeat", type=int, default=10, help="timed pipeline runs (0 skips the table)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfgs = args.configs
    print(f"## Model forward, batch 1, CPU, {args.threads} threads, median of {args.repeat}\n")
    rows = [row for name in cfgs for row in model_rows(name, args.repeat)]
    print_table(["config", "module", "parameters", "file MB", "median ms"], rows)
    if args.pipeline_repeat > 0:
        print(f"\n## TryOnPipeline, 1024x768 photo -> sievenet-s 256x192, median of {args.pipeline_repeat}\n")
        print_table(["step", "median ms", "min ms", "max ms"], pipeline_rows(args.pipeline_repeat))


if __name__ == "__main__":
    main()
