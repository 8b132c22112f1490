"""The paper's ablation (SieveNet Table 2) at one fixed, reduced budget for every row.

    python -m sievenet.train.ablation --out runs/ablation --steps 300 --n 100 [key=value ...]
    python -m sievenet.train.ablation --configs sievenet-s-v2 ...   # the v2 losses (sievenet-s-v2-*.yaml)
    python -m sievenet.train.ablation ... --studio 2d 3d              # every row on both studios' test splits

Trains, exports and evaluates, sequentially (a killed run resumes where it stopped):

  warp-c2f      coarse-to-fine warp with L_pgm (push + align)
  warp-c2f-nopgm  the same without L_pgm (L_s^0 + L_s^1 only)
  warp-single   one warp stage (model.warp_stages=1), CP-VTON's GMM
  seg           conditional segmentation (on top of warp-c2f)
  warp-cascade  the warp-fine stage on top of seg: warp-c2f's fine stage retrained on its frozen coarse one
  row 1  cpvton     warp-single + texture network without M_exp (tt_use_segmentation=False), no triplet
  row 2  c2f-satt   warp-cascade (coarse-to-fine warp, as shipped) + seg + segmentation-assisted texture
                    translation, no triplet
  row 3  sievenet   row 2 + the duelling triplet

Every stage gets the same number of steps (a stage whose shipped YAML decays the learning rate decays it over
the same fraction of them; a tt YAML that decays from its triplet_after, as the v2 one does, decays from K in
both texture rows). `--configs PREFIX` reads PREFIX-<stage>.yaml where it exists (else the model's own YAML),
so the v2 set trains warp with L_pgm's stop-gradient and the triplet rows with the feature triplet. Results: OUT/ablation.json and OUT/ablation.md, with the
paper's VITON figures beside ours (different data and budget: read them as a direction, not a target).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sievenet.train.config import CONFIG_DIR, load_config

log = logging.getLogger(__name__)

# SieveNet (Jandial et al., WACV 2020) Table 2, VITON test set: SSIM, FID.
PAPER = {
    "cpvton": ("CP-VTON (GMM + TOM)", 0.698, 20.33),
    "c2f-satt": ("coarse-to-fine GMM + SATT", 0.751, 15.89),
    "sievenet": ("+ duelling triplet (full SieveNet)", 0.766, 14.65),
}


@dataclass
class Run:
    """One training run of the ablation: a shipped stage config, overrides, and the run whose export it starts from."""

    name: str
    stage: str
    overrides: list[str] = field(default_factory=list)
    init: str | None = None


def stage_config(configs: str, model: str, stage: str) -> str:
    """The YAML a stage trains from: CONFIGS-<stage>.yaml where it exists, else the model's own."""
    name = f"{configs}-{stage}.yaml"
    return name if (CONFIG_DIR / name).exists() else f"{model}-{stage}.yaml"


def _scaled_lr_decay(config_name: str, steps: int, triplet_after: int | None = None) -> int | None:
    """The shipped YAML's lr_decay_from moved to the same fraction of `steps` (None if the YAML has none); a tt
    YAML decaying from its own triplet_after decays from the ablation's `triplet_after` instead."""
    shipped = load_config(config_name, ["init=x"])  # init only to pass validation; nothing is read
    if shipped.lr_decay_from is None:
        return None
    if triplet_after is not None and shipped.stage == "tt" and shipped.lr_decay_from == shipped.triplet_after:
        return triplet_after
    return shipped.lr_decay_from * steps // shipped.steps


def plan(steps: int, triplet_after: int, triplet_refresh: int | None) -> list[Run]:
    """The runs, in dependency order (triplet_refresh None: the negative is never refreshed after step K)."""
    single = ["model.warp_stages=1", "model.tt_use_segmentation=false"]
    no_triplet = ["triplet_after=null"]
    refresh = "null" if triplet_refresh is None else triplet_refresh
    triplet = [f"triplet_after={triplet_after}", f"triplet_refresh={refresh}"]
    return [
        Run("warp-c2f", "warp", ["pgm=true"]),
        Run("warp-c2f-nopgm", "warp", ["pgm=false"]),
        Run("warp-single", "warp", ["pgm=false", *single]),
        Run("seg", "seg", [], init="warp-c2f"),
        Run("warp-cascade", "warp-fine", [], init="seg"),
        Run("cpvton", "tt", [*single, *no_triplet], init="warp-single"),
        Run("c2f-satt", "tt", no_triplet, init="warp-cascade"),
        Run("sievenet", "tt", triplet, init="warp-cascade"),
    ]


def run_ablation(
    out: str | Path,
    *,
    steps: int,
    n: int,
    model: str = "sievenet-s",
    triplet_after: int | None = None,
    triplet_refresh: int | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
    configs: str | None = None,
    studios: tuple[str, ...] = ("2d",),
) -> dict:
    """Train, export and evaluate every run of `plan`; returns the results dict also written to OUT.

    configs: a YAML prefix (e.g. "sievenet-s-v2") read where it has a stage's file; None: the model's YAMLs.
    The triplet's refresh defaults to 10 % of the steps, or never where the tt YAML never refreshes.
    studios: the test splits every release is evaluated on; the first one's metrics are each run's
    "paired"/"unpaired", every one's under "studios" (OUT/eval/<run> for 2d, OUT/eval/<run>@<studio> else).
    """
    from sievenet.eval import evaluate_release
    from sievenet.export import export_run
    from sievenet.train import train

    out = Path(out)
    configs = configs or model
    k = triplet_after if triplet_after is not None else max(1, (steps * 3) // 5)
    r = triplet_refresh
    if r is None and load_config(stage_config(configs, model, "tt"), ["init=x"]).triplet_refresh is not None:
        r = max(1, steps // 10)
    results: dict = {"steps_per_stage": steps, "n": n, "model": model, "configs": configs, "triplet_after": k,
                     "triplet_refresh": r, "overrides": list(overrides or []), "lr_decay_from": {},
                     "studios": list(studios), "runs": {}}  # fmt: skip
    for run in plan(steps, k, r):
        release = out / "releases" / run.name
        config_name = stage_config(configs, model, run.stage)
        decay_from = _scaled_lr_decay(config_name, steps, triplet_after=k)
        if decay_from is not None:
            results["lr_decay_from"][run.name] = decay_from
        if not (release / "manifest.json").exists():
            extra = [f"run_dir={out / 'runs' / run.name}", f"steps={steps}", "resume=true"]
            if decay_from is not None:
                extra.append(f"lr_decay_from={decay_from}")
            extra.append(f"progress={str(progress).lower()}")
            if run.init:
                extra.append(f"init={out / 'releases' / run.init}")
            config = load_config(config_name, [*run.overrides, *extra, *(overrides or [])])
            log.info("ablation: training %s (%s, %s, %d steps)", run.name, run.stage, config_name, steps)
            train(config, command=["python", "-m", "sievenet.train", config_name, *run.overrides, *extra,
                                   *(overrides or [])])  # fmt: skip
            export_run(config.run_dir, release)
        per_studio = {}
        for studio in studios:
            folder = out / "eval" / (run.name if studio == "2d" else f"{run.name}@{studio}")
            report = _cached_eval(folder, release, n)
            if report is None:
                report = evaluate_release(release, n=n, out_dir=folder, progress=progress, studio=studio)
            per_studio[studio] = {"paired": report["paired"], "unpaired": report["unpaired"]}
        results["runs"][run.name] = {**per_studio[studios[0]], "studios": per_studio,
                                     "perceptual_backbone": report["perceptual_backbone"]}  # fmt: skip
    (out / "ablation.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "ablation.md").write_text(to_markdown(results))
    return results


def _cached_eval(folder: Path, release: Path, n: int) -> dict | None:
    """A finished evaluation of exactly this release (same sha256, same n), so a rerun skips it."""
    from sievenet.eval import EVAL_SEED
    from sievenet.models.sievenet import read_manifest

    try:
        report = json.loads((folder / "eval.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    same = report.get("weights_sha256") == read_manifest(release)["weights"]["sha256"]
    return report if same and report.get("n") == n and report.get("seed") == EVAL_SEED else None


def to_markdown(results: dict) -> str:
    """The ablation tables: try-on rows beside the paper's, and the warp-only rows."""
    runs = results["runs"]
    lines = [
        "# SieveNet ablation",
        "",
        f"Every stage trained {results['steps_per_stage']} steps ({results['model']}, synthetic studio)"
        + (
            f" with the {results['configs']}-*.yaml losses"
            if results.get("configs", results["model"]) != results["model"]
            else ""
        )
        + f"; duelling triplet from step {results['triplet_after']}, frozen copy "
        + (
            f"refreshed every {results['triplet_refresh']}"
            if results["triplet_refresh"] is not None
            else "never refreshed"
        )
        + "".join(
            f"; {name}: lr decays linearly to 0 from step {d}"
            for name, d in results.get("lr_decay_from", {}).items()
        )
        + f". Evaluated on {results['n']} synthetic test pairs per setting. "
        "Paper columns: VITON test set, full budget, ImageNet VGG; FID is not computed here.",
    ]
    names = {"warp-single": "one stage (GMM)", "warp-c2f-nopgm": "coarse-to-fine, no L_pgm",
             "warp-c2f": "coarse-to-fine + L_pgm (push + align)",
             "warp-cascade": "the same, then the fine stage retrained on the frozen coarse one (warp-fine)"}  # fmt: skip
    for studio in results.get("studios", ["2d"]):
        metrics = {name: run.get("studios", {studio: run})[studio] for name, run in runs.items()}
        lines += [
            "",
            f"**{studio.upper()} studio test split**",
            "",
            "| row | unpaired SSIM | unpaired PSNR | unpaired garment-region SSIM | paired SSIM | paired PSNR | "
            "warp L1 (fine, unpaired) | paper SSIM | paper FID |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, (label, paper_ssim, paper_fid) in PAPER.items():
            if name not in metrics:
                continue
            u, p = metrics[name]["unpaired"], metrics[name]["paired"]
            garment = (
                f"{u['model_garment_ssim']:.4f}" if "model_garment_ssim" in u else "-"
            )  # older evaluations
            lines.append(
                f"| {label} | {u['model_ssim']:.4f} | {u['model_psnr']:.2f} | {garment} | {p['model_ssim']:.4f} | "
                f"{p['model_psnr']:.2f} | {u['warp_l1_fine']:.4f} | {paper_ssim} | {paper_fid} |"
            )
        lines += [
            "",
            "| warp-only row | L1 coarse | L1 fine | worn-mask IoU coarse | worn-mask IoU fine |",
            "|---|---|---|---|---|",
        ]
        for name, label in names.items():
            if name in metrics:
                u = metrics[name]["unpaired"]
                lines.append(
                    f"| {label} | {u['warp_l1_coarse']:.4f} | {u['warp_l1_fine']:.4f} | "
                    f"{u['warp_iou_coarse']:.4f} | {u['warp_iou_fine']:.4f} |"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sievenet.train.ablation",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument(
        "--out", default="runs/ablation", help="folder for runs, releases, eval and the table"
    )
    parser.add_argument("--steps", type=int, required=True, help="steps for every stage of every row")
    parser.add_argument("--n", type=int, default=100, help="synthetic test pairs per setting")
    parser.add_argument("--model", default="sievenet-s", choices=["sievenet-s", "sievenet-paper"])
    parser.add_argument("--triplet-after", type=int, default=None, help="K (default: 60%% of --steps)")
    parser.add_argument(
        "--triplet-refresh",
        type=int,
        default=None,
        help="R (default: 10%% of --steps; never where the tt YAML says triplet_refresh: null)",
    )
    parser.add_argument(
        "--configs", default=None, help="YAML prefix, e.g. sievenet-s-v2 (default: the model's own YAMLs)"
    )
    parser.add_argument(
        "--studio",
        nargs="+",
        default=["2d"],
        choices=["2d", "3d"],
        help="test splits to evaluate every row on",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="applied to every run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.steps < 1 or args.n < 1:
        parser.error("--steps and --n must be at least 1")
    try:
        run_ablation(args.out, steps=args.steps, n=args.n, model=args.model, triplet_after=args.triplet_after,
                     triplet_refresh=args.triplet_refresh, overrides=args.overrides,
                     configs=args.configs, studios=tuple(args.studio))  # fmt: skip
    except (ValueError, FileNotFoundError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print((Path(args.out) / "ablation.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
