"""The learned parser's commands: render data, train (resumable), export a release, evaluate, compare pictures.

    python -m sievenet.parser render --studio 3d --n 3000 --out runs/parser-data/train-3d
    python -m sievenet.parser train runs/parser-s --data runs/parser-data/train-3d runs/parser-data/train-2d
    python -m sievenet.parser export runs/parser-s --out weights/parser-s
    python -m sievenet.parser eval --weights weights/parser-s --data runs/parser-data/test-3d --out eval.json
    python -m sievenet.parser compare --out assets/parser-compare.png
    python -m sievenet.parser speed

`bash sievenet/parser/reproduce.sh` runs the whole chain that made weights/parser-s.
"""

from __future__ import annotations

import argparse
import os
import sys


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m sievenet.parser", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("render", help="render studio scenes (+ mediapipe's view of them) into shards")
    p.add_argument("--studio", choices=("2d", "3d"), required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=_size, default=(384, 288), help="HEIGHTxWIDTH of the scenes")
    p.add_argument(
        "--photos", choices=("train", "test"), default=None, help="background photos (default: split's)"
    )
    p.add_argument("--own-backdrop", type=float, default=None, help="share left on the studio's backdrop")

    p = sub.add_parser("train", help="train (resumes from RUN/checkpoints/last.pt)")
    p.add_argument("run_dir")
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--model", default="parser-s")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--leak-weight", type=float, default=1.0, help="weight of the hem-leak term")
    p.add_argument("--ckpt-every", type=int, default=100)

    p = sub.add_parser("export", help="write the release folder of a trained run")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True)

    p = sub.add_parser("eval", help="mIoU per class, learned vs heuristic, through the photo path")
    p.add_argument("--weights", default=None, help="parser release (default weights/parser-s)")
    p.add_argument("--data", nargs="+", required=True, help="rendered test shard folders, one table each")
    p.add_argument("--size", type=_size, default=(512, 384), help="crop HEIGHTxWIDTH (default 512x384)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--out", default=None, help="write the results as JSON here (and .md beside it)")
    p.add_argument("--record", action="store_true", help="also record the metrics in the release's manifest")

    p = sub.add_parser("compare", help="photo | heuristic | learned parse pictures of the real photos")
    p.add_argument("--weights", default=None)
    p.add_argument("--out", default="assets/parser-compare.png")
    p.add_argument("photos", nargs="*", help="person photos (default: the gallery and grace_hopper.jpg)")

    p = sub.add_parser("speed", help="ms per photo of crop + parse, learned vs heuristic (1024x768 photo)")
    p.add_argument("--weights", default=None)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("photo", nargs="?", default=None, help="person photo (default: the astronaut)")

    args = parser.parse_args(argv)
    command = ["python", "-m", "sievenet.parser", *argv]
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))

    if args.command == "render":
        from sievenet.parser.data import TEST_PHOTOS, TRAIN_PHOTOS, render_shards

        photos = args.photos or args.split
        own = args.own_backdrop if args.own_backdrop is not None else (0.3 if args.split == "train" else 0.0)
        render_shards(args.out, studio=args.studio, n=args.n, split=args.split, seed=args.seed, size=args.size,
                      photos=TRAIN_PHOTOS if photos == "train" else TEST_PHOTOS, keep_own_backdrop=own)  # fmt: skip
    elif args.command == "train":
        from sievenet.parser.train import train

        train(args.run_dir, args.data, model=args.model, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
              seed=args.seed, leak_weight=args.leak_weight, ckpt_every=args.ckpt_every, command=command)  # fmt: skip
    elif args.command == "export":
        from sievenet.parser.train import export

        print(f"wrote {export(args.run_dir, args.out, command=command)}")
    elif args.command == "eval":
        from sievenet.parser.train import evaluate_release

        evaluate_release(args.weights, args.data, size=args.size, limit=args.limit, out=args.out,
                         record=args.record, command=command)  # fmt: skip
    elif args.command == "compare":
        from sievenet.parser.compare import compare

        print(f"wrote {compare(args.photos or None, args.out, weights=args.weights)}")
    elif args.command == "speed":
        from sievenet.parser.compare import time_parsers

        threads = torch.get_num_threads()
        for name, ms in time_parsers(args.photo, weights=args.weights, repeats=args.repeats).items():
            print(f"{name}: {ms:.1f} ms per photo (crop + parse at 256x192, median, {threads} torch threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
