"""Tiny models, a tiny in-memory dataset and release folders for the training/eval/export tests."""

from __future__ import annotations

import torch

from sievenet.data.representation import priors, target_warp, tt_priors, worn_mask
from sievenet.labels import Label
from sievenet.models import SieveNet

H, W = 64, 48
# A few-thousand-parameter SieveNet: the tests check the machinery, not the quality.
TINY = {
    "height": H,
    "width": W,
    "warp_features": [4, 4, 4, 4, 4],
    "warp_regressor": [8],
    "seg_widths": [4, 4, 4, 4, 4],
    "tt_widths": [4, 4, 4, 4, 4],
}


def tiny_overrides() -> list[str]:
    return [f"model.{k}={v}" for k, v in TINY.items()]


class TinyTryOn(torch.utils.data.Dataset):
    """Sample i is a pure function of i: a person with a coloured upper garment and a product cloth."""

    def __init__(self, n: int = 8):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(1000 + i)
        parse = torch.zeros(H, W, dtype=torch.int64)
        top = 10 + int(torch.randint(0, 6, (1,), generator=g))
        parse[2:top, 18:30] = Label.HAIR
        parse[top : top + 24, 12:36] = Label.UPPER
        parse[top : top + 20, 6:12] = Label.LEFT_ARM
        parse[top : top + 20, 36:42] = Label.RIGHT_ARM
        parse[top + 24 :, 14:34] = Label.LOWER
        colour = torch.rand(3, 1, 1, generator=g) * 2 - 1
        person = torch.ones(3, H, W) * 0.8
        person = torch.where(parse == Label.UPPER, colour.expand(3, H, W), person)
        person = torch.where(parse == Label.LOWER, torch.full((3, H, W), -0.5), person)
        cloth_mask = torch.zeros(1, H, W)
        cloth_mask[:, 16:48, 10:38] = 1
        cloth = colour * cloth_mask + (1 - cloth_mask)
        kp = torch.zeros(18, 3)
        kp[:, 0] = torch.linspace(12, 36, 18)
        kp[:, 1] = torch.linspace(4, 60, 18)
        kp[:, 2] = 1
        kp[[2, 5, 8, 11], :2] = torch.tensor([[14.0, top], [34.0, top], [16.0, top + 22], [32.0, top + 22]])
        mask = worn_mask(parse)
        return {
            "person": person,
            "cloth": cloth,
            "cloth_mask": cloth_mask,
            "priors": priors(kp, parse),
            "tt_priors": tt_priors(person, parse),
            "parse": parse,
            "worn_mask": mask,
            "target_warp": target_warp(person, mask),
            "truth": person,
            "keypoints": kp,
            "meta": {"sleeve": ["short", "long"][i % 2], "texture": "solid"},
        }


def tiny_release(path, stages=("warp", "seg"), seed: int = 0, **overrides) -> str:
    """A release folder of an untrained tiny model whose manifest claims `stages` were trained."""
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in TINY.items()} | overrides
    torch.manual_seed(seed)
    model = SieveNet.from_config("sievenet-s", **cfg)
    model.save_pretrained(path, manifest={"stages": {s: {"steps": 1} for s in stages}})
    return str(path)
