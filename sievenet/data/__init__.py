"""Data: the VITON-HD reader, OpenPose JSON I/O, the person representation and the sample dict."""

from sievenet.data.mixed import MixedDataset
from sievenet.data.openpose import read_openpose_json, write_openpose_json
from sievenet.data.sample import build_sample, collate
from sievenet.data.viton import VitonHD, write_lip_png

__all__ = [
    "MixedDataset",
    "VitonHD",
    "build_sample",
    "collate",
    "read_openpose_json",
    "write_lip_png",
    "write_openpose_json",
]
