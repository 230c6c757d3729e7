"""``sdk.images``: every accepted input form becomes one (H, W, 3) uint8 RGB array."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from sdk.errors import InputError
from sdk.images import expand_image_paths, load_image

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)


def _png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


def _check(out: np.ndarray, expected: np.ndarray) -> None:
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, expected)


def test_path_bytes_and_pil_agree(tmp_path):
    path = tmp_path / "img.png"
    path.write_bytes(_png_bytes(RGB))
    _check(load_image(path), RGB)
    _check(load_image(str(path)), RGB)
    _check(load_image(path.read_bytes()), RGB)
    _check(load_image(bytearray(path.read_bytes())), RGB)
    _check(load_image(memoryview(path.read_bytes())), RGB)
    _check(load_image(Image.open(path)), RGB)


def test_numpy_channel_order():
    bgr = RGB[:, :, ::-1]
    _check(load_image(bgr), RGB)  # BGR by default, the OpenCV convention
    _check(load_image(RGB, channel_order="rgb"), RGB)
    _check(load_image(np.asfortranarray(bgr)), RGB)  # any memory layout
    out = load_image(bgr.copy())
    assert not np.shares_memory(out, bgr)
    with pytest.raises(InputError, match="channel_order"):
        load_image(RGB, channel_order="bgra")


def test_grayscale_inputs():
    gray = RGB[:, :, 0]
    expected = np.repeat(gray[:, :, None], 3, axis=2)
    _check(load_image(gray), expected)
    _check(load_image(gray[:, :, None]), expected)
    _check(load_image(_png_bytes(gray)), expected)
    _check(load_image(Image.fromarray(gray)), expected)


def test_rgba_inputs_drop_alpha():
    rgba = np.concatenate([RGB, np.full((24, 32, 1), 7, np.uint8)], axis=2)
    _check(load_image(rgba, channel_order="rgb"), RGB)
    _check(load_image(rgba[:, :, [2, 1, 0, 3]]), RGB)  # BGRA
    _check(load_image(_png_bytes(rgba, "RGBA")), RGB)
    _check(load_image(Image.fromarray(rgba, "RGBA")), RGB)


def test_sixteen_bit_png_keeps_the_high_byte(tmp_path):
    gray16 = RNG.integers(0, 65536, (24, 32), dtype=np.uint16)
    color16 = RNG.integers(0, 65536, (24, 32, 3), dtype=np.uint16)  # RGB
    path = tmp_path / "gray16.png"
    assert cv2.imwrite(str(path), gray16)
    expected = np.repeat((gray16 >> 8).astype(np.uint8)[:, :, None], 3, axis=2)
    _check(load_image(path), expected)
    _check(load_image(Image.open(path)), expected)  # PIL decodes it as mode I;16 / I
    _check(load_image(gray16), expected)
    ok, encoded = cv2.imencode(".png", color16[:, :, ::-1])  # OpenCV writes BGR
    _check(load_image(encoded.tobytes()), (color16 >> 8).astype(np.uint8))
    _check(load_image(color16, channel_order="rgb"), (color16 >> 8).astype(np.uint8))


def test_float_bool_and_integer_arrays():
    unit = RGB.astype(np.float32) / 255.0
    _check(load_image(unit, channel_order="rgb"), RGB)
    _check(load_image(RGB.astype(np.float64), channel_order="rgb"), RGB)
    _check(load_image(np.ones((2, 2), bool)), np.full((2, 2, 3), 255, np.uint8))
    _check(load_image(np.array([[-5, 300]], np.int32)), np.array([[[0] * 3, [255] * 3]], np.uint8))


@pytest.mark.parametrize("orientation, rotate", [(3, 2), (6, -1), (8, 1)])  # np.rot90 turns k times counter-clockwise
def test_exif_orientation_is_applied(tmp_path, orientation, rotate):
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:20, :30] = (255, 0, 0)  # red top-left quadrant, easy to track through rotations
    stored[20:, 30:] = (0, 0, 255)
    pil = Image.fromarray(stored)
    exif = pil.getexif()
    exif[0x0112] = orientation
    path = tmp_path / "rotated.jpg"
    pil.save(path, format="JPEG", exif=exif, quality=100)
    expected = np.rot90(stored, rotate)
    for out in (load_image(path), load_image(path.read_bytes()), load_image(Image.open(path))):
        assert out.shape == expected.shape
        assert np.abs(out.astype(int) - expected).mean() < 4  # JPEG noise only


def test_unreadable_inputs(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff this is no jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"bad\.jpg: not a readable image"):
        load_image(tmp_path / "bad.jpg")
    with pytest.raises(InputError, match="empty image data"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(InputError, match="image file not found"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(InputError, match="is a directory"):
        load_image(tmp_path)
    with pytest.raises(InputError, match="cannot read an image from a int"):
        load_image(3)
    with pytest.raises(InputError, match="CHW"):
        load_image(np.zeros((3, 8, 8, 2), np.uint8))
    with pytest.raises(InputError, match="expected"):
        load_image(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(InputError, match="empty"):
        load_image(np.zeros((0, 8, 3), np.uint8))
    with pytest.raises(InputError, match="unsupported image dtype"):
        load_image(np.zeros((4, 4), np.complex64))


def test_expand_image_paths(tmp_path):
    (tmp_path / "b.jpg").write_bytes(b"x")
    (tmp_path / "a.PNG").write_bytes(b"x")
    (tmp_path / "notes.txt").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.png").write_bytes(b"x")
    assert expand_image_paths([str(tmp_path)]) == [tmp_path / "a.PNG", tmp_path / "b.jpg"]
    assert expand_image_paths([str(tmp_path / "b.jpg"), str(tmp_path / "**" / "*.png")]) == [
        tmp_path / "b.jpg",
        tmp_path / "sub" / "c.png",
    ]
    assert tmp_path / "sub" not in expand_image_paths([str(tmp_path / "*")])  # globs give files only
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        expand_image_paths([str(tmp_path / "empty")])
    with pytest.raises(InputError, match="no files match"):
        expand_image_paths([str(tmp_path / "*.gif")])
    with pytest.raises(InputError, match="input not found"):
        expand_image_paths([str(tmp_path / "missing.jpg")])


def test_undecodable_bytes_error_names_the_source_not_a_buffer():
    from sdk.errors import InputError
    from sdk.images import decode_bytes

    with pytest.raises(InputError) as info:
        decode_bytes(b"definitely not an image", source="photo.jpg")
    assert "photo.jpg" in str(info.value) and "BytesIO" not in str(info.value)


def test_one_folder_listing_reads_tif_and_recurses_on_request(tmp_path):
    import cv2

    from sdk.engine.verify import load_image_folder
    from sdk.images import list_image_folder

    (tmp_path / "sub").mkdir()
    image = np.full((8, 8, 3), 128, np.uint8)
    for name in ("a.TIF", "b.jpg", "sub/c.png"):
        cv2.imwrite(str(tmp_path / name), image)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_image_folder(tmp_path)] == ["a.TIF", "b.jpg"]
    assert [p.name for p in list_image_folder(tmp_path, recursive=True)] == ["a.TIF", "b.jpg", "c.png"]
    assert len(load_image_folder(tmp_path)) == 2  # `sdk verify --images` reads .tif as `sdk infer` does
