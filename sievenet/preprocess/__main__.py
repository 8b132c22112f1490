"""Preprocess photos into the VITON-HD layout: python -m sievenet.preprocess PHOTO [PHOTO ...] --out DIR.

Person photos get a framed image, OpenPose keypoints and an image-parse-v3 parse; photos passed with
--garment get a product-style cloth image and cloth-mask. The files work with SieveNet's VitonHD reader and
with other VITON-HD-based try-on code. A photo that cannot be used is reported and skipped; the exit status
is 2 if any photo failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sievenet.cli import size_type
from sievenet.errors import SieveNetError
from sievenet.preprocess.image_io import load_image
from sievenet.preprocess.masks import MASK_BACKENDS, REMBG_ENV
from sievenet.preprocess.person import Preprocessor, add_parser_arguments
from sievenet.preprocess.pose import DOWNLOAD_ENV, OPENPOSE_ENV, POSE_BACKENDS
from sievenet.preprocess.viton import write_garment, write_person

_size = size_type(minimum=(64, 64))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sievenet.preprocess",
        description="Turn person and garment photos into VITON-HD-layout files (image, openpose_json, "
        "image-parse-v3, cloth, cloth-mask).",
    )
    parser.add_argument("photos", nargs="*", type=Path, help="person photos")
    parser.add_argument(
        "--garment", action="append", type=Path, default=[], help="a garment photo (repeatable)"
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (VITON-HD split folder)")
    parser.add_argument(
        "--size", type=_size, default=(1024, 768), help="HEIGHTxWIDTH of outputs (default 1024x768)"
    )
    parser.add_argument("--pose", default="mediapipe", choices=[p for p in POSE_BACKENDS if p != "json"])
    parser.add_argument("--mask", default="mediapipe", choices=MASK_BACKENDS)
    add_parser_arguments(parser)
    parser.add_argument(
        "--openpose-weights",
        default=None,
        help=f"body_pose_model.pth (else ${OPENPOSE_ENV}, the Hugging Face cache, or the hub if ${DOWNLOAD_ENV}=1)",
    )
    parser.add_argument(
        "--rembg-model",
        default=None,
        help=f"U^2-Net .onnx for --mask rembg (else ${REMBG_ENV}, rembg's model folder, or a download if ${DOWNLOAD_ENV}=1)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.photos and not args.garment:
        parser.error("give at least one person PHOTO or --garment PHOTO")
    pre = Preprocessor(
        openpose_weights=args.openpose_weights,
        rembg_model=args.rembg_model,
        parser=args.parser,
        parser_weights=args.parser_weights,
    )
    failed = 0
    for path in args.photos:
        try:
            photo = load_image(path, what="person photo")
            found = pre.pose(photo.array, args.pose)
            mask = pre.person_mask(photo.array, found, args.mask)
            framed = pre.frame(photo.array, found.keypoints, mask, args.size)
            write_person(args.out, path.stem, framed.image, framed.keypoints, framed.parse)
            for note in photo.warnings + found.warnings + ([pre.parser_note] if pre.parser_note else []):
                print(f"note: {path}: {note}", file=sys.stderr)
            print(f"{path} -> {args.out}/image/{path.stem}.jpg")
        except SieveNetError as exc:
            failed += 1
            print(f"error: {path}: {exc}", file=sys.stderr)
    for path in args.garment:
        try:
            photo = load_image(path, what="garment photo")
            garment = pre.garment(photo, args.size, args.mask)
            write_garment(args.out, path.stem, garment.image, garment.mask[0].numpy())
            print(f"{path} -> {args.out}/cloth/{path.stem}.jpg")
        except SieveNetError as exc:
            failed += 1
            print(f"error: {path}: {exc}", file=sys.stderr)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
