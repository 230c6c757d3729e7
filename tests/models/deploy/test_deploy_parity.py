"""DeployModule (static shapes, custom ops) == eager model, in PyTorch, per family.

Tiny variants and the torchvision-sized builders, random weights, small inputs,
a batch of 3 different images. Differences allowed: float rounding of the batched
arithmetic, and which of several equal-score boxes NMS keeps (see
``assert_same_contract``).
"""

from __future__ import annotations

import pytest
import torch
from deploy_support import TINY_MODELS, assert_same_contract, default_postprocess, eager_contract, random_detector

from sdk.models.deploy import (
    FasterRCNNDeploy,
    FCOSDeploy,
    MaskRCNNDeploy,
    RetinaNetDeploy,
    RTMDetDeploy,
    SSDDeploy,
    build_deploy_module,
)
from sdk.models.registry import get_model_spec

# The ResNet-50 ones take ~10 s each on a small CPU: -m slow.
FULL_SIZE_MODELS = (
    pytest.param("retinanet_resnet50_fpn", marks=pytest.mark.slow),
    pytest.param("fcos_resnet50_fpn", marks=pytest.mark.slow),
    pytest.param("fasterrcnn_resnet50_fpn", marks=pytest.mark.slow),
    pytest.param("maskrcnn_resnet50_fpn", marks=pytest.mark.slow),
    "fasterrcnn_mobilenet_v3_large_fpn",  # two FPN maps at one stride: RoIAlign reads the first
    "ssdlite320_mobilenet_v3_large",
)
DEPLOY_TYPES = {
    "retinanet": RetinaNetDeploy,
    "fcos": FCOSDeploy,
    "faster_rcnn": FasterRCNNDeploy,
    "mask_rcnn": MaskRCNNDeploy,
    "ssdlite": SSDDeploy,
    "rtmdet": RTMDetDeploy,
}


def _check_parity(name: str, size: tuple[int, int], *, seed: int) -> None:
    spec = get_model_spec(name)
    preprocess = spec.default_preprocess.with_static_shape(size)  # keep_ratio: a static canvas
    model = random_detector(name, seed=seed, image_size=size)
    postprocess = default_postprocess(name)
    deploy = build_deploy_module(model, preprocess=preprocess, postprocess=postprocess)
    assert type(deploy) is DEPLOY_TYPES[spec.family]

    images = torch.randint(0, 256, (3, 3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    normalized = (images.float() - deploy.normalize.mean) / deploy.normalize.std
    reference = eager_contract(model, normalized, max_det=postprocess["max_det"])
    with torch.no_grad():
        ours = {k: v.numpy() for k, v in deploy(images)._asdict().items()}
    assert ours["num_dets"].dtype.name == "int32" and ours["labels"].dtype.name == "int32"
    assert ours["boxes"].shape == (3, postprocess["max_det"], 4)
    assert ("masks" in ours) == (spec.family == "mask_rcnn") == ("masks" in reference)
    assert_same_contract(ours, reference, min_dets=5)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_tiny_deploy_module_matches_eager(name):
    _check_parity(name, (224, 288), seed=1)


@pytest.mark.parametrize("name", FULL_SIZE_MODELS)
def test_full_size_deploy_module_matches_eager(name):
    size = (320, 320) if name.startswith("ssdlite") else (256, 320)
    _check_parity(name, size, seed=2)


def test_padding_rows_are_zero_and_labels_in_range():
    model = random_detector("fasterrcnn_tiny", seed=3, image_size=(224, 288), box_score_thresh=0.45)
    spec = get_model_spec("fasterrcnn_tiny")
    deploy = build_deploy_module(model, preprocess=spec.default_preprocess.with_static_shape((224, 288)),
                                 postprocess={"score_thr": 0.45, "iou_thr": 0.5, "max_det": 300})
    with torch.no_grad():
        num, boxes, scores, labels = deploy(torch.randint(0, 256, (2, 3, 224, 288), dtype=torch.uint8))
    for b in range(2):
        n = int(num[b, 0])
        assert 0 < n < 300, "the test needs some padding rows"
        assert (labels[b, :n] >= 1).all() and (labels[b, :n] < 4).all()  # never background
        assert (scores[b, :n] > 0.45).all()
        assert not boxes[b, n:].any() and not scores[b, n:].any() and not labels[b, n:].any()


def test_ssd_refuses_a_varying_input_shape():
    from sdk.errors import ConfigError

    model = random_detector("ssdlite_tiny")
    keep_ratio = get_model_spec("fcos_resnet50_fpn").default_preprocess  # no canvas: any H x W
    with pytest.raises(ConfigError, match="SSD exports one input size"):
        build_deploy_module(model, preprocess=keep_ratio, postprocess=default_postprocess("ssdlite_tiny"))


def test_unknown_model_type_is_refused():
    from sdk.errors import ConfigError

    with pytest.raises(ConfigError, match="no DeployModule"):
        build_deploy_module(torch.nn.Linear(2, 2), preprocess=None, postprocess={})
