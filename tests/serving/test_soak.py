"""Soak: 16 concurrent clients for >= 60 s with a share of malformed and hostile requests
(undecodable image, decoder bomb over the pixel limit, more images than allowed, wrong
input name, unknown model), under the server's default limits.

Every good request must come back with exactly its own detections (checked against
``Detector`` results computed up front), every bad one with its own error code,
none lost; the server must be healthy afterwards and its statistics must agree.
Duration: ``SDK_SOAK_SECONDS`` (default 60). Run with ``pytest -m slow tests/serving``.
"""

from __future__ import annotations

import os
import random
import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from serving_support import MODEL_NAME, draw_scene, png_bytes, serve
from tritonclient.utils import InferenceServerException

from sdk import Detector

CLIENTS = 16
BAD_SHARE = 0.15


def scene_pool(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    pool = []
    for i in range(count):
        h, w = (int(v) for v in rng.integers(40, 400, size=2))
        x1, y1 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        x2, y2 = x1 + int(rng.integers(4, w - x1)), y1 + int(rng.integers(4, h - y1))
        pool.append(draw_scene(h, w, (x1, y1, x2, y2), rgb=[(255, 0, 0), (0, 255, 0), (0, 0, 255)][i % 3]))
    return pool


def bytes_input(blobs: list[bytes], name: str = "images") -> grpcclient.InferInput:
    data = np.array(blobs, dtype=np.object_).reshape(-1, 1)
    infer_input = grpcclient.InferInput(name, list(data.shape), "BYTES")
    infer_input.set_data_from_numpy(data)
    return infer_input


def png_claiming(width: int, height: int) -> bytes:
    """A decoder bomb: a PNG header claiming ``width`` x ``height``, almost no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


BOMB = png_claiming(60000, 60000)
BAD_REQUESTS = {  # kind -> (make (model, inputs), expected status)
    "garbage": (lambda blob: (MODEL_NAME, [bytes_input([blob, b"\x89PNG garbage"])]), "INVALID_ARGUMENT"),
    "bomb": (lambda blob: (MODEL_NAME, [bytes_input([blob, BOMB])]), "INVALID_ARGUMENT"),  # over --max-pixels
    "too_many": (lambda blob: (MODEL_NAME, [bytes_input([blob] * 65)]), "INVALID_ARGUMENT"),  # over --max-images
    "input_name": (lambda blob: (MODEL_NAME, [bytes_input([blob], name="image")]), "INVALID_ARGUMENT"),
    "model": (lambda blob: ("no_such_model", [bytes_input([blob])]), "NOT_FOUND"),
}


@pytest.mark.slow
def test_soak(model_dir):
    duration = float(os.environ.get("SDK_SOAK_SECONDS", "60"))
    pool = scene_pool(48)
    blobs = [png_bytes(im) for im in pool]
    expected = Detector(model_dir)(pool, channel_order="rgb")
    assert all(len(d) == 1 for d in expected)
    counts = {"good": 0, "bad": 0}
    failures: list[str] = []
    lock = threading.Lock()

    def client_loop(seed: int, url: str, stop_at: float) -> None:
        rnd = random.Random(seed)
        good = bad = 0
        with grpcclient.InferenceServerClient(url) as client:
            while time.monotonic() < stop_at:
                request_id = f"{seed}-{good + bad}"
                if rnd.random() < BAD_SHARE:
                    kind = rnd.choice(sorted(BAD_REQUESTS))
                    make, status = BAD_REQUESTS[kind]
                    model, inputs = make(blobs[rnd.randrange(len(blobs))])
                    try:
                        client.infer(model, inputs, request_id=request_id, client_timeout=30)
                        failures.append(f"{request_id}: bad request '{kind}' succeeded")
                    except InferenceServerException as exc:
                        if exc.status() != f"StatusCode.{status}":
                            failures.append(f"{request_id}: '{kind}' got {exc.status()}: {exc.message()}")
                    bad += 1
                    continue
                picks = [rnd.randrange(len(pool)) for _ in range(rnd.randint(1, 4))]
                try:
                    result = client.infer(MODEL_NAME, [bytes_input([blobs[i] for i in picks])], request_id=request_id, client_timeout=30)
                except InferenceServerException as exc:
                    failures.append(f"{request_id}: good request failed: {exc.status()} {exc.message()}")
                    good += 1
                    continue
                good += 1
                if result.get_response().id != request_id:
                    failures.append(f"{request_id}: answer carries id {result.get_response().id}")
                boxes, labels = result.as_numpy("boxes"), result.as_numpy("labels")
                for row, i in enumerate(picks):
                    if not (np.allclose(boxes[row, 0], expected[i].boxes[0], atol=1e-4) and labels[row, 0] == expected[i].labels[0]):
                        failures.append(f"{request_id}: image {row} (pool {i}) got another image's detections")
        with lock:
            counts["good"] += good
            counts["bad"] += bad

    with serve(model_dir, max_queue_delay_us=1000, instances=2, max_queue_size=64) as thread:
        stop_at = time.monotonic() + duration
        threads = [threading.Thread(target=client_loop, args=(k, thread.url, stop_at)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=duration + 120)
        assert not any(t.is_alive() for t in threads), "a client hung: a response was lost"
        with grpcclient.InferenceServerClient(thread.url) as client:
            assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL_NAME)
            stats = client.get_inference_statistics(MODEL_NAME).model_stats[0]
            check = client.infer(MODEL_NAME, [bytes_input([blobs[0]])])
            np.testing.assert_allclose(check.as_numpy("boxes")[0, 0], expected[0].boxes[0], atol=1e-4)
    print(f"\nsoak: {duration:.0f} s, {CLIENTS} clients: {counts['good']} good requests "
          f"({counts['good'] / duration:.1f}/s), {counts['bad']} malformed, {len(failures)} failures; "
          f"server successes {stats.inference_stats.success.count}, live and ready after")
    assert not failures, "\n".join(failures[:20])
    assert counts["good"] > CLIENTS and counts["bad"] > 0
    assert stats.inference_stats.success.count == counts["good"]  # nothing lost or double counted
