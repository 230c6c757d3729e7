"""Admission control: what one inference request may cost the server.

Every front-end (the gRPC servicer, an HTTP one) builds an ``InferInputs``
(``sdk.serving.protocol``) and hands it to ``DynamicBatcher.infer``, which admits it
here before decoding anything:

- at most ``max_images`` images per request (INVALID_ARGUMENT beyond);
- each image at most ``max_pixels`` pixels, read from the encoded header (or the
  UINT8 shape) before decoding (INVALID_ARGUMENT beyond);
- the decoded pixels of all admitted requests together at most ``max_inflight_mb``
  (``InflightBudget``): a request waits (FIFO) up to ``admission_wait_s`` for room,
  then fails with RESOURCE_EXHAUSTED; one that could never fit fails at once.

A request's cost (``request_cost``) is what its pixels occupy at the peak: its
largest decoded image (images are decoded one at a time) plus every image's network
input (the padded HWC canvas and its row of the NCHW batch).
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import Protocol, Sequence

import grpc

from sdk.errors import ConfigError, InputError
from sdk.images import pil_bomb_error
from sdk.limits import DEFAULT_MAX_PIXELS, check_image_pixels, check_max_pixels
from sdk.preprocess import Preprocess, input_hw
from sdk.serving.protocol import INPUT_NAME, RequestError, invalid

_MB = 1 << 20


@dataclass(frozen=True)
class RequestLimits:
    """Per-request and in-flight bounds of a server (``sdk serve`` flags of the same names).

    ``max_images``: images in one request (64). ``max_pixels``: pixels of one image
    (64 MP). ``max_inflight_mb``: decoded pixels held by all admitted requests, MiB
    (1024). ``admission_wait_s``: how long a request may wait for that room (5 s).
    """

    max_images: int = 64
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_inflight_mb: int = 1024
    admission_wait_s: float = 5.0

    def __post_init__(self) -> None:
        check_max_pixels(self.max_pixels)
        if self.max_images < 1:
            raise ConfigError(f"--max-images must be >= 1, got {self.max_images}")
        if self.admission_wait_s < 0:
            raise ConfigError(f"--admission-wait-s must be >= 0, got {self.admission_wait_s}")
        if self.max_inflight_mb * _MB < self.max_pixels * 3:
            raise ConfigError(
                f"--max-inflight-mb {self.max_inflight_mb} cannot hold one image of --max-pixels {self.max_pixels} "
                f"({self.max_pixels * 3 / _MB:.0f} MiB decoded): raise it or lower --max-pixels"
            )

    @property
    def max_inflight_bytes(self) -> int:
        return self.max_inflight_mb * _MB


class SizedInputs(Protocol):
    """What admission needs of a request: ``count`` images and their (height, width)."""

    count: int

    def image_sizes(self) -> Sequence[tuple[int, int] | None]: ...


def request_cost(inputs: SizedInputs, preprocess: Preprocess, limits: RequestLimits) -> int:
    """Bytes the request's pixels take at the peak; RequestError(INVALID_ARGUMENT) when
    it has too many images or an image over ``max_pixels`` (read from headers only)."""
    if inputs.count > limits.max_images:
        raise invalid(
            f"request carries {inputs.count} images; this server takes at most {limits.max_images} per request "
            "(--max-images): split it into several requests"
        )
    itemsize = 1 if preprocess.normalize_in_graph else 4
    largest, networks = 0, 0
    for i, size in enumerate(inputs.image_sizes()):
        source = f"image {i} of {inputs.count}"
        try:
            if size is None:  # PIL refused the header as a bomb: over any limit PIL can read
                raise pil_bomb_error(source, limits.max_pixels)
            h, w = size
            check_image_pixels(h, w, limits.max_pixels, source=source)
        except InputError as exc:
            raise invalid(f"input '{INPUT_NAME}': {exc}") from None
        largest = max(largest, h * w * 3)
        in_h, in_w = input_hw(preprocess, h, w)
        networks += in_h * in_w * 3 * (1 + itemsize)
    return largest + networks


class InflightBudget:
    """Bytes of pixels held by admitted requests, at most ``capacity``; waiters are served in order.

    Used from one event loop (not thread-safe). ``acquire`` then, always, ``release``.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.used = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future]] = collections.deque()

    async def acquire(self, nbytes: int, *, timeout: float) -> None:
        """Reserve ``nbytes``, waiting up to ``timeout`` s; RESOURCE_EXHAUSTED when it cannot."""
        if nbytes > self.capacity:
            raise RequestError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request needs {nbytes / _MB:.0f} MiB of decoded pixels, more than the server's in-flight limit "
                f"of {self.capacity / _MB:.0f} MiB (--max-inflight-mb): send fewer or smaller images",
            )
        if not self._waiters and self.used + nbytes <= self.capacity:
            self.used += nbytes
            return
        future = asyncio.get_running_loop().create_future()
        entry = (nbytes, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout=max(timeout, 0.0))
        except BaseException as exc:
            if future.done() and not future.cancelled():  # granted as we gave up: hand it back
                self.release(nbytes)
            else:
                future.cancel()
                self._waiters.remove(entry)
                self._wake()  # a smaller request behind this one may fit now
            if isinstance(exc, asyncio.TimeoutError):
                raise RequestError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"server busy: {self.used / _MB:.0f} of {self.capacity / _MB:.0f} MiB of decoded pixels in "
                    "flight (--max-inflight-mb) and no room came free in time; retry later",
                ) from None
            raise

    def release(self, nbytes: int) -> None:
        self.used -= nbytes
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.used + self._waiters[0][0] <= self.capacity:
            nbytes, future = self._waiters.popleft()
            if not future.done():
                self.used += nbytes
                future.set_result(None)
