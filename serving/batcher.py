"""Dynamic batcher with Triton's knobs and semantics.

Requests from many clients are merged into batches for one model. Every image of a
request takes one batch slot; a request's images stay in order, and a request larger
than the room left in a batch continues in the next one. Images are batched only
with images of the same network-input shape (the model's static shape in practice).

When an instance is free, the batcher takes queued slots in turn from each waiting
request (round robin in arrival order: one slot of every request, then a second of
every request, ...), so one large request cannot starve small ones, and sends:

- ``max_batch_size`` slots as soon as that many are queued;
- else the largest ``preferred_batch_sizes`` entry that can be filled, at once;
- else, with ``max_queue_delay_us == 0``, everything queued (up to the maximum);
- else it waits until the oldest slot has waited ``max_queue_delay_us`` (or a
  bigger batch becomes possible) and sends the largest batch it has.

``max_queue_size`` bounds the requests admitted and not yet fully dispatched to an
instance (decoding included); a request over the bound fails with
RESOURCE_EXHAUSTED (0 = unbounded, Triton's default). A request whose client has
gone (cancelled RPC) or whose deadline has passed is dropped before inference.
Decoding and preprocessing run in a shared thread pool while instances infer, one
image per pool task, so requests decode in turn, whatever their size; each of the
``instances`` workers owns one backend session and one thread.

Before decoding, a request is admitted (``sdk.serving.admission``): image count and
pixels per image checked from the headers, its decoded pixels reserved from the
server's in-flight budget (shared by all models) until it is answered.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import grpc
import numpy as np

from sdk.detections import Detections
from sdk.errors import ConfigError
from sdk.postprocess import decode_outputs
from sdk.preprocess import ImageRecord, assemble_batch, content_sizes, preprocess_batch, preprocess_image
from sdk.serving.admission import InflightBudget, RequestLimits, request_cost
from sdk.serving.model import ServedModel
from sdk.serving.protocol import InferInputs, RequestError
from sdk.serving.stats import ModelStats


@dataclass(frozen=True)
class BatchingConfig:
    """Triton's ``dynamic_batching`` settings plus the instance count.

    ``max_batch_size``: most images per backend call (at most the model_dir's max
    batch). ``max_queue_delay_us``: how long the oldest queued image may wait for a
    fuller batch. ``preferred_batch_sizes``: sizes sent as soon as they can be
    formed. ``max_queue_size``: requests admitted but not yet dispatched (0 =
    unbounded). ``instances``: inference workers, each with its own backend session.
    """

    max_batch_size: int
    max_queue_delay_us: int = 0
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = 0
    instances: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "preferred_batch_sizes", tuple(sorted(set(self.preferred_batch_sizes))))
        if self.max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.max_queue_delay_us < 0 or self.max_queue_size < 0:
            raise ConfigError("max_queue_delay_us and max_queue_size must be >= 0")
        if self.instances < 1:
            raise ConfigError(f"instances must be >= 1, got {self.instances}")
        bad = [p for p in self.preferred_batch_sizes if not 1 <= p <= self.max_batch_size]
        if bad:
            raise ConfigError(f"preferred batch sizes {bad} are outside 1..max_batch_size ({self.max_batch_size})")

    def batch_size_for(self, available: int, *, waited_enough: bool) -> int:
        """How many of ``available`` queued slots to send now (0 = keep waiting)."""
        if available >= self.max_batch_size:
            return self.max_batch_size
        fitting = [p for p in self.preferred_batch_sizes if p <= available]
        if fitting:
            return fitting[-1]
        if self.max_queue_delay_us == 0 or waited_enough:
            return available
        return 0


@dataclass(eq=False)
class _Request:
    future: asyncio.Future
    results: list
    deadline: float | None
    undispatched: int  # slots not yet taken into a batch
    unfinished: int  # slots without a result yet
    admitted: bool = True  # counted against max_queue_size
    masks: bool = True  # paste the instance masks (an instance segmentation model's, when asked)

    def dead(self, now: float) -> bool:
        return self.future.done() or (self.deadline is not None and now >= self.deadline)


@dataclass(eq=False)
class _Slot:
    request: _Request
    index: int
    tensor: np.ndarray  # [3, H, W] network input of one image
    record: ImageRecord
    enqueued: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    """Queue, batch and run inference requests for one ``ServedModel``."""

    def __init__(
        self,
        model: ServedModel,
        config: BatchingConfig,
        *,
        stats: ModelStats,
        pool: Executor,
        limits: RequestLimits | None = None,
        budget: InflightBudget | None = None,
    ) -> None:
        if config.max_batch_size > model.max_batch:
            raise ConfigError(
                f"max_batch_size {config.max_batch_size} exceeds the max batch {model.max_batch} "
                f"model '{model.name}' was exported with; re-export with a larger batch or lower it"
            )
        self.model = model
        self.config = config
        self.stats = stats
        self._pool = pool
        self.limits = limits or RequestLimits()
        self.budget = budget or InflightBudget(self.limits.max_inflight_bytes)
        self._queue: collections.deque[_Slot] = collections.deque()
        self._arrival = asyncio.Event()
        self._forming = asyncio.Lock()
        self._admitted = 0
        self._workers: list[asyncio.Task] = []
        self._executors: list[ThreadPoolExecutor] = []

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Create one backend per instance (each warmed up once) and start the workers."""
        loop = asyncio.get_running_loop()
        for i in range(self.config.instances):
            executor = ThreadPoolExecutor(1, thread_name_prefix=f"{self.model.name}-instance{i}")
            self._executors.append(executor)
            backend = await loop.run_in_executor(executor, self.model.create_warm_backend)
            self._workers.append(asyncio.create_task(self._worker(backend, executor), name=f"{self.model.name}-{i}"))

    async def stop(self) -> None:
        """Stop the workers; requests still queued fail with UNAVAILABLE."""
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for slot in self._queue:
            if not slot.request.future.done():
                slot.request.future.set_exception(RequestError(grpc.StatusCode.UNAVAILABLE, "server is shutting down"))
        self._queue.clear()
        for executor in self._executors:
            executor.shutdown(wait=True)

    # -- requests --------------------------------------------------------------------
    async def infer(
        self, images: InferInputs | Callable[[], list[np.ndarray]], *, deadline: float | None, masks: bool = True
    ) -> list[Detections]:
        """Admit, decode and preprocess (in the pool), queue and wait for the batches.

        ``images``: a request's ``InferInputs`` (admitted against ``limits`` and the
        in-flight budget, then decoded one image per pool task), or a callable returning
        decoded (H, W, 3) uint8 RGB images (trusted in-process callers: no limits).
        Returns one ``Detections`` per image, in order, in original-image pixels.
        ``deadline`` is a ``time.monotonic()`` instant after which the request is dropped.
        ``masks``: paste an instance segmentation model's masks into ``Detections.masks``
        (a request that does not ask for them is spared the per-pixel work).
        """
        if isinstance(getattr(images, "__self__", None), InferInputs):  # ``inputs.load_images``: admit it too
            images = images.__self__
        limit = self.config.max_queue_size
        if limit and self._admitted >= limit:
            self.stats.record_rejected()
            raise RequestError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"model '{self.model.name}' queue is full ({limit} requests waiting); retry later",
            )
        self._admitted += 1
        request = None
        held = 0
        try:
            loop = asyncio.get_running_loop()
            if callable(images):
                batch, records = await loop.run_in_executor(self._pool, self._prepare, images)
            else:
                cost = await loop.run_in_executor(self._pool, request_cost, images, self.model.preprocess, self.limits)
                await self.budget.acquire(cost, timeout=self._admission_wait(deadline))
                held = cost
                batch, records = await self._prepare_in_turn(images)
            n = len(records)
            request = _Request(loop.create_future(), [None] * n, deadline, undispatched=n, unfinished=n, masks=masks)
            now = time.monotonic()
            self._queue.extend(_Slot(request, i, batch[i], rec, now) for i, rec in enumerate(records))
            self.stats.set_queued(len(self._queue))
            self._arrival.set()
            return await request.future
        finally:
            if held:
                self.budget.release(held)
            if request is None:
                self._admitted -= 1
            else:
                self._release(request)
                if request.undispatched:  # cancelled, expired or failed: forget its queued images now
                    self._queue = collections.deque(s for s in self._queue if s.request is not request)
                    self.stats.set_queued(len(self._queue))

    def _admission_wait(self, deadline: float | None) -> float:
        wait = self.limits.admission_wait_s
        return wait if deadline is None else min(wait, deadline - time.monotonic())

    async def _prepare_in_turn(self, inputs: InferInputs) -> tuple[np.ndarray, list[ImageRecord]]:
        """Decode and preprocess one image per pool task: the pool's queue is FIFO, so
        concurrent requests take turns image by image, and one decoded full-size image
        per request is alive at a time."""
        loop = asyncio.get_running_loop()
        padded, records = [], []
        for i in range(inputs.count):
            image, record = await loop.run_in_executor(self._pool, self._prepare_one, inputs, i)
            padded.append(image)
            records.append(record)
        return await loop.run_in_executor(self._pool, assemble_batch, padded, records, self.model.preprocess)

    def _prepare_one(self, inputs: InferInputs, index: int) -> tuple[np.ndarray, ImageRecord]:
        image = inputs.load_image(index, max_pixels=self.limits.max_pixels)
        return preprocess_image(image, self.model.preprocess)

    def _release(self, request: _Request) -> None:
        if request.admitted:
            request.admitted = False
            self._admitted -= 1

    def _prepare(self, load_images: Callable[[], list[np.ndarray]]) -> tuple[np.ndarray, list[ImageRecord]]:
        return preprocess_batch(load_images(), self.model.preprocess)

    @property
    def queued_images(self) -> int:
        return len(self._queue)

    # -- scheduling ------------------------------------------------------------------
    async def _worker(self, backend, executor: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        while True:
            async with self._forming:  # one free instance forms a batch at a time
                slots = await self._next_batch()
            started = time.monotonic()
            for slot in slots:
                self.stats.record_queue(started - slot.enqueued)
            try:
                dets = await loop.run_in_executor(executor, self._run, backend, slots)
            except Exception as exc:  # a backend fault fails this batch, not the server
                self.stats.record_batch_failure(len(slots))
                error = RequestError(grpc.StatusCode.INTERNAL, f"inference failed: {type(exc).__name__}: {exc}")
                for slot in slots:
                    if not slot.request.future.done():
                        slot.request.future.set_exception(error)
                continue
            self.stats.record_batch(len(slots), time.monotonic() - started)
            for slot, det in zip(slots, dets):
                request = slot.request
                request.results[slot.index] = det
                request.unfinished -= 1
                if request.unfinished == 0 and not request.future.done():
                    request.future.set_result(request.results)

    def _run(self, backend, slots: Sequence[_Slot]) -> list[Detections]:
        batch = np.stack([slot.tensor for slot in slots])
        short = getattr(backend, "min_batch", 1) - len(batch)
        if short > 0:  # a fixed-batch engine: blank rows, their outputs are ignored
            batch = np.concatenate([batch, np.zeros((short, *batch.shape[1:]), batch.dtype)])
        outputs = backend.infer(batch, content_sizes([slot.record for slot in slots]))
        if "masks" in outputs and not any(slot.request.masks for slot in slots):
            outputs = {name: value for name, value in outputs.items() if name != "masks"}
        return decode_outputs(outputs, [slot.record for slot in slots], self.model.classes)

    async def _next_batch(self) -> list[_Slot]:
        delay = self.config.max_queue_delay_us / 1e6
        while True:
            now = time.monotonic()
            self._drop_dead(now)
            if not self._queue:
                self._arrival.clear()
                await self._arrival.wait()
                continue
            oldest = self._queue[0]
            same_shape = _in_turn([s for s in self._queue if s.tensor.shape == oldest.tensor.shape])
            waited = now - oldest.enqueued
            take = self.config.batch_size_for(len(same_shape), waited_enough=waited >= delay)
            if take:
                return self._dispatch(same_shape[:take])
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), timeout=delay - waited)
            except asyncio.TimeoutError:
                pass

    def _dispatch(self, slots: list[_Slot]) -> list[_Slot]:
        chosen = set(map(id, slots))
        self._queue = collections.deque(s for s in self._queue if id(s) not in chosen)
        self.stats.set_queued(len(self._queue))
        for slot in slots:
            request = slot.request
            request.undispatched -= 1
            if request.undispatched == 0:
                self._release(request)
        return slots

    def _drop_dead(self, now: float) -> None:
        """Forget slots of cancelled requests; fail and forget those past their deadline."""
        if not any(s.request.dead(now) for s in self._queue):
            return
        keep = collections.deque()
        for slot in self._queue:
            request = slot.request
            if not request.dead(now):
                keep.append(slot)
                continue
            if not request.future.done():
                self.stats.record_expired()
                request.future.set_exception(
                    RequestError(grpc.StatusCode.DEADLINE_EXCEEDED, "request deadline passed while queued")
                )
        self._queue = keep
        self.stats.set_queued(len(keep))


def _in_turn(slots: list[_Slot]) -> list[_Slot]:
    """``slots`` reordered round robin over their requests (in order of each request's
    first slot), each request's own slots kept in order: the first slot of every
    request, then the second of every request, ..."""
    by_request: dict[int, list[_Slot]] = {}
    for slot in slots:
        by_request.setdefault(id(slot.request), []).append(slot)
    if len(by_request) <= 1:
        return slots
    return [s for row in itertools.zip_longest(*by_request.values()) for s in row if s is not None]
