"""KServe v2 REST (with Triton's extensions) over the shared ``ServingCore``.

Routes: ``GET /v2/health/live|ready``, ``GET /v2``, ``GET /v2/models/stats``,
``GET /v2/models/{name}[/versions/{v}]`` and its ``/ready``, ``/config``,
``/stats``, and ``POST .../infer`` (JSON tensors and the binary-data extension,
see ``sdk.serving.http_tensors``). Answers are the JSON Triton's HTTP endpoints
give, so ``tritonclient.http`` works unchanged. Repository, shared-memory, trace
and logging endpoints answer 501, as their RPCs answer UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio

import grpc
from aiohttp import web
from tritonclient.grpc import service_pb2

from sdk import __version__
from sdk.serving.core import ServingCore
from sdk.serving.http_tensors import parse_rest_request, encode_rest_response
from sdk.serving.model_config import served_model_config, served_model_metadata
from sdk.serving.protocol import RequestError, detections_to_tensors
from sdk.serving.proto_json import proto_to_json
from sdk.serving.servicer import EXTENSIONS, SERVER_NAME

HEADER_LENGTH = "Inference-Header-Content-Length"
#: JSON parsing moves off the event loop above this size, so big bodies do not stall other requests
_INLINE_PARSE_BYTES = 256 * 1024
_UNIMPLEMENTED = r"/v2/{extension:(repository|systemsharedmemory|cudasharedmemory|trace|logging)}{rest:(/.*)?}"


def add_routes(app: web.Application, core: ServingCore) -> None:
    """Register the v2 routes for the models of ``core``."""
    v2 = _V2(core)
    app.router.add_get("/v2/health/live", v2.live)
    app.router.add_get("/v2/health/ready", v2.ready)
    app.router.add_get("/v2", v2.server_metadata)
    app.router.add_get("/v2/models/stats", v2.all_stats)  # before /v2/models/{name}: "stats" is no model
    for model in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        app.router.add_get(model, v2.model_metadata)
        app.router.add_get(model + "/ready", v2.model_ready)
        app.router.add_get(model + "/config", v2.model_config)
        app.router.add_get(model + "/stats", v2.model_stats)
        app.router.add_post(model + "/infer", v2.infer)
        app.router.add_route("*", model + "/trace/setting", v2.unimplemented)
    app.router.add_route("*", _UNIMPLEMENTED, v2.unimplemented)


def json_response(doc: object, status: int = 200) -> web.Response:
    return web.json_response(doc, status=status)


class _V2:
    def __init__(self, core: ServingCore) -> None:
        self.core = core

    def _find(self, request: web.Request):
        return self.core.find(request.match_info["name"], request.match_info.get("version", ""))

    # -- health and metadata ---------------------------------------------------------
    async def live(self, request: web.Request) -> web.Response:
        return json_response({"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        return json_response({"ready": self.core.ready}, 200 if self.core.ready else 503)

    async def model_ready(self, request: web.Request) -> web.Response:
        self._find(request)  # unknown model or version: 404
        return json_response({"ready": self.core.ready}, 200 if self.core.ready else 503)

    async def server_metadata(self, request: web.Request) -> web.Response:
        extensions = [*EXTENSIONS, "binary_tensor_data"]
        return json_response({"name": SERVER_NAME, "version": __version__, "extensions": extensions})

    async def model_metadata(self, request: web.Request) -> web.Response:
        return json_response(proto_to_json(served_model_metadata(self._find(request).model)))

    async def model_config(self, request: web.Request) -> web.Response:
        deployment = self._find(request)
        return json_response(proto_to_json(served_model_config(deployment.model, deployment.batching)))

    async def model_stats(self, request: web.Request) -> web.Response:
        return self._stats([self._find(request)])

    async def all_stats(self, request: web.Request) -> web.Response:
        return self._stats(list(self.core.deployments.values()))

    def _stats(self, deployments) -> web.Response:
        reply = service_pb2.ModelStatisticsResponse(model_stats=[d.stats.to_proto() for d in deployments])
        return json_response(proto_to_json(reply))

    async def unimplemented(self, request: web.Request) -> web.Response:
        raise RequestError(grpc.StatusCode.UNIMPLEMENTED, f"{request.method} {request.path} is not supported by this server")

    # -- inference ---------------------------------------------------------------------
    async def infer(self, request: web.Request) -> web.Response:
        name, version = request.match_info["name"], request.match_info.get("version", "")
        deployment = self.core.find(name, version)  # 404 before reading a body meant for another model
        body = await request.read()  # bounded by the application's client_max_size (413)
        args = (body, request.headers.get(HEADER_LENGTH))
        kwargs = {"model_name": name, "model_version": version}
        try:
            if len(body) > _INLINE_PARSE_BYTES:
                parsed = await asyncio.to_thread(lambda: parse_rest_request(*args, **kwargs))
            else:
                parsed = parse_rest_request(*args, **kwargs)
        except RequestError as exc:  # counted like the requests the core refuses
            deployment.stats.record_request(0.0, code=exc.code.name)
            raise

        def respond(inputs, dets, deployment) -> tuple[bytes, int | None]:
            return encode_rest_response(
                model_name=deployment.model.name,
                model_version=deployment.model.version,
                request_id=parsed.request.id,
                tensors=detections_to_tensors(dets, deployment.model.max_det, masks="masks" in inputs.outputs),
                outputs=inputs.outputs,
                parsed=parsed,
            )

        payload, header_length = await self.core.infer(parsed.request, respond)
        if header_length is None:
            return web.Response(body=payload, content_type="application/json")
        response = web.Response(body=payload, content_type="application/octet-stream")
        response.headers[HEADER_LENGTH] = str(header_length)
        return response
