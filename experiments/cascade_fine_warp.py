"""Experiment: train only the fine warp stage, against the frozen coarse stage of a release (cascaded training).

    python experiments/cascade_fine_warp.py --weights weights/sievenet-s --steps 600 [--out runs/cascade]

The shipped warp was trained jointly (L_s^0 + L_s^1 + L_pgm), and its fine stage ended no better than its
coarse one. Here the coarse stage stays frozen (eval mode), the fine stage restarts from a seeded fresh
initialisation and trains with the same L_warp; every 200 steps it prints the warp L1 of both stages on the
first 64 paired synthetic test pairs. With --out it saves the model with the new fine stage there (an
experimental release: its texture network was trained on the old fine warp, so only the warps mean anything).
An experiment, not part of the package; promote it to a training option if it holds up.
"""

from __future__ import annotations

import argparse
import time

import torch

from sievenet.data import collate
from sievenet.eval import EVAL_SEED
from sievenet.losses import VGGFeatures, warp_loss
from sievenet.metrics import l1
from sievenet.models import SieveNet
from sievenet.synthetic import SyntheticTryOn
from sievenet.train.config import load_config
from sievenet.train.stages import build_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="weights/sievenet-s")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--n-test", type=int, default=64)
    parser.add_argument("--out", default=None, help="save the model with the retrained fine stage here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = load_config("sievenet-s-warp.yaml", [])  # data, batch, VGG and L_pgm settings of the shipped run
    model = SieveNet.from_pretrained(args.weights)
    torch.manual_seed(1)
    model.warp.fine.load_state_dict(SieveNet.from_config(model.config.name).warp.fine.state_dict())
    model.requires_grad_(False).eval()
    fine = model.warp.fine.requires_grad_(True).train()
    vgg = VGGFeatures(config.vgg_weights, layers=config.vgg_layers, scale=config.vgg_scale)
    data, col = build_dataset(config)
    optimiser = torch.optim.Adam(fine.parameters(), lr=args.lr, betas=tuple(config.betas))
    size = (model.config.height, model.config.width)
    test_set = SyntheticTryOn("test", pairs="paired", seed=EVAL_SEED, size=size, n=args.n_test)
    test = collate([test_set[i] for i in range(args.n_test)])

    def evaluate() -> tuple[float, float]:
        fine.eval()
        with torch.no_grad():
            w = model.warp(test["priors"], test["cloth"])
        fine.train()
        target = test["target_warp"]
        return l1(w.warped_coarse, target).mean().item(), l1(w.warped_fine, target).mean().item()

    coarse, fine_l1 = evaluate()
    print(f"step 0: warp L1 coarse {coarse:.4f}, fine {fine_l1:.4f} (fresh fine stage = coarse)", flush=True)
    generator = torch.Generator().manual_seed(5)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = col(
            [data[i] for i in torch.randint(len(data), (config.batch_size,), generator=generator).tolist()]
        )
        w = model.warp(batch["priors"], batch["cloth"])
        loss, _ = warp_loss(w.warped_coarse, w.warped_fine, batch["target_warp"], vgg, k=config.push_k)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step % 200 == 0 or step == args.steps:
            coarse, fine_l1 = evaluate()
            print(
                f"step {step} ({time.perf_counter() - start:.0f} s): warp L1 coarse {coarse:.4f}, "
                f"fine {fine_l1:.4f} ({fine_l1 / coarse - 1:+.1%})",
                flush=True,
            )
    if args.out:
        model.save_pretrained(
            args.out,
            manifest={
                "experiment": "experiments/cascade_fine_warp.py: fine warp retrained on the frozen coarse stage",
                "steps": args.steps,
                "base": args.weights,
                "warp_l1": {"coarse": coarse, "fine": fine_l1, "test_pairs": args.n_test},
            },
        )
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
