"""Model configurations: a frozen dataclass per size, looked up by name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sievenet.data.representation import PRIOR_CHANNELS


@dataclass(frozen=True)
class SieveNetConfig:
    """Everything that fixes the shape of SieveNet's weights.

    warp_features: widths of the 4 stride-2 convs; the 5th is the width of the 2 closing convs.
    seg_widths / tt_widths: U-Net channels per level, half resolution first (one stride-2 step per level).
    """

    name: str = "sievenet-s"
    height: int = 256
    width: int = 192
    grid_size: int = 5
    warp_stages: int = 2
    warp_features: tuple[int, ...] = (16, 32, 64, 96, 96)
    warp_regressor: tuple[int, ...] = (128, 64)
    seg_widths: tuple[int, ...] = (24, 48, 96, 128)
    tt_widths: tuple[int, ...] = (24, 48, 96, 128)
    tt_use_segmentation: bool = True
    prior_channels: int = PRIOR_CHANNELS

    def __post_init__(self):
        # DESIGN says "multiples of 64" but uses 64x48 and 128x96 itself; 4 stride-2 levels need 16.
        if self.height % 16 or self.width % 16 or self.height < 64 or self.width < 48:
            raise ValueError(
                f"height and width must be multiples of 16, at least 64x48, got {self.height}x{self.width}"
            )
        for name in ("seg_widths", "tt_widths"):
            step = 2 ** len(getattr(self, name))
            if self.height % step or self.width % step:
                raise ValueError(f"{name} has {step.bit_length() - 1} levels, so sides must divide by {step}")
        if self.warp_stages not in (1, 2):
            raise ValueError(f"warp_stages must be 1 or 2, got {self.warp_stages}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SieveNetConfig:
        """Build from a JSON dict; unknown keys are refused with the list of valid ones."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys: {sorted(fields)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


CONFIGS: dict[str, SieveNetConfig] = {
    "sievenet-s": SieveNetConfig(),
    "sievenet-paper": SieveNetConfig(
        name="sievenet-paper",
        warp_features=(64, 128, 256, 512, 512),
        warp_regressor=(512, 256, 128, 64),
        seg_widths=(64, 128, 256, 512),
        tt_widths=(64, 128, 256, 512),
    ),
}


def get_config(name: str, **overrides) -> SieveNetConfig:
    """A named config with field overrides, e.g. get_config("sievenet-s", height=128, width=96)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown model config {name!r}; choose one of {sorted(CONFIGS)}")
    return dataclasses.replace(CONFIGS[name], **overrides)
