"""Try a garment on a person photo from the command line, writing every stage as a PNG.

    python -m sievenet.tryon --person me.jpg --garment shirt.png --out results/me_shirt

writes into --out: result.png (the photo with the garment swapped, at its own resolution), crop.png (H x W),
one PNG per stage numbered in pipeline order (01_pose.png ... 10_tryon.png), parse.png (LIP ids, P-mode),
keypoints.json (OpenPose format, photo pixels) and timings.json (ms per step, plus any warnings).
Exit status 0 on success, 2 for unusable input or weights (the message says what to do).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sievenet.errors import SieveNetError
from sievenet.preprocess.masks import MASK_BACKENDS, REMBG_ENV
from sievenet.preprocess.person import add_parser_arguments
from sievenet.preprocess.pose import DOWNLOAD_ENV, OPENPOSE_ENV, POSE_BACKENDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sievenet.tryon",
        description="SieveNet virtual try-on of one garment on one person photo.",
    )
    parser.add_argument("--person", required=True, help="photo of one person (JPEG, PNG, ...)")
    parser.add_argument(
        "--garment", required=True, help="photo of a garment on a plain background, or a transparent PNG"
    )
    parser.add_argument("--out", required=True, help="folder to write the result and every stage into")
    parser.add_argument(
        "--weights",
        default=None,
        help="SieveNet release folder or hf://org/repo (default weights/sievenet-s)",
    )
    parser.add_argument(
        "--pose", default="mediapipe", choices=POSE_BACKENDS, help="pose backend (default mediapipe, offline)"
    )
    parser.add_argument("--keypoints-json", default=None, help="OpenPose JSON for --pose json")
    parser.add_argument(
        "--mask", default="mediapipe", choices=MASK_BACKENDS, help="person/garment mask backend"
    )
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
    add_parser_arguments(parser)
    parser.add_argument("--device", default="cpu", help="torch device for the network (default cpu)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sievenet.data import write_lip_png, write_openpose_json
    from sievenet.labels import label_to_lip
    from sievenet.pipeline import DEFAULT_WEIGHTS, STAGES, TryOnPipeline

    try:
        pipe = TryOnPipeline.from_pretrained(
            args.weights or DEFAULT_WEIGHTS,
            device=args.device,
            openpose_weights=args.openpose_weights,
            rembg_model=args.rembg_model,
            parser=args.parser,
            parser_weights=args.parser_weights,
        )
        result = pipe(
            args.person, args.garment, pose=args.pose, mask=args.mask, keypoints_json=args.keypoints_json
        )
    except SieveNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.image.save(out / "result.png")
    result.crop.save(out / "crop.png")
    for index, key in enumerate(STAGES, start=1):
        result.stages[key].save(out / f"{index:02d}_{key}.png")
    write_lip_png(out / "parse.png", label_to_lip(result.parse))
    write_openpose_json(out / "keypoints.json", result.keypoints)
    report = {"timings_ms": {k: round(v, 1) for k, v in result.timings.items()}, "warnings": result.warnings}
    (out / "timings.json").write_text(json.dumps(report, indent=2) + "\n")
    for note in result.warnings:
        print(f"note: {note}", file=sys.stderr)
    steps = "  ".join(f"{k} {v:.0f}" for k, v in result.timings.items())
    print(f"wrote {out}/result.png and {len(STAGES)} stages; ms: {steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
