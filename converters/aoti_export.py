"""torch -> AOTInductor package (``model.pt2``): ``torch.export`` then ``aoti_compile_and_package``.

The DeployModule (``images [B, 3, H, W] -> (num_dets, boxes, scores, labels)``,
docs/architecture.md contract 2) is exported with a dynamic batch dimension and compiled
ahead of time for one device kind (CPU or CUDA). The package holds native code built
for this machine's platform (CPU: its instruction set; CUDA: its compute capability),
so export on the kind of machine that will run it.

The SDK's custom ops (``torch.ops.sdk.*``) are Python ``torch.library`` ops: the
package calls back into them, so whoever loads it must ``import sdk.trt_plugins``
first (``sdk.runtime.aoti_backend`` does).

Half precision (``fp16=True``, CUDA only) is autocast captured in the graph: the
network body runs in float16 while the custom ops get float32 inputs (an autocast rule
registered here casts their floating inputs), so box coordinates and NMS scores keep
float32 precision. Weights stay float32 in the package; Inductor folds their casts.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import torch

import sdk.trt_plugins  # noqa: F401  (registers torch.ops.sdk.* for tracing)
from sdk.errors import BackendUnavailableError, ConfigError
from sdk.preprocess import Preprocess
from sdk.runtime.base import parse_device

log = logging.getLogger(__name__)

#: torch custom ops whose floating inputs are cast to float32 under autocast
FLOAT32_OPS = ("sdk::batched_nms", "sdk::multilevel_roi_align")
_DTYPES = {"uint8": torch.uint8, "float32": torch.float32}
_autocast_registered: set[tuple[str, str]] = set()


def export_aoti(
    deploy_module: torch.nn.Module,
    out_path: str | os.PathLike,
    *,
    input_shape: Sequence[int],
    max_batch: int,
    device: str = "cpu",
    fp16: bool = False,
    input_dtype: str = "uint8",
) -> Path:
    """Export and compile ``deploy_module`` into the AOTInductor package ``out_path``.

    Args:
        deploy_module: takes ``images`` [B, 3, H, W] (``input_dtype``) and returns
            ``(num_dets int32 [B, 1], boxes float32 [B, K, 4], scores float32 [B, K],
            labels int32 [B, K])``; moved to ``device`` and put in eval mode.
        out_path: the ``.pt2`` file to write (parent folders are created).
        input_shape: (H, W) or (B, 3, H, W) of the network input (B is ignored).
        max_batch: the largest batch; the package accepts 1 <= B <= max_batch.
        device: ``"cpu"`` or ``"cuda"`` / ``"cuda:N"``: the device the package runs on.
        fp16: run the network body in float16 (CUDA only; custom ops stay float32).
        input_dtype: ``"uint8"`` (graph normalizes) or ``"float32"`` (normalized input).

    Returns ``out_path`` as a ``Path``. Raises ``ConfigError`` for invalid arguments and
    ``BackendUnavailableError`` when ``device`` is CUDA and torch sees no GPU.
    """
    package, _ = _export_and_compile(
        deploy_module, out_path, input_shape=input_shape, max_batch=max_batch, device=device, fp16=fp16,
        input_dtype=input_dtype,
    )
    return package


def export_aoti_model_dir(
    deploy_module: torch.nn.Module,
    out_dir: str | os.PathLike,
    *,
    model_name: str,
    classes: Sequence[str],
    preprocess: Preprocess,
    postprocess: Mapping[str, float | int],
    max_batch: int,
    device: str = "cpu",
    fp16: bool = False,
    source_checkpoint: str | os.PathLike | None = None,
    extra_files: Sequence[Path] = (),
) -> Path:
    """``export_aoti`` into a complete model_dir (``model.pt2`` + manifest, backend ``"aoti"``,
    plus ``extra_files`` such as ``export.json``, moved in and hashed).

    ``preprocess`` gives the static input size and dtype (uint8 when it normalizes in
    the graph); ``postprocess`` (``{"score_thr", "iou_thr", "max_det"}``) is what the
    DeployModule bakes in; the manifest's ``plugins`` lists the ``sdk::`` ops the
    package calls. Returns ``out_dir``.
    """
    from sdk.converters.model_dir import write_model_dir

    static = preprocess.static_shape
    if static is None:
        raise ConfigError("the aoti backend needs a static input size: use letterbox preprocessing")
    input_dtype = "uint8" if preprocess.normalize_in_graph else "float32"
    with tempfile.TemporaryDirectory(prefix="sdk-aoti-") as work:
        package, plugins = _export_and_compile(
            deploy_module, Path(work) / "model.pt2", input_shape=static, max_batch=max_batch, device=device,
            fp16=fp16, input_dtype=input_dtype,
        )
        return write_model_dir(
            out_dir,
            model_file=package,
            backend="aoti",
            flavor=None,
            precision="fp16" if fp16 else "fp32",
            model_name=model_name,
            classes=classes,
            preprocess=preprocess,
            postprocess=postprocess,
            input_shape=static,
            max_batch=max_batch,
            input_dtype=input_dtype,
            plugins=plugins,
            source_checkpoint=source_checkpoint,
            extra_files=extra_files,
            move=True,
            mask_size=getattr(deploy_module, "mask_size", None),  # MaskRCNNDeploy: masks [B, K, M, M]
        )


def _export_and_compile(
    deploy_module: torch.nn.Module,
    out_path: str | os.PathLike,
    *,
    input_shape: Sequence[int],
    max_batch: int,
    device: str,
    fp16: bool,
    input_dtype: str,
) -> tuple[Path, list[str]]:
    """``export_aoti``'s work; also returns the ``sdk::`` ops the package calls."""
    h, w = _hw(input_shape)
    if max_batch < 1:
        raise ConfigError(f"max_batch must be >= 1, got {max_batch}")
    if input_dtype not in _DTYPES:
        raise ConfigError(f"input_dtype must be one of {list(_DTYPES)}, got {input_dtype!r}")
    torch_device = _export_device(device)
    if fp16 and torch_device.type != "cuda":
        raise ConfigError("--fp16 with the aoti backend needs --device cuda (AOTInductor fp16 runs on GPUs only)")
    module = PlainTupleOutputs(deploy_module.eval().to(torch_device))
    if fp16:
        module = Autocast(module, device_type="cuda", dtype=torch.float16)
    program = export_program(
        module, input_shape=(h, w), max_batch=max_batch, device=torch_device, input_dtype=input_dtype
    )
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    log.info("compiling %s with AOTInductor for %s (takes a minute)", type(deploy_module).__name__, torch_device)
    package = torch._inductor.aoti_compile_and_package(program, package_path=str(out))
    return Path(package), custom_ops_in(program)


def export_program(
    module: torch.nn.Module,
    *,
    input_shape: tuple[int, int],
    max_batch: int,
    device: torch.device | str = "cpu",
    input_dtype: str = "uint8",
) -> torch.export.ExportedProgram:
    """``torch.export`` ``module`` on a zero batch [B, 3, H, W] with B dynamic in [1, max_batch].

    The example batch has 2 images: ``torch.export`` specializes a dimension whose
    example size is 1, so a batch-1 example would freeze the batch. ``max_batch == 1``
    exports a static batch of one.
    """
    h, w = input_shape
    example_batch = min(2, max_batch)
    images = torch.zeros((example_batch, 3, h, w), dtype=_DTYPES[input_dtype], device=device)
    dynamic = {"images": {0: torch.export.Dim("batch", min=1, max=max_batch)}} if max_batch > 1 else None
    return torch.export.export(module, (images,), dynamic_shapes=dynamic)


def custom_ops_in(program: torch.export.ExportedProgram) -> list[str]:
    """Qualified names (``"sdk::batched_nms"``) of the SDK custom ops ``program`` calls:
    the manifest's ``plugins`` (the runtime must register them before loading)."""
    found = []
    for node in program.graph_module.graph.nodes:
        op = getattr(node.target, "_schema", None)
        if node.op == "call_function" and op is not None and op.name.startswith("sdk::") and op.name not in found:
            found.append(op.name)
    return found


class PlainTupleOutputs(torch.nn.Module):
    """``module``'s outputs as a plain tuple: AOTInductor serializes the output structure
    and cannot serialize a NamedTuple (``DetectionOutputs``) without a registered name;
    the package returns a flat list either way."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.module(images))


class Autocast(torch.nn.Module):
    """Runs ``module`` under ``torch.autocast(device_type, dtype)`` inside ``forward``, so
    ``torch.export`` records the casts (an autocast context around ``export`` is not
    captured). The SDK custom ops get float32 inputs (``register_float32_autocast``).

    ``images`` [B, 3, H, W] -> whatever ``module`` returns (the contract's dtypes are
    produced by the custom op, float32 / int32).
    """

    def __init__(self, module: torch.nn.Module, *, device_type: str, dtype: torch.dtype) -> None:
        super().__init__()
        register_float32_autocast(device_type)
        self.module, self.device_type, self.dtype = module, device_type, dtype

    def forward(self, images: torch.Tensor):
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.module(images)


def register_float32_autocast(device_type: str) -> None:
    """Under autocast on ``device_type``, cast the SDK custom ops' floating inputs to
    float32 (as torchvision does for ``roi_align``): NMS on float16 boxes would lose
    up to half a pixel at 1000 px. Idempotent."""
    for op in FLOAT32_OPS:
        if (op, device_type) not in _autocast_registered:
            torch.library.register_autocast(op, device_type, torch.float32)
            _autocast_registered.add((op, device_type))


def _export_device(device: str) -> torch.device:
    kind, index = parse_device(device)
    if kind == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"exporting for the aoti backend on device={device!r} compiles CUDA kernels and needs a CUDA GPU, "
            "which torch does not see here; export on the GPU machine or use --device cpu"
        )
    return torch.device(f"cuda:{index}" if kind == "cuda" else "cpu")


def _hw(input_shape: Sequence[int]) -> tuple[int, int]:
    dims = [int(d) for d in input_shape]
    if len(dims) == 4 and dims[1] == 3:
        dims = dims[2:]
    if len(dims) != 2 or min(dims) < 1:
        raise ConfigError(
            f"the aoti backend needs a static input size: input_shape (H, W) or (B, 3, H, W), got {tuple(input_shape)}"
            " (use letterbox preprocessing with a fixed size)"
        )
    return dims[0], dims[1]


def export_checkpoint_aoti(model: torch.nn.Module, meta, out_dir: Path, options, checkpoint: Path) -> Path:
    """``sdk.converters.export.EXPORTERS["aoti"]``: eager model + checkpoint meta -> aoti model_dir.

    Device: ``options.device`` when the options carry one, else CUDA when torch sees a
    GPU (the package is compiled for the machine that exports it), else CPU.
    """
    from sdk.converters.export import write_export_info
    from sdk.models.deploy import build_deploy_module

    device = getattr(options, "device", None) or ("cuda" if torch.cuda.is_available() else "cpu")
    deploy = build_deploy_module(model, preprocess=meta.preprocess, postprocess=meta.postprocess)
    with tempfile.TemporaryDirectory(prefix="sdk-aoti-info-") as tmp:
        # written before the compile (the manifest hashes it), so it has no export time; the log has it
        info = write_export_info(Path(tmp), checkpoint, options, seconds=None)
        return export_aoti_model_dir(
            deploy, out_dir, model_name=meta.model_name, classes=meta.classes, preprocess=meta.preprocess,
            postprocess=meta.postprocess, max_batch=options.max_batch, device=device, fp16=options.fp16,
            source_checkpoint=checkpoint, extra_files=[info],
        )
