"""model_dir writing and loading: schema, hashes, and one clear error per corruption."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sdk.converters.model_dir import write_model_dir

from sdk.errors import ConfigError, ModelDirError
from sdk.manifest import FORMAT_VERSION, MANIFEST_NAME, Manifest, load_model_dir, sha256_file
from sdk.preprocess import Preprocess


def _edit_manifest(model_dir: Path, edit) -> None:
    path = model_dir / MANIFEST_NAME
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _write(tmp_path: Path, **overrides) -> Path:
    model = tmp_path / "src" / "graph.onnx"
    model.parent.mkdir(exist_ok=True)
    model.write_bytes(b"not really onnx, but hashed all the same" * 100)
    kwargs = dict(
        model_file=model,
        backend="onnxruntime",
        flavor="onnxruntime",
        precision="fp32",
        model_name="tiny",
        classes=["__background__", "cat"],
        preprocess=Preprocess(size=(64, 64)),
        postprocess={"score_thr": 0.05, "iou_thr": 0.5, "max_det": 10},
        input_shape=(64, 64),
        max_batch=8,
    )
    kwargs.update(overrides)
    return write_model_dir(tmp_path / "model_dir", **kwargs)


def test_round_trip_records_everything(tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"weights")
    extra = tmp_path / "model.onnx.data"
    extra.write_bytes(b"\x00" * 3000)
    model_dir = _write(
        tmp_path, source_checkpoint=ckpt, extra_files=[extra], plugins=["sdk::BatchedNMS"], flavor="tensorrt"
    )

    loaded = load_model_dir(model_dir)
    m = loaded.manifest
    assert loaded.model_path == model_dir / "model.onnx" and loaded.model_path.is_file()
    assert m.format_version == FORMAT_VERSION and m.task == "detection" and m.backend == "onnxruntime"
    assert m.flavor == "tensorrt" and m.plugins == ("sdk::BatchedNMS",)
    assert m.input.shape == (-1, 3, 64, 64) and m.input.dtype == "uint8" and m.input.layout == "NCHW"
    assert (m.min_batch, m.max_batch) == (1, 8)
    assert [(o.name, o.dtype, o.shape) for o in m.outputs] == [
        ("num_dets", "int32", (-1, 1)),
        ("boxes", "float32", (-1, 10, 4)),
        ("scores", "float32", (-1, 10)),
        ("labels", "int32", (-1, 10)),
    ]
    assert m.classes == ("__background__", "cat")
    assert m.preprocess == Preprocess(size=(64, 64))
    assert m.postprocess == {"score_thr": 0.05, "iou_thr": 0.5, "max_det": 10}
    assert m.source_checkpoint_sha256 == sha256_file(ckpt)
    assert m.files == {"model.onnx": sha256_file(model_dir / "model.onnx"), "model.onnx.data": sha256_file(extra)}
    assert m.library_versions["onnxruntime"]  # installed libraries are recorded
    assert Manifest.from_dict(json.loads(m.to_json())) == m
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "model.onnx.data",
    ]  # no temp files


def test_float_input_and_dynamic_shape(tmp_path):
    pre = Preprocess(mode="keep_ratio", size=(32, 64), normalize_in_graph=False)
    m = load_model_dir(_write(tmp_path, preprocess=pre, input_shape=(None, None))).manifest
    assert m.input.dtype == "float32" and m.input.shape == (-1, 3, -1, -1)


@pytest.mark.parametrize("move", [False, True])
def test_files_get_the_default_mode_not_the_temp_files_0600(tmp_path, move):
    import os

    old = os.umask(0o022)
    try:
        src = tmp_path / "src" / "graph.onnx"
        src.parent.mkdir()
        src.write_bytes(b"graph")
        os.chmod(src, 0o600)  # what tempfile-based writers (ONNX, TensorRT) leave behind
        model_dir = _write(tmp_path, model_file=src, move=move)
    finally:
        os.umask(old)
    for name in ("model.onnx", MANIFEST_NAME):
        assert (model_dir / name).stat().st_mode & 0o777 == 0o644, name


def test_move_and_rewrite_in_place(tmp_path):
    model_dir = _write(tmp_path, move=True)
    assert not (tmp_path / "src" / "graph.onnx").exists()
    # re-packaging a model_dir from its own model file keeps the file and updates the manifest
    write_model_dir(
        model_dir,
        model_file=model_dir / "model.onnx",
        backend="onnxruntime",
        flavor="onnxruntime",
        precision="fp16",
        model_name="tiny",
        classes=["a"],
        preprocess=Preprocess(size=(64, 64)),
        postprocess={"score_thr": 0.1, "iou_thr": 0.6, "max_det": 3},
        input_shape=(1, 3, 64, 64),
        max_batch=2,
    )
    assert load_model_dir(model_dir).manifest.precision == "fp16"


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"backend": "tflite"}, "backend"),
        ({"precision": "int4"}, "precision"),
        ({"postprocess": {"score_thr": 0.1}}, "postprocess"),
        ({"input_shape": (32, 32)}, "disagrees"),
        ({"max_batch": 0}, "max_batch"),
        ({"source_checkpoint": "no/such.pt"}, "source_checkpoint"),
        ({"model_file": "no/such.onnx"}, "not found"),
    ],
)
def test_writer_rejects_bad_arguments(tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        _write(tmp_path, **overrides)


def test_truncated_file(tmp_path):
    model_dir = _write(tmp_path)
    data = (model_dir / "model.onnx").read_bytes()
    (model_dir / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelDirError, match=r"model\.onnx fails its sha256 check .*truncated or modified"):
        load_model_dir(model_dir)


def test_edited_file_same_size(tmp_path):
    model_dir = _write(tmp_path)
    data = bytearray((model_dir / "model.onnx").read_bytes())
    data[100] ^= 0xFF
    (model_dir / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelDirError, match=r"model\.onnx fails its sha256 check"):
        load_model_dir(model_dir)
    load_model_dir(model_dir, verify_files=False)  # the schema alone is still fine


def test_missing_listed_file(tmp_path):
    extra = tmp_path / "weights.bin"
    extra.write_bytes(b"123")
    model_dir = _write(tmp_path, extra_files=[extra])
    (model_dir / "weights.bin").unlink()
    with pytest.raises(ModelDirError, match=r"weights\.bin listed in manifest\.json is missing"):
        load_model_dir(model_dir)


@pytest.mark.parametrize(
    "field",
    [
        "format_version", "backend", "flavor", "classes", "preprocess", "files", "model_file", "input",
        "outputs", "postprocess", "plugins", "source_checkpoint_sha256", "library_versions", "created_at",
    ],
)  # fmt: skip
def test_missing_top_level_field(tmp_path, field):
    model_dir = _write(tmp_path)
    _edit_manifest(model_dir, lambda d: d.pop(field))
    with pytest.raises(ModelDirError, match=rf"required field '{field}' is missing"):
        load_model_dir(model_dir)


@pytest.mark.parametrize("section, field", [("input", "max_batch"), ("input", "dtype"), ("postprocess", "max_det")])
def test_missing_nested_field(tmp_path, section, field):
    model_dir = _write(tmp_path)
    _edit_manifest(model_dir, lambda d: d[section].pop(field))
    with pytest.raises(ModelDirError, match=rf"required field '{section}\.{field}' is missing"):
        load_model_dir(model_dir)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d.update(classes="cat"), r"field 'classes' must be a list"),
        (lambda d: d["input"].update(max_batch="8"), r"field 'input\.max_batch' must be an integer"),
        (lambda d: d["input"].update(max_batch=True), r"field 'input\.max_batch' must be an integer"),
        (lambda d: d.update(backend="tflite"), r"field 'backend' must be one of"),
        (lambda d: d["input"].update(shape=[-1, 3, 32, 32]), r"disagrees with the preprocess input size"),
        (lambda d: d["input"].update(min_batch=9), r"min_batch <= max_batch"),
        (lambda d: d["outputs"].pop(0), r"lacks the detection contract outputs \['num_dets'\]"),
        (lambda d: d["preprocess"].update(mode="stretch"), r"field 'preprocess' is invalid"),
        (lambda d: d["files"].update({"../outside.bin": "0" * 64}), r"must be a relative path inside"),
        (lambda d: d.update(model_file="other.onnx"), r"'other.onnx' is not listed in 'files'"),
        (lambda d: d.update(format_version=0), r"format_version' must be >= 1"),
        (lambda d: d["files"].update({"model.onnx": "abc"}), r"'model.onnx' has 'abc', not a sha256"),
        (lambda d: d.update(flavor="openvino"), r"field 'flavor' must be one of"),
    ],
)
def test_invalid_field(tmp_path, edit, match):
    model_dir = _write(tmp_path)
    _edit_manifest(model_dir, edit)
    with pytest.raises(ModelDirError, match=match):
        load_model_dir(model_dir)


def test_newer_format_version(tmp_path):
    model_dir = _write(tmp_path)
    # a newer format may have changed anything else too: the version is checked first
    _edit_manifest(model_dir, lambda d: (d.update(format_version=FORMAT_VERSION + 1), d.pop("classes")))
    with pytest.raises(
        ModelDirError, match=rf"written by a newer sdk \(format {FORMAT_VERSION + 1} > {FORMAT_VERSION}\): upgrade sdk"
    ):
        load_model_dir(model_dir)


def test_not_a_model_dir(tmp_path):
    with pytest.raises(ModelDirError, match="model_dir not found"):
        load_model_dir(tmp_path / "nowhere")
    with pytest.raises(ModelDirError, match="has no manifest.json"):
        load_model_dir(tmp_path)
    (tmp_path / "file.onnx").write_bytes(b"x")
    with pytest.raises(ModelDirError, match="is a file, not a model_dir"):
        load_model_dir(tmp_path / "file.onnx")
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ModelDirError, match="is not valid JSON"):
        load_model_dir(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("[1, 2]")
    with pytest.raises(ModelDirError, match="must be a JSON object"):
        load_model_dir(tmp_path)


def test_manifest_and_writer_do_not_import_torch(tmp_path):
    code = (
        "import sys; import sdk.manifest, sdk.converters.model_dir; "
        "assert 'torch' not in sys.modules and 'onnx' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_input_shape_and_preprocess_agree_on_being_dynamic(tmp_path):
    """A varying-shape record (keep_ratio, no canvas) needs H, W = -1; the backends then
    warm up at its typical size and bound buffers by its largest."""
    from sdk.runtime.base import input_hw_bounds

    pre = Preprocess(mode="keep_ratio", size=(224, 320))
    model_dir = _write(tmp_path, preprocess=pre, input_shape=(-1, -1))
    assert input_hw_bounds(load_model_dir(model_dir).manifest) == ((224, 320), (320, 320))
    _edit_manifest(model_dir, lambda d: d["input"].update(shape=[-1, 3, 224, 320]))
    with pytest.raises(ModelDirError, match="a dynamic-shape graph has H, W = -1"):
        load_model_dir(model_dir, verify_files=False)
    (tmp_path / "static").mkdir()
    assert input_hw_bounds(load_model_dir(_write(tmp_path / "static")).manifest) == ((64, 64), (64, 64))
