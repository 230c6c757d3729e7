"""sdk.checkpoint: the SDK checkpoint format, safe loading and clear errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import sdk.models
from sdk.checkpoint import (
    CheckpointMeta,
    LoadedCheckpoint,
    build_model_from_checkpoint,
    load_checkpoint,
    load_state_dict_file,
    save_checkpoint,
)
from sdk.errors import CheckpointError
from sdk.preprocess import Preprocess

CLASSES = ("__background__", "cat", "dog")


def _meta(**changes) -> CheckpointMeta:
    values = dict(
        model_name="fcos_tiny",
        num_classes=3,
        classes=CLASSES,
        preprocess=Preprocess(size=(256, 256)),
        postprocess={"score_thr": 0.3, "iou_thr": 0.5, "max_det": 20},
        model_overrides={"topk_candidates": 500},
    )
    values.update(changes)
    return CheckpointMeta(**values)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return sdk.models.build_model("fcos_tiny", num_classes=3)


def test_meta_round_trips_through_a_plain_dict():
    meta = _meta()
    data = meta.to_dict()
    assert isinstance(data["classes"], list) and isinstance(data["preprocess"], dict)
    assert CheckpointMeta.from_dict(data) == meta


def test_meta_rejects_inconsistent_records():
    with pytest.raises(CheckpointError, match="num_classes"):
        _meta(num_classes=4)
    with pytest.raises(CheckpointError, match="postprocess"):
        _meta(postprocess={"score_thr": 0.3})
    with pytest.raises(CheckpointError, match="unknown keys"):
        CheckpointMeta.from_dict({**_meta().to_dict(), "colour": "red"})


def test_save_load_round_trip_with_trainer_state(model, tmp_path):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    extra = {"epoch": 3, "optimizer": optimizer.state_dict(), "history": [0.5, 0.25]}
    path = save_checkpoint(tmp_path / "sub" / "ckpt.pt", meta=_meta(), state_dict=model.state_dict(), extra=extra)
    assert path == tmp_path / "sub" / "ckpt.pt"
    assert os.listdir(path.parent) == ["ckpt.pt"]  # the temporary file was renamed, none left over
    loaded = load_checkpoint(path)
    assert isinstance(loaded, LoadedCheckpoint) and loaded.meta == _meta()
    assert loaded.extra["epoch"] == 3 and loaded.extra["history"] == [0.5, 0.25]
    assert loaded.extra["optimizer"]["param_groups"][0]["lr"] == 0.1
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict[key], value)


def test_save_replaces_an_existing_checkpoint_atomically(model, tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, meta=_meta(), state_dict=model.state_dict())
    save_checkpoint(path, meta=_meta(model_overrides={}), state_dict=model.state_dict())
    assert load_checkpoint(path).meta.model_overrides == {}
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_build_model_from_checkpoint_applies_overrides_and_postprocess(model, tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.pt", meta=_meta(), state_dict=model.state_dict())
    rebuilt, meta = build_model_from_checkpoint(path)
    assert not rebuilt.training and meta == _meta()
    assert (rebuilt.score_thresh, rebuilt.nms_thresh, rebuilt.detections_per_img) == (0.3, 0.5, 20)
    assert rebuilt.topk_candidates == 500
    # also from an already loaded checkpoint
    rebuilt_again, _ = build_model_from_checkpoint(load_checkpoint(path))
    for key, value in rebuilt.state_dict().items():
        assert torch.equal(rebuilt_again.state_dict()[key], value)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_corrupt_and_truncated_files(model, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(garbage)
    good = save_checkpoint(tmp_path / "good.pt", meta=_meta(), state_dict=model.state_dict())
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(truncated)


def test_bare_state_dict_says_how_to_convert(model, tmp_path):
    for payload in (model.state_dict(), {"model": model.state_dict(), "epoch": 1}):
        path = tmp_path / "torchvision.pth"
        torch.save(payload, path)
        with pytest.raises(CheckpointError, match="sdk convert torchvision"):
            load_checkpoint(path)


def test_pickled_code_is_never_executed(tmp_path):
    """A file that would run code when unpickled is refused (weights_only loading)."""
    marker = tmp_path / "pwned"
    script = (
        "import os, torch\n"
        "class Evil:\n"
        f"    def __reduce__(self): return (os.system, ('touch {marker}',))\n"
        f"torch.save({{'sdk_checkpoint': 1, 'x': Evil()}}, '{tmp_path / 'evil.pt'}')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    with pytest.raises(CheckpointError, match="not loaded for safety"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_other_format_version_is_refused(model, tmp_path):
    path = tmp_path / "future.pt"
    torch.save({"sdk_checkpoint": 99, "meta": _meta().to_dict(), "state_dict": model.state_dict()}, path)
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(path)


def test_mismatched_weights_name_the_keys(model, tmp_path):
    state = dict(model.state_dict())
    state.pop("head.classification_head.cls_logits.bias")
    state["head.extra.weight"] = torch.zeros(1)
    path = save_checkpoint(tmp_path / "bad.pt", meta=_meta(), state_dict=state)
    with pytest.raises(CheckpointError) as info:
        build_model_from_checkpoint(path)
    message = str(info.value)
    assert "missing keys head.classification_head.cls_logits.bias" in message
    assert "unexpected keys head.extra.weight" in message


def test_wrong_shapes_are_reported(model, tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.pt", meta=_meta(), state_dict=model.state_dict())
    # The same weights claimed for 4 classes: the classifier's shape no longer fits.
    loaded = load_checkpoint(path)
    wrong = LoadedCheckpoint(meta=_meta(num_classes=4, classes=(*CLASSES, "bird")), state_dict=loaded.state_dict)
    with pytest.raises(CheckpointError, match="size mismatch for head.classification_head.cls_logits"):
        build_model_from_checkpoint(wrong)


def test_load_state_dict_file_accepts_the_usual_layouts(model, tmp_path):
    state = model.state_dict()
    layouts = {"bare": state, "model": {"model": state, "epoch": 2}, "state_dict": {"state_dict": state}}
    for name, payload in layouts.items():
        torch.save(payload, tmp_path / f"{name}.pth")
        assert load_state_dict_file(tmp_path / f"{name}.pth").keys() == state.keys()
    sdk_ckpt = save_checkpoint(tmp_path / "sdk.pt", meta=_meta(), state_dict=state)
    assert load_state_dict_file(sdk_ckpt).keys() == state.keys()
    torch.save({"epoch": 2}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="no state_dict"):
        load_state_dict_file(tmp_path / "empty.pth")


def test_importing_sdk_checkpoint_does_not_import_torch():
    code = "import sys, sdk.checkpoint; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"
