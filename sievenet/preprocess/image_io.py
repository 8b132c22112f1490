"""Reading user photos safely: any file, array or PIL image in, an 8-bit RGB PIL image (plus alpha) out.

Every way a user file can be unusable ends in a TryOnError that names the file and says what to do, so the
pipeline, the command line and the app all report bad input the same way.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps

from sievenet.errors import TryOnError

MIN_SIDE = 64  # below this there is too little of a person or garment left to find
MAX_PIXELS = 40_000_000  # refuse before decoding: bigger files are decompression bombs or scans, not photos
MAX_SIDE = (
    2048  # larger-but-sane photos are downscaled to this longest side; pose and masks gain nothing above it
)

ImageSource = str | os.PathLike | bytes | np.ndarray | PIL.Image.Image


@dataclass
class Photo:
    """A decoded user image: 8-bit RGB, its alpha channel where it had real transparency, and notes for the user."""

    rgb: PIL.Image.Image
    alpha: np.ndarray | None = None  # (H, W) float32 in [0, 1], only when some pixel is transparent
    warnings: list[str] = field(default_factory=list)

    @property
    def array(self) -> np.ndarray:
        """(H, W, 3) uint8."""
        return np.asarray(self.rgb)


def load_image(source: ImageSource, *, what: str = "image", max_side: int = MAX_SIDE) -> Photo:
    """Decode a path, bytes, numpy array or PIL image into an upright 8-bit RGB photo.

    Handles grayscale, 16-bit, float, palette, CMYK, RGBA/LA (transparent pixels become white), animated files
    (first frame) and EXIF orientation. Photos whose longest side exceeds `max_side` are downscaled.

    Args:
        source: file path, encoded bytes, (H, W[, 1|3|4]) array (uint8, uint16, bool or float in [0, 1]) or PIL image.
        what: what the image is ("person photo", "garment photo"); used in messages.
        max_side: longest side after loading.

    Raises:
        TryOnError: missing, empty, undecodable or truncated file; too small; too many pixels.
    """
    notes: list[str] = []
    if isinstance(source, np.ndarray):
        image = _from_array(source, what)
        label = f"the {what} array"
    elif isinstance(source, PIL.Image.Image):
        image = source
        label = f"the {what}"
    elif isinstance(source, bytes | bytearray):
        image = _open(io.BytesIO(source), f"the {what} bytes")
        label = f"the {what} bytes"
    elif isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        label = f"{what} {str(path)!r}"
        if not path.is_file():
            raise TryOnError(f"{label} does not exist or is not a file; check the path")
        if path.stat().st_size == 0:
            raise TryOnError(f"{label} is empty (0 bytes); pick a JPEG or PNG photo")
        image = _open(path, label)
    else:
        raise TryOnError(
            f"cannot read the {what} from a {type(source).__name__}; give a file path, bytes, a numpy array "
            "or a PIL image"
        )

    width, height = image.size
    if width * height > MAX_PIXELS:
        raise TryOnError(
            f"{label} is {width}x{height} = {width * height / 1e6:.0f} megapixels, more than the "
            f"{MAX_PIXELS / 1e6:.0f} MP this tool accepts (decompression-bomb guard); resize it first"
        )
    if min(width, height) < MIN_SIDE:
        raise TryOnError(
            f"{label} is only {width}x{height} pixels; give an image at least {MIN_SIDE} pixels on each side"
        )
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
        notes.append(f"{label} is animated ({image.n_frames} frames); used the first frame")
    if max(width, height) > max_side and image.format == "JPEG":
        image.draft("RGB", (max_side, max_side))  # decode at reduced scale: much faster for big JPEGs
    try:
        image.load()
    except (OSError, ValueError, SyntaxError) as exc:
        raise TryOnError(
            f"{label} could not be decoded ({exc}); the file is truncated or corrupt, save it again"
        ) from None
    try:
        image = PIL.ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block must not make an otherwise good photo unusable
        notes.append(f"{label} has an unreadable EXIF orientation; used the pixels as stored")
    rgb, alpha = _to_rgb(image)
    if max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        notes.append(f"{label} is {width}x{height}; downscaled to {size[0]}x{size[1]}")
        rgb = rgb.resize(size, PIL.Image.Resampling.LANCZOS)
        if alpha is not None:
            alpha = np.asarray(
                PIL.Image.fromarray(alpha).resize(size, PIL.Image.Resampling.BILINEAR), dtype=np.float32
            )
    return Photo(rgb=rgb, alpha=alpha, warnings=notes)


def _open(fp, label: str) -> PIL.Image.Image:
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that; our own limit is applied right after.
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            return PIL.Image.open(fp)
    except PIL.Image.DecompressionBombError as exc:
        raise TryOnError(f"{label} is too large to decode safely ({exc}); resize it first") from None
    except (PIL.UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise TryOnError(
            f"{label} is not an image PIL can read; give a JPEG, PNG, WebP, BMP, TIFF or GIF file"
        ) from None


def _from_array(array: np.ndarray, what: str) -> PIL.Image.Image:
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise TryOnError(f"the {what} array must be (H, W), (H, W, 3) or (H, W, 4); got shape {a.shape}")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        a = (a.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise TryOnError(f"the {what} array holds NaN or infinite values")
        scale = 255.0 if a.max(initial=0.0) <= 1.0 else 1.0  # [0, 1] floats, or floats already in 0..255
        a = (a * scale).clip(0, 255).round().astype(np.uint8)
    elif a.dtype != np.uint8:
        a = a.clip(0, 255).astype(np.uint8)
    return PIL.Image.fromarray(np.ascontiguousarray(a))


def _to_rgb(image: PIL.Image.Image) -> tuple[PIL.Image.Image, np.ndarray | None]:
    """Any PIL mode -> RGB, with the alpha channel returned separately when it holds transparency."""
    mode = image.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float32)
        top = values.max(initial=0.0)
        # 16-bit data spans 0..65535; float data is usually 0..1; scale whichever range it is onto 0..255.
        scale = 255.0 / 65535.0 if top > 255 else (255.0 if mode == "F" and top <= 1.0 else 1.0)
        gray = (values * scale).clip(0, 255).round().astype(np.uint8)
        return PIL.Image.fromarray(gray).convert("RGB"), None
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        alpha = np.asarray(image.getchannel("A"), dtype=np.float32) / 255.0
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
        if alpha.min() >= 1.0:
            return image.convert("RGB"), None
        # Transparent pixels become white: the studio backdrop SieveNet's training images have.
        white = rgb * alpha[..., None] + 255.0 * (1.0 - alpha[..., None])
        return PIL.Image.fromarray(white.round().astype(np.uint8)), alpha
    return image.convert("RGB"), None
