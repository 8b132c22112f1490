"""`python -m sievenet.synthetic export|preview|gallery|bench|digest`: write a dataset, draw a contact sheet,
render the example gallery, time the studio, fingerprint its samples."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image

from sievenet.cli import size_type

_size = size_type(minimum=(32, 24))


def _bench(args: argparse.Namespace) -> None:
    """Wall-clock samples/s of full unpaired samples (person, product, truth, parse, keypoints, flow)."""
    import multiprocessing as mp

    from sievenet.data.processes import one_thread_children
    from sievenet.synthetic.export import bench_worker

    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no OpenGL context crosses a fork
    print(f"studio {args.studio}: full unpaired samples, wall clock")
    print(f"{'size':>9} {'processes':>10} {'samples/s':>10} {'ms/sample/process':>18}")
    for size in args.size:
        for procs in args.processes:
            queues = [ctx.Queue() for _ in range(procs)]
            go = ctx.Event()
            workers = [ctx.Process(target=bench_worker, args=(args.studio, size, args.seed, k * args.n, args.n, q, go))
                       for k, q in enumerate(queues)]  # fmt: skip
            with one_thread_children():
                for w in workers:
                    w.start()
            for q in queues:
                q.get(timeout=900)  # a worker that died says so instead of hanging the bench
            t0 = time.perf_counter()
            go.set()
            for q in queues:
                q.get(timeout=1800)
            dt = time.perf_counter() - t0
            for w in workers:
                w.join()
            rate = procs * args.n / dt
            print(f"{size[0]}x{size[1]:<5} {procs:>10} {rate:10.1f} {1000 * procs / rate:18.1f}")
    print("(one llvmpipe, torch and BLAS thread per process; the machine may be shared: see `uptime`)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sievenet.synthetic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write N samples in the VITON-HD layout")
    ex.add_argument("--out", required=True, type=Path)
    ex.add_argument("--split", required=True, choices=("train", "test"))
    ex.add_argument("--n", required=True, type=int)
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--size", type=_size, default=(256, 192), help="HxW, default 256x192")
    ex.add_argument("--studio", choices=("2d", "3d", "mix"), default="2d")
    ex.add_argument("--workers", type=int, default=1, help="render in this many processes (one per core)")
    pv = sub.add_parser("preview", help="draw a contact sheet PNG")
    pv.add_argument("--n", type=int, default=24)
    pv.add_argument("--out", type=Path, default=Path("sheet.png"))
    pv.add_argument("--split", choices=("train", "test"), default="test")
    pv.add_argument("--seed", type=int, default=0)
    pv.add_argument("--size", type=_size, default=(256, 192))
    pv.add_argument("--cols", type=int, default=3)
    pv.add_argument("--studio", choices=("2d", "3d", "mix"), default="2d")
    ga = sub.add_parser("gallery", help="render the example gallery (8 persons, 8 garments)")
    ga.add_argument("--out", type=Path, default=Path("assets/examples"))
    ga.add_argument("--seed", type=int, default=0)
    ga.add_argument("--size", type=_size, default=(512, 384))
    ga.add_argument("--studio", choices=("2d", "3d"), default="2d")
    bn = sub.add_parser("bench", help="samples per second, 1 and 2 processes")
    bn.add_argument("--n", type=int, default=40, help="samples per process")
    bn.add_argument("--studio", choices=("2d", "3d", "mix"), default="2d")
    bn.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    bn.add_argument("--seed", type=int, default=0)
    bn.add_argument("--size", type=_size, nargs="+", default=[(256, 192), (512, 384)])
    dg = sub.add_parser("digest", help="sha256 of each sample's tensors (does a change keep the bytes?)")
    dg.add_argument("--n", type=int, default=20)
    dg.add_argument("--start", type=int, default=0)
    dg.add_argument("--split", choices=("train", "test"), default="train")
    dg.add_argument("--pairs", choices=("paired", "unpaired"), default="unpaired")
    dg.add_argument("--seed", type=int, default=0)
    dg.add_argument("--size", type=_size, default=(256, 192))
    dg.add_argument("--studio", choices=("2d", "3d", "mix"), default="2d")
    args = parser.parse_args(argv)

    if args.command == "export":
        from sievenet.synthetic.export import export

        if args.n < 1:
            parser.error("--n must be >= 1")
        t0 = time.time()
        if args.workers < 1:
            parser.error("--workers must be >= 1")
        folder = export(
            args.out,
            args.split,
            args.n,
            seed=args.seed,
            size=args.size,
            studio=args.studio,
            workers=args.workers,
        )
        print(f"wrote {args.n} {args.split} samples to {folder} in {time.time() - t0:.1f} s")
    elif args.command == "preview":
        from sievenet.synthetic.export import contact_sheet

        sheet = contact_sheet(
            args.n, split=args.split, seed=args.seed, size=args.size, cols=args.cols, studio=args.studio
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet).save(args.out)
        print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")
    elif args.command == "gallery":
        from sievenet.synthetic.export import write_gallery, write_gallery3d

        writer = write_gallery3d if args.studio == "3d" else write_gallery
        for line in writer(args.out, seed=args.seed, size=args.size):
            print(line)
    elif args.command == "digest":
        _digest(args)
    else:
        _bench(args)
    return 0


def _digest(args: argparse.Namespace) -> None:
    """One line per sample: index and the sha256 of its tensors (keys in sorted order, meta left out)."""
    import hashlib

    import torch

    from sievenet.synthetic.dataset import SyntheticTryOn

    torch.set_num_threads(1)
    n = args.start + args.n
    ds = SyntheticTryOn(args.split, args.pairs, seed=args.seed, size=args.size, n=n, studio=args.studio)
    total = hashlib.sha256()
    for i in range(args.start, n):
        sample = ds[i]
        h = hashlib.sha256()
        for key in sorted(set(sample) - {"meta"}):
            h.update(key.encode() + sample[key].numpy().tobytes())
        total.update(h.digest())
        print(f"{i} {h.hexdigest()}", flush=True)
    print(f"all {total.hexdigest()}")


if __name__ == "__main__":
    sys.exit(main())
