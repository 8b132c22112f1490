"""Training configuration: one flat dataclass, filled from a stage YAML and `key=value` overrides.

Overrides are parsed as YAML scalars and type-checked against the field they set; unknown keys are refused
with the list of valid ones. Model-shape overrides go through `model.<field>=value` (checked against
SieveNetConfig), e.g. `model.warp_stages=1`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sievenet.models.config import SieveNetConfig

# In training order. "warp-fine" is the optional cascaded refinement: the fine TPS stage retrained alone on the
# frozen coarse one (seg does not read the warp, so it may come before or after; the shipped chain puts it here).
STAGES = ("warp", "seg", "warp-fine", "tt")


class ConfigError(ValueError):
    """A run cannot start as configured (bad value, missing or mismatched init release, changed config on
    resume); the message says what to change."""


CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class TrainConfig:
    """Everything one training run depends on; the resolved copy is saved beside every checkpoint."""

    stage: str = "warp"  # warp | seg | warp-fine | tt
    run_dir: str = "runs/sievenet-s-warp"
    # Model: a named SieveNetConfig plus field overrides (height, width, warp_stages, tt_use_segmentation, ...).
    model: str = "sievenet-s"
    model_overrides: dict = field(default_factory=dict)
    # Release folder holding the earlier stages' weights (loaded frozen); None trains from scratch.
    init: str | None = None
    # Data: "synthetic" (in-memory studio, seeded) or "viton-hd" (a folder in the VITON-HD layout).
    data: str = "synthetic"
    data_root: str | None = None
    data_size: int | None = None  # synthetic: how many distinct training samples (None: the studio's default)
    data_seed: int = 0
    # synthetic: which studio draws the samples: "2d" (procedural flat figures, what the shipped release saw),
    # "3d" (the parametric-body studio) or "mix".
    studio: str = "2d"
    # synthetic: a VITON-HD-layout folder of pairs rendered ahead (e.g. the 3D studio's train split, written by
    # `python -m sievenet.synthetic export --studio 3d`), mixed with the on-the-fly studio: disk_share of the
    # samples come from it, spread evenly over the indices (sievenet.data.MixedDataset). None: studio only.
    disk_root: str | None = None
    disk_share: float = 0.5
    pairs: str = "paired"
    num_workers: int = 0
    # Optimisation.
    seed: int = 0
    steps: int = 1000
    batch_size: int = 4  # per process
    lr: float = 1e-4
    # From this step on the learning rate falls linearly to 0 at `steps` (None: constant lr throughout).
    lr_decay_from: int | None = None
    betas: tuple[float, float] = (0.5, 0.999)
    grad_clip: float | None = None
    # Losses.
    vgg_weights: str = "auto"  # imagenet | random | auto
    vgg_layers: int = 5
    vgg_scale: float = 1.0
    # tt: L_vgg's layer weights rescaled to sum to 1 over the vgg_layers kept (False: the paper's 1/32, 1/16,
    # ... as they are, so vgg_layers=3 leaves them summing to 0.22; the shipped release).
    vgg_normalise: bool = False
    tt_vgg_weight: float = 1.0  # tt: weight of L_vgg in L_tt (0: no perceptual term)
    tt_structural: str = "none"  # tt: add tt_structural_weight * (1 - SSIM): none | ssim | ms-ssim
    tt_structural_weight: float = 1.0
    pgm: bool = True  # warp: add L_push + L_align (False: L_s^0 + L_s^1 only, the ablation row)
    push_k: float = 3.0
    # warp: L_push and L_align see the coarse stage as a constant (I_stn^0 and the fine warp's theta detached
    # in them), so L_pgm trains only the fine stage. False: the paper's joint gradient (the shipped release).
    pgm_detach_coarse: bool = False
    # warp-fine: where the fine stage starts. "fresh": seeded fresh init; "coarse": a copy of the trained coarse
    # stage with the regressor's last layer zeroed (so it starts as the identity correction).
    fine_init: str = "fresh"
    seg_weight: float = 1.5
    triplet_after: int | None = None  # K: steps of L_tt alone before the duelling triplet starts; None: never
    # R: steps between refreshes of the frozen "previous" network, a snapshot first taken at step K
    # (None: never refreshed, the snapshot at K stays the negative).
    triplet_refresh: int | None = 500
    # "pixel": the shipped release's L1 triplet, absolute margin. "feature": distance in VGG feature space
    # (LPIPS-like), margin = triplet_margin * d_pos (relative) -- sievenet.losses.feature_triplet_loss.
    triplet: str = "pixel"
    triplet_margin: float = 0.1
    triplet_weight: float = 1.0
    # Bookkeeping.
    log_every: int = 10
    image_every: int = 200
    ckpt_every: int = 100
    resume: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # torch.set_num_threads on CPU (None: torch's default)
    tensorboard: bool = True
    progress: bool = True

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Check values a user can get wrong; raise ConfigError saying what to change."""
        if self.stage not in STAGES:
            raise ConfigError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.fine_init not in ("fresh", "coarse"):
            raise ConfigError(f"fine_init must be 'fresh' or 'coarse', got {self.fine_init!r}")
        if self.fine_init != "fresh" and self.stage != "warp-fine":
            raise ConfigError(
                f"fine_init={self.fine_init} only applies to stage warp-fine (this is {self.stage})"
            )
        if self.data not in ("synthetic", "viton-hd"):
            raise ConfigError(f"data must be 'synthetic' or 'viton-hd', got {self.data!r}")
        if self.data == "viton-hd" and not self.data_root:
            raise ConfigError("data=viton-hd needs data_root=<folder in the VITON-HD layout>")
        if self.pairs not in ("paired", "unpaired"):
            raise ConfigError(f"pairs must be 'paired' or 'unpaired', got {self.pairs!r}")
        if self.vgg_weights not in ("imagenet", "random", "auto"):
            raise ConfigError(f"vgg_weights must be imagenet, random or auto, got {self.vgg_weights!r}")
        if self.studio not in ("2d", "3d", "mix"):
            raise ConfigError(f"studio must be '2d', '3d' or 'mix', got {self.studio!r}")
        if self.studio != "2d" and self.data != "synthetic":
            raise ConfigError(f"studio={self.studio} only applies to data=synthetic (this is {self.data})")
        if self.disk_root is not None and self.data != "synthetic":
            raise ConfigError(f"disk_root mixes pre-rendered pairs into data=synthetic (this is {self.data})")
        if not 0 <= self.disk_share <= 1:
            raise ConfigError(f"disk_share must be in [0, 1], got {self.disk_share}")
        if self.triplet not in ("pixel", "feature"):
            raise ConfigError(f"triplet must be 'pixel' or 'feature', got {self.triplet!r}")
        if self.tt_structural not in ("none", "ssim", "ms-ssim"):
            raise ConfigError(f"tt_structural must be none, ssim or ms-ssim, got {self.tt_structural!r}")
        for name in ("steps", "batch_size", "log_every", "image_every", "ckpt_every", "triplet_refresh"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr_decay_from is not None and not 0 <= self.lr_decay_from < self.steps:
            raise ConfigError(
                f"lr_decay_from must be a step in [0, steps={self.steps}), got {self.lr_decay_from}: lower it "
                "with steps (the shipped YAMLs decay over the last quarter) or set lr_decay_from=null for a "
                "constant learning rate"
            )
        if self.stage == "tt" and self.init is None and self.model_config().tt_use_segmentation:
            raise ConfigError(
                "stage tt needs init=<release with trained warp and seg>; train those stages first "
                "(or set model.tt_use_segmentation=false and give a release with a trained warp)"
            )
        if self.stage == "warp-fine" and self.init is None:
            raise ConfigError(
                "stage warp-fine needs init=<release with a trained warp>: it retrains the fine TPS stage on "
                "that release's frozen coarse stage; train and export stage warp first"
            )
        if self.stage == "warp-fine" and self.model_config().warp_stages != 2:
            raise ConfigError(
                "stage warp-fine needs two warp stages (model.warp_stages=2): there is no fine one"
            )
        if self.stage == "seg" and self.pairs == "unpaired":
            raise ConfigError(
                "stage seg needs pairs=paired: its target is the parse of the person wearing the tried garment, "
                "and samples carry that parse only when the pair is paired"
            )
        if self.stage == "seg" and not self.model_config().tt_use_segmentation:
            raise ConfigError("stage seg is pointless with model.tt_use_segmentation=false: skip it")
        self.model_config()  # raises on bad model overrides

    def model_config(self) -> SieveNetConfig:
        """The SieveNetConfig this run trains (named config + overrides)."""
        from sievenet.models.config import get_config

        # YAML gives lists where SieveNetConfig holds tuples (widths).
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in self.model_overrides.items()}
        try:
            return get_config(self.model, **overrides)
        except TypeError as exc:
            raise ConfigError(f"bad model_overrides {self.model_overrides}: {exc}") from None

    def lr_at(self, step: int) -> float:
        """The learning rate of optimiser step `step` (0-based)."""
        return lr_at(step, self.lr, self.lr_decay_from, self.steps)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-ready values (tuples become lists, so saved and loaded configs compare equal)."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a plain dict (YAML, a checkpoint); every key and value is checked."""
        hints = _hints(cls)
        unknown = sorted(set(data) - set(hints))
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; valid keys: {sorted(hints)}")
        return cls(**{k: _coerce(k, v, hints[k]) for k, v in data.items()})


def lr_at(step: int, lr: float, decay_from: int | None, steps: int) -> float:
    """Constant `lr`, then (from `decay_from`) a linear fall that would reach 0 at step `steps`."""
    if decay_from is None or step < decay_from:
        return lr
    return lr * (steps - step) / (steps - decay_from)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check `value` against the type hint of field `key`; ints are accepted for floats, lists for tuples."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(key, value, option)
            except ValueError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key} cannot be {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        args = typing.get_args(hint)
        if isinstance(value, list | tuple) and len(value) == len(args):
            return tuple(_coerce(key, v, a) for v, a in zip(value, args, strict=True))
    elif hint is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
    else:  # pragma: no cover - a field type this parser does not know yet
        raise TypeError(f"config field {key} has unsupported type {hint}")
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{key} must be {name}, got {value!r} ({type(value).__name__})")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn ["steps=100", "model.warp_stages=1"] into {"steps": 100, "model_overrides": {"warp_stages": 1}}.

    Values are YAML scalars (100, 1e-4, true, null, [0.5, 0.999]); keys are checked against TrainConfig and,
    for `model.<field>`, against SieveNetConfig.
    """
    hints = _hints(TrainConfig)
    model_fields = {f.name: f for f in dataclasses.fields(SieveNetConfig)}
    model_hints = typing.get_type_hints(SieveNetConfig)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value (e.g. steps=100)")
        value = yaml.safe_load(text) if text else None
        if key.startswith("model."):
            name = key[len("model.") :]
            if name not in model_fields or name == "name":
                valid = sorted(f"model.{n}" for n in model_fields if n != "name")
                raise ConfigError(f"unknown model override {key!r}; valid ones: {valid}")
            hint = model_hints[name]
            if typing.get_origin(hint) is tuple and isinstance(value, list):
                if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                    raise ConfigError(f"{key} must be a list of ints, got {text!r}")
            else:
                value = _coerce(key, value, hint)
            out.setdefault("model_overrides", {})[name] = value
            continue
        if key not in hints:
            raise ConfigError(f"unknown config key {key!r}; valid keys: {sorted(hints)} (and model.<field>)")
        out[key] = _coerce(key, value, hints[key])
    return out


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a stage YAML (a path, or a name under sievenet/train/configs/) and apply `key=value` overrides."""
    path = Path(path)
    if not path.exists() and (CONFIG_DIR / path).exists():
        path = CONFIG_DIR / path
    if not path.exists() and (CONFIG_DIR / f"{path}.yaml").exists():
        path = CONFIG_DIR / f"{path}.yaml"
    if not path.is_file():
        shipped = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no config file {str(path)!r}; shipped configs: {shipped}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a YAML mapping of config keys, got {type(data).__name__}")
    extra = parse_overrides(overrides or [])
    if "model_overrides" in extra:
        extra["model_overrides"] = {**data.get("model_overrides", {}), **extra["model_overrides"]}
    try:
        return TrainConfig.from_dict({**data, **extra})
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (what `python -m sievenet.train` can read back)."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
