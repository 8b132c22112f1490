"""Measure seconds per training step of each stage here, and project the reproduce.sh budget from it.

    python -m sievenet.train.timing [--model sievenet-s] [--steps 8] [--threads 2]
    python -m sievenet.train.timing --configs sievenet-s-v2 --render-n 2000   # v2: the YAMLs and the 3D render

Each stage runs `steps` optimiser steps on real synthetic batches (data loading included, in this process)
after one warm-up step; the median goes into the projection with the step counts of the YAMLs. Stages whose
YAML mixes in pairs rendered ahead to disk (disk_root) read that folder when it exists, else the studio alone
(said so in the output), and the projection adds rendering `--render-n` 3D-studio pairs at the measured
seconds per sample (one process). Run it on an otherwise idle machine: other processes on the same cores
inflate every number.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from sievenet.train.config import load_config

V2_STUDIO = "2eabc93"  # reproduce.sh's V2_STUDIO: the commit whose 3D studio rendered v2's training pairs


def time_render(samples: int, size: tuple[int, int] = (256, 192)) -> float:
    """Median seconds per 3D-studio train sample (person, product, labels, flow), after one warm-up sample."""
    from sievenet.synthetic import SyntheticTryOn

    dataset = SyntheticTryOn("train", pairs="paired", seed=0, size=size, n=samples + 1, studio="3d")
    times = []
    for i in range(samples + 1):
        t0 = time.perf_counter()
        dataset[i]
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def _config_name(prefix: str, model: str, stage: str) -> str:
    from sievenet.train.config import CONFIG_DIR

    name = f"{prefix}-{stage}.yaml"
    return name if (CONFIG_DIR / name).exists() else f"{model}-{stage}.yaml"


def time_stage(config_name: str, overrides: list[str], steps: int) -> list[float]:
    """Wall seconds of `steps` optimiser steps (data included), after one warm-up step."""
    from sievenet.train.stages import SieveNetStage, build_dataset

    config = load_config(config_name, overrides)
    stage = SieveNetStage(config)
    dataset, collate = build_dataset(config)
    net = stage.trainable()
    optimiser = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=config.lr)
    times = []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        idx = range(step * config.batch_size, (step + 1) * config.batch_size)
        batch = collate([dataset[i % len(dataset)] for i in idx])
        loss, _ = stage.loss(net, batch, step)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        stage.after_step(step)
        times.append(time.perf_counter() - t0)
    return times[1:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sievenet.train.timing", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", default="sievenet-s", choices=["sievenet-s", "sievenet-paper"])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--configs", default=None, help="YAML prefix, e.g. sievenet-s-v2 (default: the model's)"
    )
    parser.add_argument(
        "--render-n", type=int, default=2000, help="3D pairs rendered ahead when a YAML has disk_root (v2)"
    )
    parser.add_argument("--render-samples", type=int, default=6, help="3D samples timed for the render")
    args = parser.parse_args(argv)
    prefix = args.configs or args.model
    if args.threads:
        torch.set_num_threads(args.threads)
    from sievenet.models import SieveNet

    with tempfile.TemporaryDirectory() as tmp:
        # The later stages need a release with the earlier ones "trained"; untrained weights time the same.
        SieveNet.from_config(args.model).save_pretrained(tmp, manifest={"stages": {"warp": {}, "seg": {}}})
        common = [f"init={tmp}", f"run_dir={tmp}/run"]
        rows = []
        for stage, extra in (
            ("warp", []),
            ("seg", []),
            ("warp-fine", []),
            ("tt", ["triplet_after=null"]),
            ("tt+triplet", ["triplet_after=0"]),
        ):
            name = _config_name(prefix, args.model, stage.split("+")[0])
            disk = load_config(name, ["init=x"]).disk_root
            if disk is not None and not (Path(disk) / "train_pairs.txt").exists():
                print(
                    f"{stage:>11}: {disk} not rendered yet: timed on the on-the-fly studio alone", flush=True
                )
                extra = [*extra, "disk_root=null"]
            times = time_stage(
                name, [*common, *extra] if stage != "warp" else [*common[1:], *extra], args.steps
            )
            rows.append((stage, statistics.median(times), min(times)))
            print(
                f"{stage:>11}: median {rows[-1][1]:.3f} s/step, min {rows[-1][2]:.3f} (batch from the YAML)",
                flush=True,
            )
    med = {name: m for name, m, _ in rows}
    total = 0.0
    renders = any(
        load_config(_config_name(prefix, args.model, s), ["init=x"]).disk_root for s in ("warp", "seg", "tt")
    )
    render_s = time_render(args.render_samples) if renders else 0.0
    print(f"\nprojected reproduce.sh budget (median s/step x the steps of the {prefix} YAMLs):")
    if renders:
        total += args.render_n * render_s
        print(f"  {'3D render':>9}: {args.render_n:>6} pairs  {args.render_n * render_s / 60:6.1f} min "
              f"({render_s:.3f} s/sample, one process, today's studio; reproduce.sh v2-data renders with the "
              f"studio of {V2_STUDIO}, which supersampled: ~1.5x slower a sample, in two processes)")  # fmt: skip
    for stage in ("warp", "seg", "warp-fine", "tt"):
        cfg = load_config(_config_name(prefix, args.model, stage), ["init=x"] if stage != "warp" else [])
        if stage == "tt" and cfg.triplet_after is not None:
            k = min(cfg.triplet_after, cfg.steps)
            seconds = k * med["tt"] + (cfg.steps - k) * med["tt+triplet"]
        else:
            seconds = cfg.steps * med[stage]
        total += seconds
        print(f"  {stage:>9}: {cfg.steps:>6} steps  {seconds / 60:6.1f} min")
    what = "render and training" if renders else "training"
    print(f"  total {what}: {total / 3600:.2f} h (plus evaluation, about 5 min for 500 pairs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
