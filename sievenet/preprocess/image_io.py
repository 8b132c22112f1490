"""Reading user photos safely: any file, array or PIL image in, an 8-bit RGB PIL image (plus alpha) out.

Every way a user file can be unusable ends in a TryOnError that names the file and says what to do, so the
pipeline, the command line and the app all report bad input the same way.
"""

from __future__ import annotations

import io
import math
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
# The pipeline works on a 256x192 crop and pastes it back at the photo's resolution, which is shown, not
# analysed: a 2048 px longest side keeps every result sharp on screen. Larger photos are reduced while they
# are still 8-bit (JPEG decodes at 1/2..1/8 scale directly), so a 40 MP file never becomes a float array.
MAX_SIDE = 2048
# A JPEG decodes at the 1/2..1/8 scale that keeps at least this fraction of MAX_SIDE, and stays that size: a
# 4000x3000 phone photo decodes straight to 2000x1500 (a quarter of the work, no resampling after).
DRAFT_SLACK = 0.97
# The app's upload limit (Gradio's max_file_size "10mb"); load_image(max_bytes=...) holds any bytes to it.
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# EXIF orientation -> the transpose that shows the photo upright (as PIL.ImageOps.exif_transpose applies it).
_ORIENTATION = {
    2: PIL.Image.Transpose.FLIP_LEFT_RIGHT,
    3: PIL.Image.Transpose.ROTATE_180,
    4: PIL.Image.Transpose.FLIP_TOP_BOTTOM,
    5: PIL.Image.Transpose.TRANSPOSE,
    6: PIL.Image.Transpose.ROTATE_270,
    7: PIL.Image.Transpose.TRANSVERSE,
    8: PIL.Image.Transpose.ROTATE_90,
}


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


ImageSource = str | os.PathLike | bytes | np.ndarray | PIL.Image.Image | Photo


def load_image(
    source: ImageSource,
    *,
    what: str = "image",
    max_side: int = MAX_SIDE,
    name: str | None = None,
    max_bytes: int | None = None,
) -> Photo:
    """Decode a path, bytes, numpy array or PIL image into an upright 8-bit RGB photo.

    Handles grayscale, 16-bit, float, palette, CMYK, RGBA/LA (transparent pixels become white), animated files
    (first frame) and EXIF orientation. Photos whose longest side exceeds `max_side` are downscaled, early and
    in 8 bits. A Photo is returned as it is (already loaded, e.g. by the app with its own limits).

    Args:
        source: file path, encoded bytes, (H, W[, 1|3|4]) array (uint8, uint16, bool or float in [0, 1]) or PIL image.
        what: what the image is ("person photo", "garment photo"); used in messages.
        max_side: longest side after loading.
        name: the name messages and warnings show for the image (e.g. an upload's own file name) instead of
            its path: a server must not tell its clients where their files are kept.
        max_bytes: refuse encoded files (paths or bytes) larger than this (e.g. MAX_UPLOAD_BYTES).

    Raises:
        TryOnError: missing, empty, oversized, undecodable or truncated file; too small; too many pixels;
            an array that does not hold numbers.
    """
    if isinstance(source, Photo):
        return source
    notes: list[str] = []
    shown = None if name is None else f"{what} {str(name)[:120]!r}"
    if isinstance(source, np.ndarray):
        label = shown or f"the {what} array"
        image = _from_array(source, label)
    elif isinstance(source, PIL.Image.Image):
        label = shown or f"the {what}"
        image = source
    elif isinstance(source, bytes | bytearray):
        label = shown or f"the {what} bytes"
        _check_bytes(len(source), max_bytes, label)
        image = _open(io.BytesIO(source), label)
    elif isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        label = shown or f"{what} {str(path)!r}"
        if not path.is_file():
            raise TryOnError(f"{label} does not exist or is not a file; check the path")
        size = path.stat().st_size
        if size == 0:
            raise TryOnError(f"{label} is empty (0 bytes); pick a JPEG or PNG photo")
        _check_bytes(size, max_bytes, label)
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
    try:
        turn = _ORIENTATION.get(image.getexif().get(0x0112))
    except Exception:  # a broken EXIF block must not make an otherwise good photo unusable
        turn = None
        notes.append(f"{label} has an unreadable EXIF orientation; used the pixels as stored")
    if max(width, height) > max_side and image.format == "JPEG":
        # Decode at 1/2, 1/4 or 1/8 scale (never the full 40 MP): the smallest that keeps the longest side at
        # least DRAFT_SLACK * max_side.
        keep = DRAFT_SLACK * max_side / max(width, height)
        image.draft(None, (math.ceil(width * keep), math.ceil(height * keep)))
    try:
        image.load()
        image = _shrink(_decodable_mode(image), max_side)
    except (OSError, ValueError, SyntaxError) as exc:
        raise TryOnError(
            f"{label} could not be decoded ({exc}); the file is truncated or corrupt, save it again"
        ) from None
    if turn is not None:
        image = image.transpose(turn)
    rgb, alpha = _to_rgb(image)
    if max(width, height) > max_side:
        shown_size = (height, width) if turn in _SWAPS else (width, height)
        notes.append(f"{label} is {shown_size[0]}x{shown_size[1]}; downscaled to {rgb.width}x{rgb.height}")
    return Photo(rgb=rgb, alpha=alpha, warnings=notes)


_SWAPS = (
    PIL.Image.Transpose.TRANSPOSE,
    PIL.Image.Transpose.TRANSVERSE,
    PIL.Image.Transpose.ROTATE_90,
    PIL.Image.Transpose.ROTATE_270,
)


def _check_bytes(size: int, max_bytes: int | None, label: str) -> None:
    if max_bytes is not None and size > max_bytes:
        raise TryOnError(
            f"{label} is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit; "
            "save it smaller (a JPEG of the photo is plenty)"
        )


def decode_data_url(url: str, *, max_bytes: int = MAX_UPLOAD_BYTES, what: str = "image") -> bytes:
    """The bytes of a "data:image/...;base64,..." URL, refused BEFORE decoding when they would exceed max_bytes.

    Raises:
        TryOnError: not a base64 data URL, invalid base64, or too large.
    """
    import base64
    import binascii

    header, comma, payload = url.partition(",")
    if not header.startswith("data:") or not comma or not header.endswith(";base64"):
        raise TryOnError(f"the {what} is not a base64 data URL; upload the file instead")
    _check_bytes(len(payload) * 3 // 4, max_bytes, f"the {what}")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise TryOnError(f"the {what} data URL holds invalid base64; upload the file instead") from None


def _decodable_mode(image: PIL.Image.Image) -> PIL.Image.Image:
    """Modes PIL cannot reduce or resample well become their nearest 8-bit (or 32-bit integer) equivalent."""
    if image.mode == "1":
        return image.convert("L")
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode == "PA":
        return image.convert("RGBA")
    if image.mode.startswith("I;16"):
        return image.convert("I")
    return image


def _shrink(image: PIL.Image.Image, max_side: int) -> PIL.Image.Image:
    """Longest side down to max_side: an integer box reduce first (cheap, bounded), then one area-averaging
    (box filter) resize for the remaining factor under 2 (no aliasing; a third of Lanczos's time on a 12 MP
    photo, and the photo is shown, not analysed, at this size).

    PIL resamples RGBA and LA premultiplied, so transparent pixels do not bleed their colour into the edges.
    """
    factor = max(image.size) // max_side
    if factor >= 2:
        image = image.reduce(factor)
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, PIL.Image.Resampling.BOX)
    return image


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


def _from_array(array: np.ndarray, label: str) -> PIL.Image.Image:
    a = np.asarray(array)
    if a.dtype == np.bool_:
        a = a.view(np.uint8) * np.uint8(255)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise TryOnError(
            f"{label} holds values of type {a.dtype} ({a.dtype.kind!r}), not pixel numbers; give uint8 (0..255), "
            "uint16 or float (0..1) values"
        )
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise TryOnError(f"{label} must be (H, W), (H, W, 3) or (H, W, 4); got shape {a.shape}")
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise TryOnError(
            f"{label} is {a.shape[1]}x{a.shape[0]} = {a.shape[0] * a.shape[1] / 1e6:.0f} megapixels, more than "
            f"the {MAX_PIXELS / 1e6:.0f} MP this tool accepts; resize it first"
        )
    if a.dtype == np.uint8:
        return PIL.Image.fromarray(np.ascontiguousarray(a))
    if np.issubdtype(a.dtype, np.floating):
        # Finite check and range in one pass of bounded memory (no full-size boolean or float copies).
        top = max((float(np.max(rows, initial=0.0)) for rows in _row_blocks(a)), default=0.0)
        if not all(np.isfinite(rows).all() for rows in _row_blocks(a)):
            raise TryOnError(f"{label} holds NaN or infinite values")
        scale = 255.0 if top <= 1.0 else 1.0  # [0, 1] floats, or floats already in 0..255
    else:
        scale = 1.0 / 257.0 if a.dtype == np.uint16 else 1.0
    out = np.empty(a.shape, np.uint8)
    for rows, target in zip(_row_blocks(a), _row_blocks(out), strict=True):
        target[...] = (rows.astype(np.float32) * scale).clip(0, 255).round()
    return PIL.Image.fromarray(out)


def _row_blocks(a: np.ndarray, rows: int = 256):
    return (a[i : i + rows] for i in range(0, a.shape[0], rows))


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
        alpha8 = np.asarray(image.getchannel("A"))
        if alpha8.min() == 255:
            return image.convert("RGB"), None
        # Transparent pixels become white: the studio backdrop SieveNet's training images have. Integer maths:
        # rgb * a + 255 * (255 - a) fits in uint16, and (x + 127) // 255 rounds exactly like float rounding.
        a = alpha8.astype(np.uint16)[..., None]
        white = np.asarray(image.convert("RGB"), dtype=np.uint16)
        white *= a
        white += 255 * (255 - a) + 127
        white //= 255
        return PIL.Image.fromarray(white.astype(np.uint8)), alpha8.astype(np.float32) / 255.0
    return image.convert("RGB"), None
