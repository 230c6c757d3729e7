"""The manifest is checked against the graph and against absurd values; optional Ed25519
signatures refuse unsigned or tampered model_dirs (issue 15, item 5)."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import onnx
import pytest

from sdk.cli.main import main
from sdk.converters.onnx_export import set_metadata
from sdk.detector import Detector
from sdk.errors import ConfigError, ModelDirError
from sdk.manifest import MANIFEST_NAME, load_model_dir, sha256_file
from sdk.serving.model import ServedModel
from sdk.signing import generate_keypair, sign_model_dir


def edit_manifest(model_dir, change) -> None:
    """Apply ``change(dict)`` to the manifest and re-hash every file (what a careful forger does)."""
    path = model_dir / MANIFEST_NAME
    data = json.loads(path.read_text())
    change(data)
    data["files"] = {name: sha256_file(model_dir / name) for name in data["files"]}
    path.write_text(json.dumps(data, indent=2))


def set_max_det(data, k) -> None:
    data["postprocess"]["max_det"] = k
    for out in data["outputs"]:
        if out["name"] != "num_dets":
            out["shape"][1] = k


@pytest.mark.parametrize("change, message", [
    (lambda d: set_max_det(d, 10**12), "'postprocess.max_det' must be in 1..10000"),
    (lambda d: d["input"].update(shape=[-1, 3, 100000, 100000]), "'input.shape' height and width must be"),
    (lambda d: d["postprocess"].update(max_det=7), "'outputs[1].shape' of 'boxes' is [-1, 5, 4], but postprocess"),
    (lambda d: d["input"].update(max_batch=10**9), "'input.max_batch' needs 1 <= min_batch <= max_batch <= 4096"),
    (lambda d: d.update(classes=[]), "'classes' must list 1..100000 names"),
    (lambda d: d["postprocess"].update(score_thr=float("nan")), "'postprocess.score_thr' must be in [0, 1]"),
])
def test_absurd_manifest_values_are_refused_on_load(make_model_dir, change, message):
    model_dir = make_model_dir()
    edit_manifest(model_dir, change)
    with pytest.raises(ModelDirError) as info:
        load_model_dir(model_dir)
    assert message in str(info.value)


def test_max_det_must_match_the_graph(make_model_dir):
    model_dir = make_model_dir(max_det=5)
    edit_manifest(model_dir, lambda d: set_max_det(d, 7))  # self-consistent, but the graph returns K = 5
    load_model_dir(model_dir)
    with pytest.raises(ModelDirError, match=r"manifest field 'postprocess.max_det' disagrees with the graph"):
        Detector(model_dir)


def test_output_dtypes_must_match_the_graph(make_model_dir):
    model_dir = make_model_dir()
    edit_manifest(model_dir, lambda d: d["outputs"][2].update(dtype="float16"))
    with pytest.raises(ModelDirError, match=r"'outputs\[2\].dtype' says float16 for 'scores', the graph gives float32"):
        Detector(model_dir)


def test_input_size_and_classes_must_match_the_graph(make_model_dir):
    model_dir = make_model_dir()
    graph = onnx.load(str(model_dir / "model.onnx"))
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = 64, 96  # a static input, as real exports have
    onnx.save(graph, str(model_dir / "model.onnx"))
    set_metadata(model_dir / "model.onnx", {"sdk.num_classes": "3"})
    edit_manifest(model_dir, lambda d: None)
    assert len(Detector(model_dir)(np.zeros((30, 40, 3), np.uint8))) == 0

    def bigger_input(d):
        d["input"]["shape"] = [-1, 3, 64, 128]
        d["preprocess"]["size"] = [64, 128]

    edit_manifest(model_dir, bigger_input)
    with pytest.raises(ModelDirError, match=r"'input.shape' \[-1, 3, 64, 128\] disagrees with the graph's width 96"):
        Detector(model_dir)
    edit_manifest(model_dir, lambda d: (bigger_input(d), d["input"].update(shape=[-1, 3, 64, 96]),
                                        d["preprocess"].update(size=[64, 96]), d.update(classes=["red", "green"])))
    with pytest.raises(ModelDirError, match=r"'classes' lists 2 names, the graph was exported with 3 classes"):
        Detector(model_dir)


@pytest.fixture
def keys(tmp_path):
    generate_keypair(tmp_path / "a.key", tmp_path / "a.pub")
    generate_keypair(tmp_path / "b.key", tmp_path / "b.pub")
    return tmp_path


def test_keygen_cli(tmp_path, capsys):
    assert main(["keygen", str(tmp_path / "release")]) == 0
    assert stat.S_IMODE(os.stat(tmp_path / "release.key").st_mode) == 0o600
    assert b"PUBLIC KEY" in (tmp_path / "release.pub").read_bytes()
    assert main(["keygen", str(tmp_path / "release")]) == 2  # never overwrites a key
    assert "exists" in capsys.readouterr().err


def test_signed_model_dirs_load_with_trusted_keys(make_model_dir, keys):
    model_dir = make_model_dir()
    with pytest.raises(ModelDirError, match="is not signed .* `sdk export --sign KEY`"):
        Detector(model_dir, trusted_keys=[keys / "a.pub"])
    sign_model_dir(model_dir, keys / "a.key")
    assert Detector(model_dir, trusted_keys=[keys / "b.pub", keys / "a.pub"]).classes == ["red", "green", "blue"]
    assert Detector(model_dir).classes  # without trusted keys the signature is not required
    with pytest.raises(ModelDirError, match="matches none of the 1 trusted key"):
        Detector(model_dir, trusted_keys=[keys / "b.pub"])
    with pytest.raises(ModelDirError, match="matches none"):  # served models are checked the same way
        ServedModel.from_model_dir(model_dir, trusted_keys=[keys / "b.pub"])
    # a replaced model with re-computed hashes: integrity holds, authenticity does not
    edit_manifest(model_dir, lambda d: d["postprocess"].update(score_thr=0.01))
    load_model_dir(model_dir)
    with pytest.raises(ModelDirError, match="modified after signing"):
        Detector(model_dir, trusted_keys=[keys / "a.pub"])
    with pytest.raises(ConfigError, match="not an Ed25519 public key|cannot read the trusted public key"):
        Detector(model_dir, trusted_keys=[keys / "a.key"])
