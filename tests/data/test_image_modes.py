"""Every image mode gets the right 8-bit pixels, in prepare and in predict alike.

Each mode is compared with a float reference computed from what its values mean (16-bit gray
0..65535, float 0.0..1.0, palette indices, CMYK inks ...). Before, 16-bit gray was clipped at
255 by Pillow's ``convert("RGB")``: a 16-bit photo came out almost white. The 8-bit modes of
the sample mirror and the fixtures (RGB, L, RGBA, P) must decode byte for byte as before, or
the committed sample-mirror metrics would move: the old conversion is kept below to prove it.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnpipe.data.readers import IMG_EXTENSIONS, decode_image, image_array, to_8bit

RNG = np.random.default_rng(12)
H, W = 7, 9


def _old_decode(data: bytes, size):
    """decode_image as it was (prepare): ``convert("RGB")``, then a bilinear resize."""
    with Image.open(io.BytesIO(data)) as img:
        rgb = img.convert("RGB")
    if size is not None and rgb.size != (size[1], size[0]):
        rgb = rgb.resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1).copy()


def _old_predict_load(path, input_shape):
    """cnnpipe.predict.load_image as it was."""
    channels, height, width = input_shape
    with Image.open(path) as img:
        converted = img.convert("L" if channels == 1 else "RGB")
    if converted.size != (width, height):
        converted = converted.resize((width, height), Image.BILINEAR)
    array = np.asarray(converted, dtype=np.uint8)
    return np.array(array[None] if array.ndim == 2 else array.transpose(2, 0, 1), order="C")


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def _png16(values: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG (color type 0 gray, 2 RGB, 4 gray+alpha, 6 RGBA) of ``values`` (H×W×C uint16)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = values.shape[:2]
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in values)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _gray3(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[None], 3, axis=0)


def _wide_reference(values: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(values.astype(np.float64), 0, 65535) * 255.0 / 65535.0).astype(np.uint8)


# -------------------------------------------------------------------- float references

WIDE = RNG.integers(0, 65536, (H, W)).astype(np.uint16)
WIDE[0, :6] = [0, 128, 129, 32767, 65407, 65535]  # rounding edges: 0, 0, 1, 127, 254, 255


def test_16_bit_gray_png_is_scaled_not_clipped():
    data = _encode(Image.fromarray(WIDE), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    expected = _wide_reference(WIDE)
    np.testing.assert_array_equal(decode_image(data, None), _gray3(expected))
    np.testing.assert_array_equal(decode_image(data, None, channels=1), expected[None])
    assert (_old_decode(data, None) == 255).mean() > 0.9  # what it was: white above 255 of 65535


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L"])
def test_every_16_bit_gray_layout_is_scaled(mode):
    dtype = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2"}[mode]
    img = Image.frombytes(mode, (W, H), WIDE.astype(dtype).tobytes())
    np.testing.assert_array_equal(image_array(img), _gray3(_wide_reference(WIDE)))


def test_32_bit_integer_gray_is_read_as_16_bit_and_clipped_outside_it():
    values = WIDE.astype(np.int32)
    values[1, :3] = [-5, 70000, 2**31 - 1]
    data = _encode(Image.fromarray(values, "I"), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I"
    np.testing.assert_array_equal(decode_image(data, None), _gray3(_wide_reference(values)))


def test_16_bit_pgm_is_scaled_from_its_maxval():
    values = RNG.integers(0, 4096, (H, W)).astype(">u2")
    data = f"P5\n{W} {H}\n4095\n".encode() + values.tobytes()
    expected = np.rint(values.astype(np.float64) * 255.0 / 4095.0).astype(np.uint8)
    np.testing.assert_array_equal(decode_image(data, None, channels=1), expected[None])


def test_float_images_are_read_as_zero_to_one():
    values = RNG.uniform(-0.25, 1.25, (H, W)).astype(np.float32)
    values[0, :4] = [0.0, 1.0, 0.5, np.nan]
    data = _encode(Image.fromarray(values, "F"), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "F"
    finite = np.nan_to_num(values.astype(np.float64), nan=0.0)
    expected = np.rint(np.clip(finite, 0.0, 1.0) * 255.0).astype(np.uint8)
    np.testing.assert_array_equal(decode_image(data, None), _gray3(expected))


@pytest.mark.parametrize(("color_type", "channels"), [(2, 3), (6, 4), (4, 2)])
def test_16_bit_rgb_rgba_and_gray_alpha_pngs_are_scaled_within_one_level(color_type, channels):
    values = RNG.integers(0, 65536, (H, W, channels)).astype(np.uint16)
    values[0, 0] = 65535
    values[0, 1] = 0
    ours = decode_image(_png16(values, color_type), None).astype(int)
    colour = values[..., :3] if channels >= 3 else np.repeat(values[..., :1], 3, axis=2)
    reference = np.rint(colour.astype(np.float64) * 255.0 / 65535.0).transpose(2, 0, 1)
    # Pillow itself reads these as 8 bits per channel (the high byte): scaled, at most one level off
    assert np.abs(ours - reference).max() <= 1
    assert ours[:, 0, 0].tolist() == [255, 255, 255] and ours[:, 0, 1].tolist() == [0, 0, 0]


def _rgba() -> np.ndarray:
    return RNG.integers(0, 256, (H, W, 4), dtype=np.uint8)


def test_8_bit_modes_against_their_definitions():
    rgba = _rgba()
    rgb = rgba[..., :3]
    chw = rgb.transpose(2, 0, 1)
    cases = {
        "RGB": (Image.fromarray(rgb), chw),
        "RGBA": (Image.fromarray(rgba, "RGBA"), chw),  # alpha dropped, as torchvision's loader does
        "L": (Image.fromarray(rgb[..., 0]), _gray3(rgb[..., 0])),
        "LA": (Image.fromarray(rgba[..., :2].copy(), "LA"), _gray3(rgba[..., 0])),
        "1": (
            Image.fromarray(rgb[..., 0] > 127),
            _gray3(np.where(rgb[..., 0] > 127, 255, 0).astype(np.uint8)),
        ),
    }
    palette = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
    indices = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    p_image = Image.fromarray(indices, "P")
    p_image.putpalette(palette.tobytes())
    cases["P"] = (p_image, palette[indices].transpose(2, 0, 1))
    for mode, (img, expected) in cases.items():
        assert img.mode == mode
        np.testing.assert_array_equal(decode_image(_encode(img, "PNG"), None), expected, err_msg=mode)

    cmyk = _rgba()
    ours = image_array(Image.fromarray(cmyk, "CMYK")).astype(int)
    c, m, y, k = (cmyk[..., i].astype(np.float64) / 255.0 for i in range(4))
    reference = np.stack([255 * (1 - c) * (1 - k), 255 * (1 - m) * (1 - k), 255 * (1 - y) * (1 - k)])
    assert np.abs(ours - reference).max() <= 1


# ------------------------------------------------------------- the same pixels as before


ENCODED_8_BIT = [(m, "PNG") for m in ("RGB", "L", "RGBA", "P", "LA", "1")] + [
    (m, "JPEG") for m in ("RGB", "L", "CMYK")
]


@pytest.mark.filterwarnings("ignore:Palette images with Transparency")
@pytest.mark.parametrize(("mode", "fmt"), ENCODED_8_BIT)
@pytest.mark.parametrize("size", [None, (5, 11), (7, 9)])
def test_8_bit_modes_decode_byte_for_byte_as_before(mode, fmt, size, tmp_path):
    img = Image.fromarray(_rgba(), "RGBA")
    img = img if mode == "RGBA" else img.convert(mode)
    data = _encode(img, fmt)
    np.testing.assert_array_equal(decode_image(data, size), _old_decode(data, size))
    (tmp_path / "x").write_bytes(data)
    for channels in (1, 3):
        shape = (channels, *(size or (H, W)))
        np.testing.assert_array_equal(
            decode_image(tmp_path / "x", shape[1:], channels=channels),
            _old_predict_load(tmp_path / "x", shape),
        )


@pytest.mark.parametrize(
    ("dataset", "size"), [("horse_or_human", (150, 150)), ("rps", (150, 150)), ("sea", (100, 100))]
)
def test_sample_mirror_images_decode_byte_for_byte_as_before(mirror, dataset, size):
    modes = set()
    for archive in sorted((mirror / dataset).glob("*.zip")):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if not name.lower().endswith(IMG_EXTENSIONS):
                    continue
                data = zf.read(name)
                modes.add(Image.open(io.BytesIO(data)).mode)
                np.testing.assert_array_equal(decode_image(data, size), _old_decode(data, size), err_msg=name)
    assert modes and modes <= {"RGB", "RGBA", "L", "P"}


def test_8_bit_images_pass_through_to_8bit_unchanged():
    img = Image.fromarray(_rgba(), "RGBA")
    assert to_8bit(img) is img


# ------------------------------------------------------------------ prepare = predict


def test_predict_reads_new_images_with_the_prepare_step_s_function(tmp_path):
    from cnnpipe.predict import load_image

    path = tmp_path / "photo16.png"
    Image.fromarray(WIDE).save(path)
    np.testing.assert_array_equal(load_image(path, [3, H, W]), decode_image(path.read_bytes(), (H, W)))
    np.testing.assert_array_equal(load_image(path, [1, H, W]), _wide_reference(WIDE)[None])
    np.testing.assert_array_equal(load_image(Path(path), [3, 4, 5]), decode_image(path.read_bytes(), (4, 5)))
