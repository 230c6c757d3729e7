"""torch -> ONNX for DeployModules (``sdk.models.deploy``), per custom-op flavor.

File in, file out: ``export_onnx(deploy_module, "model.onnx", flavor=..., ...)``
traces with ``torch.onnx.export(dynamo=True)``, lowers ``torch.ops.sdk.*`` with
``sdk.trt_plugins.onnx_lowerings.translation_table(flavor, opset)``, makes the batch
dimension dynamic (1..max_batch), runs the ONNX checker and shape inference, and
optionally ``onnxsim`` (skipped, with a log line, when it is missing or fails).

Flavors (docs/architecture.md, contract 3): ``onnxruntime`` = standard ONNX ops only;
``tensorrt`` = one ``sdk::BatchedNMS`` / ``sdk::MultiLevelRoIAlign`` node per op.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import onnx
import torch

from sdk.errors import ConfigError, SDKError
from sdk.runtime.base import SIZES_INPUT  # a dynamic-shape graph's second input, int64 [B, 2]

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAMES = ("num_dets", "boxes", "scores", "labels")
DEFAULT_OPSET = 18
SDK_DOMAIN = "sdk"


class ExportError(SDKError):
    """The model could not be exported to ONNX."""


def export_onnx(
    deploy_module: torch.nn.Module,
    out_path: str | os.PathLike,
    *,
    flavor: str,
    input_shape: Sequence[int],
    max_batch: int,
    opset: int = DEFAULT_OPSET,
    input_dtype: torch.dtype = torch.uint8,
    simplify: bool = False,
    dynamic_hw: tuple[int, int] | None = None,
) -> Path:
    """Export ``deploy_module`` to a self-contained ONNX file at ``out_path``.

    Args:
        deploy_module: ``images [B, 3, H, W] -> (num_dets, boxes, scores, labels)``.
        flavor: ``"onnxruntime"`` or ``"tensorrt"`` (lowering of the custom ops).
        input_shape: (H, W) of the static network input; with ``dynamic_hw``, the
            (H, W) traced (both multiples of the divisor).
        max_batch: largest batch the graph accepts; the batch dimension is dynamic
            in [1, max_batch].
        input_dtype: ``torch.uint8`` (normalization in the graph) or ``torch.float32``.
        simplify: run ``onnxsim`` on the result (optional; kept only if it checks).
        dynamic_hw: ``(divisor, max_side)``: H and W become dynamic, each a multiple of
            ``divisor`` up to ``max_side`` (a keep_ratio record without a canvas), and
            the graph takes a second input ``image_sizes`` int64 [B, 2]: each image's
            content (h, w) at the top left (torchvision's ``ImageList.image_sizes``).

    Returns ``Path(out_path)``. Graph input ``images`` (and ``image_sizes`` with ``dynamic_hw``); outputs ``num_dets`` int32
    [B, 1], ``boxes`` float32 [B, K, 4], ``scores`` float32 [B, K], ``labels`` int32 [B, K]
    and, for a module whose ``output_names`` add it (``MaskRCNNDeploy``), ``masks``
    float32 [B, K, M, M].
    """
    from sdk.trt_plugins.onnx_lowerings import FLAVORS, translation_table

    if flavor not in FLAVORS:
        raise ConfigError(f"flavor must be one of {list(FLAVORS)}, got {flavor!r}")
    if max_batch < 1:
        raise ConfigError(f"max_batch must be >= 1, got {max_batch}")
    height, width = (int(v) for v in input_shape[-2:])
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # A traced batch of 1 would be specialized by torch.export: trace at 2 (batch 1 only: static).
    example = _example_images(min(max_batch, 2), height, width, input_dtype)
    inputs: tuple[torch.Tensor, ...] = (example,)
    dims: dict[int, object] = {0: torch.export.Dim("batch", min=1, max=max_batch)} if max_batch > 1 else {}
    if dynamic_hw is not None:
        divisor, max_side = dynamic_hw
        if height % divisor or width % divisor or max(height, width) > max_side:
            raise ConfigError(f"traced size {height}x{width} must be multiples of {divisor} up to {max_side}")
        # H = divisor * n: torch.export then knows every stride-2 level divides exactly
        dims[2] = divisor * torch.export.Dim("height_blocks", min=1, max=max_side // divisor)
        dims[3] = divisor * torch.export.Dim("width_blocks", min=1, max=max_side // divisor)
        # each image's content (h, w): the graph zeroes the padding and clips boxes to it
        inputs = (example, torch.tensor([[height, width]] * example.shape[0], dtype=torch.int64))
    dynamic_shapes = None
    if dims:
        dynamic_shapes = (dims,) if len(inputs) == 1 else (dims, {0: dims[0]} if 0 in dims else None)
    deploy_module = deploy_module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings(), _quiet_loggers("onnx_ir", "onnxscript", "torch.onnx"):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                deploy_module,
                inputs,
                dynamo=True,
                opset_version=opset,
                custom_translation_table=translation_table(flavor, opset),
                input_names=[INPUT_NAME, SIZES_INPUT][: len(inputs)],
                output_names=list(getattr(deploy_module, "output_names", OUTPUT_NAMES)),
                dynamic_shapes=dynamic_shapes,
                external_data=False,
                optimize=True,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; name the stage and model
        raise ExportError(f"torch.onnx.export failed for {type(deploy_module).__name__} ({flavor} flavor): {exc}") from exc
    save_onnx_atomic(program.model_proto, out)
    check_onnx(out)
    if simplify:
        simplify_onnx(out)
    return out


@contextlib.contextmanager
def _quiet_loggers(*names: str):
    """The exporter's passes log every rewrite at INFO: keep the CLI output readable."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _example_images(batch: int, height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    if dtype == torch.uint8:
        return torch.randint(0, 256, (batch, 3, height, width), dtype=torch.uint8, generator=generator)
    return torch.randn((batch, 3, height, width), generator=generator).to(dtype)


def save_onnx_atomic(model: onnx.ModelProto, out: Path) -> None:
    """Write ``model`` to ``out`` through a temp file: ``out`` is never half written."""
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        onnx.save_model(model, tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_onnx(path: str | os.PathLike) -> onnx.ModelProto:
    """ONNX checker + strict shape inference on ``path``; ``ExportError`` if either fails.
    ``sdk::`` custom nodes are skipped by the checker (their schemas live in TensorRT)."""
    try:
        onnx.checker.check_model(str(path), full_check=False)
        model = onnx.load(str(path))
        return onnx.shape_inference.infer_shapes(model, check_type=True)
    except Exception as exc:
        raise ExportError(f"exported ONNX file {path} is invalid: {exc}") from exc


def uses_custom_ops(path: str | os.PathLike) -> list[str]:
    """The ``sdk::`` op types in the graph at ``path`` (the plugins a runtime needs)."""
    model = onnx.load(str(path), load_external_data=False)
    return sorted({n.op_type for n in model.graph.node if n.domain == SDK_DOMAIN})


def simplify_onnx(path: str | os.PathLike) -> bool:
    """Replace ``path`` by its ``onnxsim`` simplification when that works and checks.

    Optional: returns False (leaving the file unchanged) when onnxsim is missing, fails,
    or cannot handle the graph (e.g. ``sdk::`` custom nodes).
    """
    try:
        import onnxsim
    except ImportError:
        log.info("onnxsim not installed: skipping simplification")
        return False
    model = onnx.load(str(path))
    if any(n.domain == SDK_DOMAIN for n in model.graph.node):
        log.info("graph has sdk:: custom nodes: skipping onnxsim")
        return False
    try:
        simplified, ok = onnxsim.simplify(model)
    except Exception as exc:  # onnxsim raises assorted errors on graphs it cannot handle
        log.warning("onnxsim failed (%s): keeping the unsimplified graph", exc)
        return False
    if not ok:
        log.warning("onnxsim result did not validate: keeping the unsimplified graph")
        return False
    save_onnx_atomic(simplified, Path(path))
    return True


def set_metadata(path: str | os.PathLike, props: dict[str, str]) -> None:
    """Record ``props`` in the ONNX file's ``metadata_props`` (in place; external data untouched).

    The runtime checks the manifest against these (``sdk.runtime.graph_check``)."""
    model = onnx.load(str(path), load_external_data=False)
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        model.metadata_props.add(key=key, value=str(value))
    onnx.save(model, str(path))
