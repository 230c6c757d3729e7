"""The manifest checked against the graph a backend loaded.

Hashes prove the files are the ones the manifest lists; they say nothing about
whether the manifest tells the truth about them. A backend calls
``check_signature`` with what its runtime reports about the graph (static dims,
dtypes, metadata) and ``check_run_outputs`` on its warm-up run, so a manifest whose
input size, ``max_det`` (K), dtypes or class count disagree with the graph fails at
load with a ``ModelDirError`` naming the field, not at the first request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from sdk.errors import ModelDirError
from sdk.manifest import CONTRACT_OUTPUTS, Manifest

#: ONNX metadata key the exporter records the class count under (``converters.export``)
NUM_CLASSES_KEY = "sdk.num_classes"

Dims = Sequence[int | None]  # None (or a name/-1) where the graph's dim is dynamic


def _fail(model_path: Path, field: str, problem: str) -> None:
    raise ModelDirError(f"{model_path.parent}: manifest field '{field}' {problem}; the manifest does not describe "
                        f"{model_path.name}: re-export the model_dir")


def _static(dim) -> int | None:
    return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else None


def check_signature(
    manifest: Manifest,
    model_path: Path,
    *,
    input_shape: Dims | None,
    outputs: Mapping[str, tuple[str | None, Dims]],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Compare the manifest with the graph's static description.

    ``input_shape``: the graph's [B, 3, H, W] (None: unknown rank, not checked); ``outputs``: name -> (dtype name or
    None when unknown, dims); ``metadata``: the graph's string metadata (ONNX
    ``metadata_props``), where ``sdk.num_classes`` is checked against ``classes``.
    """
    dims = list(input_shape) if input_shape is not None else [None] * 4
    if len(dims) != 4:
        _fail(model_path, "input.shape", f"says 4 dims, the graph's input has {len(dims)} ({dims})")
    for axis, name in ((1, "channels"), (2, "height"), (3, "width")):
        graph, recorded = _static(dims[axis]), manifest.input.shape[axis]
        if graph is not None and graph != recorded:
            _fail(model_path, "input.shape", f"{list(manifest.input.shape)} disagrees with the graph's {name} "
                                             f"{graph} (graph input {dims})")
    recorded_outputs = {o.name: o for o in manifest.outputs}
    for name in CONTRACT_OUTPUTS:
        dtype, shape = outputs.get(name, (None, None))
        spec = recorded_outputs[name]
        if shape is None:
            continue
        index = manifest.outputs.index(spec)
        if dtype is not None and dtype != spec.dtype:
            _fail(model_path, f"outputs[{index}].dtype", f"says {spec.dtype} for {name!r}, the graph gives {dtype}")
        shape = list(shape)
        if len(shape) != len(spec.shape):
            _fail(model_path, f"outputs[{index}].shape", f"{list(spec.shape)} has another rank than the graph's "
                                                         f"{name!r} {shape}")
        for axis in range(1, len(shape)):
            graph = _static(shape[axis])
            if graph is not None and graph != spec.shape[axis]:
                field = "postprocess.max_det" if axis == 1 and name != "num_dets" else f"outputs[{index}].shape"
                _fail(model_path, field, f"disagrees with the graph: {name!r} is {shape} there, "
                                         f"{list(spec.shape)} in the manifest (max_det {manifest.max_det})")
    recorded = (metadata or {}).get(NUM_CLASSES_KEY)
    if recorded is not None and recorded.isdigit() and int(recorded) != len(manifest.classes):
        _fail(model_path, "classes", f"lists {len(manifest.classes)} names, the graph was exported with "
                                     f"{int(recorded)} classes")


def check_run_outputs(outputs: Mapping[str, np.ndarray], manifest: Manifest, batch: int, model_path: Path) -> None:
    """The outputs of one run of ``batch`` images have the contract shapes K = ``max_det`` and kinds."""
    k = manifest.max_det
    expected = {"num_dets": (batch, 1), "boxes": (batch, k, 4), "scores": (batch, k), "labels": (batch, k)}
    for name, shape in expected.items():
        value = outputs.get(name)
        if value is None:
            _fail(model_path, "outputs", f"lists {name!r}, the graph did not return it")
        if tuple(value.shape) != shape:
            _fail(model_path, "postprocess.max_det", f"is {k}, but the graph returned {name!r} of shape "
                                                     f"{list(value.shape)} for a batch of {batch} (expected "
                                                     f"{list(shape)})")
        integer = name in ("num_dets", "labels")
        if integer != np.issubdtype(value.dtype, np.integer):
            _fail(model_path, "outputs", f"expects {'integer' if integer else 'float'} {name!r}, the graph returned "
                                         f"{value.dtype}")
