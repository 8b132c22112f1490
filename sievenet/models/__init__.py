"""SieveNet's modules, one per file."""

from sievenet.models.config import CONFIGS, SieveNetConfig, get_config
from sievenet.models.seg import ConditionalSegmentation
from sievenet.models.sievenet import SieveNet, TryOnOutput
from sievenet.models.tt import TextureTranslation
from sievenet.models.warp import CoarseToFineWarp, WarpOutput

__all__ = [
    "CONFIGS",
    "CoarseToFineWarp",
    "ConditionalSegmentation",
    "SieveNet",
    "SieveNetConfig",
    "TextureTranslation",
    "TryOnOutput",
    "WarpOutput",
    "get_config",
]
