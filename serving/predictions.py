"""TorchServe-style image upload: ``POST|PUT /predictions/{name}[/{version}]``.

What MMDetection's documentation runs against TorchServe works here unchanged::

    curl -T demo.jpg http://127.0.0.1:8000/predictions/model_dir

The body is one encoded image (raw, any content type), or a
``multipart/form-data`` form whose file fields (and fields named ``data`` or
``body``, TorchServe's names) are the images. The answer per image is
TorchServe's list of rows ``{"class_label", "class_name", "bbox": [x1, y1, x2,
y2], "score"}`` in original image pixels; a form with several images gets a list
of such lists, in form order. Query parameters ``score_thr`` (0..1) and
``max_det`` (>= 1) filter the rows. The request goes through the same core,
batcher and checks as a v2 ``images`` BYTES request.
"""

from __future__ import annotations

from typing import Any, Sequence

from aiohttp import web
from tritonclient.grpc import service_pb2

from sdk.detections import Detections
from sdk.serving.core import ServingCore
from sdk.serving.protocol import INPUT_NAME, RequestError, invalid

_IMAGE_FIELDS = ("data", "body")  # TorchServe's form field names for a request's payload
_QUERY = {"score_thr": ("score_threshold", float), "max_det": ("max_detections", int)}


def add_routes(app: web.Application, core: ServingCore) -> None:
    handler = _Predictions(core).predict
    for path in ("/predictions/{name}", "/predictions/{name}/{version}"):
        app.router.add_post(path, handler)
        app.router.add_put(path, handler)


def detection_rows(det: Detections) -> list[dict[str, Any]]:
    """TorchServe's (MMDetection handler's) JSON rows for one image."""
    return [
        {
            "class_label": int(label),
            "class_name": det.class_names[int(label)] if 0 <= int(label) < len(det.class_names) else str(int(label)),
            "bbox": [float(v) for v in box],
            "score": float(score),
        }
        for box, score, label in zip(det.boxes, det.scores, det.labels)
    ]


class _Predictions:
    def __init__(self, core: ServingCore) -> None:
        self.core = core

    async def predict(self, request: web.Request) -> web.Response:
        name, version = request.match_info["name"], request.match_info.get("version", "")
        deployment = self.core.find(name, version)  # 404 before reading a body meant for another model
        try:
            images, multiple = await _images(request)
            infer = service_pb2.ModelInferRequest(model_name=name, model_version=version)
            infer.inputs.add(name=INPUT_NAME, datatype="BYTES", shape=[len(images), 1])
            # BYTES tensor wire format: each element is a 4-byte little-endian length, then the bytes
            infer.raw_input_contents.append(b"".join(len(data).to_bytes(4, "little") + data for data in images))
            _set_query_parameters(infer, request.query)
        except RequestError as exc:  # counted like the requests the core refuses
            deployment.stats.record_request(0.0, code=exc.code.name)
            raise

        def respond(inputs, dets: Sequence[Detections], deployment) -> Any:
            rows = [detection_rows(det) for det in dets]
            return rows if multiple else rows[0]

        return web.json_response(await self.core.infer(infer, respond))


async def _images(request: web.Request) -> tuple[list[bytes], bool]:
    """The uploaded images and whether the answer is a list per image (a form with several)."""
    if request.content_type == "multipart/form-data":
        form = await request.post()  # bounded by client_max_size, as raw bodies are
        images = [
            _field_bytes(value) for key, value in form.items() if isinstance(value, web.FileField) or key in _IMAGE_FIELDS
        ]
        if not images:
            raise invalid("the form has no image: add file fields (curl -F 'data=@demo.jpg' ...)")
        return images, len(images) > 1
    body = await request.read()
    if not body:
        raise invalid("empty request body: send an image (curl -T demo.jpg URL) or a multipart form with files")
    return [body], False


def _field_bytes(value: Any) -> bytes:
    if isinstance(value, web.FileField):
        return value.file.read()
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _set_query_parameters(infer: service_pb2.ModelInferRequest, query) -> None:
    """``score_thr`` and ``max_det`` into the v2 request's parameters, checked under their query names."""
    for key, value in query.items():
        if key not in _QUERY:
            raise invalid(f"unknown query parameter '{key}'; /predictions takes 'score_thr' (0..1) and 'max_det' (>= 1)")
        parameter, kind = _QUERY[key]
        try:
            number = kind(value)
        except ValueError:
            what = "a number" if kind is float else "an integer"
            raise invalid(f"query parameter '{key}' must be {what}; got {value!r}") from None
        if kind is float:
            if not 0.0 <= number <= 1.0:
                raise invalid(f"query parameter 'score_thr' must be in [0, 1]; got {value}")
            infer.parameters[parameter].double_param = number
        else:
            if not 1 <= number <= 2**31 - 1:
                raise invalid(f"query parameter 'max_det' must be >= 1; got {value}")
            infer.parameters[parameter].int64_param = number
