"""Limits on what one input may cost, with their defaults (README "Limits and security").

A small encoded file can claim a huge picture (a 250 KB all-zero PNG of 16000x16000
decodes to 768 MB), so every image's size is read from its header and checked against
``max_pixels`` *before* it is decoded. The same limit applies to ``Detector``,
``sdk infer`` (``--max-pixels``) and ``sdk serve`` (``--max-pixels``); the server adds
per-request and in-flight bounds (``sdk.serving.admission``).
"""

from __future__ import annotations

from sdk.errors import ConfigError, InputError

#: most pixels (H * W) one image may have: 64 MP holds an 8K frame (33 MP) and 50 MP
#: camera photos; decoded it is 192 MB of RGB.
DEFAULT_MAX_PIXELS = 64_000_000
#: OpenCV refuses images above 2^30 pixels whatever we allow.
HARD_MAX_PIXELS = 1 << 30


def check_max_pixels(max_pixels: int | None) -> int:
    """``max_pixels`` validated (``None`` -> the default); ``ConfigError`` when out of range."""
    if max_pixels is None:
        return DEFAULT_MAX_PIXELS
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or not 1 <= max_pixels <= HARD_MAX_PIXELS:
        raise ConfigError(f"max_pixels must be an integer in 1..{HARD_MAX_PIXELS} (2^30, OpenCV's limit), "
                          f"got {max_pixels!r}")
    return max_pixels


def check_image_pixels(height: int, width: int, max_pixels: int, *, source: str) -> None:
    """``InputError`` naming ``source`` and the limit when an ``height`` x ``width`` image is too large."""
    if height < 1 or width < 1:
        raise InputError(f"{source}: image has no pixels ({width}x{height})")
    if height * width > max_pixels:
        raise InputError(
            f"{source}: image is {width}x{height} = {height * width:,} pixels, over the limit of "
            f"{max_pixels:,} (max_pixels); downscale it or raise the limit (--max-pixels)"
        )
