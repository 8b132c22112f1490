"""How much warp error could a TPS remove at all? Fit theta per sample by gradient descent: the TPS oracle.

    python -m sievenet.warp_oracle --weights weights/sievenet-s [--n 32] [--steps 400]

For n synthetic test pairs this prints the warp L1 (vs the worn-cloth target I_gt) of I_stn^0 and I_stn^1, and
of an "oracle" warp whose G x G TPS offsets are optimised directly against I_gt, starting from the model's
coarse theta. The gap between the coarse warp and the oracle is the headroom the fine stage could use; what
the oracle cannot remove (occlusion by arms and hair, folds a TPS cannot express) no warp stage can.
The oracle sees the target, so it is a diagnostic, never a result.
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


def warp_headroom(
    weights: str, *, n: int = 32, steps: int = 400, pairs: str = "paired", seed: int | None = None
) -> dict:
    """Warp L1 of I_stn^0, I_stn^1 and the TPS oracle on n synthetic test pairs (means over samples)."""
    from sievenet.data import collate
    from sievenet.eval import EVAL_SEED
    from sievenet.models import SieveNet
    from sievenet.synthetic import SyntheticTryOn

    model = SieveNet.from_pretrained(weights).eval()
    cfg = model.config
    data = SyntheticTryOn(
        "test", pairs=pairs, seed=EVAL_SEED if seed is None else seed, size=(cfg.height, cfg.width), n=n
    )
    batch = collate([data[i] for i in range(n)])
    with torch.no_grad():
        out = model.warp(batch["priors"], batch["cloth"])
    target = batch["target_warp"]
    _, oracle = tps_oracle(batch["cloth"], target, out.theta, cfg.grid_size, steps=steps)
    coarse = l1(out.warped_coarse, target).mean().item()
    return {
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
    args = parser.parse_args(argv)
    r = warp_headroom(args.weights, n=args.n, steps=args.steps, pairs=args.pairs)
    print(f"warp L1 on {r['n']} {r['pairs']} test pairs (vs I_gt):")
    print(f"  I_stn^0 (coarse)  {r['l1_coarse']:.4f}")
    print(f"  I_stn^1 (fine)    {r['l1_fine']:.4f}  ({r['l1_fine'] / r['l1_coarse'] - 1:+.1%} vs coarse)")
    print(
        f"  TPS oracle        {r['l1_oracle']:.4f}  ({-r['headroom']:+.1%} vs coarse, {r['steps']} Adam steps)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
