"""AOTInductor backend: runs ``model.pt2`` (``sdk export --backend aoti``) on CPU or CUDA.

Imports torch (this backend only). The package was compiled for one device kind and
calls the SDK's custom ops back in Python, so ``sdk.trt_plugins`` is imported before
the package is loaded. A ``.pt2`` holds a native shared library that loading runs:
``load_model_dir`` has already checked its sha256 against the manifest, and only
model_dirs from a trusted source should be loaded at all (as with any native plugin).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from sdk.errors import BackendUnavailableError, ModelDirError, require
from sdk.manifest import CONTRACT_OUTPUTS
from sdk.runtime.base import parse_device

if TYPE_CHECKING:  # pragma: no cover
    from sdk.manifest import LoadedModelDir

log = logging.getLogger(__name__)

_CONTRACT_DTYPES = {"num_dets": np.int32, "boxes": np.float32, "scores": np.float32, "labels": np.int32}


class AOTIBackend:
    """``infer(batch [B, 3, H, W]) -> {output name: ndarray}`` with an AOTInductor package.

    Args:
        loaded: a validated model_dir whose backend is ``"aoti"``.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; must be the device kind the
            package was compiled for (the manifest's ``AOTI_DEVICE_KEY`` metadata).
        num_threads: CPU threads for torch's own kernels (default: torch's).
        warmup: run one batch at load, so the first real call is not the slow one.
    """

    name = "aoti"

    def __init__(
        self, loaded: LoadedModelDir, *, device: str = "cpu", num_threads: int | None = None, warmup: bool = True
    ) -> None:
        torch = require("torch", extra="torch", purpose="The aoti backend")
        import sdk.trt_plugins  # noqa: F401  (the package calls torch.ops.sdk.* back)

        manifest = loaded.manifest
        self.device = _torch_device(torch, device)
        if num_threads:
            torch.set_num_threads(num_threads)
        try:
            self.runner = torch._inductor.aoti_load_package(
                str(loaded.model_path), device_index=self.device.index if self.device.type == "cuda" else -1
            )
        except RuntimeError as exc:
            raise ModelDirError(
                f"torch {torch.__version__} cannot load {loaded.model_path} (exported with torch "
                f"{manifest.library_versions.get('torch', 'unknown')}): {str(exc).strip()[:300]}. "
                "AOTInductor packages run only with the torch version and platform they were compiled with: "
                "re-export the model here"
            ) from exc
        compiled_for = self.runner.get_metadata().get("AOTI_DEVICE_KEY", "cpu")
        if compiled_for != self.device.type:
            raise BackendUnavailableError(
                f"{loaded.model_path} was compiled for {compiled_for}, not device={device!r}: run it with "
                f"device={compiled_for!r} or re-export with `sdk export CKPT --backend aoti --device {device}`"
            )
        self.min_batch, self.max_batch = manifest.input.min_batch, manifest.input.max_batch
        self.input_dtype = np.dtype(manifest.input.dtype)
        self.output_names = [o.name for o in manifest.outputs]
        missing = [n for n in CONTRACT_OUTPUTS if n not in self.output_names]
        if missing:  # pragma: no cover - the manifest parser already enforces this
            raise ModelDirError(f"{loaded.root}: manifest outputs lack {missing}; re-export the model_dir")
        h, w = manifest.input.hw
        if warmup and h > 0 and w > 0:
            self.infer(np.zeros((self.min_batch, 3, h, w), self.input_dtype))
        log.debug("aoti package %s on %s", loaded.model_path, self.device)

    def infer(self, batch: np.ndarray, image_sizes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Run ``batch`` [B, 3, H, W]; returns the contract outputs (numpy, contract dtypes).
        ``image_sizes`` is ignored: an AOTInductor package has one static input size."""
        import torch

        if batch.dtype != self.input_dtype:
            batch = batch.astype(self.input_dtype)
        with torch.inference_mode():
            images = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            outputs = self.runner(images)
        return to_numpy_outputs(outputs, self.output_names)


def to_numpy_outputs(outputs: Any, names: list[str]) -> dict[str, np.ndarray]:
    """The package's output tensors (in manifest order) as ``{name: ndarray}``, contract dtypes."""
    if len(outputs) != len(names):
        raise ModelDirError(f"the aoti package returned {len(outputs)} outputs, the manifest lists {names}")
    result = {}
    for name, tensor in zip(names, outputs):
        array = tensor.detach().cpu().numpy()
        dtype = _CONTRACT_DTYPES.get(name)
        result[name] = array.astype(dtype, copy=False) if dtype is not None else array
    return result


def _torch_device(torch: Any, device: str):
    kind, index = parse_device(device)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"device={device!r} but torch sees no CUDA GPU; run a CPU-compiled aoti model_dir with device='cpu'"
            )
        if index >= torch.cuda.device_count():
            raise BackendUnavailableError(f"device={device!r} but torch sees {torch.cuda.device_count()} GPU(s)")
        return torch.device("cuda", index)
    return torch.device("cpu")
