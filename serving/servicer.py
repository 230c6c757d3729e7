"""``inference.GRPCInferenceService`` (KServe v2 + Triton extensions) over ``DynamicBatcher``s.

Implemented: ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata,
ModelConfig, ModelStatistics, ModelInfer and ModelStreamInfer. The repository,
shared-memory, trace and log RPCs answer UNIMPLEMENTED. Unknown model or version:
NOT_FOUND; malformed request: INVALID_ARGUMENT naming what was wrong; full queue:
RESOURCE_EXHAUSTED; unexpected faults: INTERNAL (logged), and the server goes on.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from sdk import __version__
from sdk.serving.core import Deployment, ServingCore
from sdk.serving.model_config import served_model_config, served_model_metadata
from sdk.serving.protocol import RequestError, build_infer_response, detections_to_tensors

log = logging.getLogger(__name__)

SERVER_NAME = "sdk-detect"
EXTENSIONS = ("model_configuration", "statistics", "sdk_detection")

__all__ = ["Deployment", "InferenceServicer", "SERVER_NAME", "EXTENSIONS"]


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Answers the protocol for the models of ``core`` (shared with the HTTP front-end)."""

    def __init__(self, core: ServingCore) -> None:
        self.core = core

    @property
    def deployments(self) -> dict[str, Deployment]:
        return self.core.deployments

    @property
    def ready(self) -> bool:
        return self.core.ready

    def _find(self, name: str, version: str = "") -> Deployment:
        return self.core.find(name, version)

    # -- health and metadata ---------------------------------------------------------
    async def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=self.ready)

    async def ModelReady(self, request, context):
        try:
            self._find(request.name, request.version)
        except RequestError:
            return service_pb2.ModelReadyResponse(ready=False)
        return service_pb2.ModelReadyResponse(ready=self.ready)

    async def ServerMetadata(self, request, context):
        return service_pb2.ServerMetadataResponse(name=SERVER_NAME, version=__version__, extensions=EXTENSIONS)

    async def ModelMetadata(self, request, context):
        deployment = await self._find_or_abort(context, request.name, request.version)
        return served_model_metadata(deployment.model)

    async def ModelConfig(self, request, context):
        deployment = await self._find_or_abort(context, request.name, request.version)
        return service_pb2.ModelConfigResponse(config=served_model_config(deployment.model, deployment.batching))

    async def ModelStatistics(self, request, context):
        if request.name:
            chosen = [await self._find_or_abort(context, request.name, request.version)]
        else:
            chosen = list(self.deployments.values())
        return service_pb2.ModelStatisticsResponse(model_stats=[d.stats.to_proto() for d in chosen])

    async def _find_or_abort(self, context, name: str, version: str) -> Deployment:
        try:
            return self._find(name, version)
        except RequestError as exc:
            await context.abort(exc.code, str(exc))

    # -- inference ---------------------------------------------------------------------
    async def ModelInfer(self, request, context):
        try:
            return await self._infer(request, context)
        except RequestError as exc:
            await context.abort(exc.code, str(exc))

    async def ModelStreamInfer(self, request_iterator, context):
        """Bidirectional stream: requests run concurrently (and batch together);
        responses come back as they finish, matched by ``id``; a failed request is
        answered with ``error_message`` and the stream goes on. A message that cannot
        be read (not a ModelInferRequest) ends the stream: every request read before
        it is answered first, then the stream fails with INVALID_ARGUMENT (logged)."""
        responses: asyncio.Queue = asyncio.Queue()
        done = object()
        unreadable: list[str] = []

        async def answer(request) -> None:
            try:
                reply = service_pb2.ModelStreamInferResponse(infer_response=await self._infer(request, context))
            except RequestError as exc:
                reply = service_pb2.ModelStreamInferResponse(
                    error_message=str(exc),
                    infer_response=service_pb2.ModelInferResponse(model_name=request.model_name, id=request.id),
                )
            await responses.put(reply)

        async def read_all() -> None:
            tasks = []
            try:
                try:
                    async for request in request_iterator:
                        tasks.append(asyncio.create_task(answer(request)))
                except Exception as exc:  # the message did not deserialize (grpc raises it from the read)
                    if type(exc).__module__.startswith("grpc"):  # the RPC itself failed: not a bad message
                        raise
                    unreadable.append(f"stream message {len(tasks) + 1} is not a readable ModelInferRequest "
                                      f"({type(exc).__name__}: {str(exc)[:200]})")
                    log.warning("ModelStreamInfer: %s; answering the %d request(s) read before it, then ending "
                                "the stream with INVALID_ARGUMENT", unreadable[0], len(tasks))
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await responses.put(done)

        reader = asyncio.create_task(read_all())
        try:
            while (reply := await responses.get()) is not done:
                yield reply
        finally:
            reader.cancel()
        if unreadable:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{unreadable[0]}; the requests before it were "
                                                                  "answered, the stream ends here")

    async def _infer(self, request, context) -> service_pb2.ModelInferResponse:
        def respond(inputs, dets, deployment: Deployment) -> service_pb2.ModelInferResponse:
            return build_infer_response(
                request,
                model_name=deployment.model.name,
                model_version=deployment.model.version,
                tensors=detections_to_tensors(dets, deployment.model.max_det, masks="masks" in inputs.outputs),
                outputs=inputs.outputs,
            )

        return await self.core.infer(request, respond, time_remaining=context.time_remaining())


def _unimplemented(name: str):
    async def method(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not supported by this server")

    method.__name__ = name
    return method


for _name in (
    "RepositoryIndex",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
    "SystemSharedMemoryStatus",
    "SystemSharedMemoryRegister",
    "SystemSharedMemoryUnregister",
    "CudaSharedMemoryStatus",
    "CudaSharedMemoryRegister",
    "CudaSharedMemoryUnregister",
    "TraceSetting",
    "LogSettings",
):
    setattr(InferenceServicer, _name, _unimplemented(_name))
