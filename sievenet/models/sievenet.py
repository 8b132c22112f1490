"""SieveNet: the three modules composed, and release I/O (safetensors + config.json + manifest.json)."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from sievenet.errors import WeightsError
from sievenet.models.config import SieveNetConfig, get_config
from sievenet.models.seg import ConditionalSegmentation
from sievenet.models.tt import TextureTranslation
from sievenet.models.warp import CoarseToFineWarp

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
# The most an hf:// release may weigh before anything is downloaded (sievenet-paper is 185 MB): an app on a
# Space must not fetch whatever a visitor names. SIEVENET_MAX_DOWNLOAD_MB overrides.
MAX_DOWNLOAD_MB = 1024
# SIEVENET_HF_REPOS="org/repo,org2/*" limits hf:// ids to those repositories (shell-style patterns), checked
# before any network call: on a Space it closes the "visitors can name any public repository" gap entirely.
HF_REPOS_ENV = "SIEVENET_HF_REPOS"
RELEASE_FORMAT = "sievenet-release/1"
# A release's config may describe at most this many parameters (sievenet-paper: 46 M, sievenet-s: 3 M), and its
# manifest.json and config.json at most this many bytes: both are read before the weights prove anything.
MAX_PARAMETERS = 150_000_000
MAX_MANIFEST_BYTES = 1_000_000


@dataclass
class TryOnOutput:
    """Every intermediate of one forward pass (DESIGN §1). Images (B, 3, H, W) in [-1, 1], masks (B, 1, H, W)."""

    theta: torch.Tensor  # (B, 2*G*G) coarse TPS offsets
    delta_theta: torch.Tensor  # (B, 2*G*G) fine correction
    grid_coarse: torch.Tensor  # (B, H, W, 2)
    grid_fine: torch.Tensor  # (B, H, W, 2)
    warped_coarse: torch.Tensor  # I_stn^0
    warped_fine: torch.Tensor  # I_stn^1
    warped_mask_coarse: torch.Tensor | None
    warped_mask_fine: torch.Tensor | None
    seg_logits: torch.Tensor  # (B, 8, H, W)
    m_exp: torch.Tensor  # (B, 8, H, W) softmax of seg_logits
    rendered: torch.Tensor  # I_rp
    composition_mask: torch.Tensor  # M_cm
    tryon: torch.Tensor  # I_tryon


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_release(
    directory: str | os.PathLike,
    module: nn.Module,
    config: dict,
    release_format: str,
    manifest: dict | None = None,
) -> Path:
    """Write a release folder: model.safetensors (atomically), config.json and manifest.json holding the
    sha256 of both files, the config itself and any extra provenance in `manifest`."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    weights = out / WEIGHTS_FILE
    tmp = weights.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"format": release_format})
    os.replace(tmp, weights)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    record = {
        "format": release_format,
        "weights": {"file": WEIGHTS_FILE, "sha256": sha256_file(weights), "bytes": weights.stat().st_size},
        "config": config,
        **(manifest or {}),
        "config_sha256": sha256_file(out / CONFIG_FILE),
    }
    (out / MANIFEST_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return out


class SieveNet(nn.Module):
    """The full try-on network: coarse-to-fine warp, conditional segmentation, texture translation."""

    def __init__(self, config: SieveNetConfig | None = None):
        super().__init__()
        self.config = config or SieveNetConfig()
        self.warp = CoarseToFineWarp(self.config)
        self.seg = ConditionalSegmentation(self.config)
        self.tt = TextureTranslation(self.config)

    @classmethod
    def from_config(cls, name: str = "sievenet-s", **overrides) -> SieveNet:
        """Build a freshly initialised model from a named config ("sievenet-s" or "sievenet-paper")."""
        return cls(get_config(name, **overrides))

    def forward(
        self,
        priors: torch.Tensor,
        cloth: torch.Tensor,
        tt_priors: torch.Tensor,
        cloth_mask: torch.Tensor | None = None,
    ) -> TryOnOutput:
        """Run the whole try-on.

        Args:
            priors: (B, 19, H, W) pose maps + body shape, in [0, 1].
            cloth: (B, 3, H, W) product image in [-1, 1], white outside the garment.
            tt_priors: (B, 3, H, W) kept person pixels (hair, face, lower body), 0 elsewhere.
            cloth_mask: optional (B, 1, H, W) product mask, warped alongside the cloth.

        Returns:
            TryOnOutput with every intermediate.
        """
        expected = (self.config.height, self.config.width)
        if tuple(cloth.shape[-2:]) != expected:
            raise ValueError(
                f"this model runs at {expected[0]}x{expected[1]}, got cloth {tuple(cloth.shape)}"
            )
        w = self.warp(priors, cloth, cloth_mask)
        seg_logits = self.seg(priors, cloth)
        m_exp = seg_logits.softmax(dim=1)
        guide = m_exp if self.config.tt_use_segmentation else priors
        rendered, composition_mask, tryon = self.tt(w.warped_fine, guide, tt_priors)
        return TryOnOutput(
            theta=w.theta,
            delta_theta=w.delta_theta,
            grid_coarse=w.grid_coarse,
            grid_fine=w.grid_fine,
            warped_coarse=w.warped_coarse,
            warped_fine=w.warped_fine,
            warped_mask_coarse=w.warped_mask_coarse,
            warped_mask_fine=w.warped_mask_fine,
            seg_logits=seg_logits,
            m_exp=m_exp,
            rendered=rendered,
            composition_mask=composition_mask,
            tryon=tryon,
        )

    # ---- release I/O -------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike, manifest: dict | None = None) -> Path:
        """Write model.safetensors, config.json and manifest.json (with the weights' sha256) into `directory`.

        Args:
            manifest: extra provenance to record (steps, data seed, perceptual backbone, metrics, command).
        """
        return write_release(directory, self, self.config.to_dict(), RELEASE_FORMAT, manifest)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> SieveNet:
        """Load a release: a folder, its .safetensors file, or "hf://org/repo[@revision]" on the Hugging Face hub.

        The weights' sha256 must match manifest.json and every tensor must match the config (strict=True).

        Raises:
            WeightsError: missing files, checksum mismatch (tampered or truncated), or shape/key mismatch.
        """
        folder = resolve_release(path)
        manifest = read_manifest(folder)
        weights = weights_path(folder, manifest)
        verify_weights(weights, manifest)
        config = read_config(folder, manifest)
        state = load_checked_state(weights, _shapes(config), f"its config.json ({config.name})")
        model = cls(config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(
                f"{shown(weights)} does not match its config.json ({config.name}): {exc}"
            ) from None
        return model.to(device).eval()


def _shapes(config: SieveNetConfig) -> dict[str, tuple[int, ...]]:
    """Every state-dict entry's shape for `config`, from a model built on the meta device (no memory)."""
    with torch.device("meta"):
        model = SieveNet(config)
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    count = sum(p.numel() for p in model.parameters())
    if count > MAX_PARAMETERS:
        raise WeightsError(
            f"config.json describes a model of {count / 1e6:,.0f} M parameters, more than the "
            f"{MAX_PARAMETERS / 1e6:,.0f} M this loader accepts (sievenet-paper has 46 M); check the release"
        )
    return shapes


def load_checked_state(
    weights: Path, expected: dict[str, tuple[int, ...]], against: str
) -> dict[str, torch.Tensor]:
    """The tensors of a (sha256-verified) safetensors file whose header holds exactly the `expected` keys and
    shapes, compared before any tensor is allocated; `against` names what they must match in messages.

    Raises:
        WeightsError: an unreadable file, or keys/shapes other than expected (the message names the first).
    """
    try:
        with safe_open(str(weights), "pt") as f:
            stored = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118
        if stored != expected:
            raise WeightsError(f"{shown(weights)} does not match {against}: {_shape_diff(expected, stored)}")
        return load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{shown(weights)} is not a readable safetensors file: {exc}") from None


def _shape_diff(expected: dict, stored: dict) -> str:
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    wrong = [k for k in sorted(set(expected) & set(stored)) if expected[k] != stored[k]]
    parts = []
    if missing:
        parts.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} unexpected tensors (e.g. {extra[0]})")
    if wrong:
        k = wrong[0]
        parts.append(
            f"{len(wrong)} tensors of another shape (e.g. {k}: file {stored[k]}, config {expected[k]})"
        )
    return "; ".join(parts)


def resolve_release(path: str | os.PathLike) -> Path:
    """Turn a release reference into a local folder, downloading "hf://org/repo[@revision]" ids."""
    text = str(path)
    if text.startswith("hf://"):
        return _download_hf(text[len("hf://") :])
    local = Path(text).expanduser()
    if local.is_file():
        local = local.parent
    if not local.is_dir():
        raise WeightsError(
            f"no weights at {text!r}: give a release folder, its .safetensors file, or hf://org/repo"
        )
    return local


def _download_hf(ref: str) -> Path:
    repo_id, _, revision = ref.partition("@")
    if repo_id.count("/") != 1:
        raise WeightsError(f"expected hf://org/repo[@revision], got hf://{ref}")
    allowed = [p.strip() for p in os.environ.get(HF_REPOS_ENV, "").split(",") if p.strip()]
    if allowed and not any(fnmatch.fnmatchcase(repo_id, pattern) for pattern in allowed):
        raise WeightsError(
            f"hf://{repo_id} is not one of the repositories this app may load ({', '.join(allowed)}; "
            f"set by {HF_REPOS_ENV}); pick one of those, or leave the box empty for the weights it started with"
        )
    files = [WEIGHTS_FILE, CONFIG_FILE, MANIFEST_FILE]
    try:
        from huggingface_hub import get_paths_info, snapshot_download

        info = get_paths_info(repo_id, files, revision=revision or None)
        found = {
            f.path: (f.lfs.size if getattr(f, "lfs", None) else getattr(f, "size", 0)) or 0 for f in info
        }
        missing = [name for name in files if name not in found]
        if missing:
            raise WeightsError(f"hf://{ref} is not a SieveNet release: it has no {', '.join(missing)}")
        limit_mb = float(os.environ.get("SIEVENET_MAX_DOWNLOAD_MB", MAX_DOWNLOAD_MB))
        total_mb = sum(found.values()) / 1e6
        if total_mb > limit_mb:
            raise WeightsError(
                f"hf://{ref} is {total_mb:,.0f} MB, over the {limit_mb:,.0f} MB limit for downloaded releases; "
                "set SIEVENET_MAX_DOWNLOAD_MB to allow it, or download it yourself and pass the folder"
            )
        folder = snapshot_download(repo_id, revision=revision or None, allow_patterns=files)
    except WeightsError:
        raise
    except Exception as exc:  # hub errors come in many types; all mean the same to the user
        raise WeightsError(
            f"could not fetch hf://{ref} from the Hugging Face hub ({type(exc).__name__}: {exc}); "
            "check the id and your network, or download the release folder and pass its path"
        ) from None
    return Path(folder)


def read_manifest(folder: Path) -> dict:
    """Read and check manifest.json of a release folder: its types, and a weights file named plainly.

    Raises:
        WeightsError: missing, not JSON, or a field of the wrong type or form (the message names the field).
    """
    path = folder / MANIFEST_FILE
    try:
        manifest = json.loads(read_small(path, folder))
    except FileNotFoundError:
        raise WeightsError(
            f"{shown(path)} is missing; a release folder needs manifest.json with the sha256"
        ) from None
    except (ValueError, OSError) as exc:
        raise WeightsError(
            f"{shown(path)} is not a valid SieveNet manifest ({exc}); re-export the release"
        ) from None
    if not isinstance(manifest, dict):
        raise WeightsError(f"{shown(path)} must hold a JSON object; re-export the release")
    entry = manifest.get("weights")
    if not isinstance(entry, dict):
        raise WeightsError(f"{shown(path)}: field 'weights' must be an object with 'file' and 'sha256'")
    name, digest = entry.get("file"), entry.get("sha256")
    if not isinstance(name, str):
        raise WeightsError(
            f"{shown(path)}: field 'weights.file' must be a file name (text), got {name!r:.60}"
        )
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name or Path(name).is_absolute():
        raise WeightsError(
            f"{shown(path)}: field 'weights.file' must be the plain name of a file inside the release folder "
            f"(such as {WEIGHTS_FILE}), got {name!r:.60}"
        )
    for field, value in (
        ("weights.sha256", digest),
        ("config_sha256", manifest.get("config_sha256", "0" * 64)),
    ):
        if not isinstance(value, str) or not _is_sha256(value):
            raise WeightsError(
                f"{shown(path)}: field {field!r} must be 64 hexadecimal digits, got {value!r:.80}"
            )
    return manifest


def weights_path(folder: Path, manifest: dict) -> Path:
    """The weights file a checked manifest names: a regular file inside `folder` (links may not lead out)."""
    weights = folder / manifest["weights"]["file"]
    if not weights.exists() and not weights.is_symlink():
        raise WeightsError(f"{shown(weights)} is missing (named by {MANIFEST_FILE})")
    _check_inside(weights, folder)
    return weights


def _check_inside(path: Path, folder: Path) -> None:
    """Refuse a release file that is not a regular file or whose links lead outside the release.

    A Hugging Face cache snapshot (.../models--org--repo/snapshots/<commit>/) links its files to ../../blobs/,
    so for those the repository's cache folder is the boundary.
    """
    hub_cache = folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--")
    root = folder.parent.parent if hub_cache else folder
    target = path.resolve()
    if not target.is_relative_to(root.resolve()) or not target.is_file():
        raise WeightsError(
            f"{shown(path)} is not a regular file inside the release folder (a link leading out of it, or a "
            "folder); a release's files must be plain files in its folder"
        )


def read_config(folder: Path, manifest: dict) -> SieveNetConfig:
    """config.json, checked against the manifest's config_sha256 and against every field's bounds.

    Releases written before config_sha256 existed are accepted only where config.json says exactly what the
    manifest's own copy of the config says.
    """
    path = folder / CONFIG_FILE
    try:
        raw = read_small(path, folder)
    except FileNotFoundError:
        raise WeightsError(f"{shown(path)} is missing; a release folder needs config.json") from None
    expected = manifest.get("config_sha256")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise WeightsError(f"{shown(path)} is not valid JSON ({exc}); re-export the release") from None
    if expected is not None:
        actual = hashlib.sha256(raw).hexdigest()
        if actual != expected:
            raise WeightsError(
                f"{shown(path)} failed its checksum (sha256 {actual[:16]}…, manifest says {expected[:16]}…): "
                "the config was modified; download or export the release again"
            )
    elif data != manifest.get("config"):
        raise WeightsError(
            f"{shown(path)} is not covered by a config_sha256 in {MANIFEST_FILE} and differs from the config the "
            "manifest records; download or export the release again"
        )
    try:
        return SieveNetConfig.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise WeightsError(f"{shown(path)} is not a valid SieveNet config: {exc}") from None


def verify_weights(weights: Path, manifest: dict) -> None:
    """Refuse a weights file whose sha256 differs from the manifest's."""
    if not weights.is_file():
        raise WeightsError(f"{shown(weights)} is missing (named by {MANIFEST_FILE})")
    expected = manifest["weights"]["sha256"]
    actual = sha256_file(weights)
    if actual != expected:
        raise WeightsError(
            f"{shown(weights)} failed its checksum (sha256 {actual[:16]}…, manifest says {expected[:16]}…): "
            "the file is truncated or was modified; download or export it again"
        )


def read_small(path: Path, folder: Path) -> bytes:
    """A release's JSON file, refused when it leads out of the release or is implausibly large."""
    if not path.exists():
        raise FileNotFoundError(path)
    _check_inside(path, folder)
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise WeightsError(
            f"{shown(path)} is larger than {MAX_MANIFEST_BYTES // 1000} kB; this is not a SieveNet release file"
        )
    return path.read_bytes()


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower())


def shown(path: Path) -> str:
    """A release file as messages show it: the folder's own name and the file, not the server's path."""
    return f"{path.parent.name}/{path.name}"
