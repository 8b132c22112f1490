"""VitonHD: a torch Dataset over the VITON-HD directory layout (real VITON-HD, or a studio export).

Layout (DESIGN §7), for split in {train, test}:
    {split}_pairs.txt                       "person.jpg cloth.jpg" per line
    {split}_pairs_unpaired.txt              optional (studio exports): the unpaired listing
    {split}/image/ cloth/ cloth-mask/       person photos, product images, product masks
    {split}/image-parse-v3/{stem}.png       P-mode PNG of LIP/CIHP ids
    {split}/openpose_json/{stem}_keypoints.json
    {split}/image-unpaired/{p}__{c}.png, image-parse-unpaired/{p}__{c}.png   studio only: unpaired truth
    {split}/meta/{stem}.json, meta-unpaired/{p}__{c}.json                    studio only: scene metadata
    {split}/flow/{p}__{c}.png               3D studio only: truth pixel -> cloth pixel (write_flow_png)

Paired mode pairs each person with the garment of the same file name (VITON-HD names a person photo and
the garment worn in it alike). Unpaired mode reads `{split}_pairs_unpaired.txt` when present, else the
second column of `{split}_pairs.txt` (VITON-HD's test listing is unpaired).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from sievenet.data.openpose import read_openpose_json
from sievenet.data.sample import build_sample
from sievenet.errors import DataError
from sievenet.labels import LIP_PALETTE, lip_to_label

PAIRS = ("paired", "unpaired")
MASK_SUFFIXES = ("", ".png", ".jpg")


def write_lip_png(path: str | os.PathLike, lip: np.ndarray) -> None:
    """Save an (H, W) LIP/CIHP id map as a P-mode PNG with the LIP palette, as VITON-HD's image-parse-v3."""
    image = Image.fromarray(np.asarray(lip, dtype=np.uint8))  # mode "L"; putpalette turns it into "P"
    image.putpalette(LIP_PALETTE)
    image.save(path)


FLOW_SCALE = 32.0  # flow PNGs store x and y in 1/32 pixel steps (uint16: up to 2047 px)


def write_flow_png(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Save a (3, H, W) flow (cloth x, y in pixels with centres at +0.5, validity) as a 16-bit RGB PNG."""
    xy = np.clip(np.round(flow[:2] * FLOW_SCALE), 0, 65535)
    out = np.stack([xy[0], xy[1], (flow[2] > 0.5) * 65535.0], -1).astype(np.uint16)
    cv2.imwrite(str(path), out[..., ::-1])  # OpenCV writes BGR


def read_flow_png(path: Path, cloth_hw: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Read a flow PNG as (3, H, W) float32 at `size`, its x and y rescaled from `cloth_hw` to `size`."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 3 or raw.shape[2] != 3:
        raise DataError(f"{path}: flow must be a 16-bit RGB PNG written by write_flow_png")
    flow = raw[..., ::-1].astype(np.float32)
    h, w = size
    if flow.shape[:2] != (h, w):  # nearest: a blend of valid and invalid pixels is no correspondence
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_NEAREST)
    valid = flow[..., 2] > 32767
    x = flow[..., 0] / FLOW_SCALE * (w / cloth_hw[1])
    y = flow[..., 1] / FLOW_SCALE * (h / cloth_hw[0])
    return torch.from_numpy(np.stack([x * valid, y * valid, valid.astype(np.float32)]))


def _stem(name: str) -> str:
    return Path(name).stem


def _open(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
        return img
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable image ({err})") from None


def _check_aspect(path: Path, hw: tuple[int, int], size: tuple[int, int]) -> None:
    (h, w), (th, tw) = hw, size
    if abs(h * tw - w * th) > 0.01 * w * th:
        raise DataError(
            f"{path}: image is {w}x{h} (WxH) but the dataset size is {tw}x{th}; the aspect ratios differ, "
            "so resizing would distort the person. Crop the data to the dataset aspect ratio first."
        )


def _resize(array: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    h, w = size
    if array.shape[:2] == (h, w):
        return array
    if nearest:  # label maps and masks (small ints; OpenCV cannot resize int64)
        return cv2.resize(array.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(array.dtype)
    shrink = array.shape[0] > h
    return cv2.resize(array, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class VitonHD(Dataset):
    """Samples (DESIGN §7 dict) read from a VITON-HD-layout directory, resized to `size`.

    Args:
        root: the dataset root holding `{split}_pairs.txt` and the `{split}/` folder.
        split: "train" or "test" (any folder name with a pairs file works).
        pairs: "paired" or "unpaired".
        size: (H, W) of the returned tensors; the files must have the same aspect ratio.

    Raises:
        DataError: the pairs file is missing or malformed, or names a person or cloth image that does not
            exist. Other malformed files raise DataError when their sample is read.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        pairs: str = "paired",
        size: tuple[int, int] = (256, 192),
    ) -> None:
        if pairs not in PAIRS:
            raise ValueError(f"pairs must be one of {PAIRS}, got {pairs!r}")
        self.root, self.split, self.pairs = Path(root), split, pairs
        self.size = (int(size[0]), int(size[1]))
        self.dir = self.root / split
        listing = self.root / f"{split}_pairs.txt"
        if pairs == "unpaired" and (self.root / f"{split}_pairs_unpaired.txt").exists():
            listing = self.root / f"{split}_pairs_unpaired.txt"
        self.listing = listing
        self.items = self._read_pairs(listing)

    def _read_pairs(self, listing: Path) -> list[tuple[str, str]]:
        try:
            lines = listing.read_text().splitlines()
        except FileNotFoundError:
            raise DataError(
                f"{listing}: pairs file not found; is {self.root} a VITON-HD-layout root?"
            ) from None
        items = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2:
                raise DataError(
                    f"{listing}:{number}: expected 'person_image cloth_image', got {line.strip()!r}"
                )
            person, cloth = fields
            if self.pairs == "paired":
                cloth = person
            for folder, name in (("image", person), ("cloth", cloth)):
                if not (self.dir / folder / name).is_file():
                    raise DataError(
                        f"{listing}:{number}: names {name!r}, but {self.dir / folder / name} does not exist"
                    )
            items.append((person, cloth))
        if not items:
            raise DataError(f"{listing}: no pairs listed")
        return items

    def __len__(self) -> int:
        return len(self.items)

    def _parse(self, path: Path) -> np.ndarray:
        img = _open(path)
        if img.mode not in ("P", "L"):
            raise DataError(
                f"{path}: parse must be a P-mode or greyscale PNG of LIP ids, got mode {img.mode}"
            )
        try:
            return lip_to_label(np.asarray(img))
        except ValueError as err:
            raise DataError(f"{path}: {err}") from None

    def _cloth_mask(self, cloth_name: str) -> tuple[Path, np.ndarray]:
        folder = self.dir / "cloth-mask"
        for candidate in [folder / cloth_name] + [
            folder / (_stem(cloth_name) + s) for s in MASK_SUFFIXES[1:]
        ]:
            if candidate.is_file():
                return candidate, (np.asarray(_open(candidate).convert("L")) >= 128).astype(np.uint8)
        raise DataError(f"{folder / cloth_name}: cloth mask not found (also tried .png and .jpg)")

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | dict]:
        person_name, cloth_name = self.items[index]
        pstem, cstem = _stem(person_name), _stem(cloth_name)
        image_path = self.dir / "image" / person_name
        parse_path = self.dir / "image-parse-v3" / f"{pstem}.png"
        person = np.asarray(_open(image_path).convert("RGB"))
        parse = self._parse(parse_path)
        if parse.shape != person.shape[:2]:
            raise DataError(
                f"{parse_path}: parse is {parse.shape[1]}x{parse.shape[0]} but its image {image_path.name} is "
                f"{person.shape[1]}x{person.shape[0]} (WxH); they must match pixel for pixel"
            )
        _check_aspect(image_path, person.shape[:2], self.size)
        keypoints = read_openpose_json(self.dir / "openpose_json" / f"{pstem}_keypoints.json")
        cloth_path = self.dir / "cloth" / cloth_name
        cloth = np.asarray(_open(cloth_path).convert("RGB"))
        mask_path, cloth_mask = self._cloth_mask(cloth_name)
        if cloth_mask.shape != cloth.shape[:2]:
            raise DataError(
                f"{mask_path}: mask size {cloth_mask.shape[::-1]} differs from {cloth_path.name} {cloth.shape[1::-1]}"
            )
        _check_aspect(cloth_path, cloth.shape[:2], self.size)

        meta = {"source": "viton-hd", "split": self.split, "pairs": self.pairs, "index": index,
                "person_name": pstem, "cloth_name": cstem, "has_truth": True}  # fmt: skip
        truth = truth_parse = None
        if self.pairs == "unpaired" and pstem != cstem:
            key = f"{pstem}__{cstem}"
            truth_path = self.dir / "image-unpaired" / f"{key}.png"
            meta_path = self.dir / "meta-unpaired" / f"{key}.json"
            if truth_path.is_file():
                truth = _resize(np.asarray(_open(truth_path).convert("RGB")), self.size, nearest=False)
                truth_parse = _resize(
                    self._parse(self.dir / "image-parse-unpaired" / f"{key}.png"), self.size, nearest=True
                )
            else:
                meta["has_truth"] = False  # real data: nobody photographed this person in that garment
        else:
            meta_path = self.dir / "meta" / f"{pstem}.json"
        if meta_path.is_file():
            try:
                meta.update(json.loads(meta_path.read_text()))
            except json.JSONDecodeError as err:
                raise DataError(f"{meta_path}: not valid JSON ({err})") from None

        h, w = person.shape[:2]
        th, tw = self.size
        if (h, w) != (th, tw):
            keypoints = keypoints.copy()
            present = keypoints[:, 2] > 0
            # Scale pixel centres, not corners: (x + 0.5) * s - 0.5.
            keypoints[present, 0] = (keypoints[present, 0] + 0.5) * (tw / w) - 0.5
            keypoints[present, 1] = (keypoints[present, 1] + 0.5) * (th / h) - 0.5
        sample = build_sample(
            person=_resize(person, self.size, nearest=False),
            parse=_resize(parse, self.size, nearest=True),
            keypoints=keypoints,
            cloth=_resize(cloth, self.size, nearest=False),
            cloth_mask=_resize(cloth_mask, self.size, nearest=True),
            meta=meta,
            truth=truth,
            truth_parse=truth_parse,
        )
        flow_path = self.dir / "flow" / f"{pstem}__{cstem}.png"
        if flow_path.is_file():
            sample["flow"] = read_flow_png(flow_path, cloth.shape[:2], self.size)
        return sample
