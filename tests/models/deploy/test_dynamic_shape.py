"""Dynamic-shape DeployModules (keep_ratio record without a canvas) == the eager model at
every input size, in PyTorch and exported to ONNX (one graph, several sizes and batches).

The eager model is torchvision's computation on a padded batch (tests/models/
test_torchvision_parity.py), so a dynamic-shape graph fed torchvision's per-image /32
padding gives torchvision's detections.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from deploy_support import assert_same_contract, default_postprocess, eager_contract, random_detector

from sdk.models.deploy import build_deploy_module
from sdk.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

# short side 224, long side <= 320, padded to /32 per batch: the graph's sizes run 32..320
KEEP_RATIO = Preprocess(mode="keep_ratio", size=(224, 320), pad_value=114, mean=IMAGENET_MEAN, std=IMAGENET_STD)
DYNAMIC_FAMILIES = ("retinanet_tiny", "fcos_tiny", "fasterrcnn_tiny", "maskrcnn_tiny", "rtmdet_nano")
# (batch, H, W): landscape, portrait, a small one whose top levels are a single cell, none the traced size
SIZES = [(2, 224, 320), (1, 320, 160), (3, 64, 96)]
# each image's content (h, w) at the top left of its padded input, as torchvision batches them
CONTENT = {(2, 224, 320): [[224, 301], [199, 320]], (1, 320, 160): [[320, 143]], (3, 64, 96): [[64, 96], [40, 90], [64, 70]]}
# ONNX Runtime's convolutions round differently from PyTorch's (RTMDet's BatchNorm heads most)
ORT_TOLERANCE = {"atol": 1e-2, "score_atol": 4e-5, "score_rtol": 0.0}


def _images(batch: int, height: int, width: int) -> torch.Tensor:
    return torch.randint(0, 256, (batch, 3, height, width), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(height * 1000 + width))


def _dynamic(name: str):
    model = random_detector(name, seed=1, image_size=(224, 288))
    postprocess = default_postprocess(name)
    return model, build_deploy_module(model, preprocess=KEEP_RATIO, postprocess=postprocess), postprocess


def _sizes(shape) -> torch.Tensor:
    return torch.tensor(CONTENT[shape], dtype=torch.int64)


def _reference(model, deploy, images: torch.Tensor, max_det: int, image_sizes=None) -> dict[str, np.ndarray]:
    from sdk.runtime.torch_backend import pack_detections

    normalized = (images.float() - deploy.normalize.mean) / deploy.normalize.std
    if image_sizes is None:
        return eager_contract(model, normalized, max_det=max_det)
    with torch.no_grad():
        return pack_detections(model(normalized, image_sizes=image_sizes), max_det=max_det)


@pytest.mark.parametrize("name", DYNAMIC_FAMILIES)
def test_dynamic_deploy_module_matches_eager_at_every_size(name):
    model, deploy, postprocess = _dynamic(name)
    assert deploy.image_size is None and not hasattr(deploy, "anchors")  # anchors come from the graph
    for shape in SIZES:
        images = _images(*shape)
        for sizes in (None, _sizes(shape)):  # content filling the input, and torchvision's padded batch
            with torch.no_grad():
                ours = {k: v.numpy() for k, v in deploy(images, sizes)._asdict().items()}
            assert_same_contract(ours, _reference(model, deploy, images, postprocess["max_det"], sizes), min_dets=5)


def _export_and_compare(name: str, tmp_path, flavor: str) -> None:
    from sdk.converters.onnx_export import export_onnx

    model, deploy, postprocess = _dynamic(name)
    path = export_onnx(deploy, tmp_path / "dynamic.onnx", flavor=flavor, input_shape=(224, 288), max_batch=4,
                       dynamic_hw=(32, 320))
    graph_inputs = onnx.load(str(path)).graph.input
    assert [i.name for i in graph_inputs] == ["images", "image_sizes"]
    dims = graph_inputs[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:2]] == [3] and all(d.dim_param for d in (dims[0], dims[2], dims[3]))
    if flavor == "tensorrt":
        from sdk.trt_plugins.ort_ops import inference_session

        session = inference_session(path)
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for shape in SIZES:
        images, sizes = _images(*shape), _sizes(shape)
        ours = dict(zip(names, session.run(None, {"images": images.numpy(), "image_sizes": sizes.numpy()})))
        reference = _reference(model, deploy, images, postprocess["max_det"], sizes)
        assert_same_contract(ours, reference, min_dets=5, **ORT_TOLERANCE)


@pytest.mark.parametrize("name", ["fasterrcnn_tiny", pytest.param("retinanet_tiny", marks=pytest.mark.slow),
                                  pytest.param("maskrcnn_tiny", marks=pytest.mark.slow),
                                  pytest.param("rtmdet_nano", marks=pytest.mark.slow)])
def test_one_onnx_graph_runs_every_size(name, tmp_path):
    _export_and_compare(name, tmp_path, "onnxruntime")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fasterrcnn_tiny", "fcos_tiny"])
def test_tensorrt_flavor_graph_runs_every_size(name, tmp_path):
    """The sdk:: plugin nodes with a static candidate count and feature maps of any size
    (run through their ONNX Runtime reference kernels)."""
    _export_and_compare(name, tmp_path, "tensorrt")


def test_levels_pad_to_a_static_candidate_count():
    """Every level yields exactly topk_candidates rows, so NMS sees one static count
    whatever the size; padding rows never become detections."""
    from sdk.models.deploy.common import pad_candidates

    scores = torch.tensor([[0.5, 0.0, 0.25]])
    static, k = pad_candidates(scores, 5, static=True)
    assert k == 3 and static is scores
    padded, k = pad_candidates(scores, 5, static=False, fill=-1.0)
    assert k == 5 and padded.tolist() == [[0.5, 0.0, 0.25, -1.0, -1.0, -1.0, -1.0, -1.0]]
