"""The backend interface behind ``Detector`` and the factory that picks one.

A backend runs one network batch and returns the detection contract
(docs/architecture.md, contract 2) as numpy arrays; everything before (decoding,
``sdk.preprocess``) and after (``sdk.postprocess``) is shared by all backends.

Backend modules are imported only when a model_dir asks for them, so running an
ONNX model never imports TensorRT or torch. Each backend module
``sdk.runtime.<backend>_backend`` exposes a class (named in ``_BACKEND_CLASSES``)
constructed as ``cls(loaded_model_dir, device=device, **options)``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from sdk.errors import BackendUnavailableError, ModelDirError
from sdk.preprocess import dynamic_input_range

if TYPE_CHECKING:  # pragma: no cover
    from sdk.manifest import LoadedModelDir

# manifest backend -> (module, class)
_BACKEND_CLASSES = {
    "onnxruntime": ("sdk.runtime.onnxruntime_backend", "OnnxRuntimeBackend"),
    "openvino": ("sdk.runtime.openvino_backend", "OpenVINOBackend"),
    "tensorrt": ("sdk.runtime.tensorrt_backend", "TensorRTBackend"),
    "aoti": ("sdk.runtime.aoti_backend", "AOTIBackend"),
}


@runtime_checkable
class Backend(Protocol):
    """Runs a network on one preprocessed batch.

    Attributes:
        name: the backend's name (``"onnxruntime"``, ``"openvino"``, ``"tensorrt"``, ``"aoti"``, ``"torch"``).
        min_batch, max_batch: batch sizes ``infer`` accepts. ``Detector`` splits inputs
            into chunks of at most ``max_batch`` and pads a smaller final chunk up to
            ``min_batch`` (a fixed-batch engine has ``min_batch == max_batch``).
        input_dtype: dtype ``infer`` expects (``uint8`` when the graph normalizes).
    """

    name: str
    min_batch: int
    max_batch: int
    input_dtype: np.dtype

    def infer(self, batch: np.ndarray, image_sizes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Run ``batch`` [B, 3, H, W] (``input_dtype``) and return the contract outputs:
        ``num_dets`` int32 [B, 1], ``boxes`` float32 [B, K, 4] xyxy network-input pixels,
        ``scores`` float32 [B, K] descending, ``labels`` int32 [B, K]. ``image_sizes``
        int [B', 2] (``sdk.preprocess.content_sizes``): each image's content (h, w),
        which a dynamic-shape graph zeroes the padding around and clips boxes to;
        other graphs ignore it."""
        ...


def create_backend(loaded: LoadedModelDir, *, device: str = "cpu", **options: Any) -> Backend:
    """Construct the backend ``loaded.manifest.backend`` names on ``device``.

    ``options`` go to the backend class (onnxruntime: ``intra_op_threads``, ``warmup``;
    openvino: ``num_threads``, ``num_streams``, ``warmup``;
    e.g. one thread per instance when a server runs several). Raises
    ``BackendUnavailableError`` when that backend (its SDK module, its library or the
    device) is not available here.
    """
    name = loaded.manifest.backend
    if name not in _BACKEND_CLASSES:
        raise BackendUnavailableError(f"unknown backend {name!r}; this sdk runs {sorted(_BACKEND_CLASSES)}")
    module_name, class_name = _BACKEND_CLASSES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise BackendUnavailableError(
                f"the {name!r} backend is not available in this sdk installation ({module_name} is missing); "
                "export the model for another backend, e.g. `sdk export CKPT --backend onnxruntime`"
            ) from exc
        if exc.name and exc.name.split(".")[0] != "sdk":
            package = exc.name.split(".")[0]
            hint = ""
            if package == "onnxruntime":
                hint = ": pip install 'sdk-detect[cpu]' (or 'sdk-detect[gpu]' for NVIDIA GPUs)"
            raise BackendUnavailableError(
                f"the {name!r} backend needs the Python package {package!r}, which is not installed{hint}"
            ) from exc
        raise  # an sdk module is missing: a packaging bug, keep the traceback
    return getattr(module, class_name)(loaded, device=device, **options)


SIZES_INPUT = "image_sizes"


def check_graph_inputs(names: list[str], manifest: Any, model_path: Any) -> bool:
    """Whether the graph (input ``names``) takes ``image_sizes``; ``ModelDirError`` unless
    its inputs are ``[images]`` or, for a dynamic-shape graph (H, W = -1), ``[images,
    image_sizes]`` (int64 [B, 2], each image's content (h, w) at the top left)."""
    allowed = [[manifest.input.name]]
    if manifest.input.hw == (-1, -1):
        allowed.append([manifest.input.name, SIZES_INPUT])
    if list(names) not in allowed:
        raise ModelDirError(f"{model_path} takes inputs {list(names)}, the manifest expects "
                            f"{' or '.join(map(str, allowed))}; re-export the model_dir")
    return len(names) == 2


def sizes_input(batch: np.ndarray, image_sizes: np.ndarray | None) -> np.ndarray:
    """``image_sizes`` int64 [B, 2] for ``batch`` [B, 3, H, W]: the given rows (one per
    real image) and the full (H, W) for the rest (a fixed-batch engine's blank rows), or
    the full (H, W) for every row when ``image_sizes`` is None."""
    sizes = np.empty((batch.shape[0], 2), np.int64)
    sizes[:] = batch.shape[-2:]
    if image_sizes is not None:
        given = np.asarray(image_sizes, np.int64).reshape(-1, 2)[: batch.shape[0]]
        sizes[: len(given)] = given
    return sizes


def input_hw_bounds(manifest: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(typical, largest)`` network-input (H, W) of a model_dir: its static size twice,
    or for a dynamic-shape graph (H, W = -1) the typical and largest sizes its
    preprocess record makes (``sdk.preprocess.dynamic_input_range``). Backends warm up
    with the first and size device buffers by the second."""
    h, w = manifest.input.hw
    if h > 0 and w > 0:
        return (h, w), (h, w)
    _, typical, largest = dynamic_input_range(manifest.preprocess)
    return typical, largest


def parse_device(device: str) -> tuple[str, int]:
    """``"cpu"`` -> ("cpu", 0); ``"cuda"`` / ``"cuda:1"`` -> ("cuda", index)."""
    kind, _, index = str(device).partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise BackendUnavailableError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return kind, int(index or 0)
