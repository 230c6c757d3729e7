"""The model-name registry: names, strict overrides, specs."""

from __future__ import annotations

import pytest
import torchvision
from torchvision.ops.misc import FrozenBatchNorm2d

import sdk.models
from sdk.errors import ConfigError
from sdk.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

EXPECTED = {
    "retinanet_resnet50_fpn": "retinanet",
    "fcos_resnet50_fpn": "fcos",
    "fasterrcnn_resnet50_fpn": "faster_rcnn",
    "fasterrcnn_mobilenet_v3_large_fpn": "faster_rcnn",
    "maskrcnn_resnet50_fpn": "mask_rcnn",
    "maskrcnn_tiny": "mask_rcnn",
    "ssdlite320_mobilenet_v3_large": "ssdlite",
    "retinanet_tiny": "retinanet",
    "fcos_tiny": "fcos",
    "fasterrcnn_tiny": "faster_rcnn",
    "ssdlite_tiny": "ssdlite",
    "rtmdet_tiny": "rtmdet",
    "rtmdet_s": "rtmdet",
    "rtmdet_nano": "rtmdet",
}


def test_lists_every_model_with_its_family():
    assert set(EXPECTED) <= set(sdk.models.list_models())
    assert sdk.models.list_models() == sorted(sdk.models.list_models())
    for name, family in EXPECTED.items():
        spec = sdk.models.get_model_spec(name)
        assert (spec.name, spec.family) == (name, family)
        expected_tv = None if name.endswith("_tiny") or family == "rtmdet" else name
        assert spec.torchvision_name == expected_tv
        if expected_tv is not None:  # the torchvision builder of that name exists
            assert callable(getattr(torchvision.models.detection, expected_tv))


def test_default_preprocess_per_model():
    r50 = sdk.models.get_model_spec("fasterrcnn_resnet50_fpn").default_preprocess
    assert (r50.mode, r50.size, r50.mean, r50.std) == ("keep_ratio", (800, 1333), IMAGENET_MEAN, IMAGENET_STD)
    ssd = sdk.models.get_model_spec("ssdlite320_mobilenet_v3_large").default_preprocess
    assert (ssd.mode, ssd.size, ssd.mean, ssd.std) == ("letterbox", (320, 320), (127.5,) * 3, (127.5,) * 3)
    for name in ("retinanet_tiny", "fcos_tiny", "fasterrcnn_tiny", "ssdlite_tiny"):
        tiny = sdk.models.get_model_spec(name).default_preprocess
        assert (tiny.mode, tiny.size, tiny.mean, tiny.std) == ("letterbox", (320, 320), IMAGENET_MEAN, IMAGENET_STD)


def test_unknown_name_lists_the_available_models():
    with pytest.raises(ConfigError, match="fcos_tiny") as info:
        sdk.models.build_model("fcos_tinny", num_classes=3)
    assert "unknown model 'fcos_tinny'" in str(info.value)


def test_unknown_override_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="score_threshold") as info:
        sdk.models.build_model("fcos_tiny", num_classes=3, score_threshold=0.3)
    assert "score_thresh" in str(info.value).split("valid overrides:")[1]


@pytest.mark.parametrize(
    "override", [{"detections_per_img": 10.5}, {"score_thresh": "high"}, {"detections_per_img": True}]
)
def test_wrongly_typed_override_is_rejected(override):
    with pytest.raises(ConfigError, match="must be of type"):
        sdk.models.build_model("fcos_tiny", num_classes=3, **override)


@pytest.mark.parametrize("num_classes", [1, 2.0, True])
def test_bad_num_classes_is_rejected(num_classes):
    with pytest.raises(ConfigError, match="num_classes"):
        sdk.models.build_model("fcos_tiny", num_classes=num_classes)


def test_overrides_reach_the_model():
    model = sdk.models.build_model("fcos_tiny", num_classes=3, score_thresh=0.3, detections_per_img=7)
    assert (model.score_thresh, model.detections_per_img) == (0.3, 7)
    rcnn = sdk.models.build_model("fasterrcnn_tiny", num_classes=3, box_nms_thresh=0.4, rpn_post_nms_top_n_test=50)
    assert rcnn.roi_heads.nms_thresh == 0.4
    assert rcnn.eval().rpn.post_nms_top_n() == 50


def test_registry_refuses_duplicate_names():
    def another_fcos_tiny(*, num_classes: int):  # pragma: no cover - never built
        raise AssertionError

    decorate = sdk.models.register_model("fcos_tiny", family="fcos", default_preprocess=Preprocess())
    with pytest.raises(ValueError, match="already registered"):
        decorate(another_fcos_tiny)
    assert sdk.models.get_model_spec("fcos_tiny").builder is not another_fcos_tiny


def test_registry_requires_keyword_only_builders_with_defaults():
    def positional(num_classes):  # pragma: no cover
        raise AssertionError

    def no_default(*, num_classes: int, depth: int):  # pragma: no cover
        raise AssertionError

    for builder in (positional, no_default):
        with pytest.raises(ValueError):
            sdk.models.register_model("never_registered", family="fcos", default_preprocess=Preprocess())(builder)
    assert "never_registered" not in sdk.models.list_models()


def test_postprocess_record_maps_to_family_knobs():
    rcnn = sdk.models.get_model_spec("fasterrcnn_resnet50_fpn")
    assert rcnn.default_postprocess() == {"score_thr": 0.05, "iou_thr": 0.5, "max_det": 100}
    assert rcnn.postprocess_overrides({"score_thr": 0.3, "max_det": 10}) == {
        "box_score_thresh": 0.3,
        "box_detections_per_img": 10,
    }
    assert rcnn.postprocess_record({"box_nms_thresh": 0.6}) == {"score_thr": 0.05, "iou_thr": 0.6, "max_det": 100}
    ssd = sdk.models.get_model_spec("ssdlite320_mobilenet_v3_large")
    assert ssd.default_postprocess() == {"score_thr": 0.001, "iou_thr": 0.55, "max_det": 300}
    with pytest.raises(ConfigError, match="unknown postprocess keys"):
        ssd.postprocess_overrides({"score": 0.1})


def test_pretrained_overrides_reproduce_torchvision_pretrained_configuration():
    """What torchvision's builder does when it loads its COCO weights: FrozenBatchNorm2d
    (eps=0 for the v1 R50 weights) and only the last 3 ResNet stages trainable."""
    spec = sdk.models.get_model_spec("fasterrcnn_resnet50_fpn")
    model = sdk.models.build_model(spec.name, num_classes=3, **spec.pretrained_overrides)
    frozen = [m for m in model.backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert frozen and all(m.eps == 0.0 for m in frozen)
    body = model.backbone.body.named_parameters()
    trainable = {name.split(".")[0] for name, param in body if param.requires_grad}
    assert trainable == {"layer2", "layer3", "layer4"}
    assert sdk.models.get_model_spec("ssdlite320_mobilenet_v3_large").pretrained_overrides == {}
