"""python -m sievenet.train CONFIG [key=value ...] — train one stage; see sievenet/train/configs/."""

from __future__ import annotations

import argparse
import logging
import sys

from sievenet.train import load_config, train
from sievenet.train.config import CONFIG_DIR, ConfigError


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    shipped = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
    parser = argparse.ArgumentParser(
        prog="python -m sievenet.train",
        description="Train one SieveNet stage (warp, seg, warp-fine or tt). Under torchrun it runs DistributedDataParallel.",
        epilog=f"Shipped configs (in {CONFIG_DIR}): {shipped}. Example: "
        "python -m sievenet.train sievenet-s-warp.yaml steps=100 run_dir=runs/try resume=true",
    )
    parser.add_argument("config", help="a stage YAML: a path or the name of a shipped config")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, type-checked")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as exc:
        parser.exit(2, f"error: {exc}\n")
    command = ["python", "-m", "sievenet.train", *argv]
    try:
        result = train(config, command=command)
    except (FileExistsError, ConfigError) as exc:  # an existing run, a missing or mismatched init release
        parser.exit(2, f"error: {exc}\n")
    finally:
        import torch.distributed as dist

        if dist.is_initialized():  # joined by train() under torchrun
            dist.destroy_process_group()
    if result["checkpoint"] is not None:
        print(f"done: {result['step']} steps; checkpoint {result['checkpoint']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
