"""SieveNet's training stages (warp -> seg -> [warp-fine] -> tt): what each trains, its loss, logs and pictures.

Each stage builds the whole SieveNet, takes the earlier stages' weights from a release folder (`init`),
freezes everything but its own module and puts the frozen modules in eval mode (the warp's BatchNorm must
not drift). The optional warp-fine stage is cascaded training of the warp: its own module is only the fine
TPS stage, trained with the same L_warp on the frozen coarse stage of `init` (the jointly trained fine stage
of the shipped run ended no better than the coarse one; see weights/README.md). The trained module starts
from a seeded fresh initialisation whatever the release holds (or, for warp-fine with fine_init=coarse, from
a copy of the frozen coarse stage with its last layer zeroed), so a stage's result depends only on its config
and the earlier stages. Exporting a stage writes the full model (earlier stages carried over), which is the
next stage's `init`.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging

import torch
from torch import nn

from sievenet.errors import DataError, WeightsError
from sievenet.geometry import tps_grid, warp
from sievenet.labels import colourise_probabilities
from sievenet.losses import (
    VGGFeatures,
    duelling_triplet_loss,
    feature_triplet_loss,
    segmentation_loss,
    texture_loss,
    warp_loss,
)
from sievenet.models import SieveNet
from sievenet.train.config import ConfigError, TrainConfig

log = logging.getLogger(__name__)


def _unit(img: torch.Tensor) -> torch.Tensor:
    """[-1, 1] image -> [0, 1] for display."""
    return (img.detach() + 1) / 2


@functools.cache
def _vgg(weights: str, layers: int, scale: float) -> VGGFeatures:
    # Frozen and stateless, so stages in one process (tests, the ablation) can share it; building VGG19 costs
    # seconds on a CPU.
    return VGGFeatures(weights, layers=layers, scale=scale)


class SieveNetStage:
    """One of SieveNet's stages, as the model-agnostic loop wants it (see sievenet.train.loop.Stage)."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.name = config.stage
        model_config = config.model_config()
        warps = self.name in ("warp", "warp-fine")
        if warps and config.pgm and model_config.warp_stages == 1:
            raise ConfigError("pgm=true needs two warp stages (L_push/L_align compare them); set pgm=false")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = SieveNet(model_config)
        own = self._own_module()
        fresh = copy.deepcopy(own.state_dict())
        self.init_manifest: dict | None = None
        if config.init:
            self._load_init(config.init, model_config)
            # The trained module starts fresh (seeded), or for warp-fine maybe as a copy of the coarse stage.
            own.load_state_dict(fresh)
            if self.name == "warp-fine" and config.fine_init == "coarse":
                own.load_state_dict(self.model.warp.coarse.state_dict())
                nn.init.zeros_(own.regressor.fc.weight)
                nn.init.zeros_(own.regressor.fc.bias)
        self.model.requires_grad_(False).eval()
        own.requires_grad_(True).train()
        feature_triplet = config.triplet == "feature" and config.triplet_after is not None
        tt_vgg = self.name == "tt" and (config.tt_vgg_weight != 0 or feature_triplet)
        needs_vgg = tt_vgg or (warps and config.pgm)
        self.vgg = _vgg(config.vgg_weights, config.vgg_layers, config.vgg_scale) if needs_vgg else None
        # Duelling triplet: the frozen "previous" texture network (paper §3.3), made once K steps are done.
        self.previous: nn.Module | None = None
        if self.name == "tt" and config.triplet_after is not None:
            self.previous = copy.deepcopy(self.model.tt).requires_grad_(False).eval()

    # ---- construction ---------------------------------------------------------------------------------

    def _own_module(self) -> nn.Module:
        m = self.model
        return {"warp": m.warp, "seg": m.seg, "warp-fine": m.warp.fine, "tt": m.tt}[self.name]

    def _load_init(self, path: str, model_config) -> None:
        from sievenet.models.sievenet import read_manifest, resolve_release

        try:
            earlier = SieveNet.from_pretrained(path)
        except WeightsError as exc:
            raise ConfigError(
                f"init={path}: {exc}. Train and export the earlier stage(s) first "
                "(python -m sievenet.export RUN_DIR --out FOLDER), or point init= at their release"
            ) from None
        if earlier.config != model_config:
            raise ConfigError(
                f"init={path} holds a {earlier.config.name} model with a different config than this run's "
                f"{model_config.name}: {earlier.config} vs {model_config}; point init at the release of the "
                "earlier stage trained with the same model settings"
            )
        self.init_manifest = read_manifest(resolve_release(path))
        trained = set(self.init_manifest.get("stages", {}))
        required = {
            "warp": set(),
            "seg": set(),
            "warp-fine": {"warp"},
            "tt": {"warp", "seg"} if model_config.tt_use_segmentation else {"warp"},
        }
        missing = sorted(required[self.name] - trained)
        if missing:
            raise ConfigError(
                f"init={path} has no trained {missing} (its manifest lists stages {sorted(trained)}); "
                f"train and export those stages before stage {self.name}"
            )
        self.model.load_state_dict(earlier.state_dict(), strict=True)

    def to(self, device: torch.device) -> SieveNetStage:
        self.model.to(device)
        if self.vgg is not None:
            self.vgg.to(device)
        if self.previous is not None:
            self.previous.to(device)
        return self

    # ---- the Stage protocol ---------------------------------------------------------------------------

    def trainable(self) -> nn.Module:
        return self._own_module()

    def loss(self, net: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        if self.name in ("warp", "warp-fine"):
            if self.name == "warp":
                w = net(batch["priors"], batch["cloth"], batch["cloth_mask"])
            else:  # the frozen coarse stage, then `net` (the fine stage, maybe DDP-wrapped) on its output
                w = self.model.warp(batch["priors"], batch["cloth"], batch["cloth_mask"], fine=net)
            fine_for_pgm = None
            if cfg.pgm and cfg.pgm_detach_coarse and self.name == "warp":
                # I_stn^1 again, on the coarse theta as a constant: L_pgm's gradient then stops at the fine stage.
                g, (h, wd) = self.model.config.grid_size, batch["cloth"].shape[-2:]
                grid = tps_grid(w.theta.detach() + w.delta_theta, g, h, wd)
                fine_for_pgm = warp(batch["cloth"], grid)
            return warp_loss(
                w.warped_coarse,
                w.warped_fine,
                batch["target_warp"],
                self.vgg,
                k=cfg.push_k,
                pgm=cfg.pgm,
                detach_coarse=cfg.pgm_detach_coarse,
                fine_for_pgm=fine_for_pgm,
            )
        if self.name == "seg":
            logits = net(batch["priors"], batch["cloth"])
            loss = segmentation_loss(logits, batch["parse"], weight=cfg.seg_weight)
            accuracy = (logits.argmax(1) == batch["parse"]).float().mean()
            return loss, {"l_seg": loss.item(), "pixel_accuracy": accuracy.item()}
        warped, guide = self._tt_inputs(batch)
        _, m_cm, tryon = net(warped, guide, batch["tt_priors"])
        loss, logs = texture_loss(
            tryon,
            batch["truth"],
            m_cm,
            batch["worn_mask"],
            self.vgg,
            vgg_weight=cfg.tt_vgg_weight,
            normalise_vgg=cfg.vgg_normalise,
            structural=cfg.tt_structural,
            structural_weight=cfg.tt_structural_weight,
        )
        if self.previous is not None and step >= cfg.triplet_after:
            with torch.no_grad():
                _, _, negative = self.previous(warped, guide, batch["tt_priors"])
            if cfg.triplet == "feature":
                triplet, triplet_logs = feature_triplet_loss(
                    self.vgg, tryon, batch["truth"], negative, margin=cfg.triplet_margin
                )
                logs |= triplet_logs
            else:
                triplet = duelling_triplet_loss(tryon, batch["truth"], negative, margin=cfg.triplet_margin)
            loss = loss + cfg.triplet_weight * triplet
            logs |= {"l_triplet": triplet.item(), "l_total": loss.item()}
        return loss, logs

    @torch.no_grad()
    def _tt_inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """I_stn^1 and the guide (M_exp, or the priors for the CP-VTON-like row) from the frozen stages."""
        w = self.model.warp(batch["priors"], batch["cloth"])
        if self.model.config.tt_use_segmentation:
            guide = self.model.seg(batch["priors"], batch["cloth"]).softmax(1)
        else:
            guide = batch["priors"]
        return w.warped_fine, guide

    def after_step(self, step: int) -> None:
        k, r = self.config.triplet_after, self.config.triplet_refresh
        done = step + 1
        if self.previous is None or done < k:
            return
        if done == k or (r is not None and (done - k) % r == 0):
            self.previous.load_state_dict(self.model.tt.state_dict())

    @torch.no_grad()
    def visuals(self, batch: dict) -> dict[str, torch.Tensor]:
        own = self._own_module()
        was_training = own.training
        own.eval()
        try:
            out = self.model(batch["priors"], batch["cloth"], batch["tt_priors"], batch["cloth_mask"])
        finally:
            own.train(was_training)
        return {
            "cloth": _unit(batch["cloth"]),
            "I_gt": _unit(batch["target_warp"]),
            "I_stn0": _unit(out.warped_coarse),
            "I_stn1": _unit(out.warped_fine),
            "M_exp": colourise_probabilities(out.m_exp),
            "M_cm": out.composition_mask,
            "I_rp": _unit(out.rendered),
            "I_tryon": _unit(out.tryon),
            "truth": _unit(batch["truth"]),
        }

    def state_dict(self) -> dict:
        state = {"model": self.model.state_dict()}
        if self.previous is not None:
            state["previous"] = self.previous.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"], strict=True)
        if self.previous is not None:
            self.previous.load_state_dict(state["previous"], strict=True)

    def info(self) -> dict:
        return {
            "stage": self.name,
            "perceptual_backbone": self.vgg.backbone if self.vgg is not None else None,
            "init": self.config.init,
            "init_stages": dict(self.init_manifest.get("stages", {})) if self.init_manifest else {},
        }


def build_dataset(config: TrainConfig, split: str = "train"):
    """The training dataset a config names, at the model's resolution, and its collate function."""
    from sievenet.data import collate

    model_config = config.model_config()
    size = (model_config.height, model_config.width)
    if config.data == "synthetic":
        from sievenet.synthetic import SyntheticTryOn

        kwargs = {} if config.data_size is None else {"n": config.data_size}
        if config.studio != "2d":  # passed only when asked, so configs keep working without the 3D studio
            if "studio" not in inspect.signature(SyntheticTryOn).parameters:
                raise ConfigError(
                    f"studio={config.studio}: this checkout's SyntheticTryOn has only the 2D studio; "
                    "update to a version with the 3D studio or set studio=2d"
                )
            kwargs["studio"] = config.studio
        dataset = SyntheticTryOn(split, pairs=config.pairs, seed=config.data_seed, size=size, **kwargs)
        if config.disk_root is not None:
            from sievenet.data import MixedDataset, VitonHD

            try:
                rendered = VitonHD(config.disk_root, split, pairs=config.pairs, size=size)
            except DataError as exc:
                raise ConfigError(
                    f"disk_root={config.disk_root}: {exc}; render the pairs first (sievenet/train/reproduce.sh "
                    "v2-data) or set disk_root=null"
                ) from None
            dataset = MixedDataset(rendered, dataset, config.disk_share, n=len(dataset))
    else:
        from sievenet.data import VitonHD

        dataset = VitonHD(config.data_root, split, pairs=config.pairs, size=size)
    return dataset, collate
