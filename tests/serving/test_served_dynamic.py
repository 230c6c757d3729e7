"""A dynamic-shape model_dir (``sdk export --dynamic-shape``) served: images of different
aspect ratios, sent together, each batched only with images of its own padded size,
give ``Detector``'s detections (each image padded to /32 alone, as torchvision does)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from serving_support import serve

from sdk import Detector
from sdk.converters.export import ExportOptions, export_checkpoint
from sdk.serving import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "deploy"))
from deploy_support import save_random_checkpoint, small_keep_ratio_preprocess  # noqa: E402


@pytest.fixture(scope="module")
def dynamic_model_dir(tmp_path_factory):
    work = tmp_path_factory.mktemp("dynamic_model")
    checkpoint, _ = save_random_checkpoint(work / "model.pt", "fasterrcnn_tiny", seed=2,
                                           preprocess=small_keep_ratio_preprocess())
    out = export_checkpoint(checkpoint, work / "model_dir", ExportOptions(dynamic_shape=True, max_batch=4))
    assert json.loads((out / "manifest.json").read_text())["input"]["shape"] == [-1, 3, -1, -1]
    return out


def test_served_dynamic_model_equals_detector(dynamic_model_dir):
    rng = np.random.default_rng(5)
    # padded inputs 224x320, 320x224, 224x320 again, 64x320: three sizes in one request
    images = [rng.integers(0, 256, shape, np.uint8) for shape in [(240, 320, 3), (320, 200, 3), (480, 640, 3),
                                                                   (40, 200, 3)]]
    expected = Detector(dynamic_model_dir)(images, channel_order="rgb")
    assert all(len(d) > 0 for d in expected)
    with serve(dynamic_model_dir, name="dynamic", max_batch_size=4, max_queue_delay_us=20000) as server:
        with Client(server.url, model="dynamic") as client:
            served = client.detect(images, channel_order="rgb")
    for ours, ref in zip(served, expected):
        np.testing.assert_array_equal(ours.labels, ref.labels)
        np.testing.assert_allclose(ours.boxes, ref.boxes, atol=1e-3)
        np.testing.assert_allclose(ours.scores, ref.scores, atol=1e-5)
