"""model_dir -> Triton Inference Server model repository (for scale-out beyond ``sdk serve``).

Writes::

    OUT_DIR/<model>/config.pbtxt     # platform, max_batch_size, dynamic_batching, I/O, parameters
    OUT_DIR/<model>/1/model.onnx     # or model.plan for a TensorRT engine (+ ONNX external data)
    OUT_DIR/<model>/README.md        # what the repository model takes and returns

**The difference from ``sdk serve``**: Triton runs the bare network, so its
repository model takes the *network input* — ``images`` uint8 (or float32 when
the graph does not normalize) [N, 3, H, W], already resized, padded and laid out
by ``sdk.preprocess.preprocess_batch`` on the client — and returns boxes in
*network-input pixels* (map them back with each image's ``ImageRecord``, i.e.
``sdk.postprocess.decode_outputs``). ``sdk serve`` instead takes encoded images
or raw RGB pixels of any size and does decoding, preprocessing and box mapping
server side. The preprocessing record and the class list are stored in the
config's ``parameters`` (JSON strings) so a client can do its half exactly.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

from sdk.errors import ConfigError, require
from sdk.manifest import load_model_dir
from sdk.runtime.base import SIZES_INPUT

_PLATFORMS = {"onnxruntime": ("onnxruntime_onnx", "model.onnx"), "tensorrt": ("tensorrt_plan", "model.plan")}
_CONFIG_DTYPES = {"uint8": "TYPE_UINT8", "float32": "TYPE_FP32", "float16": "TYPE_FP16"}


def write_triton_repository(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    model_name: str | None = None,
    max_batch_size: int | None = None,
    max_queue_delay_us: int = 0,
    preferred_batch_sizes: Sequence[int] = (),
    max_queue_size: int = 0,
    instances: int = 1,
    kind: str = "auto",
) -> Path:
    """Write ``model_dir`` as model ``model_name`` (default: the model_dir folder name)
    of the Triton repository ``out_dir``; returns ``out_dir/<model_name>``.

    ``max_batch_size`` defaults to the model_dir's max batch (and may not exceed it);
    ``kind`` is the instance kind: ``"cpu"``, ``"gpu"`` or ``"auto"`` (GPU for
    TensorRT engines, else CPU). The other arguments are Triton's dynamic-batching
    settings. Raises ``ConfigError`` for a model_dir Triton cannot run as is.
    """
    model_config_pb2 = require("tritonclient.grpc.model_config_pb2", extra="serve", purpose="writing a Triton repository")
    text_format = require("google.protobuf.text_format", extra="serve", purpose="writing a Triton repository")
    from sdk.serving.model_config import contract_outputs, descriptive_parameters, dynamic_batching, string_parameters

    loaded = load_model_dir(model_dir)
    manifest = loaded.manifest
    if manifest.backend not in _PLATFORMS:
        raise ConfigError(
            f"Triton has no runtime for the {manifest.backend!r} backend; export with --backend onnxruntime or tensorrt"
        )
    if manifest.backend == "onnxruntime" and manifest.plugins:
        raise ConfigError(
            f"{model_dir} needs the custom ops {list(manifest.plugins)}, which Triton's ONNX Runtime backend lacks; "
            "export with the onnxruntime flavor (stock ONNX ops) for Triton"
        )
    if manifest.min_batch > 1:
        raise ConfigError(
            f"{model_dir} takes only batches of {manifest.min_batch}..{manifest.max_batch}; Triton's dynamic batcher "
            "sends any size from 1: re-export with a batch range starting at 1"
        )
    batch = max_batch_size or manifest.max_batch
    if not 1 <= batch <= manifest.max_batch:
        raise ConfigError(f"max_batch_size must be in 1..{manifest.max_batch} (the model_dir's max batch), got {batch}")
    if kind not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"kind must be 'auto', 'cpu' or 'gpu', got {kind!r}")
    if kind == "auto":
        kind = "gpu" if manifest.backend == "tensorrt" else "cpu"
    name = model_name or Path(loaded.root).resolve().name
    platform, file_name = _PLATFORMS[manifest.backend]

    group = model_config_pb2.ModelInstanceGroup
    config = model_config_pb2.ModelConfig(
        name=name,
        platform=platform,
        max_batch_size=batch,
        input=[
            model_config_pb2.ModelInput(
                name=manifest.input.name,
                data_type=model_config_pb2.DataType.Value(_CONFIG_DTYPES[manifest.input.dtype]),
                dims=list(manifest.input.shape[1:]),
            ),
            # a dynamic-shape graph's second input: each image's content (h, w)
            *([model_config_pb2.ModelInput(name=SIZES_INPUT, data_type=model_config_pb2.DataType.Value("TYPE_INT64"),
                                           dims=[2])] if _takes_sizes(loaded) else []),
        ],
        output=contract_outputs(manifest.max_det),
        dynamic_batching=dynamic_batching(
            preferred_batch_sizes=preferred_batch_sizes, max_queue_delay_us=max_queue_delay_us, max_queue_size=max_queue_size
        ),
        instance_group=[group(count=instances, kind=group.KIND_GPU if kind == "gpu" else group.KIND_CPU)],
    )
    info = {"network": manifest.model_name, "precision": manifest.precision, "box_format": "xyxy, network-input pixels"}
    string_parameters(config, descriptive_parameters(manifest.classes, manifest.preprocess.to_json(), info))

    target = Path(out_dir) / name
    version_dir = target / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(loaded.model_path, version_dir / file_name)
    for extra in manifest.files:
        if extra != manifest.model_file:  # ONNX external data, referenced by its own name
            (version_dir / extra).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(loaded.root / extra, version_dir / extra)
    (target / "config.pbtxt").write_text(text_format.MessageToString(config))
    (target / "README.md").write_text(_readme(name, manifest, platform))
    return target


def _readme(name: str, manifest, platform: str) -> str:
    h, w = manifest.input.hw
    plugins = ""
    if manifest.plugins:
        plugins = (
            f"\nThe engine uses the SDK's TensorRT plugins {list(manifest.plugins)}: Triton's TensorRT backend must be "
            "able to resolve them (see `sdk.trt_plugins`) before it loads this model.\n"
        )
    size = f"{h}x{w}" if h > 0 else "any HxW (padded as the preprocess record says)"
    return f"""# {name} ({manifest.model_name}, {platform})

Written by `sdk triton-repo` from an SDK model_dir. This is the bare network:

- input `{manifest.input.name}`: {manifest.input.dtype} [N, 3, H, W], {size}, produced on the client by
  `sdk.preprocess.preprocess_batch(images, Preprocess.from_dict(json.loads(config.parameters["preprocess"])))`
  (images RGB uint8 HWC);
- outputs `num_dets` [N, 1] int32, `boxes` [N, {manifest.max_det}, 4] float32 xyxy in **network-input pixels**,
  `scores` [N, {manifest.max_det}], `labels` [N, {manifest.max_det}] int32 indexing `parameters["classes"]`;
  map boxes back with `sdk.postprocess.decode_outputs(outputs, records, classes)`.

`sdk serve` differs: it takes encoded images (BYTES) or RGB pixels of any size, preprocesses
on the server and returns boxes in original image pixels.
{plugins}"""


def _takes_sizes(loaded) -> bool:
    """Whether the model_dir's graph takes ``image_sizes``: a dynamic-shape ONNX graph that
    lists it, or a dynamic-shape TensorRT engine (the exporter always adds it)."""
    if loaded.manifest.input.hw != (-1, -1):
        return False
    if not str(loaded.model_path).endswith(".onnx"):
        return True
    import onnx

    graph = onnx.load(str(loaded.model_path), load_external_data=False).graph
    return SIZES_INPUT in [i.name for i in graph.input]
