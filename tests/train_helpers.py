"""Tiny model settings and release folders for the training/eval/export tests (data: the studio at 64x48)."""

from __future__ import annotations

import torch

from sievenet.models import SieveNet

H, W = 64, 48
# A few-thousand-parameter SieveNet: the tests check the machinery, not the quality.
TINY = {
    "height": H,
    "width": W,
    "warp_features": [4, 4, 4, 4, 4],
    "warp_regressor": [8],
    "seg_widths": [4, 4, 4, 4],
    "tt_widths": [4, 4, 4, 4],
}


def tiny_overrides() -> list[str]:
    """key=value overrides for a tiny model trained on 8 synthetic samples at 64x48."""
    return [f"model.{k}={v}" for k, v in TINY.items()] + ["data_size=8", "num_workers=0"]


def tiny_release(path, stages=("warp", "seg"), seed: int = 0, **overrides) -> str:
    """A release folder of an untrained tiny model whose manifest claims `stages` were trained."""
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in TINY.items()} | overrides
    torch.manual_seed(seed)
    model = SieveNet.from_config("sievenet-s", **cfg)
    model.save_pretrained(path, manifest={"stages": {s: {"steps": 1} for s in stages}})
    return str(path)
