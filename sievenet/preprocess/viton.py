"""Writing preprocessed photos in the VITON-HD layout (DESIGN §7), for SieveNet and other try-on repositories.

DIR/image/{stem}.jpg                      the person, framed H:W and resized to H x W
DIR/openpose_json/{stem}_keypoints.json   COCO-18 keypoints in that image's pixels
DIR/image-parse-v3/{stem}.png             P-mode PNG of LIP ids with the LIP palette
DIR/cloth/{stem}.jpg, DIR/cloth-mask/{stem}.jpg   garments laid out as product images
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image

from sievenet.data import write_lip_png
from sievenet.labels import label_to_lip

JPEG_QUALITY = 95


def write_person(
    root: Path, stem: str, image: np.ndarray, keypoints: np.ndarray, parse: np.ndarray
) -> dict[str, Path]:
    """Write one framed person (image, keypoints, parse) under `root`; returns the paths written."""
    from sievenet.data import write_openpose_json

    paths = {
        "image": root / "image" / f"{stem}.jpg",
        "openpose_json": root / "openpose_json" / f"{stem}_keypoints.json",
        "image-parse-v3": root / "image-parse-v3" / f"{stem}.png",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(image).save(paths["image"], quality=JPEG_QUALITY)
    write_openpose_json(paths["openpose_json"], keypoints)
    write_lip_png(paths["image-parse-v3"], label_to_lip(parse))
    return paths


def write_garment(root: Path, stem: str, image: np.ndarray, mask: np.ndarray) -> dict[str, Path]:
    """Write one product-style garment image and its mask (0/255) under `root`."""
    paths = {"cloth": root / "cloth" / f"{stem}.jpg", "cloth-mask": root / "cloth-mask" / f"{stem}.jpg"}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(image).save(paths["cloth"], quality=JPEG_QUALITY)
    PIL.Image.fromarray(((mask >= 0.5) * 255).astype(np.uint8)).save(
        paths["cloth-mask"], quality=JPEG_QUALITY
    )
    return paths
