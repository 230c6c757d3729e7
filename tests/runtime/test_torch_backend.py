"""Eager torch backend: contract packing, normalization, and parity with ONNX Runtime."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sdk.detector import Detector  # noqa: E402
from sdk.errors import BackendUnavailableError, CheckpointError, ConfigError  # noqa: E402
from sdk.preprocess import Preprocess, preprocess_batch  # noqa: E402
from sdk.runtime.torch_backend import TorchBackend, pack_detections  # noqa: E402


class TorchBrightBox(torch.nn.Module):
    """The conftest bright-box rule as an eager, torchvision-style detector: takes
    normalized float32 [B, 3, H, W], returns ``list[dict(boxes, scores, labels)]``."""

    def __init__(self, pre: Preprocess) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(pre.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(pre.std).view(1, 3, 1, 1))

    def forward(self, images):
        x = images * self.std + self.mean
        masks = x.amax(1) > 200.5  # pixels are whole numbers up to float error
        results = []
        for pixels, mask in zip(x, masks):
            if not mask.any():
                results.append(
                    {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
                )
                continue
            cols, rows = mask.any(0).nonzero()[:, 0], mask.any(1).nonzero()[:, 0]
            box = torch.stack([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]).float()
            label = (pixels * mask).amax((1, 2)).argmax()
            results.append(
                {"boxes": box[None], "scores": (0.5 + 0.4 * mask.float().mean())[None], "labels": label[None]}
            )
        return results


class Recorder(torch.nn.Module):
    def forward(self, images):
        self.seen = images.clone()
        return [
            {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
        ] * len(images)


def test_pack_detections_sorts_truncates_and_pads():
    dets = [
        {
            "boxes": torch.arange(12.0).view(3, 4),
            "scores": torch.tensor([0.2, 0.9, 0.5]),
            "labels": torch.tensor([1, 2, 3]),
        },
        {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    out = pack_detections(dets, max_det=2)
    assert {k: (v.dtype, v.shape) for k, v in out.items()} == {
        "num_dets": (np.int32, (2, 1)),
        "boxes": (np.float32, (2, 2, 4)),
        "scores": (np.float32, (2, 2)),
        "labels": (np.int32, (2, 2)),
    }
    assert out["num_dets"].ravel().tolist() == [2, 0]
    np.testing.assert_allclose(out["scores"][0], [0.9, 0.5])
    assert out["labels"][0].tolist() == [2, 3]
    np.testing.assert_array_equal(out["boxes"][0], [[4, 5, 6, 7], [8, 9, 10, 11]])
    assert not out["boxes"][1].any() and not out["scores"][1].any()


@pytest.mark.parametrize("normalize_in_graph", [True, False])
def test_normalization_matches_preprocess(normalize_in_graph):
    pre = Preprocess(size=(32, 48), normalize_in_graph=normalize_in_graph)
    rng = np.random.default_rng(0)
    batch, _ = preprocess_batch([rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)], pre)
    recorder = Recorder()
    backend = TorchBackend(recorder, preprocess=pre, max_det=3)
    assert backend.input_dtype == batch.dtype
    out = backend.infer(batch)
    assert out["num_dets"].tolist() == [[0]] and out["boxes"].shape == (1, 3, 4)
    expected = pre.normalize(batch) if normalize_in_graph else batch  # float batches are normalized already
    np.testing.assert_allclose(recorder.seen.numpy(), expected, rtol=0, atol=1e-6)
    assert recorder.seen.dtype == torch.float32 and not recorder.training


def test_cuda_unavailable():
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
        TorchBackend(Recorder(), preprocess=Preprocess(), max_det=1, device="cuda")


@pytest.fixture
def stub_checkpoint(monkeypatch, tmp_path):
    """A ``.pt`` path whose ``sdk.checkpoint.build_model_from_checkpoint`` yields the
    torch bright-box model: its answers are known, so eager and ONNX Runtime can be
    compared box for box (real checkpoints: ``test_real_checkpoint_*`` below)."""

    def make(pre: Preprocess):
        meta = types.SimpleNamespace(
            classes=("red", "green", "blue"),
            preprocess=pre,
            postprocess={"score_thr": 0.05, "iou_thr": 0.5, "max_det": 5},
        )
        calls = []

        def build_model_from_checkpoint(path, *, device="cpu"):
            calls.append((str(path), device))
            return TorchBrightBox(pre), meta

        module = types.SimpleNamespace(build_model_from_checkpoint=build_model_from_checkpoint)
        monkeypatch.setitem(sys.modules, "sdk.checkpoint", module)
        path = tmp_path / "model.pt"
        path.write_bytes(b"stub")
        return path, calls

    return make


@pytest.mark.parametrize(
    "pre",
    [Preprocess(size=(64, 96)), Preprocess(mode="keep_ratio", size=(48, 80), pad_divisor=16, normalize_in_graph=False)],
    ids=["letterbox_uint8", "keep_ratio_float"],
)
def test_checkpoint_detector_matches_onnxruntime(stub_checkpoint, make_model_dir, scene, scenes, pre):
    path, calls = stub_checkpoint(pre)
    eager = Detector(path, batch_size=3)
    assert calls == [(str(path), "cpu")]
    assert eager.backend_name == "torch" and eager.manifest is None and eager.classes == ["red", "green", "blue"]
    assert eager.preprocess == pre and eager.batch_size == 3
    # same chunks: a keep_ratio batch is padded to its largest image, and the score
    # (object area / input area) depends on that padded size
    exported = Detector(make_model_dir(preprocess=pre), batch_size=3)
    images = [scene(h, w, box, rgb) for h, w, box, rgb in scenes]
    for a, b in zip(eager(images, channel_order="rgb"), exported(images, channel_order="rgb")):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


def test_checkpoint_detector_rejects_other_backends(stub_checkpoint):
    path, _ = stub_checkpoint(Preprocess())
    with pytest.raises(ConfigError, match="runs on the 'torch' backend"):
        Detector(path, backend="onnxruntime")


def test_real_checkpoint_matches_the_eager_model(tmp_path):
    checkpoint = pytest.importorskip("sdk.checkpoint")
    from sdk.models import build_model

    torch.manual_seed(0)
    pre = Preprocess(size=(128, 160))
    meta = checkpoint.CheckpointMeta(
        model_name="fcos_tiny",
        num_classes=3,
        classes=("__background__", "a", "b"),
        preprocess=pre,
        postprocess={"score_thr": 0.0, "iou_thr": 0.5, "max_det": 20},  # keep the untrained model's guesses
    )
    path = checkpoint.save_checkpoint(
        tmp_path / "fcos.pt", meta=meta, state_dict=build_model("fcos_tiny", num_classes=3).state_dict()
    )
    det = Detector(path, batch_size=2)
    assert det.backend_name == "torch" and det.classes == ["__background__", "a", "b"] and det.preprocess == pre

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((100, 240), (300, 120), (128, 160))]
    results = det(images, channel_order="rgb")  # chunks of 2 and 1
    model, _ = checkpoint.build_model_from_checkpoint(path)
    for image, dets in zip(images, results):
        batch, (record,) = preprocess_batch([image], pre)
        with torch.inference_mode():
            (ref,) = model(torch.from_numpy(pre.normalize(batch)))
        assert 0 < len(dets) <= 20 and len(ref["scores"]) >= len(dets)
        np.testing.assert_allclose(dets.scores, ref["scores"][:20].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(dets.boxes, record.boxes_to_original(ref["boxes"][:20].numpy()), atol=1e-3)
        np.testing.assert_array_equal(dets.labels, ref["labels"][:20].numpy())


def test_plain_state_dict_is_refused(tmp_path):
    pytest.importorskip("sdk.checkpoint")
    path = tmp_path / "torchvision_weights.pth"
    torch.save({"head.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="sdk convert torchvision"):
        Detector(path)
