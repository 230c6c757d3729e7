"""OpenVINO backend: runs ``model.xml`` (+ ``model.bin``) from a model_dir on the CPU.

Torch-free. The IR is read with its batch dimension bounded to the manifest's
[min_batch, max_batch] and compiled for OpenVINO's ``CPU`` device with:

- ``INFERENCE_PRECISION_HINT`` set explicitly from the manifest's precision, never
  left to OpenVINO, whose default on CPUs with AVX512_BF16 or AMX is bf16 (a silent
  precision drop for an fp32 model). Under f32, OpenVINO computes exactly the dtypes
  the graph has (docs/architecture.md 3b: the precision is a property of the graph):

  ========= ===================================================================
  fp32      f32
  bf16      f32: the IR's bf16 sections (bf16 weights between casts, what ``sdk
            export --precision bf16`` writes) run in bf16 (natively: AVX512_BF16 /
            AMX), the rest f32 as the graph says. ``BackendUnavailableError`` when
            the CPU does not report BF16 in ``OPTIMIZATION_CAPABILITIES``;
            ``ModelDirError`` for a bf16 manifest on an IR without bf16 layers
            (OpenVINO's own bf16 precision would also run RoIAlign and the RPN's
            box arithmetic in bf16, which the contract keeps in f32).
  fp16      f32 on every CPU: the fp16 weights are upcast and the fp16 sections
            computed in f32 (logged at INFO). OpenVINO's f16 precision is no fit
            (2026.4, x86): it converts the whole graph to f16, the box decoding
            the graph keeps in fp32 included; it is slower than f32 without
            AMX-FP16; and its compile of Faster R-CNN does not finish.
  int8      f32: the QDQ-quantized layers run in int8 by themselves (OpenVINO
            turns each QuantizeLinear/DequantizeLinear pair into int8 kernels),
            everything outside them in f32
  ========= ===================================================================

  ``inference_precision`` is the hint the compiled model reports back.
- ``PERFORMANCE_HINT`` LATENCY (one stream; a server runs one backend per instance),
  ``INFERENCE_NUM_THREADS`` / ``NUM_STREAMS`` only when given.

Only ``device="cpu"``: OpenVINO's GPU/NPU plugins are not supported yet.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from sdk.errors import BackendUnavailableError, ConfigError, ModelDirError, require
from sdk.manifest import CONTRACT_OUTPUTS
from sdk.runtime.base import SIZES_INPUT, check_graph_inputs, input_hw_bounds, parse_device, sizes_input
from sdk.runtime.graph_check import check_run_outputs, check_signature

# A missing openvino raises here with the pip extra to install (create_backend's
# generic "needs the Python package" message would not name it).
ov = require("openvino", extra="openvino", purpose="The 'openvino' backend")
import openvino.properties as ov_props  # noqa: E402
import openvino.properties.hint as ov_hints  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from sdk.manifest import LoadedModelDir

log = logging.getLogger(__name__)

_OV_DEVICE = "CPU"
_INPUT_DTYPES = {"u8": "uint8", "f32": "float32", "f16": "float16"}
# contract 2: what infer() returns, whatever element types the IR's outputs have
OUTPUT_DTYPES = {
    "num_dets": np.dtype(np.int32),
    "boxes": np.dtype(np.float32),
    "scores": np.dtype(np.float32),
    "labels": np.dtype(np.int32),
    "masks": np.dtype(np.float32),
}


class OpenVINOBackend:
    """``infer(batch [B, 3, H, W]) -> {output name: ndarray}`` with one OpenVINO compiled model.

    Args:
        loaded: a validated model_dir (``sdk.manifest.load_model_dir``) of backend
            ``openvino``: ``model.xml`` + ``model.bin``.
        device: ``"cpu"`` only.
        num_threads: ``INFERENCE_NUM_THREADS`` (CPU threads of one inference); default
            OpenVINO's (the physical cores).
        num_streams: ``NUM_STREAMS``; default the LATENCY hint's single stream.
        warmup: run one batch at load, so the first real call is not the slow one.

    Attributes: ``name`` ``"openvino"``; ``min_batch``, ``max_batch`` (the manifest's);
    ``input_dtype`` (``np.uint8`` when the graph normalizes); ``inference_precision``,
    the compiled model's ``INFERENCE_PRECISION_HINT`` as OpenVINO names it
    (``"f32"``, ``"bf16"``, ``"f16"``).
    """

    name = "openvino"

    def __init__(
        self,
        loaded: LoadedModelDir,
        *,
        device: str = "cpu",
        num_threads: int | None = None,
        num_streams: int | None = None,
        warmup: bool = True,
    ) -> None:
        kind, _ = parse_device(device)
        if kind != "cpu":
            raise BackendUnavailableError(
                f"device={device!r}: OpenVINO GPU plugins are not supported by this SDK yet; use device='cpu', "
                "or export with --backend onnxruntime or tensorrt to run on CUDA"
            )
        for option, value in (("num_threads", num_threads), ("num_streams", num_streams)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{option} must be a positive integer, got {value!r}")
        manifest = loaded.manifest
        self.device = device
        self.min_batch, self.max_batch = manifest.input.min_batch, manifest.input.max_batch
        core = ov.Core()
        model = _read_model(core, loaded)
        self.input_name, self.input_dtype = self._check_input(loaded, model)
        self.output_names = self._check_outputs(loaded, model)
        # dtypes are not compared: this backend casts outputs to the contract's (OpenVINO may give i64)
        check_signature(
            manifest, loaded.model_path, input_shape=_dims(model.inputs[0].get_partial_shape()),
            outputs={name: (None, _dims(o.get_partial_shape())) for name, o in zip(self.output_names, model.outputs)},
        )
        self._bound_batch(loaded, model)

        config: dict[str, Any] = {
            ov_hints.inference_precision: _inference_precision(core, manifest.precision, _has_bf16(model)),
            ov_hints.performance_mode: ov_hints.PerformanceMode.LATENCY,
        }
        if num_threads is not None:
            config[ov_props.inference_num_threads] = num_threads
        if num_streams is not None:
            config[ov_props.num_streams] = num_streams
        try:
            self.compiled = core.compile_model(model, _OV_DEVICE, config)
        except RuntimeError as exc:
            raise BackendUnavailableError(
                f"OpenVINO {_version()} cannot compile {loaded.model_path} for the CPU: {_reason(exc)}. "
                "Upgrade openvino or re-export the model"
            ) from exc
        self.inference_precision: str = self.compiled.get_property(ov_hints.inference_precision).get_type_name()
        self._outputs = [(name, self.compiled.output(name)) for name in self.output_names]
        # one infer request reused across calls; requests are not thread-safe
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()

        h, w = input_hw_bounds(manifest)[0]
        if warmup:
            outputs = self.infer(np.zeros((self.min_batch, 3, h, w), self.input_dtype))
            check_run_outputs(outputs, manifest, self.min_batch, loaded.model_path)
        log.debug(
            "openvino %s on %s: %s precision %s, %s streams, %s threads", _version(), loaded.model_path,
            _OV_DEVICE, self.inference_precision, self.compiled.get_property(ov_props.num_streams),
            self.compiled.get_property(ov_props.inference_num_threads),
        )

    def infer(self, batch: np.ndarray, image_sizes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Run ``batch`` [B, 3, H, W] (min_batch <= B <= max_batch; ``image_sizes`` as
        ``Backend.infer``); returns every graph output by name (contract 2: ``num_dets``
        int32 [B, 1], ``boxes`` float32 [B, K, 4], ``scores`` float32 [B, K], ``labels``
        int32 [B, K])."""
        if batch.dtype != self.input_dtype:
            batch = batch.astype(self.input_dtype)
        batch = np.ascontiguousarray(batch)
        with self._lock:
            # share_inputs: the request reads ``batch`` in place (infer is synchronous, so it
            # stays alive and unchanged); share_outputs=False: results are copies, not views
            # of the request's buffers, which the next call overwrites
            feed = {self.input_name: batch}
            if self.takes_sizes:
                feed[SIZES_INPUT] = sizes_input(batch, image_sizes)
            results = self._request.infer(feed, share_inputs=True)
            outputs = {name: results[port] for name, port in self._outputs}
        return {
            name: value.astype(OUTPUT_DTYPES[name], copy=False) if name in OUTPUT_DTYPES else value
            for name, value in outputs.items()
        }

    def _check_input(self, loaded: LoadedModelDir, model: Any) -> tuple[str, np.dtype]:
        spec = loaded.manifest.input
        inputs = model.inputs
        names = [next((n for n in (spec.name, SIZES_INPUT) if n in i.get_names()), i.get_any_name()) for i in inputs]
        self.takes_sizes = check_graph_inputs(names, loaded.manifest, loaded.model_path)
        element = inputs[0].get_element_type().get_type_name()
        if _INPUT_DTYPES.get(element) != spec.dtype:
            raise ModelDirError(
                f"{loaded.model_path} takes {element}, the manifest says {spec.dtype}; re-export the model_dir"
            )
        return spec.name, np.dtype(spec.dtype)

    def _check_outputs(self, loaded: LoadedModelDir, model: Any) -> list[str]:
        names = [o.get_any_name() for o in model.outputs]
        missing = [n for n in CONTRACT_OUTPUTS if not any(n in o.get_names() for o in model.outputs)]
        if missing:
            raise ModelDirError(
                f"{loaded.model_path} lacks the detection outputs {missing} (has {names}); re-export the model_dir"
            )
        # the contract name where an output tensor has several names
        return [next((n for n in (*OUTPUT_DTYPES, o.get_any_name()) if n in o.get_names())) for o in model.outputs]

    def _bound_batch(self, loaded: LoadedModelDir, model: Any) -> None:
        """Fix the input to [min_batch..max_batch, 3, H, W]: bounded shapes let the CPU
        plugin plan its memory once instead of per new batch size."""
        shape = model.inputs[0].get_partial_shape()
        batch = shape[0]
        if batch.is_static and not self.min_batch == self.max_batch == batch.get_length():
            raise ModelDirError(
                f"{loaded.model_path} has a fixed batch of {batch.get_length()} but the manifest says "
                f"{self.min_batch}..{self.max_batch}; re-export the model_dir"
            )
        h, w = loaded.manifest.input.hw
        dims = [
            ov.Dimension(self.min_batch, self.max_batch),
            shape[1],
            ov.Dimension(h) if h > 0 else shape[2],
            ov.Dimension(w) if w > 0 else shape[3],
        ]
        shapes = {self.input_name: ov.PartialShape(dims)}
        if self.takes_sizes:
            shapes[SIZES_INPUT] = ov.PartialShape([ov.Dimension(self.min_batch, self.max_batch), 2])
        try:
            model.reshape(shapes)
        except RuntimeError as exc:
            raise ModelDirError(
                f"{loaded.model_path} does not accept the manifest's input {list(loaded.manifest.input.shape)} with "
                f"batch {self.min_batch}..{self.max_batch} ({_reason(exc)}); re-export the model_dir"
            ) from exc


def _dims(shape: Any) -> list[int | None] | None:
    """An OpenVINO partial shape as a list: ints where static, None where dynamic (None: dynamic rank)."""
    if shape.rank.is_dynamic:
        return None
    return [dim.get_length() if dim.is_static else None for dim in shape]


def _read_model(core: Any, loaded: LoadedModelDir) -> Any:
    try:
        # model.bin is found beside model.xml by its stem; load_model_dir checked both hashes
        return core.read_model(str(loaded.model_path))
    except RuntimeError as exc:
        exported_with = loaded.manifest.library_versions.get("openvino", "unknown")
        raise BackendUnavailableError(
            f"OpenVINO {_version()} cannot read {loaded.model_path} (exported next to openvino "
            f"{exported_with}): {_reason(exc)}. Upgrade openvino or re-export the model"
        ) from exc


def _inference_precision(core: Any, precision: str, graph_has_bf16: bool) -> Any:
    """The ``INFERENCE_PRECISION_HINT`` for a model_dir of ``precision`` (module docstring)."""
    if precision not in ("fp32", "fp16", "bf16", "int8"):
        raise ModelDirError(
            f"the openvino backend does not know precision {precision!r}; upgrade sdk (pip install -U sdk-detect)"
        )
    if precision == "bf16":
        capabilities = core.get_property(_OV_DEVICE, ov_props.device.capabilities)
        if "BF16" not in capabilities:
            raise BackendUnavailableError(
                f"this bf16 model needs a CPU with bfloat16 support (AVX512_BF16 or AMX), but OpenVINO reports "
                f"only {sorted(capabilities)}; export with --precision fp32 or int8 for this machine"
            )
        if not graph_has_bf16:
            raise ModelDirError(
                "the manifest says bf16 but the IR has no bfloat16 layers; re-export with this sdk "
                "(sdk export --backend openvino --precision bf16)"
            )
    if precision == "fp16":
        log.info("fp16 model on OpenVINO's CPU plugin: computed in f32 (fp16 weights upcast); "
                 "export --precision bf16 or int8 for a faster CPU model")
    return ov.Type.f32


def _has_bf16(model: Any) -> bool:
    """Whether the IR computes anything in bf16 itself (bf16 weights or casts)."""
    return any(out.get_element_type() == ov.Type.bf16 for op in model.get_ordered_ops() for out in op.outputs())


def _reason(exc: BaseException) -> str:
    """OpenVINO's multi-line error as one line, without its "Check ... failed at <file>" frame."""
    lines = [line.strip().lstrip("-").strip() for line in str(exc).splitlines()]
    useful = [line for line in lines if line and not line.startswith(("Check ", "Exception from", "Summary:"))]
    return (" ".join(useful) or type(exc).__name__)[:300]


def _version() -> str:
    return ov.__version__.split("-")[0]  # "2026.4.1-22982-e213a147257-releases/2026/4" -> "2026.4.1"
