"""Data: the VITON-HD reader, the person representation and the sample dict every source yields."""

from sievenet.data.sample import build_sample, collate

__all__ = ["build_sample", "collate"]
