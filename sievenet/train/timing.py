"""Measure seconds per training step of each stage here, and project the reproduce.sh budget from it.

    python -m sievenet.train.timing [--model sievenet-s] [--steps 8] [--threads 2]

Each stage runs `steps` optimiser steps on real synthetic batches (data loading included, in this process)
after one warm-up step; the median goes into the projection with the step counts of the shipped YAMLs.
Run it on an otherwise idle machine: other processes on the same cores inflate every number.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch

from sievenet.train.config import load_config


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
    args = parser.parse_args(argv)
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
            name = f"{args.model}-{stage.split('+')[0]}.yaml"
            times = time_stage(name, [*common, *extra] if stage != "warp" else common[1:], args.steps)
            rows.append((stage, statistics.median(times), min(times)))
            print(
                f"{stage:>11}: median {rows[-1][1]:.3f} s/step, min {rows[-1][2]:.3f} (batch from the YAML)",
                flush=True,
            )
    med = {name: m for name, m, _ in rows}
    total = 0.0
    print("\nprojected reproduce.sh budget (median s/step x shipped steps):")
    for stage in ("warp", "seg", "warp-fine", "tt"):
        cfg = load_config(f"{args.model}-{stage}.yaml", ["init=x"] if stage != "warp" else [])
        if stage == "tt" and cfg.triplet_after is not None:
            k = min(cfg.triplet_after, cfg.steps)
            seconds = k * med["tt"] + (cfg.steps - k) * med["tt+triplet"]
        else:
            seconds = cfg.steps * med[stage]
        total += seconds
        print(f"  {stage:>9}: {cfg.steps:>6} steps  {seconds / 60:6.1f} min")
    print(f"  total training: {total / 3600:.2f} h (plus evaluation, about 5 min for 500 pairs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
