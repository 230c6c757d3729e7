"""Dynamic batching semantics, queue bounds, deadlines and cancellation, driven through tritonclient.

A ``GatedBackend`` holds the (single) instance inside ``infer`` until the test opens
its gate, so what queues behind it is known exactly when the gate opens.
"""

from __future__ import annotations

from collections import Counter

import queue
import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from serving_support import MODEL_NAME, GatedBackend, draw_scene, png_bytes, serve
from tritonclient.utils import InferenceServerException

from sdk import Detector
from sdk.errors import ConfigError
from sdk.serving.batcher import BatchingConfig


# -- the batch-size rule ------------------------------------------------------------------
@pytest.mark.parametrize(
    "settings, available, waited, expected",
    [
        ({}, 3, False, 3),  # no delay: take what is there
        ({}, 20, False, 8),  # never more than the maximum
        ({"max_queue_delay_us": 1000}, 3, False, 0),  # wait for a fuller batch...
        ({"max_queue_delay_us": 1000}, 3, True, 3),  # ...until the oldest has waited long enough
        ({"max_queue_delay_us": 1000}, 8, False, 8),  # a full batch goes at once
        ({"max_queue_delay_us": 1000, "preferred_batch_sizes": (2, 4)}, 5, False, 4),  # largest preferred that fits
        ({"max_queue_delay_us": 1000, "preferred_batch_sizes": (2, 4)}, 1, False, 0),
        ({"max_queue_delay_us": 1000, "preferred_batch_sizes": (2, 4)}, 1, True, 1),
    ],
)
def test_batch_size_rule(settings, available, waited, expected):
    config = BatchingConfig(max_batch_size=8, **settings)
    assert config.batch_size_for(available, waited_enough=waited) == expected


@pytest.mark.parametrize(
    "settings",
    [{"max_batch_size": 0}, {"max_batch_size": 4, "preferred_batch_sizes": (8,)}, {"max_batch_size": 4, "instances": 0}],
)
def test_batching_config_rejects_bad_values(settings):
    with pytest.raises(ConfigError):
        BatchingConfig(**settings)


def test_max_batch_size_above_the_model_dir_is_refused(model_dir):
    with pytest.raises(ConfigError, match="exceeds the max batch 8"):
        with serve(model_dir, max_batch_size=16):
            pass


# -- helpers ---------------------------------------------------------------------------------
class Gated:
    """A server whose instances wait at a shared gate (open during warm-up)."""

    def __init__(self, model_dir, **settings) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.backends: list[GatedBackend] = []
        self._serving = serve(model_dir, backend_wrapper=self._wrap, **settings)

    def _wrap(self, backend) -> GatedBackend:
        wrapped = GatedBackend(backend, self.gate)
        self.backends.append(wrapped)
        return wrapped

    def __enter__(self) -> "Gated":
        self.thread = self._serving.__enter__()
        self.client = grpcclient.InferenceServerClient(self.thread.url)
        for backend in self.backends:
            backend.batch_sizes.clear()
            backend.batches.clear()
            backend.entered.clear()
        self.gate.clear()
        return self

    def __exit__(self, *exc) -> None:
        self.gate.set()
        self.client.close()
        self._serving.__exit__(*exc)

    @property
    def batch_sizes(self) -> list[int]:
        return [size for backend in self.backends for size in backend.batch_sizes]

    def queued_images(self) -> float:
        return self.thread.server.metrics.registry.get_sample_value("sdk_serving_queue_images", {"model": MODEL_NAME}) or 0

    def wait_queued(self, images: int) -> None:
        deadline = time.monotonic() + 20
        while self.queued_images() != images:
            assert time.monotonic() < deadline, f"queue holds {self.queued_images()} images, expected {images}"
            time.sleep(0.005)

    def send(self, images: list[np.ndarray], **kwargs) -> queue.Queue:
        """Send one request asynchronously; the queue receives ``(result, error)``."""
        replies: queue.Queue = queue.Queue()
        data = np.array([png_bytes(im) for im in images], dtype=np.object_).reshape(-1, 1)
        infer_input = grpcclient.InferInput("images", list(data.shape), "BYTES")
        infer_input.set_data_from_numpy(data)
        self.client.async_infer(MODEL_NAME, [infer_input], lambda result, error: replies.put((result, error)), **kwargs)
        return replies


def occupy_instance(server: Gated, image: np.ndarray) -> queue.Queue:
    """Send one request and wait until the (gated) instance is inside ``infer`` with it."""
    replies = server.send([image])
    assert server.backends[0].entered.wait(20)
    server.wait_queued(0)
    return replies


def ok(replies: queue.Queue):
    result, error = replies.get(timeout=30)
    assert error is None, error
    return result


def failed(replies: queue.Queue) -> InferenceServerException:
    result, error = replies.get(timeout=30)
    assert error is not None
    return error


# -- batching ----------------------------------------------------------------------------------
def test_requests_from_many_clients_merge_and_each_gets_its_own_answer(model_dir):
    rng = np.random.default_rng(0)
    requests = []
    for i in range(12):
        images = []
        for _ in range(1 + i % 3):
            h, w = (int(v) for v in rng.integers(60, 200, size=2))
            x1, y1 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            colour = [(255, 0, 0), (0, 255, 0), (0, 0, 255)][int(rng.integers(0, 3))]
            images.append(draw_scene(h, w, (x1, y1, x1 + w // 3, y1 + h // 3), rgb=colour))
        requests.append(images)
    detector = Detector(model_dir)
    with Gated(model_dir, max_batch_size=8) as server:
        first = occupy_instance(server, requests[0][0])
        pending = [server.send(images) for images in requests]
        server.wait_queued(sum(len(images) for images in requests))
        server.gate.set()
        ok(first)
        for images, replies in zip(requests, pending):
            result = ok(replies)
            expected = detector(images, channel_order="rgb")
            np.testing.assert_allclose(result.as_numpy("boxes")[:, 0], np.stack([d.boxes[0] for d in expected]), atol=1e-4)
            np.testing.assert_array_equal(result.as_numpy("labels")[:, 0], [d.labels[0] for d in expected])
        # 24 queued images -> three full batches of 8 (requests split across batches, in order)
        assert server.batch_sizes == [1, 8, 8, 8]


def test_preferred_batch_size_and_queue_delay(model_dir, scenes):
    with Gated(model_dir, max_batch_size=8, preferred_batch_sizes=(2,), max_queue_delay_us=300_000) as server:
        first = occupy_instance(server, scenes[0])
        pending = [server.send([scenes[i]]) for i in range(3)]
        server.wait_queued(3)
        server.gate.set()
        for replies in (first, *pending):
            ok(replies)
        # 3 queued: a preferred batch of 2 at once, the last one after the delay
        assert server.batch_sizes == [1, 2, 1]


def test_full_batch_does_not_wait_for_the_delay(model_dir, scenes):
    with Gated(model_dir, max_batch_size=4, max_queue_delay_us=60_000_000) as server:
        server.gate.set()
        pending = [server.send([scenes[i % 3]]) for i in range(4)]
        for replies in pending:  # would time out (30 s) if the batcher waited the 60 s delay
            ok(replies)
        assert sum(server.batch_sizes) == 4 and max(server.batch_sizes) <= 4


def test_instances_infer_in_parallel(model_dir, scenes):
    # batches of one: two requests queued together could otherwise form one batch for one instance
    with Gated(model_dir, max_batch_size=1, instances=2) as server:
        assert len(server.backends) == 2
        first = server.send([scenes[0]])
        second = server.send([scenes[1]])
        deadline = time.monotonic() + 20
        while not all(b.entered.is_set() for b in server.backends):  # both inside infer at once
            assert time.monotonic() < deadline, "the second instance never started"
            time.sleep(0.005)
        server.gate.set()
        assert int(ok(first).as_numpy("labels")[0, 0]) == 0
        assert int(ok(second).as_numpy("labels")[0, 0]) == 1


# -- bounds, deadlines, cancellation --------------------------------------------------------
def test_full_queue_is_resource_exhausted(model_dir, scenes):
    with Gated(model_dir, max_batch_size=1, max_queue_size=1) as server:
        first = occupy_instance(server, scenes[0])
        waiting = server.send([scenes[1]])
        server.wait_queued(1)
        error = failed(server.send([scenes[2]]))
        assert error.status() == "StatusCode.RESOURCE_EXHAUSTED" and "queue is full" in error.message()
        server.gate.set()
        ok(first)
        ok(waiting)
        ok(server.send([scenes[2]]))  # room again


def test_expired_and_cancelled_requests_are_dropped_before_inference(model_dir, scenes):
    with Gated(model_dir, max_batch_size=8) as server:
        first = occupy_instance(server, scenes[0])
        expired = server.send([scenes[1]], client_timeout=0.3)  # gRPC deadline
        server_timeout = server.send([scenes[1], scenes[2]], timeout=200_000)  # Triton's "timeout" parameter, us
        server.wait_queued(3)
        assert failed(expired).status() == "StatusCode.DEADLINE_EXCEEDED"
        time.sleep(0.3)  # past the 200 ms server-side timeout too
        server.gate.set()
        ok(first)
        error = failed(server_timeout)
        assert error.status() == "StatusCode.DEADLINE_EXCEEDED" and "deadline" in error.message()
        assert server.batch_sizes == [1]  # neither reached the backend

        server.gate.clear()
        server.backends[0].entered.clear()
        first = occupy_instance(server, scenes[0])
        replies: queue.Queue = queue.Queue()
        data = np.array([png_bytes(scenes[2])], dtype=np.object_).reshape(1, 1)
        infer_input = grpcclient.InferInput("images", [1, 1], "BYTES")
        infer_input.set_data_from_numpy(data)
        call = server.client.async_infer(MODEL_NAME, [infer_input], lambda result, error: replies.put((result, error)))
        server.wait_queued(1)
        call.cancel()
        assert "CANCELLED" in str(failed(replies).status())
        server.wait_queued(0)  # the batcher forgets a cancelled request at once
        server.gate.set()
        ok(first)
        ok(server.send([scenes[1]]))
        assert server.batch_sizes == [1, 1, 1]  # first, first again, the last request: never the cancelled one


class FlakyBackend:
    """Raises while ``broken`` is set (a runtime fault, e.g. a lost GPU context)."""

    def __init__(self, backend) -> None:
        self._backend, self.min_batch = backend, backend.min_batch
        self.broken = threading.Event()

    def infer(self, batch, image_sizes=None):
        if self.broken.is_set():
            raise RuntimeError("device lost")
        return self._backend.infer(batch, image_sizes)


def test_a_backend_fault_fails_its_batch_and_the_server_goes_on(model_dir, scenes):
    backends: list[FlakyBackend] = []

    def wrap(backend):
        backends.append(FlakyBackend(backend))
        return backends[-1]

    with serve(model_dir, backend_wrapper=wrap) as thread:
        with grpcclient.InferenceServerClient(thread.url) as client:
            data = np.array([png_bytes(scenes[1])], dtype=np.object_).reshape(1, 1)
            infer_input = grpcclient.InferInput("images", [1, 1], "BYTES")
            infer_input.set_data_from_numpy(data)
            backends[0].broken.set()
            with pytest.raises(InferenceServerException) as info:
                client.infer(MODEL_NAME, [infer_input])
            assert info.value.status() == "StatusCode.INTERNAL" and "device lost" in info.value.message()
            backends[0].broken.clear()
            assert int(client.infer(MODEL_NAME, [infer_input]).as_numpy("labels")[0, 0]) == 1
            assert client.is_server_ready()


# -- fairness and the in-flight budget (issue 15) ---------------------------------------------
def test_a_large_request_does_not_starve_a_small_one(model_dir, scenes):
    """Slots are taken in turn from each request: a one-image request queued behind a
    24-image one rides in the next batch, not after all 24 images (FIFO did that).
    Checked on the batches' contents (the small request's image is the only one of its
    kind), not on which reply a client thread sees first, which the OS schedules."""
    with Gated(model_dir) as server:
        big = server.send([scenes[(i % 2) * 2] for i in range(24)])  # scenes 0 and 2
        assert server.backends[0].entered.wait(20)  # its first 8 are inside infer
        server.wait_queued(16)
        small = server.send([scenes[1]])
        server.wait_queued(17)
        server.gate.set()
        ok(small)
        ok(big)
        batches = [batch for backend in server.backends for batch in backend.batches]
        count = Counter(row.tobytes() for batch in batches for row in batch)
        with_small = [i for i, batch in enumerate(batches) if any(count[row.tobytes()] == 1 for row in batch)]
        assert with_small == [1], f"the small request rode in batch {with_small} of {len(batches)}"
        assert server.batch_sizes[:2] == [8, 8]


def test_inflight_budget_is_resource_exhausted_after_the_wait(model_dir, scenes):
    from sdk.serving.admission import RequestLimits

    limits = RequestLimits(max_pixels=100_000, max_inflight_mb=1, admission_wait_s=0.3)
    with Gated(model_dir, limits=limits) as server:
        # each request: its largest decoded image (240x180) + 8 network inputs of 64x96 (uint8 HWC
        # and NCHW) = 0.40 MiB, so two fit in 1 MiB and a third waits
        first = [server.send([scenes[i % 3] for i in range(8)]) for _ in range(2)]
        assert server.backends[0].entered.wait(20)
        server.wait_queued(8)  # both admitted: one batch inside infer, one queued
        error = failed(server.send([scenes[0]] * 8))
        assert error.status() == "StatusCode.RESOURCE_EXHAUSTED" and "--max-inflight-mb" in error.message()
        too_big = failed(server.send([scenes[0]] * 40))  # can never fit: refused without waiting
        assert "more than the server's in-flight limit" in too_big.message()
        server.gate.set()
        for replies in first:
            result, error = replies.get(timeout=30)
            assert error is None, error.message()
        ok(server.send([scenes[0]] * 8))  # room again once answered


class SlowBackend:
    """Wraps a backend: each call costs ``per_image_s`` per image (a real model's compute)."""

    def __init__(self, backend, per_image_s: float) -> None:
        self._backend, self.per_image_s = backend, per_image_s
        self.min_batch, self.max_batch = backend.min_batch, backend.max_batch

    def infer(self, batch, image_sizes=None):
        time.sleep(self.per_image_s * len(batch))
        return self._backend.infer(batch, image_sizes)


def test_a_huge_request_does_not_starve_a_concurrent_small_one(model_dir):
    """Even with the image cap raised to 2000, a 2000-image request (2 s of compute here)
    does not hold up a one-image request sent after it: images are decoded one per pool
    task in turn, so the small request's image is queued and batched while the huge one
    still decodes (the test above covers batching in turn once both are queued)."""
    from sdk.serving.admission import RequestLimits

    pixel = png_bytes(np.full((1, 1, 3), 255, np.uint8))
    with serve(model_dir, backend_wrapper=lambda b: SlowBackend(b, 0.001),
               limits=RequestLimits(max_images=2000)) as thread:
        with grpcclient.InferenceServerClient(thread.url) as client:
            def request(n):
                data = np.array([pixel] * n, dtype=np.object_).reshape(-1, 1)
                infer_input = grpcclient.InferInput("images", list(data.shape), "BYTES")
                infer_input.set_data_from_numpy(data)
                return [infer_input]

            huge: queue.Queue = queue.Queue()
            client.async_infer(MODEL_NAME, request(2000), lambda result, error: huge.put((result, error)))
            time.sleep(0.3)  # the huge request is decoding and being batched
            start = time.monotonic()
            client.infer(MODEL_NAME, request(1))
            delay = time.monotonic() - start
            assert huge.empty(), "the huge request finished first: make it larger"
            assert delay < 1.0, f"a one-image request waited {delay:.2f} s behind a 2000-image one"
            ok(huge)
