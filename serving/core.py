"""The serving core both front-ends call into: models by name, readiness, one inference path.

The gRPC servicer and the HTTP application each turn their wire format into a
``ModelInferRequest`` and hand it to ``ServingCore.infer``, so validation
(``sdk.serving.protocol``), batching, statistics, metrics and error statuses are
the same code whichever protocol a request came in on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import grpc
from tritonclient.grpc import service_pb2

from sdk.detections import Detections
from sdk.serving.batcher import BatchingConfig, DynamicBatcher
from sdk.serving.model import ServedModel
from sdk.serving.protocol import InferInputs, RequestError, invalid, parse_infer_request, select_detections
from sdk.serving.stats import ModelStats

log = logging.getLogger(__name__)

T = TypeVar("T")
#: builds a front-end's answer from the validated request, its detections and the deployment
Respond = Callable[[InferInputs, Sequence[Detections], "Deployment"], T]


@dataclass
class Deployment:
    """A model being served: its batcher, batching settings and statistics."""

    model: ServedModel
    batching: BatchingConfig
    batcher: DynamicBatcher
    stats: ModelStats


class ServingCore:
    """The deployments (by model name) and the server's readiness, shared by every front-end."""

    def __init__(self, deployments: dict[str, Deployment]) -> None:
        self.deployments = deployments
        self.ready = False  # true once every batcher runs; false again while draining

    def find(self, name: str, version: str = "") -> Deployment:
        """The deployment serving ``name`` (and ``version``, "" = any); NOT_FOUND otherwise."""
        deployment = self.deployments.get(name)
        if deployment is None:
            raise RequestError(
                grpc.StatusCode.NOT_FOUND, f"unknown model '{name}'; this server serves {sorted(self.deployments)}"
            )
        if version not in ("", deployment.model.version):
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"model '{name}' has no version '{version}'; available: ['{deployment.model.version}']",
            )
        return deployment

    async def infer(
        self, request: service_pb2.ModelInferRequest, respond: Respond[T], *, time_remaining: float | None = None
    ) -> T:
        """Validate, batch and run ``request``; return ``respond(inputs, detections, deployment)``.

        ``time_remaining``: seconds the client still waits (a gRPC deadline), combined
        with the request's ``timeout`` parameter. Raises ``RequestError`` with the
        status to answer; unexpected faults become INTERNAL (logged) so the server goes on.
        """
        started = time.monotonic()
        deployment = self.find(request.model_name, request.model_version)
        code = "CANCELLED"  # unless the request ends otherwise
        try:
            if not self.ready:
                raise RequestError(grpc.StatusCode.UNAVAILABLE, "server is not ready (starting or shutting down)")
            inputs = parse_infer_request(request)
            if "masks" in inputs.outputs and not deployment.model.masks:
                raise invalid(f"model {deployment.model.name!r} has no 'masks' output (not an instance "
                              "segmentation model); request num_dets, boxes, scores, labels")
            deadline = _deadline(started, time_remaining, inputs.timeout_s)
            dets = await deployment.batcher.infer(  # admitted: limits, budget
                inputs, deadline=deadline, masks="masks" in inputs.outputs
            )
            response = respond(inputs, select_detections(dets, inputs), deployment)
            code = None
            return response
        except RequestError as exc:
            code = exc.code.name
            raise
        except Exception as exc:
            code = "INTERNAL"
            log.exception("inference failed for model %s", deployment.model.name)
            raise RequestError(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}") from exc
        finally:
            deployment.stats.record_request(time.monotonic() - started, code=code)


def _deadline(now: float, time_remaining: float | None, timeout_s: float | None) -> float | None:
    """The earliest of the client's deadline and the request's ``timeout``, as monotonic time."""
    candidates = [now + s for s in (time_remaining, timeout_s) if s is not None]
    return min(candidates) if candidates else None
