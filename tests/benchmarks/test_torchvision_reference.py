"""The torchvision eager reference row: same weights, torchvision's own transform."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from sdk.benchmarks.images import synthetic_images  # noqa: E402
from sdk.benchmarks.single import benchmark_target  # noqa: E402
from sdk.benchmarks.torchvision_reference import TorchvisionPipeline, torchvision_builder_kwargs  # noqa: E402


@pytest.fixture(scope="module")
def ssdlite_checkpoint(make_random_checkpoint):
    return make_random_checkpoint("ssdlite320_mobilenet_v3_large")


def test_torchvision_row_holds_the_checkpoint_weights_and_counts_published_flops(ssdlite_checkpoint):
    from sdk.checkpoint import load_checkpoint

    pipeline = TorchvisionPipeline(ssdlite_checkpoint)
    state = load_checkpoint(ssdlite_checkpoint).state_dict
    for name, tensor in pipeline.model.state_dict().items():
        if name in state:
            assert torch.equal(tensor, state[name]), name
    result = benchmark_target(
        ssdlite_checkpoint, synthetic_images(2, size=(120, 160)), backend="torchvision", iters=2, warmup=1,
        progress=False, threads=1,
    )
    assert result["model"]["backend"] == "torchvision" and result["model"]["input_hw"] == [320, 320]
    assert all(b["stages_ms"]["inference"]["mean"] > 0 for b in result["batches"])
    # FlopCounterMode counts 2 FLOPs per multiply-accumulate; torchvision's table counts MACs.
    published = torchvision.models.detection.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1.meta["_ops"]
    assert result["model"]["gflops"] == pytest.approx(2 * published, rel=0.05)


def test_keep_ratio_models_get_matching_min_and_max_size():
    from sdk.checkpoint import CheckpointMeta
    from sdk.models import get_model_spec

    spec = get_model_spec("fasterrcnn_resnet50_fpn")
    meta = CheckpointMeta(
        model_name=spec.name, num_classes=3, classes=("__background__", "a", "b"), preprocess=spec.default_preprocess,
        postprocess={"score_thr": 0.3, "iou_thr": 0.6, "max_det": 50},
    )
    name, kwargs = torchvision_builder_kwargs(spec.name, meta)
    assert name == "fasterrcnn_resnet50_fpn"
    assert kwargs["min_size"] == 800 and kwargs["max_size"] == 1333
    assert kwargs["box_score_thresh"] == 0.3 and kwargs["box_nms_thresh"] == 0.6 and kwargs["box_detections_per_img"] == 50
    assert kwargs["image_mean"] == pytest.approx([0.485, 0.456, 0.406], abs=1e-6)
    assert torchvision_builder_kwargs("fcos_tiny", meta) is None
