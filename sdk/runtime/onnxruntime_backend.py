"""ONNX Runtime backend: runs ``model.onnx`` from a model_dir on CPU or the CUDA EP.

``device="cuda[:N]"`` needs onnxruntime-gpu *instead of* onnxruntime (``pip install
'sdk-detect[gpu]'``; both install the module ``onnxruntime``, so they must not be
installed side by side). The graph runs as exported: an fp16 model_dir's graph is the
fp16 network, so CUDA runs it in half precision with no runtime setting.

Torch-free. Session settings for throughput on CPU: intra-op threads = physical
cores (hyper-threads only contend for the same FMA units), one inter-op thread with
sequential execution (a detector graph is a chain; parallel branches buy nothing and
cost wake-ups), every graph optimization on. Graphs of the ``tensorrt`` flavor
(``sdk::`` custom-op nodes) run through the ONNX Runtime implementation of those
ops in ``sdk.trt_plugins.ort_ops``.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from sdk.errors import BackendUnavailableError, ModelDirError
from sdk.manifest import CONTRACT_OUTPUTS
from sdk.runtime.base import SIZES_INPUT, check_graph_inputs, input_hw_bounds, parse_device, sizes_input
from sdk.runtime.graph_check import check_run_outputs, check_signature

if TYPE_CHECKING:  # pragma: no cover
    from sdk.manifest import LoadedModelDir

log = logging.getLogger(__name__)

_ORT_DTYPES = {"tensor(uint8)": "uint8", "tensor(float)": "float32", "tensor(float16)": "float16",
               "tensor(int32)": "int32", "tensor(int64)": "int64"}


class OnnxRuntimeBackend:
    """``infer(batch [B, 3, H, W]) -> {output name: ndarray}`` with one ONNX Runtime session.

    Args:
        loaded: a validated model_dir (``sdk.manifest.load_model_dir``).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (CUDA needs onnxruntime-gpu).
        intra_op_threads: CPU threads per inference; default the physical cores this
            process may run on.
        warmup: run one batch at load, so the first real call is not the slow one.
    """

    name = "onnxruntime"

    def __init__(
        self,
        loaded: LoadedModelDir,
        *,
        device: str = "cpu",
        intra_op_threads: int | None = None,
        warmup: bool = True,
    ) -> None:
        manifest = loaded.manifest
        self.device = device
        plugin_ops = _plugin_ops(manifest.plugins, manifest.flavor)
        options = plugin_ops.session_options() if plugin_ops else ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads or physical_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = _providers(device)
        if manifest.precision == "fp16" and providers[0] == "CPUExecutionProvider":
            log.info("fp16 model on ONNX Runtime's CPU provider: its fp16 layers run as fp32 kernels between casts "
                     "(no speed-up); on a CPU export --precision int8, or --backend openvino --precision bf16")
        self.session = _create_session(loaded, options, providers, plugin_ops)
        if providers[0] != "CPUExecutionProvider" and "CUDAExecutionProvider" not in self.session.get_providers():
            raise BackendUnavailableError(
                f"ONNX Runtime could not start its CUDA provider for device={device!r} (CUDA/cuDNN libraries "
                "missing or mismatched); check `nvidia-smi` and the onnxruntime-gpu install, or use device='cpu'"
            )

        self.input_name, self.input_dtype, model_batch = self._check_input(loaded)
        self.output_names = self._check_outputs(loaded)
        self.min_batch, self.max_batch = manifest.input.min_batch, manifest.input.max_batch
        if isinstance(model_batch, int) and not self.min_batch == self.max_batch == model_batch:
            raise ModelDirError(
                f"{loaded.model_path} has a fixed batch of {model_batch} but the manifest says "
                f"{self.min_batch}..{self.max_batch}; re-export the model_dir"
            )
        check_signature(
            manifest, loaded.model_path, input_shape=self.session.get_inputs()[0].shape,
            outputs={o.name: (_ORT_DTYPES.get(o.type), o.shape) for o in self.session.get_outputs()},
            metadata=self.session.get_modelmeta().custom_metadata_map,
        )
        h, w = input_hw_bounds(manifest)[0]
        if warmup:
            outputs = self.infer(np.zeros((self.min_batch, 3, h, w), self.input_dtype))
            check_run_outputs(outputs, manifest, self.min_batch, loaded.model_path)
        log.debug("onnxruntime session on %s, providers %s", loaded.model_path, self.session.get_providers())

    def infer(self, batch: np.ndarray, image_sizes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Run ``batch`` [B, 3, H, W] (and ``image_sizes``, ``Backend.infer``); returns
        every graph output by name (contract 2)."""
        if batch.dtype != self.input_dtype:
            batch = batch.astype(self.input_dtype)
        feed = {self.input_name: np.ascontiguousarray(batch)}
        if self.takes_sizes:
            feed[SIZES_INPUT] = sizes_input(batch, image_sizes)
        outputs = self.session.run(self.output_names, feed)
        return dict(zip(self.output_names, outputs))

    def _check_input(self, loaded: LoadedModelDir) -> tuple[str, np.dtype, int | str | None]:
        inputs = self.session.get_inputs()
        spec = loaded.manifest.input
        self.takes_sizes = check_graph_inputs([i.name for i in inputs], loaded.manifest, loaded.model_path)
        dtype = _ORT_DTYPES.get(inputs[0].type)
        if dtype != spec.dtype:
            raise ModelDirError(
                f"{loaded.model_path} takes {inputs[0].type}, the manifest says {spec.dtype}; re-export the model_dir"
            )
        return inputs[0].name, np.dtype(dtype), inputs[0].shape[0]

    def _check_outputs(self, loaded: LoadedModelDir) -> list[str]:
        names = [o.name for o in self.session.get_outputs()]
        missing = [n for n in CONTRACT_OUTPUTS if n not in names]
        if missing:
            raise ModelDirError(
                f"{loaded.model_path} lacks the detection outputs {missing} (has {names}); re-export the model_dir"
            )
        return names


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-thread siblings once)."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        try:
            cores.add(Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip())
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


def _plugin_ops(plugins: tuple[str, ...], flavor: str | None) -> Any:
    """``sdk.trt_plugins.ort_ops`` when the graph has ``sdk::`` custom-op nodes, else ``None``.

    That module implements the nodes with the torch reference ops, so running a
    TensorRT-flavor graph in ONNX Runtime imports torch (a CPU test path, not the
    production one: export ``--backend onnxruntime`` for stock ONNX ops).
    """
    if not plugins and flavor != "tensorrt":
        return None
    try:
        ort_ops = importlib.import_module("sdk.trt_plugins.ort_ops")
    except ImportError as exc:
        raise BackendUnavailableError(
            f"this model uses the custom ops {list(plugins)}; running them in ONNX Runtime needs "
            f"sdk.trt_plugins.ort_ops and onnxruntime-extensions ({exc}). Install them with "
            "pip install 'sdk-detect[export]', or export with --backend onnxruntime (stock ONNX ops)"
        ) from exc
    return ort_ops


#: distributions that install the ``onnxruntime`` module; only one may be installed
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")
SWITCH_TO_GPU = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'sdk-detect[gpu]'"


def installed_onnxruntime_distributions() -> list[str]:
    """Which of ``ORT_DISTRIBUTIONS`` are installed (package metadata; imports nothing)."""
    from importlib import metadata

    found = []
    for name in ORT_DISTRIBUTIONS:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def cuda_provider_problem(available: list[str], distributions: list[str]) -> str | None:
    """Why ONNX Runtime cannot run on CUDA here, as one sentence (``None``: it can).

    ``available``: ``onnxruntime.get_available_providers()``; ``distributions``:
    ``installed_onnxruntime_distributions()``. onnxruntime and onnxruntime-gpu install the
    same module, so with both installed whichever was installed last wins.
    """
    if "CUDAExecutionProvider" in available:
        return None
    if "onnxruntime-gpu" in distributions and len(distributions) > 1:
        return (f"{' and '.join(distributions)} are installed side by side and share one module, so the CUDA "
                f"provider is gone; keep only the GPU build: {SWITCH_TO_GPU}")
    if "onnxruntime-gpu" in distributions:
        return (f"onnxruntime-gpu is installed but offers only {available}: its CUDA/cuDNN libraries do not "
                "load here (check `nvidia-smi` and the CUDA version onnxruntime-gpu was built for)")
    return f"this onnxruntime offers only {available}: {SWITCH_TO_GPU}"


def _providers(device: str) -> list:
    """Execution providers for ``device``: CUDA (that GPU) then CPU for the nodes CUDA lacks."""
    kind, index = parse_device(device)
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    problem = cuda_provider_problem(ort.get_available_providers(), installed_onnxruntime_distributions())
    if problem:
        raise BackendUnavailableError(f"device={device!r} needs ONNX Runtime's CUDA provider: {problem}; "
                                      "or use device='cpu'")
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]


def _create_session(
    loaded: LoadedModelDir, options: ort.SessionOptions, providers: list, plugin_ops: Any
) -> ort.InferenceSession:
    try:
        # sdk:: nodes become onnxruntime-extensions ops in an in-memory copy of the graph
        model = (
            plugin_ops.prepare_model(loaded.model_path).SerializeToString() if plugin_ops else str(loaded.model_path)
        )
        return ort.InferenceSession(model, sess_options=options, providers=providers)
    except ort_state.NotImplemented as exc:
        precision = loaded.manifest.precision
        raise BackendUnavailableError(
            f"ONNX Runtime {ort.__version__} ({', '.join(p if isinstance(p, str) else p[0] for p in providers)}) has "
            f"no kernel for a node of the {precision} graph {loaded.model_path}: {str(exc).strip()[:200]}. Run this "
            "precision elsewhere (bf16: --backend openvino) or export --precision fp32 or int8"
        ) from exc
    except (ort_state.Fail, ort_state.InvalidGraph, ort_state.InvalidProtobuf) as exc:
        exported_with = loaded.manifest.library_versions.get("onnxruntime", "unknown")
        raise BackendUnavailableError(
            f"ONNX Runtime {ort.__version__} cannot load {loaded.model_path} (exported next to onnxruntime "
            f"{exported_with}): {str(exc).strip()[:300]}. Upgrade onnxruntime or re-export the model"
        ) from exc
