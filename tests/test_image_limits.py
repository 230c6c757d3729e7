"""Hostile images: sizes checked from the header before decoding, every decoder failure an
``InputError`` naming the image, non-finite float pixels refused (issue 15, items 1, 2, 6)."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from sdk.errors import ConfigError, InputError
from sdk.images import decode_bytes, image_size, load_image
from sdk.limits import DEFAULT_MAX_PIXELS, check_max_pixels


def png_claiming(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG whose header says ``width`` x ``height`` RGB, with ``idat`` (default: a few zero bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat or zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def tga_claiming(width: int, height: int) -> bytes:
    """A truecolor TGA header (a format PIL reads and OpenCV does not) with no pixel data."""
    return struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, width, height, 24, 0x20)


@pytest.mark.parametrize("data", [png_claiming(60000, 60000), png_claiming(9000, 9000), tga_claiming(20000, 20000),
                                  tga_claiming(9000, 9000)])
def test_oversized_headers_are_refused_before_decoding(data, monkeypatch):
    def never(*_args, **_kwargs):
        raise AssertionError("decoded an image over the pixel limit")

    monkeypatch.setattr(cv2, "imdecode", never)
    with pytest.raises(InputError, match=r"<bytes>: image .*over the limit of 64,000,000 .*--max-pixels"):
        decode_bytes(data)


def test_decoder_failures_are_input_errors():
    # Header fine, pixel data missing: OpenCV and PIL both fail, as InputError naming the source.
    with pytest.raises(InputError, match=r"^cam\.png: not a readable image"):
        decode_bytes(png_claiming(100, 100), source="cam.png")
    with pytest.raises(InputError, match="not a readable image"):
        decode_bytes(tga_claiming(100, 100))  # PIL-only format, truncated
    with pytest.raises(InputError, match="unknown format"):
        decode_bytes(b"GIF87a" + b"\xff" * 20)
    with pytest.raises(InputError, match="empty image data"):
        decode_bytes(b"")


def test_limit_is_configurable_and_checked():
    small = cv2.imencode(".png", np.zeros((40, 50, 3), np.uint8))[1].tobytes()
    assert image_size(small) == (40, 50)
    assert decode_bytes(small, max_pixels=2000).shape == (40, 50, 3)
    with pytest.raises(InputError, match=r"50x40 = 2,000 pixels, over the limit of 1,999"):
        decode_bytes(small, max_pixels=1999)
    with pytest.raises(InputError, match="over the limit"):  # arrays and PIL images obey it too
        load_image(np.zeros((40, 50, 3), np.uint8), max_pixels=1999)
    assert check_max_pixels(None) == DEFAULT_MAX_PIXELS
    for bad in (0, -1, 2**31, 1.5, True):
        with pytest.raises(ConfigError, match="max_pixels must be an integer"):
            check_max_pixels(bad)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_float_images_are_refused(value):
    image = np.full((8, 8, 3), 0.5, np.float32)
    image[2, 3, 1] = value
    with pytest.raises(InputError, match="1 NaN or infinite value"):
        load_image(image)
    assert load_image(np.full((8, 8, 3), 0.5, np.float32)).max() == 128  # finite floats still work
