"""Write a model_dir: the model file, any extra files and a hashed manifest.

The last stage of every export (``sdk export``): file in, folder out. Torch-free, so
an engine built on another machine can be packaged where only TensorRT is installed.

The manifest is written last and atomically (temp file + ``os.replace``): a folder
whose ``manifest.json`` exists is complete, and its hashes catch any later edit.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from sdk import __version__ as sdk_version
from sdk.errors import ConfigError
from sdk.postprocess_record import Postprocess
from sdk.manifest import (
    BACKENDS,
    FLAVORS,
    FORMAT_VERSION,
    MANIFEST_NAME,
    PRECISIONS,
    SHA256_PATTERN,
    InputSpec,
    Manifest,
    TensorSpec,
    sha256_file,
)
from sdk.preprocess import Preprocess

MODEL_FILE_NAMES = {
    "onnxruntime": "model.onnx",
    "openvino": "model.xml",  # + model.bin, passed as an extra file
    "tensorrt": "model.engine",
    "aoti": "model.pt2",
}

# Distribution names whose versions a model_dir records when installed (read from
# package metadata: importing torch or tensorrt just to ask would take seconds).
_RECORDED_LIBRARIES = {
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "onnxruntime-extensions": ("onnxruntime-extensions",),
    "openvino": ("openvino",),
    "tensorrt": ("tensorrt", "tensorrt-cu13", "tensorrt-cu12"),
    "numpy": ("numpy",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
}

def library_versions() -> dict[str, str]:
    """Versions of the libraries in ``_RECORDED_LIBRARIES`` that are installed."""
    found = {}
    for key, dists in _RECORDED_LIBRARIES.items():
        for dist in dists:
            try:
                found[key] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return found


def contract_outputs(max_det: int, mask_size: int | None = None) -> tuple[TensorSpec, ...]:
    """The detection output contract (docs/architecture.md, contract 2) with K = ``max_det``;
    with ``mask_size`` M also ``masks`` float32 [B, K, M, M] (instance segmentation)."""
    outputs = (
        TensorSpec("num_dets", "int32", (-1, 1)),
        TensorSpec("boxes", "float32", (-1, max_det, 4)),
        TensorSpec("scores", "float32", (-1, max_det)),
        TensorSpec("labels", "int32", (-1, max_det)),
    )
    if mask_size is not None:
        outputs += (TensorSpec("masks", "float32", (-1, max_det, int(mask_size), int(mask_size))),)
    return outputs


def write_model_dir(
    out_dir: str | os.PathLike,
    *,
    model_file: str | os.PathLike,
    backend: str,
    flavor: str | None,
    precision: str,
    precision_details: Mapping[str, Any] | None = None,
    model_name: str,
    classes: Sequence[str],
    preprocess: Preprocess,
    postprocess: Mapping[str, float | int],
    input_shape: Sequence[int],
    max_batch: int,
    min_batch: int = 1,
    input_dtype: str | None = None,
    outputs: Sequence[TensorSpec] | None = None,
    plugins: Iterable[str] = (),
    source_checkpoint: str | os.PathLike | None = None,
    extra_files: Iterable[str | os.PathLike] = (),
    move: bool = False,
    build_target: Mapping[str, str] | None = None,
    mask_size: int | None = None,
) -> Path:
    """Package ``model_file`` (+ ``extra_files``) into ``out_dir`` with a manifest.

    Args:
        model_file: the exported graph; stored as ``model.onnx`` / ``model.engine`` /
            ``model.pt2`` (by ``backend``) unless it already sits in ``out_dir``.
        extra_files: files the model needs beside it (ONNX external data); kept under
            their own names, since the graph refers to them by name.
        input_shape: (H, W) or (B, 3, H, W) of the network input; the batch is stored
            as -1, H and W as -1 where dynamic.
        input_dtype: default ``"uint8"`` when ``preprocess.normalize_in_graph`` else
            ``"float32"``.
        precision: what the graph computes in (``sdk.precision.PRECISIONS``);
            ``precision_details`` how (JSON-serializable; see ``Manifest``).
        postprocess: exactly ``{"score_thr", "iou_thr", "max_det"}`` as baked into the graph.
        outputs: default the contract outputs with K = ``postprocess["max_det"]``.
        source_checkpoint: the checkpoint exported (its sha256 is recorded), or that
            sha256 as a 64-digit hex string.
        move: move the files into ``out_dir`` instead of copying them.
        build_target: what the model file is tied to (TensorRT engines: version and SM).
        mask_size: M of an instance segmentation model's ``masks`` output: the manifest's
            task becomes ``instance_segmentation`` and its outputs gain ``masks``.

    Returns ``out_dir`` as a ``Path``. Raises ``ConfigError`` for invalid arguments.
    """
    out = Path(out_dir)
    _check_choice("backend", backend, BACKENDS)
    _check_choice("flavor", flavor, (*FLAVORS, None))
    _check_choice("precision", precision, PRECISIONS)
    post = Postprocess.from_dict(postprocess).to_dict()
    shape = _input_shape(input_shape)
    static = preprocess.static_shape
    if static is not None and shape[2:] != tuple(static):
        raise ConfigError(f"input_shape {shape} disagrees with the preprocess input size {tuple(static)}")
    if not 1 <= min_batch <= max_batch:
        raise ConfigError(f"need 1 <= min_batch <= max_batch, got {min_batch}, {max_batch}")
    model_src = Path(model_file)
    if not model_src.is_file():
        raise ConfigError(f"model file not found: {model_src}")
    extras = [Path(p) for p in extra_files]
    for extra in extras:
        if not extra.is_file():
            raise ConfigError(f"extra file not found: {extra}")
    checkpoint_sha = _checkpoint_sha256(source_checkpoint)

    out.mkdir(parents=True, exist_ok=True)
    model_name_in_dir = MODEL_FILE_NAMES.get(backend, model_src.name)
    placed = [_place(model_src, out / model_name_in_dir, move=move)]
    placed += [_place(extra, out / extra.name, move=move) for extra in extras]
    files = {p.relative_to(out).as_posix(): sha256_file(p) for p in placed}

    manifest = Manifest(
        format_version=FORMAT_VERSION,
        sdk_version=sdk_version,
        model_name=model_name,
        task="instance_segmentation" if mask_size is not None else "detection",
        backend=backend,
        flavor=flavor,
        precision=precision,
        model_file=model_name_in_dir,
        input=InputSpec(
            name="images",
            dtype=input_dtype or ("uint8" if preprocess.normalize_in_graph else "float32"),
            layout="NCHW",
            shape=shape,
            min_batch=min_batch,
            max_batch=max_batch,
        ),
        outputs=tuple(outputs) if outputs is not None else contract_outputs(post["max_det"], mask_size),
        classes=tuple(classes),
        preprocess=preprocess,
        postprocess=post,
        plugins=tuple(plugins),
        source_checkpoint_sha256=checkpoint_sha,
        files=files,
        library_versions=library_versions(),
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        precision_details=dict(precision_details or {}),
        build_target=dict(build_target or {}),
    )
    # Round-trip through the validating parser: never write a manifest we would refuse to load.
    Manifest.from_dict(json.loads(manifest.to_json()), source=f"manifest for {out}")
    _atomic_write_text(out / MANIFEST_NAME, manifest.to_json() + "\n")
    return out


def _check_choice(name: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")


def _input_shape(input_shape: Sequence[int]) -> tuple[int, int, int, int]:
    dims = [int(d) if d is not None else -1 for d in input_shape]
    if len(dims) == 2:
        dims = [-1, 3, *dims]
    if len(dims) != 4 or dims[1] != 3:
        raise ConfigError(f"input_shape must be (H, W) or (B, 3, H, W), got {tuple(input_shape)}")
    return (-1, 3, dims[2] if dims[2] > 0 else -1, dims[3] if dims[3] > 0 else -1)


def _checkpoint_sha256(source: str | os.PathLike | None) -> str | None:
    if source is None:
        return None
    path = Path(source)
    if path.is_file():
        return sha256_file(path)
    if isinstance(source, str) and SHA256_PATTERN.match(source):
        return source
    raise ConfigError(f"source_checkpoint {source!r} is neither a file nor a sha256 hex digest")


def _place(src: Path, dst: Path, *, move: bool) -> Path:
    """Copy (or move) ``src`` to ``dst`` via a temp name, so ``dst`` is never half written."""
    if src.resolve() == dst.resolve():
        return dst
    if move:
        try:
            os.replace(src, dst)  # same filesystem: atomic, no copy
            return _default_mode(dst)
        except OSError:
            pass
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(_default_mode(Path(tmp)), dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if move:
        src.unlink()
    return dst


def _default_mode(path: Path, base: int = 0o666) -> Path:
    """Give ``path`` the mode a plain ``open()`` (``base`` 0o666) or ``mkdir()`` (0o777)
    would: 0666 less the umask. Temp files and folders are created 0600 / 0700, and a
    model_dir must stay readable for the user a server runs as."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, base & ~umask)
    return path


def publish_model_dir(staging: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Atomically replace ``out`` with the finished model_dir ``staging`` (``sdk.converters.publish``)."""
    from sdk.converters.publish import publish_model_dir as publish

    return publish(staging, out)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(_default_mode(Path(tmp)), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
