"""TensorRT backend: runs ``model.engine`` (``sdk export --backend tensorrt``) on a CUDA GPU.

TensorRT 10.10+ and 11.x, one code path: ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3`` (no bindings; unchanged in 11). Device memory and the stream come
from cuda-python, not torch. The ``sdk::`` plugin layers are ahead-of-time kernels
stored in the engine, so running it needs no torch, no Triton and no plugin
registration (``trtexec`` and Triton Inference Server run it the same way). Device
buffers are allocated once per batch size (the input at the largest H x W) and reused;
the engine has one optimization profile covering batch 1..max_batch and, for a
dynamic-shape graph, every H x W from one pad divisor to the long-side limit.

An engine is tied to the TensorRT version and the GPU SM it was built for (the
manifest's ``build_target``): another version or SM fails at load with one line saying
what the engine was built for and to rebuild, before TensorRT is asked to deserialize.

Everything that does not need TensorRT (what is missing on this machine, the target
check, output shapes and byte sizes per batch, the dtype map) is a plain function,
tested on CPU.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from sdk.errors import BackendUnavailableError, ModelDirError
from sdk.manifest import CONTRACT_OUTPUTS
from sdk.runtime.base import SIZES_INPUT, check_graph_inputs, input_hw_bounds, parse_device, sizes_input
from sdk.runtime.tensorrt_api import build_target, check_tensorrt_version, target_mismatch

if TYPE_CHECKING:  # pragma: no cover
    from sdk.manifest import LoadedModelDir, TensorSpec

log = logging.getLogger(__name__)

#: ``tensorrt.DataType`` member name -> numpy dtype name
TRT_TO_NUMPY = {
    "FLOAT": "float32",
    "HALF": "float16",
    "INT32": "int32",
    "INT64": "int64",
    "INT8": "int8",
    "UINT8": "uint8",
    "BOOL": "bool",
}


def missing_requirements(device: str) -> list[str]:
    """What this machine lacks to run TensorRT engines on ``device`` (empty: nothing)."""
    kind, index = parse_device(device)
    missing = []
    if importlib.util.find_spec("tensorrt") is None:
        missing.append("the 'tensorrt' Python package (TensorRT >= 10.10: pip install tensorrt)")
    if _cudart() is None:
        missing.append("the 'cuda-python' package (pip install cuda-python)")
    if kind == "cpu":
        missing.append("a CUDA device: TensorRT runs only on NVIDIA GPUs (pass device='cuda')")
    elif cuda_device_count() <= index:
        missing.append(f"a CUDA GPU {device!r} (found {cuda_device_count()})")
    return missing


def check_tensorrt_available(device: str) -> None:
    """Raise ONE ``BackendUnavailableError`` naming everything missing for TensorRT on ``device``."""
    missing = missing_requirements(device)
    if missing:
        raise BackendUnavailableError(
            f"the tensorrt backend needs {'; '.join(missing)}. On a machine without them, export with "
            "--backend onnxruntime (or aoti) instead"
        )


def cuda_device_count() -> int:
    """CUDA GPUs visible to this process (0 without a driver or cuda-python)."""
    cudart = _cudart()
    if cudart is None:
        return 0
    err, count = cudart.cudaGetDeviceCount()
    return int(count) if int(err) == 0 else 0


def current_target(trt: Any, device: str = "cuda") -> dict[str, str]:
    """This machine's ``build_target`` for ``device``: the TensorRT version and the GPU's SM."""
    cudart = _cudart()
    _, index = parse_device(device)
    props = _check(cudart.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return build_target(trt.__version__, (props.major, props.minor), name.rstrip("\x00"))


def check_engine_target(built: Any, here: dict[str, str], engine_path: Any) -> None:
    """One-line ``ModelDirError`` when the engine's ``build_target`` is not this machine's."""
    reason = target_mismatch(dict(built or {}), here)
    if reason:
        raise ModelDirError(
            f"{engine_path} cannot run here: {reason}; rebuild it on this machine with `sdk export --backend tensorrt`"
        )


def output_shapes(outputs: Sequence[TensorSpec], batch: int) -> dict[str, tuple[int, ...]]:
    """Each output's shape for a batch of ``batch`` images (the manifest's -1 batch filled in)."""
    shapes = {}
    for spec in outputs:
        if any(d < 0 for d in spec.shape[1:]):
            raise ModelDirError(f"output {spec.name!r} has a dynamic non-batch dimension {list(spec.shape)}")
        shapes[spec.name] = (batch, *spec.shape[1:])
    return shapes


def check_input_hw(hw: Sequence[int], largest: Sequence[int], divisor: int | None) -> None:
    """``ValueError`` unless the batch's (H, W) fits the engine's profile: a multiple of
    ``divisor`` up to ``largest`` (a dynamic-shape engine), or exactly ``largest`` when
    ``divisor`` is None (a static engine)."""
    h, w = (int(v) for v in hw)
    if divisor is None:
        if (h, w) != tuple(largest):
            raise ValueError(f"input {h}x{w}: the engine takes {largest[0]}x{largest[1]} only "
                             "(preprocess images with the model_dir's record)")
        return
    if h > largest[0] or w > largest[1] or h % divisor or w % divisor or min(h, w) < 1:
        raise ValueError(f"input {h}x{w} is outside the engine's profile: multiples of {divisor} up to "
                         f"{largest[0]}x{largest[1]} (preprocess images with the model_dir's record)")


def buffer_nbytes(shape: Sequence[int], dtype: str) -> int:
    """Bytes of a dense ``shape`` tensor of numpy dtype ``dtype``."""
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


class TensorRTBackend:
    """``infer(batch [B, 3, H, W]) -> {output name: ndarray}`` with a TensorRT engine.

    Args:
        loaded: a validated model_dir whose backend is ``"tensorrt"``.
        device: ``"cuda"`` or ``"cuda:N"``.
        warmup: run one batch at load (TensorRT's first enqueue is slow).
    """

    name = "tensorrt"

    def __init__(self, loaded: LoadedModelDir, *, device: str = "cuda", warmup: bool = True) -> None:
        check_tensorrt_available(device)
        trt = importlib.import_module("tensorrt")
        check_tensorrt_version(trt.__version__)
        manifest = loaded.manifest
        self._cudart = _cudart()
        _, index = parse_device(device)
        _check(self._cudart.cudaSetDevice(index), "cudaSetDevice")
        check_engine_target(manifest.build_target, current_target(trt, device), loaded.model_path)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(loaded.model_path.read_bytes())
        if self.engine is None:
            raise ModelDirError(
                f"TensorRT {trt.__version__} cannot load {loaded.model_path} (built for "
                f"{dict(manifest.build_target) or 'an unrecorded target'}): rebuild it on this machine with "
                "`sdk export --backend tensorrt`"
            )
        log.debug("engine %s: %d bytes of activation memory", loaded.model_path, self.engine.device_memory_size_v2)
        self.context = self.engine.create_execution_context()
        self._stream = _check(self._cudart.cudaStreamCreate(), "cudaStreamCreate")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.takes_sizes = check_graph_inputs(inputs, manifest, loaded.model_path)
        self.input_name = inputs[0]
        self.output_names = [n for n in names if n not in inputs]
        missing = [n for n in CONTRACT_OUTPUTS if n not in self.output_names]
        if missing:
            raise ModelDirError(f"{loaded.model_path} lacks the detection outputs {missing}; re-export the model_dir")
        self.output_dtypes = {n: TRT_TO_NUMPY[self.engine.get_tensor_dtype(n).name] for n in self.output_names}
        self.input_dtype = np.dtype(TRT_TO_NUMPY[self.engine.get_tensor_dtype(self.input_name).name])
        self.min_batch, self.max_batch = manifest.input.min_batch, manifest.input.max_batch
        self._outputs = [s for s in manifest.outputs if s.name in self.output_names]
        self._buffers: dict[int, dict[str, int]] = {}  # batch size -> {tensor: device pointer}
        (h, w), self._largest_hw = input_hw_bounds(manifest)
        self._divisor = manifest.preprocess.pad_divisor if manifest.input.hw == (-1, -1) else None
        if warmup:
            self.infer(np.zeros((self.min_batch, 3, h, w), self.input_dtype))

    def infer(self, batch: np.ndarray, image_sizes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Run ``batch`` [B, 3, H, W] (min_batch <= B <= max_batch; ``image_sizes`` as
        ``Backend.infer``); returns the contract outputs."""
        if not self.min_batch <= batch.shape[0] <= self.max_batch:
            raise ValueError(f"batch of {batch.shape[0]} outside the engine's {self.min_batch}..{self.max_batch}")
        check_input_hw(batch.shape[-2:], self._largest_hw, self._divisor)
        batch = np.ascontiguousarray(batch, dtype=self.input_dtype)
        shapes = output_shapes(self._outputs, batch.shape[0])
        pointers = self._device_buffers(batch.shape[0], shapes)
        cudart, stream = self._cudart, self._stream
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.context.set_input_shape(self.input_name, batch.shape)
        host_inputs = {self.input_name: batch}
        if self.takes_sizes:
            host_inputs[SIZES_INPUT] = sizes_input(batch, image_sizes)
            self.context.set_input_shape(SIZES_INPUT, host_inputs[SIZES_INPUT].shape)
        for name, pointer in pointers.items():
            self.context.set_tensor_address(name, pointer)
        for name, array in host_inputs.items():
            _check(cudart.cudaMemcpyAsync(pointers[name], array.ctypes.data, array.nbytes, h2d, stream), "copy")
        if not self.context.execute_async_v3(int(stream)):  # TensorRT takes the raw cudaStream_t handle
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log above)")
        results = {n: np.empty(shapes[n], self.output_dtypes[n]) for n in self.output_names}
        for name, array in results.items():
            _check(cudart.cudaMemcpyAsync(array.ctypes.data, pointers[name], array.nbytes, d2h, stream), "copy")
        _check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        return results

    def _device_buffers(self, batch: int, shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
        """Device pointers for a batch of ``batch`` images, allocated on first use and kept:
        the input buffer holds the largest (H, W), so a dynamic-shape engine allocates once
        per batch size, not once per image size."""
        if batch not in self._buffers:
            sizes = {self.input_name: buffer_nbytes((batch, 3, *self._largest_hw), self.input_dtype.name)}
            if self.takes_sizes:
                sizes[SIZES_INPUT] = buffer_nbytes((batch, 2), "int64")
            sizes |= {n: buffer_nbytes(shapes[n], self.output_dtypes[n]) for n in self.output_names}
            self._buffers[batch] = {n: _check(self._cudart.cudaMalloc(b), "cudaMalloc") for n, b in sizes.items()}
        return self._buffers[batch]

    def __del__(self) -> None:
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        for pointers in getattr(self, "_buffers", {}).values():
            for pointer in pointers.values():
                cudart.cudaFree(pointer)
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)


def _cudart() -> Any:
    """cuda-python's runtime module (``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6)."""
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _check(result: Any, what: str) -> Any:
    """Unpack a cuda-python ``(error, *values)`` result, raising on an error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"{what} failed: CUDA error {err}")
    return values[0] if len(values) == 1 else tuple(values) or None
