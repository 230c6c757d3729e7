"""An instance segmentation model served over gRPC (and HTTP): the optional ``masks``
output (JSON COCO RLE per detection) equals ``Detector``'s masks, read by
``sdk.serving.Client`` and by plain ``tritonclient``. (The exported ONNX Runtime masks
equal the eager ones: tests/models/deploy/test_mask_export.py.)"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
from serving_support import png_bytes, serve

import sdk.models
from sdk import Detector
from sdk.checkpoint import CheckpointMeta, save_checkpoint
from sdk.masks import decode_rle
from sdk.preprocess import Preprocess
from sdk.serving import Client
from sdk.serving.batcher import BatchingConfig
from sdk.serving.model import ServedModel
from sdk.serving.server import ServerOptions, start_in_thread

CLASSES = ("__background__", "a", "b", "c")


@pytest.fixture(scope="module")
def mask_checkpoint(tmp_path_factory):
    """A random-weight ``maskrcnn_tiny`` checkpoint (letterbox 128x160, K = 20)."""
    work = tmp_path_factory.mktemp("mask_model")
    torch.manual_seed(0)
    model = sdk.models.build_model("maskrcnn_tiny", num_classes=len(CLASSES), box_detections_per_img=20)
    meta = CheckpointMeta(model_name="maskrcnn_tiny", num_classes=len(CLASSES), classes=CLASSES,
                          preprocess=Preprocess(mode="letterbox", size=(128, 160)),
                          postprocess={"score_thr": 0.05, "iou_thr": 0.5, "max_det": 20})
    return save_checkpoint(work / "model.pt", meta=meta, state_dict=model.state_dict())


@contextlib.contextmanager
def serve_checkpoint(checkpoint):
    """gRPC + HTTP server of the checkpoint run eagerly (``TorchBackend``, no export: the
    serving path after the backend is the one every model_dir takes)."""
    from sdk.runtime.torch_backend import TorchBackend

    _, meta = TorchBackend.from_checkpoint(checkpoint)
    model = ServedModel(name="masks", classes=tuple(meta.classes), preprocess=meta.preprocess, max_batch=4,
                        max_det=20, backend_factory=lambda: TorchBackend.from_checkpoint(checkpoint, max_batch=4)[0],
                        masks=True)
    thread = start_in_thread([(model, BatchingConfig(max_batch_size=4))], ServerOptions(port=0, http_port=0))
    try:
        yield thread
    finally:
        thread.stop(grace_s=2.0)


def _images():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (90, 140, 3), np.uint8), rng.integers(0, 256, (150, 110, 3), np.uint8)]


def test_served_masks_equal_detector_masks(mask_checkpoint):
    images = _images()
    expected = Detector(mask_checkpoint)(images, channel_order="rgb")
    assert all(len(d) > 0 and d.masks.any() for d in expected)
    with serve_checkpoint(mask_checkpoint) as server:
        with Client(server.url, model="masks") as client:
            assert client.has_masks()
            served = client.detect(images, channel_order="rgb")
            boxes_only = client.detect(images, channel_order="rgb", masks=False)
        with Client(server.http_url, model="masks") as client:  # the same over HTTP (binary BYTES output)
            served_http = client.detect(images, channel_order="rgb")
        with grpcclient.InferenceServerClient(server.url) as raw:
            tensor = grpcclient.InferInput("images", [1, 1], "BYTES")
            tensor.set_data_from_numpy(np.array([[png_bytes(images[0])]], dtype=np.object_))
            outputs = [grpcclient.InferRequestedOutput(n) for n in ("num_dets", "masks")]
            result = raw.infer("masks", [tensor], outputs=outputs)
            config = raw.get_model_config("masks", as_json=True)["config"]
    assert {"name": "masks", "data_type": "TYPE_STRING", "dims": ["20"]} in config["output"]
    for ours, ref in [*zip(served, expected), *zip(served_http, expected)]:
        np.testing.assert_array_equal(ours.labels, ref.labels)
        np.testing.assert_allclose(ours.boxes, ref.boxes, atol=1e-3)
        np.testing.assert_array_equal(ours.masks, ref.masks)
    assert all(d.masks is None for d in boxes_only)
    # plain tritonclient: BYTES [1, K], JSON RLE on the valid rows, empty on padding
    n = int(result.as_numpy("num_dets")[0, 0])
    encoded = result.as_numpy("masks")
    assert encoded.shape == (1, 20) and n == len(expected[0])
    first = json.loads(encoded[0, 0])
    assert first["size"] == [90, 140]
    np.testing.assert_array_equal(decode_rle(first), expected[0].masks[0])
    assert all(bytes(v) == b"" for v in encoded[0, n:])


def test_masks_of_a_detection_model_are_refused(model_dir):
    with serve(model_dir) as server, grpcclient.InferenceServerClient(server.url) as raw:
        tensor = grpcclient.InferInput("images", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[png_bytes(np.zeros((20, 30, 3), np.uint8))]], dtype=np.object_))
        with pytest.raises(Exception, match="no 'masks' output"):
            raw.infer("bright", [tensor], outputs=[grpcclient.InferRequestedOutput("masks")])


def test_masks_are_pasted_only_for_requests_that_ask(mask_checkpoint, monkeypatch):
    """Pasting masks is per-pixel work: a request for boxes only must not pay for it."""
    import sdk.serving.batcher as batcher

    pasted = []
    decode = batcher.decode_outputs

    def spy(outputs, *args, **kwargs):
        pasted.append("masks" in outputs)
        return decode(outputs, *args, **kwargs)

    monkeypatch.setattr(batcher, "decode_outputs", spy)
    image = _images()[:1]
    with serve_checkpoint(mask_checkpoint) as server, Client(server.url, model="masks") as client:
        assert client.detect(image, channel_order="rgb", masks=False)[0].masks is None
        assert client.detect(image, channel_order="rgb")[0].masks is not None
    assert pasted == [False, True]
