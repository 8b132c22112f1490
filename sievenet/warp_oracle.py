"""How much warp error could a TPS remove at all? Fit theta per sample by gradient descent: the TPS oracle.

    python -m sievenet.warp_oracle --weights weights/sievenet-s [--n 32] [--steps 400]

For n synthetic test pairs this prints the warp L1 (vs the worn-cloth target I_gt) of I_stn^0 and I_stn^1, and
of an "oracle" warp whose G x G TPS offsets are optimised directly against I_gt, starting from the model's
coarse theta. The gap between the coarse warp and the oracle is the headroom the fine stage could use; what
the oracle cannot remove (occlusion by arms and hair, folds a TPS cannot express) no warp stage can.
The oracle sees the target, so it is a diagnostic, never a result.

With `--studio 3d` (or mix) the samples carry the exact correspondence (`flow`), and the report adds the
flow bound: the product image warped by the true per-pixel correspondence, the best any warp of `cloth`
could do (what remains is shading, and garment parts the product photo does not show).
"""

from __future__ import annotations

import argparse
import sys

import torch

from sievenet.geometry import tps_grid, warp
from sievenet.metrics import l1


def tps_oracle(
    cloth: torch.Tensor,
    target: torch.Tensor,
    theta: torch.Tensor,
    grid_size: int,
    *,
    steps: int = 400,
    lr: float = 3e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimise TPS offsets per sample to minimise L1(warp(cloth), target).

    Args:
        cloth: (B, 3, H, W) product images; target: (B, 3, H, W) I_gt; theta: (B, 2*G*G) starting offsets.

    Returns:
        (theta, per-sample L1 (B,)) after `steps` Adam steps.
    """
    h, w = target.shape[-2:]
    theta = theta.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        # Summed, not averaged, over the batch: each sample's step size does not depend on the batch size.
        loss = l1(warp(cloth, tps_grid(theta, grid_size, h, w)), target).sum()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        final = l1(warp(cloth, tps_grid(theta, grid_size, h, w)), target)
    return theta.detach(), final


def flow_warp(cloth: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Warp cloth (B, 3, H, W) by an exact flow (B, 3, H, W): cloth pixel x, y (centres at +0.5) and validity.

    Invalid pixels are white, like I_gt outside the worn garment.
    """
    h, w = flow.shape[-2:]
    ch, cw = cloth.shape[-2:]
    grid = torch.stack([flow[:, 0] / cw * 2 - 1, flow[:, 1] / ch * 2 - 1], -1)  # align_corners=False
    warped = torch.nn.functional.grid_sample(cloth, grid, align_corners=False, padding_mode="border")
    valid = flow[:, 2:3]
    return warped * valid + (1 - valid)


def warp_headroom(
    weights: str,
    *,
    n: int = 32,
    steps: int = 400,
    pairs: str = "paired",
    seed: int | None = None,
    studio: str = "2d",
) -> dict:
    """Warp L1 of I_stn^0, I_stn^1 and the TPS oracle on n synthetic test pairs (means over samples)."""
    from sievenet.data import collate
    from sievenet.eval import EVAL_SEED
    from sievenet.models import SieveNet
    from sievenet.synthetic import SyntheticTryOn

    model = SieveNet.from_pretrained(weights).eval()
    cfg = model.config
    data = SyntheticTryOn(
        "test",
        pairs=pairs,
        seed=EVAL_SEED if seed is None else seed,
        size=(cfg.height, cfg.width),
        n=n,
        studio=studio,
    )
    batch = collate([data[i] for i in range(n)])
    with torch.no_grad():
        out = model.warp(batch["priors"], batch["cloth"])
    target = batch["target_warp"]
    _, oracle = tps_oracle(batch["cloth"], target, out.theta, cfg.grid_size, steps=steps)
    coarse = l1(out.warped_coarse, target).mean().item()
    bound = {}
    if "flow" in batch:
        bound["l1_flow"] = l1(flow_warp(batch["cloth"], batch["flow"]), target).mean().item()
    return {
        **bound,
        "studio": studio,
        "n": n,
        "pairs": pairs,
        "steps": steps,
        "l1_coarse": coarse,
        "l1_fine": l1(out.warped_fine, target).mean().item(),
        "l1_oracle": oracle.mean().item(),
        "headroom": 1 - oracle.mean().item() / coarse,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sievenet.warp_oracle", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--weights", required=True, help="release folder or hf://org/repo")
    parser.add_argument("--n", type=int, default=32, help="synthetic test pairs")
    parser.add_argument("--steps", type=int, default=400, help="Adam steps of the per-sample fit")
    parser.add_argument("--pairs", default="paired", choices=["paired", "unpaired"])
    parser.add_argument("--studio", default="2d", choices=["2d", "3d", "mix"], help="synthetic studio")
    args = parser.parse_args(argv)
    r = warp_headroom(args.weights, n=args.n, steps=args.steps, pairs=args.pairs, studio=args.studio)
    print(f"warp L1 on {r['n']} {r['pairs']} {r['studio']}-studio test pairs (vs I_gt):")
    print(f"  I_stn^0 (coarse)  {r['l1_coarse']:.4f}")
    print(f"  I_stn^1 (fine)    {r['l1_fine']:.4f}  ({r['l1_fine'] / r['l1_coarse'] - 1:+.1%} vs coarse)")
    print(
        f"  TPS oracle        {r['l1_oracle']:.4f}  ({-r['headroom']:+.1%} vs coarse, {r['steps']} Adam steps)"
    )
    if "l1_flow" in r:
        print(
            f"  exact flow        {r['l1_flow']:.4f}  ({r['l1_flow'] / r['l1_coarse'] - 1:+.1%} vs coarse; "
            "the true correspondence: the bound for any warp)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
