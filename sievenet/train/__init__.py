"""Training: a model-agnostic loop, SieveNet's three stages, and one YAML per stage and model size.

python -m sievenet.train sievenet-s-warp.yaml [key=value ...]
"""

from sievenet.train.config import TrainConfig, load_config
from sievenet.train.loop import fit

__all__ = ["TrainConfig", "fit", "load_config", "train"]


def train(config: TrainConfig, command: list[str] | None = None) -> dict:
    """Build the stage and dataset a config names and run the loop (what `python -m sievenet.train` does)."""
    from sievenet.train.loop import setup_distributed
    from sievenet.train.stages import SieveNetStage, build_dataset

    _, _, device = setup_distributed(config.device)
    stage = SieveNetStage(config).to(device)
    dataset, collate = build_dataset(config)
    return fit(stage, dataset, config, collate_fn=collate, device=device, command=command)
