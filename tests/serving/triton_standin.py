"""A stand-in for Triton Inference Server serving one model of a ``sdk triton-repo`` repository.

Triton is not installable here; this serves the repository's ``config.pbtxt``
(parsed as Triton's own ``ModelConfig`` proto) and runs ``1/model.onnx`` with ONNX
Runtime behind the same ``inference.GRPCInferenceService`` RPCs a client uses:
ServerLive/Ready, ModelReady, ModelMetadata, ModelConfig, ModelStatistics and ModelInfer with raw
contents. Enough to check that a client talks to Triton the way it talks to ``sdk serve``.
"""

from __future__ import annotations

import contextlib
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

_NUMPY = {"UINT8": np.uint8, "FP32": np.float32, "INT32": np.int32}
_KSERVE = {np.dtype(np.float32): "FP32", np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64"}


class _Servicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, model_root: Path) -> None:
        self.config = text_format.Parse((model_root / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        self.session = ort.InferenceSession(str(model_root / "1" / "model.onnx"), providers=["CPUExecutionProvider"])

    def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=True)

    def ModelReady(self, request, context):
        return service_pb2.ModelReadyResponse(ready=request.name == self.config.name)

    def ModelMetadata(self, request, context):
        def tensor(t):
            datatype = model_config_pb2.DataType.Name(t.data_type).removeprefix("TYPE_").replace("STRING", "BYTES")
            return service_pb2.ModelMetadataResponse.TensorMetadata(name=t.name, datatype=datatype,
                                                                    shape=[-1, *t.dims])

        return service_pb2.ModelMetadataResponse(
            name=self.config.name, versions=["1"], platform=self.config.platform,
            inputs=[tensor(t) for t in self.config.input], outputs=[tensor(t) for t in self.config.output],
        )

    def ModelConfig(self, request, context):
        return service_pb2.ModelConfigResponse(config=self.config)

    def ModelStatistics(self, request, context):
        return service_pb2.ModelStatisticsResponse(model_stats=[service_pb2.ModelStatistics(name=self.config.name)])

    def ModelInfer(self, request, context):
        if request.model_name != self.config.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {request.model_name}")
        (tensor,) = request.inputs
        batch = np.frombuffer(request.raw_input_contents[0], _NUMPY[tensor.datatype]).reshape(list(tensor.shape))
        if batch.shape[0] > self.config.max_batch_size:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "batch larger than max_batch_size")
        names = [o.name for o in request.outputs] or [o.name for o in self.config.output]
        results = dict(zip([o.name for o in self.session.get_outputs()], self.session.run(None, {tensor.name: batch})))
        response = service_pb2.ModelInferResponse(model_name=self.config.name, model_version="1")
        for name in names:
            array = np.ascontiguousarray(results[name])
            response.outputs.add(name=name, datatype=_KSERVE[array.dtype], shape=list(array.shape))
            response.raw_output_contents.append(array.tobytes())
        return response


@contextlib.contextmanager
def triton_standin(model_root: Path):
    """Serve ``model_root`` (``REPO/<model>``) on a free loopback port; yields ``host:port``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(_Servicer(model_root), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=1).wait()
