"""Fuzzing image decoding (hypothesis): any bytes either decode to (H, W, 3) uint8 within
the pixel limit or raise ``InputError``; nothing else escapes, nothing over the limit is
decoded. Bounded for CI (``SDK_FUZZ_EXAMPLES``, default 150 per target, a few seconds);
raise it for a longer run."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdk.errors import InputError
from sdk.images import decode_bytes, load_image

# corrupt TIFF/EXIF data makes PIL warn; the outcome is what is checked here
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::PIL.Image.DecompressionBombWarning")

EXAMPLES = int(os.environ.get("SDK_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="SDK_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow], database=None)
MAX_PIXELS = 1 << 16


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (24, 32, 3), np.uint8)
    gray16 = rng.integers(0, 65535, (10, 12), np.uint16)
    out = [cv2.imencode(ext, image)[1].tobytes() for ext in (".png", ".jpg", ".bmp", ".tiff", ".webp")]
    out.append(cv2.imencode(".png", gray16)[1].tobytes())
    return out


SEEDS = _seeds()


@st.composite
def mutated_images(draw) -> bytes:
    """A valid encoded image with bytes overwritten, inserted, or cut (headers included)."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["overwrite", "insert", "truncate", "big_int"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at:at + len(chunk)] = chunk
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "truncate":
            del data[max(at, 1):]
        else:  # a header field set to a huge value: width, height, length
            data[at:at + 4] = draw(st.sampled_from([b"\xff\xff\xff\x7f", b"\x00\x00\xea\x60", b"\x7f\xff\x00\x00"]))
        if not data:
            break
    return bytes(data)


def _check(data: bytes) -> None:
    try:
        image = decode_bytes(data, max_pixels=MAX_PIXELS)
    except InputError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] * image.shape[1] <= MAX_PIXELS and image.flags.c_contiguous


@FUZZ
@given(mutated_images())
def test_fuzz_mutated_images(data):
    _check(data)


@FUZZ
@given(st.binary(max_size=512))
def test_fuzz_arbitrary_bytes(data):
    _check(data)


@FUZZ
@given(st.integers(1, 300), st.integers(1, 300), st.sampled_from([1, 3, 4]),
       st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int32, np.bool_]),
       st.sampled_from([None, np.nan, np.inf, 300.0, -5.0]))
def test_fuzz_arrays(h, w, channels, dtype, special):
    array = np.ones((h, w, channels), dtype)
    if special is not None and np.issubdtype(dtype, np.floating):
        array.flat[0] = special
    try:
        image = load_image(array, max_pixels=MAX_PIXELS)
    except InputError:
        assert h * w > MAX_PIXELS or (special is not None and not np.isfinite(special))
        return
    assert image.shape == (h, w, 3) and image.dtype == np.uint8
