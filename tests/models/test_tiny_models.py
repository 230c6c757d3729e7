"""The tiny variants: training forward, eval output contract, checkpoint round trip, size."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import sdk.models
from sdk.checkpoint import CheckpointMeta, build_model_from_checkpoint, load_checkpoint, save_checkpoint
from sdk.errors import InputError

TINY = ["retinanet_tiny", "fcos_tiny", "fasterrcnn_tiny", "maskrcnn_tiny", "ssdlite_tiny", "rtmdet_nano"]
NUM_CLASSES = 4
# Score thresholds at 0 so untrained models return detections to check.
NO_SCORE_THRESHOLD = {"faster_rcnn": {"box_score_thresh": 0.0}, "mask_rcnn": {"box_score_thresh": 0.0}}


def _no_threshold(name: str) -> dict:
    family = sdk.models.get_model_spec(name).family
    return NO_SCORE_THRESHOLD.get(family, {"score_thresh": 0.0})


def _targets() -> list[dict[str, torch.Tensor]]:
    """Two 128x160 images' targets (with masks, which only Mask R-CNN reads)."""
    masks = torch.zeros(2, 128, 160, dtype=torch.uint8)
    masks[0, 30:90, 20:70] = 1
    masks[1, 45:85, 100:140] = 1
    return [
        {"boxes": torch.tensor([[12.0, 20.0, 80.0, 100.0], [90.0, 40.0, 150.0, 90.0]]), "labels": torch.tensor([1, 3]),
         "masks": masks},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),  # an image without objects
         "masks": torch.zeros(0, 128, 160, dtype=torch.uint8)},
    ]


@pytest.mark.parametrize("name", TINY)
def test_training_forward_gives_finite_losses_and_gradients(name):
    torch.manual_seed(0)
    model = sdk.models.build_model(name, num_classes=NUM_CLASSES).train()
    losses = model(torch.randn(2, 3, 128, 160), _targets())
    assert losses and all(v.dim() == 0 and torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    params = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)


@pytest.mark.parametrize("name", TINY)
def test_eval_output_contract(name):
    torch.manual_seed(0)
    model = sdk.models.build_model(name, num_classes=NUM_CLASSES, **_no_threshold(name)).eval()
    height, width = 96, 160
    with torch.no_grad():
        detections = model(torch.randn(3, 3, height, width))
    assert len(detections) == 3
    for det in detections:
        boxes, scores, labels = det["boxes"], det["scores"], det["labels"]
        assert boxes.dtype == scores.dtype == torch.float32 and labels.dtype == torch.int64
        assert boxes.dim() == 2 and boxes.shape[1] == 4 and 0 < boxes.shape[0] <= 100
        assert scores.shape == labels.shape == boxes.shape[:1]
        assert torch.all(scores[:-1] >= scores[1:])
        assert boxes[:, 0::2].min() >= 0 and boxes[:, 0::2].max() <= width
        assert boxes[:, 1::2].min() >= 0 and boxes[:, 1::2].max() <= height
        assert labels.min() >= 0 and labels.max() < NUM_CLASSES
        if "masks" in det:  # Mask R-CNN: box-relative probabilities of the detection's class
            assert det["masks"].shape == (boxes.shape[0], 1, 28, 28) and det["masks"].dtype == torch.float32
            assert 0 <= det["masks"].min() and det["masks"].max() <= 1


@pytest.mark.parametrize("name", TINY)
def test_checkpoint_round_trip_reproduces_detections(name, tmp_path):
    torch.manual_seed(0)
    spec = sdk.models.get_model_spec(name)
    overrides = _no_threshold(name)
    model = sdk.models.build_model(name, num_classes=NUM_CLASSES, **overrides).eval()
    meta = CheckpointMeta(
        model_name=name,
        num_classes=NUM_CLASSES,
        classes=("__background__", "a", "b", "c"),
        preprocess=spec.default_preprocess,
        postprocess=spec.postprocess_record(overrides),
        model_overrides=overrides,
    )
    path = save_checkpoint(tmp_path / "model.pt", meta=meta, state_dict=model.state_dict())
    rebuilt, loaded_meta = build_model_from_checkpoint(path)
    assert loaded_meta == meta and not rebuilt.training
    assert load_checkpoint(path).state_dict.keys() == model.state_dict().keys()
    images = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        expected, actual = model(images), rebuilt(images)
    for mine, ref in zip(actual, expected):
        assert ref["boxes"].shape[0] > 0
        for key in ("boxes", "scores", "labels"):
            torch.testing.assert_close(mine[key], ref[key], rtol=0, atol=0)


@pytest.mark.parametrize("name", TINY)
def test_tiny_models_stay_small(name):
    """At most 3 GFLOPs and 3 M parameters at 320x320 (CPU training in minutes)."""
    model = sdk.models.build_model(name, num_classes=NUM_CLASSES).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 320, 320))
    assert counter.get_total_flops() < 3e9
    assert sum(p.numel() for p in model.parameters()) < 3e6


def test_fcos_tiny_learns_quickly():
    """Fifteen steps on two images halve the loss (trainable from scratch)."""
    torch.manual_seed(0)
    model = sdk.models.build_model("fcos_tiny", num_classes=NUM_CLASSES).train()
    images = torch.randn(2, 3, 96, 96)
    targets = [
        {"boxes": torch.tensor([[12.0, 20.0, 60.0, 80.0], [60.0, 10.0, 90.0, 40.0]]), "labels": torch.tensor([1, 3])},
        {"boxes": torch.tensor([[30.0, 30.0, 70.0, 90.0]]), "labels": torch.tensor([2])},
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(15):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert history[-1] < 0.5 * history[0], history


def test_bad_inputs_raise_input_error():
    model = sdk.models.build_model("fcos_tiny", num_classes=NUM_CLASSES)
    with pytest.raises(InputError, match="normalized float"):
        model.eval()(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(InputError, match=r"\[B, 3, H, W\]"):
        model.eval()(torch.zeros(3, 64, 64))
    with pytest.raises(InputError, match="needs targets"):
        model.train()(torch.zeros(1, 3, 64, 64))
    degenerate = [{"boxes": torch.tensor([[10.0, 10.0, 10.0, 20.0]]), "labels": torch.tensor([1])}]
    with pytest.raises(InputError, match="positive width and height"):
        model.train()(torch.zeros(1, 3, 64, 64), degenerate)
