"""The model_dir manifest (docs/architecture.md, contract 4) and its validating loader.

A model_dir is what an export produces::

    model_dir/
      manifest.json      # this module's ``Manifest``, as JSON
      model.onnx         # or model.engine / model.pt2 (``Manifest.model_file``)
      ...                # any extra files (ONNX external data), all listed in ``files``

``load_model_dir`` checks the manifest schema (every field present, with the right
type and an allowed value) and the sha256 of every listed file, so a truncated copy,
a hand-edited graph or a model_dir from a newer SDK fails at load time with one
``ModelDirError`` naming the file or field and what to do, never later as a wrong
detection. Values no real model has (``max_det`` above ``MAX_DET``, an input side
above ``MAX_INPUT_SIDE``, ...) are refused, since they would only ever make the first
call allocate terabytes. The backends then check the manifest against the graph
itself (``sdk.runtime.graph_check``). With ``trusted_keys`` the manifest's Ed25519
signature is verified over the exact bytes parsed (``sdk.signing``).
Torch-free: the ONNX Runtime and TensorRT runtimes import this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping, NoReturn

from sdk.errors import ConfigError, ModelDirError
from sdk.postprocess_record import Postprocess
from sdk.precision import PRECISIONS
from sdk.preprocess import Preprocess
from sdk.typecheck import TypeMismatch, coerce, fits

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

BACKENDS = ("onnxruntime", "openvino", "tensorrt", "aoti")
FLAVORS = ("onnxruntime", "tensorrt")
TASKS = ("detection", "instance_segmentation")  # the latter adds the ``masks`` output
INPUT_DTYPES = ("uint8", "float32", "float16")
OUTPUT_DTYPES = ("int32", "int64", "float32", "float16")
CONTRACT_OUTPUTS = ("num_dets", "boxes", "scores", "labels")

# Sanity bounds: far above any real detector, far below what would exhaust memory.
MAX_DET = 10_000  # detections per image (TensorRT's INMSLayer keeps at most 5000)
MAX_INPUT_SIDE = 16_384  # network input height / width, pixels
MAX_BATCH = 4_096
MAX_CLASSES = 100_000

_HASH_CHUNK = 1 << 20
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: ``shape`` uses -1 for a dynamic dimension."""

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class InputSpec:
    """The single image input: ``shape`` [-1, 3, H, W] (H, W = -1 when dynamic),
    ``layout`` "NCHW", batch sizes ``min_batch`` <= B <= ``max_batch``."""

    name: str
    dtype: str
    layout: str
    shape: tuple[int, ...]
    min_batch: int
    max_batch: int

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.shape[2]), int(self.shape[3])


@dataclass(frozen=True)
class Manifest:
    """Everything needed to run a model_dir without its source code or checkpoint.

    ``files`` maps each file's path relative to the model_dir (POSIX separators) to
    its sha256; ``model_file`` is one of them. ``flavor`` names the ONNX lowering of
    the custom ops (``None`` for ``aoti``); ``plugins`` lists the custom ops the graph
    needs at run time (e.g. ``"sdk::BatchedNMS"``, empty for stock-ONNX graphs).
    ``postprocess`` is what the graph's NMS applies: ``{"score_thr": float,
    "iou_thr": float, "max_det": int}`` (``max_det`` = K of the output contract).
    ``precision`` (``sdk.precision.PRECISIONS``) is what the graph computes in;
    ``precision_details`` says how: for fp16/bf16 the dtype of the network and what
    stays float32, for int8 the quantization scheme, the calibration data and the
    layers kept in float32. ``build_target`` is set for engines tied to where they
    were built (TensorRT: ``{"tensorrt": version, "sm": "sm_90", "gpu": name}``).
    """

    format_version: int
    sdk_version: str
    model_name: str
    task: str
    backend: str
    flavor: str | None
    precision: str
    model_file: str
    input: InputSpec
    outputs: tuple[TensorSpec, ...]
    classes: tuple[str, ...]
    preprocess: Preprocess
    postprocess: Mapping[str, Any]
    plugins: tuple[str, ...] = ()
    source_checkpoint_sha256: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    library_versions: Mapping[str, str] = field(default_factory=dict)
    created_at: str = ""
    precision_details: Mapping[str, Any] = field(default_factory=dict)
    build_target: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "sdk_version": self.sdk_version,
            "model_name": self.model_name,
            "task": self.task,
            "backend": self.backend,
            "flavor": self.flavor,
            "precision": self.precision,
            "model_file": self.model_file,
            "input": {
                "name": self.input.name,
                "dtype": self.input.dtype,
                "layout": self.input.layout,
                "shape": list(self.input.shape),
                "min_batch": self.input.min_batch,
                "max_batch": self.input.max_batch,
            },
            "outputs": [{"name": o.name, "dtype": o.dtype, "shape": list(o.shape)} for o in self.outputs],
            "classes": list(self.classes),
            "preprocess": self.preprocess.to_dict(),
            "postprocess": dict(self.postprocess),
            "plugins": list(self.plugins),
            "source_checkpoint_sha256": self.source_checkpoint_sha256,
            "files": dict(self.files),
            "library_versions": dict(self.library_versions),
            "created_at": self.created_at,
            "precision_details": dict(self.precision_details),
            **({"build_target": dict(self.build_target)} if self.build_target else {}),
        }

    @property
    def min_batch(self) -> int:
        return self.input.min_batch

    @property
    def max_batch(self) -> int:
        return self.input.max_batch

    @property
    def max_det(self) -> int:
        return int(self.postprocess["max_det"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = MANIFEST_NAME) -> Manifest:
        """Validate a parsed manifest; any problem -> ``ModelDirError`` naming the field."""
        return _parse_manifest(data, source)


@dataclass(frozen=True)
class LoadedModelDir:
    """A validated model_dir: ``model_path`` = ``root / manifest.model_file``."""

    root: Path
    manifest: Manifest
    model_path: Path


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (engines can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def load_model_dir(
    path: str | os.PathLike, *, verify_files: bool = True, trusted_keys: Any = None
) -> LoadedModelDir:
    """Read and validate ``path/manifest.json`` and (by default) every file's sha256.

    ``trusted_keys`` (Ed25519 public key PEM paths or key objects): when given, the
    manifest must carry a valid signature by one of them (``sdk.signing``).
    """
    root = Path(path)
    if not root.exists():
        raise ModelDirError(f"model_dir not found: {root}")
    if not root.is_dir():
        raise ModelDirError(
            f"{root} is a file, not a model_dir: pass the folder `sdk export` wrote (it holds {MANIFEST_NAME})"
        )
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ModelDirError(f"{root} has no {MANIFEST_NAME}: it is not a model_dir (create one with `sdk export`)")
    raw = manifest_path.read_bytes()  # read once: the bytes verified are the bytes parsed
    if trusted_keys:
        from sdk.signing import verify_manifest

        verify_manifest(root, raw, trusted_keys)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{manifest_path} is not valid JSON ({exc}): re-export the model") from exc
    manifest = _parse_manifest(data, str(manifest_path))
    if verify_files:
        verify_model_dir_files(root, manifest)
    return LoadedModelDir(root=root, manifest=manifest, model_path=root / manifest.model_file)


def verify_model_dir_files(root: Path, manifest: Manifest) -> None:
    """Every file listed in the manifest exists and has its recorded sha256."""
    for name, expected in manifest.files.items():
        file = root / name
        if not file.is_file():
            raise ModelDirError(f"{root}: file {name} listed in {MANIFEST_NAME} is missing; copy the whole model_dir")
        actual = sha256_file(file)
        if actual != expected:
            raise ModelDirError(
                f"{root}: file {name} fails its sha256 check ({file.stat().st_size} bytes, sha256 {actual[:12]}..., "
                f"manifest says {expected[:12]}...): it was truncated or modified; copy or re-export the model_dir"
            )


# -- schema ----------------------------------------------------------------------------
class _Fields:
    """Typed access to one JSON object; errors name the dotted field path."""

    def __init__(self, data: Any, where: str, source: str) -> None:
        self.where, self.source = where, source
        if not isinstance(data, dict):
            raise ModelDirError(f"{source}: {where or 'the manifest'} must be a JSON object, got {type(data).__name__}")
        self.data = data

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ModelDirError(f"{self.source}: field '{self.path(key)}' {problem}; re-export the model with this sdk")

    def get(
        self, key: str, kind: type | tuple[type, ...], *, choices: tuple | None = None, nullable: bool = False
    ) -> Any:
        """``data[key]`` checked against ``kind`` and ``choices``; ``nullable`` allows null."""
        if key not in self.data:
            raise ModelDirError(
                f"{self.source}: required field '{self.path(key)}' is missing; re-export the model with this sdk"
            )
        value = self.data[key]
        if value is None and nullable:
            return None
        try:  # sdk.typecheck: the configs' and model builders' checker (a JSON true is not a count)
            coerce(value, _annotation(kind))
        except TypeMismatch:
            self.fail(key, f"must be {_type_names(kind)}, got {type(value).__name__} {value!r:.40}")
        if choices is not None and value not in choices:
            self.fail(key, f"must be one of {list(choices)}, got {value!r}")
        return value

    def int_list(self, key: str) -> tuple[int, ...]:
        values = self.get(key, list)
        if not fits(values, list[int]):
            self.fail(key, f"must be a list of integers, got {values!r:.60}")
        return tuple(values)

    def str_list(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list)
        if not fits(values, list[str]):
            self.fail(key, "must be a list of strings")
        return tuple(values)

    def str_map(self, key: str) -> dict[str, str]:
        values = self.get(key, dict)
        if not fits(values, dict[str, str]):
            self.fail(key, "must map names to strings")
        return dict(values)


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _annotation(kind: type | tuple[type, ...]) -> Any:
    """``int`` or ``(int, float)`` as an annotation (``int | float``) for ``coerce``."""
    return typing.Union[_as_tuple(kind)]


def _type_names(kind: type | tuple[type, ...]) -> str:
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        bool: "true/false",
    }
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _parse_manifest(data: Any, source: str) -> Manifest:
    top = _Fields(data, "", source)
    version = top.get("format_version", int)
    if version > FORMAT_VERSION:
        raise ModelDirError(
            f"{source} was written by a newer sdk (format {version} > {FORMAT_VERSION}): upgrade sdk "
            "(pip install -U sdk-detect) or re-export the model with this version"
        )
    if version < 1:
        top.fail("format_version", f"must be >= 1, got {version}")
    backend = top.get("backend", str, choices=BACKENDS)
    inp = _parse_input(_Fields(top.get("input", dict), "input", source))
    outputs = tuple(_parse_output(_Fields(o, f"outputs[{i}]", source)) for i, o in enumerate(top.get("outputs", list)))
    missing = [n for n in CONTRACT_OUTPUTS if n not in {o.name for o in outputs}]
    if missing:
        top.fail("outputs", f"lacks the detection contract outputs {missing}")
    post = _Fields(top.get("postprocess", dict), "postprocess", source)
    values = {key: post.get(key, int if key == "max_det" else (int, float)) for key in Postprocess.KEYS}
    for key in ("score_thr", "iou_thr"):  # named field by field, before the record's own check
        if not 0.0 <= float(values[key]) <= 1.0:  # also refuses NaN
            post.fail(key, f"must be in [0, 1], got {values[key]}")
    try:
        postprocess = Postprocess(**values).to_dict()
    except ConfigError as exc:
        raise ModelDirError(f"{source}: field 'postprocess' is invalid ({exc}); re-export the model with this sdk") from None
    if not 1 <= postprocess["max_det"] <= MAX_DET:
        post.fail("max_det", f"must be in 1..{MAX_DET}, got {postprocess['max_det']}")
    _check_output_shapes(outputs, postprocess["max_det"], top)
    try:
        preprocess = Preprocess.from_dict(top.get("preprocess", dict))
    except (ConfigError, TypeError) as exc:
        raise ModelDirError(f"{source}: field 'preprocess' is invalid ({exc}); re-export the model") from exc
    static = preprocess.static_shape
    if static is not None and inp.hw != tuple(static):
        top.fail("input.shape", f"{list(inp.shape)} disagrees with the preprocess input size {list(static)}")
    if static is None and inp.hw != (-1, -1):
        top.fail("input.shape", f"{list(inp.shape)} is static, but the preprocess record pads each image to the "
                                "divisor only: a dynamic-shape graph has H, W = -1")
    files = top.str_map("files")
    for name in files:
        _check_relative(name, top)
    model_file = top.get("model_file", str)
    if model_file not in files:
        top.fail("model_file", f"{model_file!r} is not listed in 'files'")
    for name, digest in files.items():
        if not SHA256_PATTERN.match(digest):
            top.fail("files", f"entry {name!r} has {digest!r:.20}, not a sha256 hex digest")
    checkpoint_sha = top.get("source_checkpoint_sha256", str, nullable=True)
    classes = top.str_list("classes")
    if not 1 <= len(classes) <= MAX_CLASSES:
        top.fail("classes", f"must list 1..{MAX_CLASSES} names, got {len(classes)}")
    return Manifest(
        format_version=version,
        sdk_version=top.get("sdk_version", str),
        model_name=top.get("model_name", str),
        task=top.get("task", str, choices=TASKS),
        backend=backend,
        flavor=top.get("flavor", str, choices=FLAVORS, nullable=True),
        precision=top.get("precision", str, choices=PRECISIONS),
        model_file=model_file,
        input=inp,
        outputs=outputs,
        classes=classes,
        preprocess=preprocess,
        postprocess=postprocess,
        plugins=top.str_list("plugins"),
        source_checkpoint_sha256=checkpoint_sha,
        files=files,
        library_versions=top.str_map("library_versions"),
        created_at=top.get("created_at", str),
        # absent in model_dirs written before reduced precision existed (all fp32)
        precision_details=top.get("precision_details", dict) if "precision_details" in top.data else {},
        # only engines tied to a TensorRT version and GPU SM have one
        build_target=top.str_map("build_target") if "build_target" in top.data else {},
    )


def _parse_input(f: _Fields) -> InputSpec:
    shape = f.int_list("shape")
    if len(shape) != 4 or shape[1] != 3:
        f.fail("shape", f"must be [B, 3, H, W], got {list(shape)}")
    if any(not (d == -1 or 1 <= d <= MAX_INPUT_SIDE) for d in shape[2:]):
        f.fail("shape", f"height and width must be -1 (dynamic) or 1..{MAX_INPUT_SIDE}, got {list(shape)}")
    min_batch, max_batch = f.get("min_batch", int), f.get("max_batch", int)
    if not 1 <= min_batch <= max_batch <= MAX_BATCH:
        f.fail("max_batch", f"needs 1 <= min_batch <= max_batch <= {MAX_BATCH}, got {min_batch}, {max_batch}")
    return InputSpec(
        name=f.get("name", str),
        dtype=f.get("dtype", str, choices=INPUT_DTYPES),
        layout=f.get("layout", str, choices=("NCHW",)),
        shape=shape,
        min_batch=min_batch,
        max_batch=max_batch,
    )


def _parse_output(f: _Fields) -> TensorSpec:
    return TensorSpec(
        name=f.get("name", str), dtype=f.get("dtype", str, choices=OUTPUT_DTYPES), shape=f.int_list("shape")
    )


def _check_output_shapes(outputs: tuple[TensorSpec, ...], max_det: int, top: _Fields) -> None:
    """The contract outputs' recorded shapes agree with ``max_det`` (K)."""
    expected = {"num_dets": (-1, 1), "boxes": (-1, max_det, 4), "scores": (-1, max_det), "labels": (-1, max_det)}
    for i, out in enumerate(outputs):
        want = expected.get(out.name)
        if out.name == "masks" and len(out.shape) == 4:  # [B, K, M, M]: K is max_det, M the model's
            want = (-1, max_det, *out.shape[2:])
        if want is not None and tuple(out.shape[1:]) != want[1:]:
            top.fail(f"outputs[{i}].shape", f"of {out.name!r} is {list(out.shape)}, but postprocess.max_det = "
                                            f"{max_det} makes it {[-1 if d == -1 else d for d in want]}")


def _check_relative(name: str, f: _Fields) -> None:
    # A manifest must not point outside its own folder (a copied model_dir is self-contained).
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or "\\" in name or not name or name == MANIFEST_NAME:
        f.fail("files", f"entry {name!r} must be a relative path inside the model_dir")
