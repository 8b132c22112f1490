"""`python -m sievenet.synthetic export|preview|gallery|bench`: write a dataset, draw a contact sheet, render
the example gallery, time the studio."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image

from sievenet.cli import size_type

_size = size_type(minimum=(32, 24))


def _bench(args: argparse.Namespace) -> None:
    import torch

    from sievenet.synthetic.dataset import SyntheticTryOn

    torch.set_num_threads(1)  # per-core figure: one DataLoader worker is one process on one core
    print(f"{'size':>9} {'pairs':>9} {'samples/s/core':>15} {'ms/sample':>10}")
    for size in args.size:
        for pairs in ("paired", "unpaired"):
            ds = SyntheticTryOn("train", pairs, seed=args.seed, size=size, n=args.n + 10)
            for i in range(5):  # warm caches (photo textures, TPS operator)
                ds[i]
            t0 = time.process_time()
            for i in range(10, 10 + args.n):
                ds[i]
            dt = (time.process_time() - t0) / args.n
            print(f"{size[0]}x{size[1]:<5} {pairs:>9} {1 / dt:15.1f} {1000 * dt:10.2f}")
    print("(CPU time of one process, torch threads = 1; each sample is the full dict including priors)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sievenet.synthetic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write N samples in the VITON-HD layout")
    ex.add_argument("--out", required=True, type=Path)
    ex.add_argument("--split", required=True, choices=("train", "test"))
    ex.add_argument("--n", required=True, type=int)
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--size", type=_size, default=(256, 192), help="HxW, default 256x192")
    pv = sub.add_parser("preview", help="draw a contact sheet PNG")
    pv.add_argument("--n", type=int, default=24)
    pv.add_argument("--out", type=Path, default=Path("sheet.png"))
    pv.add_argument("--split", choices=("train", "test"), default="test")
    pv.add_argument("--seed", type=int, default=0)
    pv.add_argument("--size", type=_size, default=(256, 192))
    pv.add_argument("--cols", type=int, default=3)
    ga = sub.add_parser("gallery", help="render the example gallery (8 persons, 8 garments)")
    ga.add_argument("--out", type=Path, default=Path("assets/examples"))
    ga.add_argument("--seed", type=int, default=0)
    ga.add_argument("--size", type=_size, default=(512, 384))
    bn = sub.add_parser("bench", help="samples per second per core")
    bn.add_argument("--n", type=int, default=100)
    bn.add_argument("--seed", type=int, default=0)
    bn.add_argument("--size", type=_size, nargs="+", default=[(256, 192), (512, 384)])
    args = parser.parse_args(argv)

    if args.command == "export":
        from sievenet.synthetic.export import export

        if args.n < 1:
            parser.error("--n must be >= 1")
        t0 = time.time()
        folder = export(args.out, args.split, args.n, seed=args.seed, size=args.size)
        print(f"wrote {args.n} {args.split} samples to {folder} in {time.time() - t0:.1f} s")
    elif args.command == "preview":
        from sievenet.synthetic.export import contact_sheet

        sheet = contact_sheet(args.n, split=args.split, seed=args.seed, size=args.size, cols=args.cols)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet).save(args.out)
        print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")
    elif args.command == "gallery":
        from sievenet.synthetic.export import write_gallery

        for line in write_gallery(args.out, seed=args.seed, size=args.size):
            print(line)
    else:
        _bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
