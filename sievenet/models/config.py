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
        """Build from a JSON dict, every field checked against BOUNDS first (a release's config is untrusted).

        Raises:
            ValueError: an unknown key, a wrong type or a value out of bounds; the message names the field.
        """
        return cls(**check_config_dict(data))


# Sane bounds for every field of a config read from a file, checked before any module is built: an untrusted
# config.json must not make the loader allocate gigabytes (sievenet-paper's widest layer is 512 channels).
MAX_WIDTH = 1024
MAX_LEVELS = 6
BOUNDS: dict[str, tuple[int, int]] = {
    "height": (64, 1024),
    "width": (48, 1024),
    "grid_size": (2, 10),
    "warp_stages": (1, 2),
    "prior_channels": (PRIOR_CHANNELS, PRIOR_CHANNELS),  # the person representation has exactly this many
}
WIDTH_LISTS: dict[str, tuple[int, int]] = {  # field -> (fewest, most) entries, each in 1..MAX_WIDTH
    "warp_features": (5, 5),
    "warp_regressor": (1, MAX_LEVELS),
    "seg_widths": (1, MAX_LEVELS),
    "tt_widths": (1, MAX_LEVELS),
}
MAX_NAME = 64


def check_config_dict(data: object) -> dict:
    """Type- and bounds-check a SieveNet config dict read from JSON; returns the dataclass keyword arguments.

    Raises:
        ValueError: naming the field, what it holds and the bound it breaks.
    """
    return check_fields(
        data, SieveNetConfig, ints=BOUNDS, width_lists=WIDTH_LISTS, flags=("tt_use_segmentation",)
    )


def check_fields(
    data: object,
    cls: type,
    *,
    ints: dict[str, tuple[int, int]],
    width_lists: dict[str, tuple[int, int]],
    flags: tuple[str, ...] = (),
    max_width: int = MAX_WIDTH,
    what: str = "config",
) -> dict:
    """Check a dict read from an untrusted JSON file against the fields of dataclass `cls`: `name` a short text,
    `flags` booleans, `ints` whole numbers within (low, high), `width_lists` lists of (fewest, most) whole
    numbers in 1..max_width. Returns the keyword arguments for `cls`.

    Raises:
        ValueError: an unknown key, a wrong type or a value out of bounds; the message names the field.
    """
    if not isinstance(data, dict):
        raise ValueError(f"the {what} must be a JSON object, got {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(data) - fields)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; valid keys: {sorted(fields)}")
    out: dict = {}
    for key, value in data.items():
        if key == "name":
            if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
                raise ValueError(
                    f"config field 'name' must be a text of 1..{MAX_NAME} characters, got {value!r:.80}"
                )
            out[key] = value
        elif key in flags:
            if not isinstance(value, bool):
                raise ValueError(f"config field {key!r} must be true or false, got {value!r:.80}")
            out[key] = value
        elif key in ints:
            low, high = ints[key]
            out[key] = _bounded_int(key, value, low, high)
        else:
            fewest, most = width_lists[key]
            if not isinstance(value, list | tuple) or not fewest <= len(value) <= most:
                count = f"{fewest}" if fewest == most else f"{fewest}..{most}"
                raise ValueError(f"config field {key!r} must be a list of {count} widths, got {value!r:.80}")
            out[key] = tuple(_bounded_int(f"{key}[{i}]", v, 1, max_width) for i, v in enumerate(value))
    return out


def _bounded_int(field: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"config field {field!r} must be a whole number, got {value!r:.80}")
    if not low <= value <= high:
        bound = f"{low}" if low == high else f"between {low} and {high}"
        raise ValueError(f"config field {field!r} is {value}; it must be {bound}")
    return value


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
