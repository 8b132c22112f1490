"""Bad and unusual image files: every case decodes correctly or raises a TryOnError that says what to do."""

import io

import numpy as np
import PIL.Image
import pytest

from sievenet.errors import TryOnError
from sievenet.preprocess.image_io import MAX_PIXELS, MAX_SIDE, MIN_SIDE, load_image


def _gradient(h=96, w=80) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 3 % 256, y * 2 % 256, (x + y) % 256], axis=-1).astype(np.uint8)


def _save(tmp_path, image: PIL.Image.Image, name: str, **kw):
    path = tmp_path / name
    image.save(path, **kw)
    return path


def test_rgb_png_round_trips_exactly(tmp_path):
    rgb = _gradient()
    photo = load_image(_save(tmp_path, PIL.Image.fromarray(rgb), "a.png"))
    np.testing.assert_array_equal(photo.array, rgb)
    assert photo.alpha is None and photo.warnings == []


@pytest.mark.parametrize("source", ["path", "bytes", "pil", "array"])
def test_every_source_kind_gives_the_same_pixels(tmp_path, source):
    rgb = _gradient()
    path = _save(tmp_path, PIL.Image.fromarray(rgb), "a.png")
    given = {
        "path": str(path),
        "bytes": path.read_bytes(),
        "pil": PIL.Image.open(path),
        "array": rgb,
    }[source]
    np.testing.assert_array_equal(load_image(given).array, rgb)


def test_missing_empty_and_not_an_image(tmp_path):
    with pytest.raises(TryOnError, match="does not exist"):
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(TryOnError, match="empty"):
        load_image(tmp_path / "empty.jpg")
    (tmp_path / "notes.jpg").write_text("this is not a photo\n")
    with pytest.raises(TryOnError, match="not an image"):
        load_image(tmp_path / "notes.jpg")
    with pytest.raises(TryOnError, match="cannot read"):
        load_image(12345)


def test_truncated_file_is_reported_not_half_decoded(tmp_path):
    data = io.BytesIO()
    PIL.Image.fromarray(_gradient(200, 160)).save(data, format="PNG")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    with pytest.raises(TryOnError, match="truncated or corrupt"):
        load_image(truncated)


def test_grayscale_and_16_bit_become_gray_rgb(tmp_path):
    gray = _gradient()[..., 0]
    photo = load_image(_save(tmp_path, PIL.Image.fromarray(gray), "g.png"))
    assert photo.array.shape == (*gray.shape, 3)
    np.testing.assert_array_equal(photo.array[..., 1], gray)
    deep = (gray.astype(np.uint16) * 257).astype(np.uint16)  # 16-bit grey spanning the full range
    photo16 = load_image(_save(tmp_path, PIL.Image.fromarray(deep), "g16.png"))
    np.testing.assert_array_equal(photo16.array[..., 0], gray)  # scaled back, not clipped to white
    np.testing.assert_array_equal(load_image(deep).array[..., 2], gray)


def test_rgba_transparent_background_turns_white_and_keeps_alpha(tmp_path):
    rgba = np.zeros((96, 80, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[20:70, 20:60, 3] = 255  # opaque red box, transparent elsewhere
    photo = load_image(_save(tmp_path, PIL.Image.fromarray(rgba), "t.png"))
    assert tuple(photo.array[0, 0]) == (255, 255, 255)
    assert tuple(photo.array[40, 40]) == (200, 0, 0)
    assert photo.alpha is not None and photo.alpha[40, 40] == 1.0 and photo.alpha[0, 0] == 0.0


def test_cmyk_and_palette_images_convert(tmp_path):
    rgb = _gradient()
    cmyk = load_image(_save(tmp_path, PIL.Image.fromarray(rgb).convert("CMYK"), "c.jpg", quality=98))
    assert cmyk.array.shape == rgb.shape
    assert np.abs(cmyk.array.astype(int) - rgb).mean() < 12
    palette = PIL.Image.fromarray(rgb).convert("P", palette=PIL.Image.Palette.ADAPTIVE, colors=64)
    assert load_image(_save(tmp_path, palette, "p.png")).array.shape == rgb.shape


def test_animated_gif_uses_first_frame_and_says_so(tmp_path):
    frames = [PIL.Image.new("RGB", (80, 96), colour) for colour in [(255, 0, 0), (0, 0, 255)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    photo = load_image(path)
    assert photo.array[10, 10, 0] > 200 and photo.array[10, 10, 2] < 50
    assert any("first frame" in note for note in photo.warnings)


def test_exif_orientation_is_honoured(tmp_path):
    rgb = np.zeros((80, 120, 3), np.uint8)
    rgb[:, :60] = 255  # left half white: a landscape picture stored sideways
    image = PIL.Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(tmp_path, image, "rot.jpg", exif=exif, quality=95)
    photo = load_image(path)
    assert photo.rgb.size == (80, 120)  # displayed upright: portrait
    assert photo.array[5, 40].mean() > 200 and photo.array[-5, 40].mean() < 50  # white half now on top


def test_tiny_images_are_refused(tmp_path):
    with pytest.raises(TryOnError, match=f"at least {MIN_SIDE}"):
        load_image(_gradient(40, 200))


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    side = int((MAX_PIXELS * 1.1) ** 0.5)
    path = _save(tmp_path, PIL.Image.new("L", (side, side)), "bomb.png")  # a few KB on disk
    assert path.stat().st_size < 200_000
    with pytest.raises(TryOnError, match="megapixels"):
        load_image(path)


def test_large_photos_are_downscaled_with_a_note(tmp_path):
    big = PIL.Image.fromarray(_gradient(3000, 2400))
    photo = load_image(_save(tmp_path, big, "big.jpg", quality=90))
    assert max(photo.rgb.size) == MAX_SIDE
    assert photo.rgb.size[1] > photo.rgb.size[0]  # aspect kept
    assert any("downscaled" in note for note in photo.warnings)


def test_a_phone_sized_jpeg_decodes_at_half_scale_and_keeps_its_aspect(tmp_path):
    from sievenet.preprocess.image_io import DRAFT_SLACK

    big = PIL.Image.fromarray(_gradient(4000, 3000))
    photo = load_image(_save(tmp_path, big, "phone.jpg", quality=90))
    # The 1/2-scale decode is >= DRAFT_SLACK * MAX_SIDE: no resampling after it.
    assert photo.rgb.size == (1500, 2000)
    assert DRAFT_SLACK * MAX_SIDE <= 2000 <= MAX_SIDE
    assert any("downscaled to 1500x2000" in note for note in photo.warnings)


def test_float_and_bool_arrays():
    rgb = _gradient() / 255.0
    np.testing.assert_array_equal(load_image(rgb).array, _gradient())
    mask = np.zeros((96, 80), bool)
    mask[10:20] = True
    assert load_image(mask).array[15, 0, 0] == 255
    with pytest.raises(TryOnError, match="shape"):
        load_image(np.zeros((96, 80, 2)))
    with pytest.raises(TryOnError, match="NaN"):
        load_image(np.full((96, 80), np.nan))
