"""Turn a finished training run into a release folder: model.safetensors + config.json + manifest.json.

    python -m sievenet.export RUN_DIR --out weights/NAME [--eval-n 500]   # --eval-n: both studios' test splits

The manifest records, per trained stage, its steps, data source and seed, perceptual backbone and the exact
commands that reproduce it; stages trained earlier are carried over from the run's `init` release, so the
release of the last stage describes the whole chain.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from sievenet.models import SieveNet
from sievenet.models.sievenet import MANIFEST_FILE, read_manifest
from sievenet.train.config import STAGES, TrainConfig
from sievenet.train.loop import checkpoint_path, load_checkpoint

REPRODUCE_SCRIPT = "sievenet/train/reproduce.sh"


def export_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    allow_unfinished: bool = False,
    metrics: dict | None = None,
    command: list[str] | None = None,
) -> Path:
    """Write the release of a training run.

    Args:
        run_dir: the run's folder (holds checkpoints/last.pt).
        out: release folder to (over)write.
        allow_unfinished: export even if the run stopped before config.steps.
        metrics: evaluation results to record in the manifest.
        command: the export command line to record (default: reconstructed from the arguments).

    Returns:
        The release folder.

    Raises:
        FileNotFoundError: no checkpoint in run_dir.
        ValueError: the run is unfinished (and allow_unfinished is False).
    """
    ckpt_file = checkpoint_path(run_dir)
    if not ckpt_file.exists():
        raise FileNotFoundError(
            f"no checkpoint at {ckpt_file}; train first (python -m sievenet.train CONFIG)"
        )
    ckpt = load_checkpoint(ckpt_file)
    config = TrainConfig.from_dict(ckpt["config"])
    step = int(ckpt["step"])
    if step < config.steps and not allow_unfinished:
        raise ValueError(
            f"{run_dir} stopped at step {step} of {config.steps}; resume it (resume=true) or pass --allow-unfinished"
        )
    model = SieveNet(config.model_config())
    model.load_state_dict(ckpt["stage"]["model"], strict=True)
    info = ckpt["info"]
    export_command = command or ["python", "-m", "sievenet.export", str(run_dir), "--out", str(out)]
    record = {
        "steps": step,
        "batch_size": config.batch_size,
        "world_size": info.get("world_size", 1),
        "data": config.data,
        "data_seed": config.data_seed,
        "data_size": config.data_size,
        "pairs": config.pairs,
        "seed": config.seed,
        "perceptual_backbone": info.get("perceptual_backbone"),
        "init": config.init,
        "train_command": shlex.join(info.get("command", [])),
        "export_command": shlex.join(export_command),
        "config": ckpt["config"],
    }
    # Stages before this one come from the init release; later ones (if the init had them) no longer match.
    order = STAGES.index(config.stage)
    stages = {s: r for s, r in info.get("init_stages", {}).items() if s in STAGES and STAGES.index(s) < order}
    stages[config.stage] = record
    stages = {s: stages[s] for s in STAGES if s in stages}
    backbones = {s: r["perceptual_backbone"] for s, r in stages.items() if r.get("perceptual_backbone")}
    commands = [c for r in stages.values() for c in (r.get("train_command"), r.get("export_command")) if c]
    manifest = {
        "name": Path(out).name,
        "stages": stages,
        "trained_stages": list(stages),
        "steps": {s: r["steps"] for s, r in stages.items()},
        "data": {
            "source": config.data,
            "seed": config.data_seed,
            "size": config.data_size,
            "pairs": config.pairs,
        },
        "perceptual_backbone": backbones,
        "metrics": metrics or {},
        "reproduce": {"script": f"bash {REPRODUCE_SCRIPT}", "commands": commands},
    }
    return model.save_pretrained(out, manifest=manifest)


def add_metrics(release: str | Path, metrics: dict) -> None:
    """Record evaluation results in an existing release's manifest (the weights, and their sha256, stay)."""
    import json

    folder = Path(release)
    manifest = read_manifest(folder)
    manifest["metrics"] = metrics
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m sievenet.export", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="training run folder (holds checkpoints/last.pt)")
    parser.add_argument("--out", required=True, help="release folder to write, e.g. weights/sievenet-s")
    parser.add_argument("--allow-unfinished", action="store_true", help="export a run that stopped early")
    parser.add_argument(
        "--eval-n",
        type=int,
        default=0,
        help="evaluate on N test pairs of each --eval-studio and record the metrics (the summary `python -m "
        "sievenet.eval --record` writes; the photo path and panel are that command's)",
    )
    parser.add_argument(
        "--eval-studio", nargs="+", choices=("2d", "3d"), default=["2d", "3d"], help="studios for --eval-n"
    )
    args = parser.parse_args(argv)
    command = ["python", "-m", "sievenet.export", *argv]
    try:
        out = export_run(args.run_dir, args.out, allow_unfinished=args.allow_unfinished, command=command)
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    if args.eval_n:
        from sievenet.eval import evaluate_suite

        studios = tuple(dict.fromkeys(args.eval_studio))
        report = evaluate_suite(
            out, studios=studios, n=args.eval_n, photo_n=0, panel=False, out_dir=out / "eval"
        )
        add_metrics(out, report["summary"])
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
