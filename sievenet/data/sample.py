"""The one sample dict every data source yields (DESIGN §7), built from decoded arrays.

The VITON-HD reader and the synthetic studio both end here, so their samples share keys, dtypes and the
person representation (sievenet.data.representation) bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

from sievenet.data import representation as rep

TENSOR_KEYS = (
    "person", "cloth", "cloth_mask", "priors", "tt_priors", "parse", "worn_mask", "target_warp", "truth",
    "keypoints",
)  # fmt: skip


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(127.5).sub_(1.0)


def build_sample(
    person: np.ndarray,
    parse: np.ndarray,
    keypoints: np.ndarray,
    cloth: np.ndarray,
    cloth_mask: np.ndarray,
    meta: dict,
    truth: np.ndarray | None = None,
    truth_parse: np.ndarray | None = None,
) -> dict:
    """Assemble the sample dict.

    Args:
        person: (H, W, 3) uint8 person image (the scene the model sees).
        parse: (H, W) int64 model classes of `person`.
        keypoints: (18, 3) float pixel (x, y, confidence) of `person`.
        cloth: (H, W, 3) uint8 product image of the garment to try on.
        cloth_mask: (H, W) {0, 1} mask of `cloth`.
        meta: plain dict, passed through.
        truth: (H, W, 3) uint8 image of this person wearing `cloth`; defaults to `person` (paired).
        truth_parse: (H, W) int64 model classes of `truth`; defaults to `parse`.

    When meta["has_truth"] is False (real unpaired pairs: no image of the person in the other garment
    exists), worn_mask, target_warp and truth are NaN.

    Returns:
        The DESIGN §7 dict: person, cloth, cloth_mask, priors, tt_priors, parse, worn_mask, target_warp,
        truth, keypoints, meta.
    """
    person_t = image_to_tensor(person)
    parse_t = torch.from_numpy(np.ascontiguousarray(parse, dtype=np.int64))
    kp = torch.from_numpy(np.ascontiguousarray(keypoints, dtype=np.float32))
    mask = torch.from_numpy(np.ascontiguousarray(cloth_mask)).float()[None].clamp_(0, 1)
    cloth_t = image_to_tensor(cloth) * mask + (1.0 - mask)  # white outside the garment
    if meta.get("has_truth", True):
        truth_t = person_t if truth is None else image_to_tensor(truth)
        worn_parse = (
            parse_t
            if truth_parse is None
            else torch.from_numpy(np.ascontiguousarray(truth_parse, dtype=np.int64))
        )
        worn = rep.worn_mask(worn_parse)
        target = rep.target_warp(truth_t, worn)
    else:  # NaN, not a plausible-looking stand-in: any loss or metric computed on it shows up as NaN
        truth_t = torch.full_like(person_t, float("nan"))
        worn = torch.full_like(mask, float("nan"))
        target = torch.full_like(person_t, float("nan"))
    return {
        "person": person_t,
        "cloth": cloth_t,
        "cloth_mask": mask,
        "priors": rep.priors(kp, parse_t),
        "tt_priors": rep.tt_priors(person_t, parse_t),
        "parse": parse_t,
        "worn_mask": worn,
        "target_warp": target,
        "truth": truth_t,
        "keypoints": kp,
        "meta": dict(meta),
    }


def collate(samples: list[dict]) -> dict:
    """Batch sample dicts: stack every tensor on a new first dim, keep `meta` as a list of dicts.

    Usable as `DataLoader(..., collate_fn=collate)`.
    """
    if not samples:
        raise ValueError("collate needs at least one sample")
    batch = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key == "meta":
            batch[key] = values
        elif isinstance(values[0], torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) != 1:
                raise ValueError(f"cannot batch {key!r}: samples have different shapes {sorted(shapes)}")
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    return batch
