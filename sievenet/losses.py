"""SieveNet's losses (paper §3, DESIGN §6), each a small function citing the equation it implements.

Images are (B, 3, H, W) in [-1, 1]; reductions are means, so losses do not scale with resolution.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from sievenet.labels import NUM_CLASSES, SKIN, Label

log = logging.getLogger(__name__)

# relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 of torchvision's VGG19 `features`, as slice ends.
_VGG_SLICES = (2, 7, 12, 21, 30)
# Weights of those layers in the perceptual loss (CP-VTON / pix2pixHD convention).
VGG_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_VGG_SEED = 0

Backbone = Literal["imagenet", "random", "auto"]


def _imagenet_vgg19_state(allow_download: bool) -> dict | None:
    """torchvision's ImageNet VGG19 weights from the torch hub cache (or a download), else None."""
    from torchvision.models import VGG19_Weights

    url = VGG19_Weights.IMAGENET1K_V1.url
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", url.rsplit("/", 1)[-1])
    if not os.path.exists(cached) and not allow_download:
        return None
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)  # an offline machine should fail fast, not hang
    try:
        return torch.hub.load_state_dict_from_url(url, progress=False, check_hash=True, weights_only=True)
    except Exception as exc:  # URLError, timeouts, hash mismatch: all mean "not available here"
        log.info("ImageNet VGG19 weights unavailable (%s: %s)", type(exc).__name__, exc)
        return None
    finally:
        socket.setdefaulttimeout(previous)


def _vgg19_features(end: int) -> nn.Sequential:
    """torchvision's VGG19 `features[:end]` (same layer indices, same init), without the 100M-parameter head.

    The random init runs under a fixed seed, so "random" is the same network on every machine.
    """
    layout = (
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
    )
    layers: list[nn.Module] = []
    prev = 3
    for item in layout:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(prev, item, 3, padding=1), nn.ReLU(inplace=True)]
            prev = item
    features = nn.Sequential(*layers[:end])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_VGG_SEED)
        for m in features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
    return features


class VGGFeatures(nn.Module):
    """Frozen VGG19 returning relu1_1..relu5_1 (the first `layers` of them) for images in [-1, 1].

    Args:
        weights: "imagenet" (torchvision's, from the torch cache or downloaded; error if unavailable),
            "random" (fixed seed, offline), or "auto" (imagenet if it can be had, else random; logged).
        layers: how many of the 5 layers to compute (fewer is cheaper on a CPU).
        scale: resize the input by this factor first (e.g. 0.5 for the CPU config).
        allow_download: let "imagenet"/"auto" try the network when the cache is empty.

    Attributes:
        backbone: "imagenet" or "random" — what was actually loaded; record it wherever results are reported.
    """

    def __init__(
        self, weights: Backbone = "auto", layers: int = 5, scale: float = 1.0, *, allow_download: bool = True
    ):
        super().__init__()
        if weights not in ("imagenet", "random", "auto"):
            raise ValueError(f"weights must be 'imagenet', 'random' or 'auto', got {weights!r}")
        if not 1 <= layers <= 5:
            raise ValueError(f"layers must be 1..5, got {layers}")
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        state = _imagenet_vgg19_state(allow_download) if weights != "random" else None
        if weights == "imagenet" and state is None:
            raise RuntimeError(
                "ImageNet VGG19 weights are not in the torch cache and could not be downloaded; "
                "use weights='random' (offline) or 'auto', or place vgg19-dcbb9e9d.pth in the torch hub cache"
            )
        features = _vgg19_features(_VGG_SLICES[layers - 1])
        if state is not None:
            wanted = features.state_dict()
            missing = sorted(set(wanted) - {k.removeprefix("features.") for k in state})
            if missing:
                raise RuntimeError(f"ImageNet VGG19 state dict lacks {missing}")
            features.load_state_dict({k: state["features." + k] for k in wanted}, strict=True)
        self.backbone = "imagenet" if state is not None else "random"
        if weights == "auto":
            log.info("perceptual loss backbone: VGG19 %s weights", self.backbone)
        bounds = (0, *_VGG_SLICES[:layers])
        self.slices = nn.ModuleList(features[a:b] for a, b in zip(bounds, bounds[1:], strict=False))
        self.layers, self.scale = layers, scale
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:
        return super().train(False)  # always frozen, whatever the parent module does

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.scale != 1:
            x = F.interpolate(
                x, scale_factor=self.scale, mode="bilinear", align_corners=False, antialias=True
            )
        x = ((x + 1) / 2 - self.mean) / self.std
        feats = []
        for block in self.slices:
            x = block(x)
            feats.append(x)
        return feats


def warp_l1(warped: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_s^i = |I_stn^i - I_gt|_1 (paper Eq. 1)."""
    return F.l1_loss(warped, target)


def push_loss(warped_fine: torch.Tensor, warped_coarse: torch.Tensor, target: torch.Tensor, k: float = 3.0):
    """L_push = k * L_s^1 - |I_stn^1 - I_stn^0|_1 (paper Eq. 2): the fine warp must move away from the coarse
    one, towards the target, by a margin tied to its own error.

    Gradient reaches I_stn^0 through the second term unless the caller passes it detached (warp_loss's
    detach_coarse): then only the fine stage is pushed."""
    return k * warp_l1(warped_fine, target) - F.l1_loss(warped_fine, warped_coarse)


def align_loss(feats_coarse, feats_fine, feats_target) -> torch.Tensor:
    """L_align = mean_l (cos(V^0_l, V^1_l) - 1)^2, V^i_l = VGG_l(I_stn^i) - VGG_l(I_gt) (paper Eq. 3).

    The cosine is taken between the flattened per-sample feature-difference tensors, so the loss asks both
    stages' residuals to point the same way in feature space.

    Args:
        feats_coarse, feats_fine, feats_target: lists of (B, C_l, H_l, W_l) VGG features.
    """
    terms = []
    for f0, f1, ft in zip(feats_coarse, feats_fine, feats_target, strict=True):
        v0 = (f0 - ft).flatten(1)
        v1 = (f1 - ft).flatten(1)
        terms.append((F.cosine_similarity(v0, v1, dim=1, eps=1e-8) - 1).square().mean())
    return torch.stack(terms).mean()


def warp_loss(
    warped_coarse: torch.Tensor,
    warped_fine: torch.Tensor,
    target: torch.Tensor,
    vgg: VGGFeatures | None,
    *,
    k: float = 3.0,
    pgm: bool = True,
    detach_coarse: bool = False,
    fine_for_pgm: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L_warp = L_s^0 + L_s^1 + 0.5 L_push + 0.5 L_align (paper Eq. 4); pgm=False drops the last two.

    Args:
        detach_coarse: L_push and L_align treat the coarse stage as a constant (DESIGN §8: L_pgm must not
            degrade stage 1): I_stn^0 is detached in them, and I_stn^1 is replaced by `fine_for_pgm`. The
            coarse stage then learns from L_s^0 and, through the fine warp's theta + delta_theta, L_s^1; L_pgm
            moves only the fine stage. False is the paper's (and the shipped release's) joint gradient.
        fine_for_pgm: I_stn^1 recomputed from the coarse stage's detached theta (equal values; its gradient
            reaches only the fine stage), used by L_push and L_align when detach_coarse. Without it only
            I_stn^0 is detached, and the fine warp's theta still carries L_pgm's gradient to the coarse stage.

    Returns:
        (loss, logs) with every term as a float.
    """
    ls0 = warp_l1(warped_coarse, target)
    ls1 = warp_l1(warped_fine, target)
    loss = ls0 + ls1
    logs = {"l_s0": ls0.item(), "l_s1": ls1.item()}
    if pgm:
        if vgg is None:
            raise ValueError("warp_loss with pgm=True needs a VGGFeatures for L_align")
        coarse, fine = warped_coarse, warped_fine
        if detach_coarse:
            coarse = warped_coarse.detach()
            fine = warped_fine if fine_for_pgm is None else fine_for_pgm
        push = push_loss(fine, coarse, target, k)
        b = target.shape[0]
        feats = vgg(torch.cat([coarse, fine, target], dim=0))  # one batched pass
        f0, f1, ft = zip(*(f.split(b) for f in feats), strict=True)
        align = align_loss(f0, f1, ft)
        loss = loss + 0.5 * push + 0.5 * align
        logs |= {"l_push": push.item(), "l_align": align.item()}
    logs["l_warp"] = loss.item()
    return loss, logs


def segmentation_class_weights(weight: float = 1.5) -> torch.Tensor:
    """(8,) per-class weights: `weight` on background and skin (neck, arms), 1.0 elsewhere."""
    w = torch.ones(NUM_CLASSES)
    for label in (Label.BACKGROUND, *SKIN):
        w[label] = weight
    return w


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, weight: float = 1.5) -> torch.Tensor:
    """Skin/background-weighted cross-entropy (paper §3.2): those pixels count `weight` times.

    Args:
        logits: (B, 8, H, W); labels: (B, H, W) int64 model classes.
    """
    per_pixel = F.cross_entropy(logits, labels, reduction="none")  # (B, H, W)
    w = segmentation_class_weights(weight).to(logits.device)[labels]
    return (w * per_pixel).mean()


def vgg_layer_weights(layers: int, normalise: bool = False) -> tuple[float, ...]:
    """The weights of the first `layers` VGG layers in L_vgg.

    normalise=False keeps the paper's 1/32, 1/16, 1/8, 1/4, 1 as they are, so dropping the deep layers (the
    CPU config keeps 3) leaves a perceptual term 1/0.22 ≈ 4.6x weaker than the kept layers would give at full
    weight; normalise=True rescales the kept ones to sum to 1 (the same relative weights).
    """
    weights = VGG_LAYER_WEIGHTS[:layers]
    if normalise:
        total = sum(weights)
        weights = tuple(w / total for w in weights)
    return weights


def perceptual_loss(
    vgg: VGGFeatures, x: torch.Tensor, y: torch.Tensor, normalise: bool = False
) -> torch.Tensor:
    """L_vgg = sum_l w_l |VGG_l(x) - VGG_l(y)|_1 with w = 1/32, 1/16, 1/8, 1/4, 1 (relu1_1..relu5_1).

    Args:
        normalise: rescale the weights of the layers `vgg` keeps to sum to 1 (see vgg_layer_weights).
    """
    b = x.shape[0]
    feats = vgg(torch.cat([x, y], dim=0))
    loss = x.new_zeros(())
    for w, f in zip(vgg_layer_weights(vgg.layers, normalise), feats, strict=True):
        fx, fy = f.split(b)
        loss = loss + w * F.l1_loss(fx, fy.detach())
    return loss


# Wang, Simoncelli & Bovik (2003), MS-SSIM scale weights (finest first).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

Structural = Literal["none", "ssim", "ms-ssim"]


def ssim_loss(x: torch.Tensor, y: torch.Tensor, kind: Structural = "ssim") -> torch.Tensor:
    """1 - SSIM(x, y) or 1 - MS-SSIM(x, y), averaged over the batch: a structural term that needs no backbone.

    MS-SSIM uses as many of its 5 scales as the image allows (each halving must leave at least 11 pixels for
    the SSIM window; 256x192 allows all 5), with the scale weights renormalised over those kept. Negative
    contrast-structure values are clamped to a small positive number before the fractional powers.
    """
    from sievenet.metrics import ssim_components

    if kind == "ssim":
        luminance, cs = ssim_components(x, y)
        return 1 - (luminance * cs).mean()
    if kind != "ms-ssim":
        raise ValueError(f"kind must be 'ssim' or 'ms-ssim', got {kind!r}")
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and min(x.shape[-2:]) // 2**scales >= 11:
        scales += 1
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    value = x.new_ones(x.shape[0])
    for i in range(scales):
        luminance, cs = ssim_components(x, y)
        term = (luminance * cs if i == scales - 1 else cs).flatten(1).mean(1)  # (B,)
        value = value * term.clamp_min(1e-6) ** weights[i]
        if i < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return 1 - value.mean()


def texture_loss(
    tryon: torch.Tensor,
    truth: torch.Tensor,
    composition_mask: torch.Tensor,
    worn_mask: torch.Tensor,
    vgg: VGGFeatures | None,
    *,
    vgg_weight: float = 1.0,
    normalise_vgg: bool = False,
    structural: Structural = "none",
    structural_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L_tt = |I_tryon - I_m|_1 + L_vgg(I_tryon, I_m) + |M_cm - M_gt^cloth|_1 (paper Eq. 6), with options.

    Args:
        vgg: the perceptual backbone (None only when vgg_weight is 0).
        vgg_weight: the weight of L_vgg (1 in the paper; 0 drops it).
        normalise_vgg: renormalise L_vgg's layer weights over the layers `vgg` keeps (vgg_layer_weights).
        structural: add structural_weight * (1 - SSIM) or (1 - MS-SSIM) of I_tryon against I_m
            ("none": the paper's L_tt).
    """
    l1 = F.l1_loss(tryon, truth)
    mask = F.l1_loss(composition_mask, worn_mask)
    loss = l1 + mask
    logs = {"l_tt_l1": l1.item()}
    if vgg_weight:
        if vgg is None:
            raise ValueError("texture_loss with vgg_weight != 0 needs a VGGFeatures")
        vgg_term = perceptual_loss(vgg, tryon, truth, normalise=normalise_vgg)
        loss = loss + vgg_weight * vgg_term
        logs["l_tt_vgg"] = vgg_term.item()
    if structural != "none":
        structure = ssim_loss(tryon, truth, structural)
        loss = loss + structural_weight * structure
        logs["l_tt_" + structural.replace("-", "")] = structure.item()
    logs |= {"l_tt_mask": mask.item(), "l_tt": loss.item()}
    return loss, logs


def duelling_triplet_loss(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.1
) -> torch.Tensor:
    """L_triplet = max(|a - p|_1 - |a - n|_1 + margin, 0) (paper Eq. 7), per sample, then averaged.

    The pixel version the shipped release was trained with (`triplet: pixel`). With the negative a copy
    refreshed every few hundred steps, its per-pixel gradient (2 sign(a - p) - sign(a - n)) / N beside
    L_tt's own L1 mostly re-weights that L1; feature_triplet_loss is the version true to the idea.

    a is the current network's I_tryon, p the ground truth I_m, n the I_tryon of the frozen "previous" network:
    the current model is pushed to beat its own earlier self by `margin`. The negative is never trained.
    """
    d_pos = (anchor - positive).abs().flatten(1).mean(1)
    d_neg = (anchor - negative.detach()).abs().flatten(1).mean(1)
    return F.relu(d_pos - d_neg + margin).mean()


def feature_distance(feats_x: list[torch.Tensor], feats_y: list[torch.Tensor]) -> torch.Tensor:
    """Per-sample distance in VGG feature space, as LPIPS computes it without its learned heads.

    Each layer's features are unit-normalised over channels at every position; the distance is the mean over
    positions of the squared difference, averaged over layers. Unlike a pixel L1 (or L_vgg's feature L1),
    its gradient depends on where the two images differ in structure, not only on the sign of each pixel's
    error. (B,) values in [0, 4].
    """
    terms = []
    for fx, fy in zip(feats_x, feats_y, strict=True):
        nx = F.normalize(fx, dim=1, eps=1e-10)
        ny = F.normalize(fy, dim=1, eps=1e-10)
        terms.append((nx - ny).square().sum(1).flatten(1).mean(1))
    return torch.stack(terms).mean(0)


def feature_triplet_loss(
    vgg: VGGFeatures,
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 0.1,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Duelling triplet in feature space with a margin relative to d_pos (paper Eq. 7, re-posed).

        L = mean_b max(d(a, p) - d(a, n) + margin * sg(d(a, p)), 0),  d = feature_distance

    a is the current I_tryon, p the truth I_m, n the I_tryon of an OLDER frozen network (a snapshot taken at
    step K and refreshed rarely). The hinge is active while the current network does not beat the old one by
    the fraction `margin` of its own error; sg (stop-gradient) keeps the margin a target, not a term to
    shrink. Only `anchor` receives gradient.

    Returns:
        (loss, logs): logs hold the batch means of d_pos, d_neg and the fraction of samples whose hinge is on.
    """
    b = anchor.shape[0]
    with torch.no_grad():
        fixed = vgg(torch.cat([positive, negative], dim=0))
    fa = vgg(anchor)
    fp, fn = zip(*(f.split(b) for f in fixed), strict=True)
    d_pos = feature_distance(fa, list(fp))
    d_neg = feature_distance(fa, list(fn))
    hinge = d_pos - d_neg + margin * d_pos.detach()
    loss = F.relu(hinge).mean()
    return loss, {
        "triplet_d_pos": d_pos.mean().item(),
        "triplet_d_neg": d_neg.mean().item(),
        "triplet_active": (hinge > 0).float().mean().item(),
    }
