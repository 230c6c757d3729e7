"""``Detector`` end to end on ONNX Runtime with the bright-box graph (see conftest)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from PIL import Image

from sdk.detections import Detections
from sdk.detector import Detector
from sdk.errors import BackendUnavailableError, ConfigError, InputError, ModelDirError
from sdk.manifest import MANIFEST_NAME
from sdk.preprocess import Preprocess, resize_scale

PREPROCESSES = {
    "letterbox": Preprocess(mode="letterbox", size=(64, 96)),
    "letterbox_center": Preprocess(mode="letterbox", size=(80, 80), pad_position="center", interpolation="nearest"),
    "keep_ratio_canvas": Preprocess(mode="keep_ratio", size=(48, 80), canvas=(96, 96), pad_position="center"),
    "keep_ratio_float": Preprocess(mode="keep_ratio", size=(48, 80), pad_divisor=16, normalize_in_graph=False),
}


def _assert_box_maps_back(dets: Detections, pre: Preprocess, h: int, w: int, box, label: int) -> None:
    assert len(dets) == 1 and dets.labels.tolist() == [label]
    # the graph sees the box up to one network pixel off per side (resampled edges)
    tol = 1.0 / resize_scale(pre, h, w) + 1.0
    np.testing.assert_allclose(dets.boxes[0], np.asarray(box, np.float32), atol=tol)
    assert 0 <= dets.boxes[0, 0] < dets.boxes[0, 2] <= w and 0 <= dets.boxes[0, 1] < dets.boxes[0, 3] <= h


def _visible(box, pre: Preprocess, h: int, w: int) -> bool:
    """False for an object thinner than ~a network pixel (resized away)."""
    return min(box[2] - box[0], box[3] - box[1]) * resize_scale(pre, h, w) >= 1.5


@pytest.mark.parametrize("name", sorted(PREPROCESSES))
def test_boxes_map_back_to_original_pixels(make_model_dir, scene, scenes, name):
    pre = PREPROCESSES[name]
    det = Detector(make_model_dir(preprocess=pre))
    for h, w, box, rgb in scenes:
        if not _visible(box, pre, h, w):
            continue
        image = scene(h, w, box, rgb)
        dets = det(image, channel_order="rgb")
        _assert_box_maps_back(dets, pre, h, w, box, label=rgb.index(255))
        assert dets.class_names == list(det.classes)


def test_wiring_batch_equals_single(make_model_dir, scene, scenes):
    det = Detector(make_model_dir(preprocess=PREPROCESSES["letterbox"], max_batch=3))
    images = [scene(h, w, box, rgb)[:, :, ::-1].copy() for h, w, box, rgb in scenes]  # BGR, as OpenCV reads
    singles = [det(img) for img in images]
    batched = det(images)  # chunks 3, 3, 2, prepared on a worker thread
    assert len(batched) == len(images) == 8
    for one, many in zip(singles, batched):
        np.testing.assert_array_equal(one.boxes, many.boxes)
        np.testing.assert_array_equal(one.scores, many.scores)
        np.testing.assert_array_equal(one.labels, many.labels)
    pre = det.preprocess
    for dets, (h, w, box, rgb) in zip(batched, scenes):
        if _visible(box, pre, h, w):
            _assert_box_maps_back(dets, pre, h, w, box, label=rgb.index(255))


def test_fixed_batch_engine_pads_the_last_chunk(make_model_dir, scene, scenes):
    model_dir = make_model_dir(fixed_batch=4, min_batch=4, max_batch=4)
    det = Detector(model_dir)
    assert (det.backend.min_batch, det.backend.max_batch) == (4, 4)
    images = [scene(h, w, box, rgb) for h, w, box, rgb in scenes[:5]]
    batched = det(images, channel_order="rgb")  # 4 + 1 padded to 4
    singles = [det(img, channel_order="rgb") for img in images]
    assert [d.boxes.tolist() for d in batched] == [d.boxes.tolist() for d in singles]
    assert all(len(d) == 1 for d in batched)


def test_channel_order_and_input_forms(make_model_dir, scene, tmp_path):
    det = Detector(make_model_dir())
    rgb = scene(120, 160, (30, 20, 90, 100), (255, 0, 0))
    bgr = rgb[:, :, ::-1].copy()
    cv2.imwrite(str(tmp_path / "img.png"), bgr)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    results = [
        det(bgr),
        det(rgb, channel_order="rgb"),
        det(str(tmp_path / "img.png")),
        det(tmp_path / "img.png"),
        det(buf.getvalue()),
        det(Image.fromarray(rgb)),
    ]
    for dets in results:
        assert dets.labels.tolist() == [0] and dets.names == ["red"]
        np.testing.assert_array_equal(dets.boxes, results[0].boxes)
    assert det(rgb).labels.tolist() == [2]  # an RGB array read as BGR swaps red and blue
    stacked = det(np.stack([bgr, bgr]))  # a 4-D array is a batch
    assert isinstance(stacked, list) and len(stacked) == 2


def test_no_object_and_score_threshold(make_model_dir, scene):
    det = Detector(make_model_dir())
    assert len(det(np.zeros((50, 50, 3), np.uint8))) == 0
    small, large = scene(100, 100, (10, 10, 20, 20)), scene(100, 100, (0, 0, 100, 80))
    s_small, s_large = det(small, channel_order="rgb").scores[0], det(large, channel_order="rgb").scores[0]
    assert s_small < s_large  # score grows with the object's area
    thr = float(s_small + s_large) / 2
    kept = det([small, large], channel_order="rgb", score_thr=thr)
    assert [len(d) for d in kept] == [0, 1]
    filtered = Detector(det.model_path, score_thr=thr)
    assert [len(d) for d in filtered([small, large], channel_order="rgb")] == [0, 1]
    assert det([]) == []


def test_attributes(make_model_dir):
    pre = PREPROCESSES["letterbox_center"]
    det = Detector(make_model_dir(preprocess=pre, max_batch=6), batch_size=2)
    assert det.classes == ["red", "green", "blue"]
    assert det.preprocess == pre and det.manifest.preprocess == pre
    assert det.backend_name == "onnxruntime" and det.backend.name == "onnxruntime"
    assert det.batch_size == 2 and det.backend.max_batch == 6
    assert det.postprocess["max_det"] == 5
    assert Detector(det.model_path / MANIFEST_NAME).manifest == det.manifest  # manifest.json names its folder
    assert "onnxruntime" in repr(det)


def test_bad_model_arguments(make_model_dir, tmp_path):
    model_dir = make_model_dir()
    with pytest.raises(InputError, match="model not found"):
        Detector(tmp_path / "missing")
    with pytest.raises(InputError, match="file inside a model_dir: pass the folder"):
        Detector(model_dir / "model.onnx")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(InputError, match="neither a model_dir nor a .pt checkpoint"):
        Detector(tmp_path / "weights.bin")
    with pytest.raises(ModelDirError, match="has no manifest.json"):
        Detector(tmp_path)
    with pytest.raises(ConfigError, match="exported for the 'onnxruntime' backend, not 'tensorrt'"):
        Detector(model_dir, backend="tensorrt")
    with pytest.raises(ConfigError, match=r"batch_size must be in 1\.\.4"):
        Detector(model_dir, batch_size=5)
    with pytest.raises(ConfigError, match="score_thr"):
        Detector(model_dir, score_thr=1.5)
    with pytest.raises(BackendUnavailableError, match="device must be"):
        Detector(model_dir, device="gpu")


def test_corrupted_model_dir_fails_at_load(make_model_dir):
    model_dir = make_model_dir()
    path = model_dir / "model.onnx"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelDirError, match=r"model\.onnx fails its sha256 check"):
        Detector(model_dir)


def test_bad_image_is_an_input_error(make_model_dir, tmp_path):
    det = Detector(make_model_dir())
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(InputError, match="broken.jpg"):
        det(tmp_path / "broken.jpg")
    with pytest.raises(InputError, match="channel_order"):
        det(np.zeros((4, 4, 3), np.uint8), channel_order="bgra")


def test_detector_on_onnxruntime_does_not_import_torch(make_model_dir):
    model_dir = make_model_dir()
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        import sdk
        det = sdk.Detector({str(model_dir)!r})
        img = np.zeros((40, 60, 3), np.uint8)
        img[10:30, 20:40] = 255
        dets = det([img, img])
        det(img).plot(img)
        print(dets[0].to_json())
        heavy = sorted(m for m in ("torch", "torchvision", "onnx", "tensorrt") if m in sys.modules)
        assert not heavy, heavy
        """)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert json.loads(out)["labels"] == [0]
