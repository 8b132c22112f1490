"""The learned human parser: framed person crop (+ person mask, + keypoints) -> the 8 model classes.

python -m sievenet.parser render|train|export|eval|compare ...   (see sievenet/parser/__main__.py)
"""

from sievenet.parser.infer import DEFAULT_PARSER_WEIGHTS, LearnedParser, default_parser_weights, neck_to_face
from sievenet.parser.model import CONFIGS, ParserConfig, ParserNet, encode, limb_maps

__all__ = [
    "CONFIGS",
    "DEFAULT_PARSER_WEIGHTS",
    "LearnedParser",
    "ParserConfig",
    "ParserNet",
    "default_parser_weights",
    "encode",
    "limb_maps",
    "neck_to_face",
]
