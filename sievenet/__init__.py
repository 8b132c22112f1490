"""SieveNet (Jandial et al., WACV 2020): robust image-based virtual try-on, in PyTorch."""

from sievenet.models import SieveNet, SieveNetConfig, TryOnOutput

__all__ = ["SieveNet", "SieveNetConfig", "TryOnOutput", "TryOnPipeline"]


def __getattr__(name: str):
    # The pipeline pulls in the photo preprocessors (mediapipe, OpenCV); import them only when asked for.
    if name == "TryOnPipeline":
        from sievenet.pipeline import TryOnPipeline

        return TryOnPipeline
    raise AttributeError(f"module 'sievenet' has no attribute {name!r}")
