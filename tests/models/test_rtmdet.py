"""RTMDet: builder sizes, the shared-conv head, the dynamic soft label assigner, quality
focal loss (against torchvision's sigmoid focal loss where they coincide) and a few
training steps."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import sigmoid_focal_loss

import sdk.models
from sdk.models.rtmdet_assigner import dynamic_soft_label_assign, quality_focal_loss

# Parameter counts in the RTMDet paper (Table 5) at 80 COCO classes. Ours: 4.90M and
# 8.86M; the 2% gap of tiny is not explained (the paper prints two digits).
PAPER_PARAMS = {"rtmdet_tiny": 4.8e6, "rtmdet_s": 8.89e6}


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_published_sizes_have_the_papers_parameter_count(name):
    model = sdk.models.build_model(name, num_classes=80)
    params = sum(p.numel() for p in model.parameters())
    assert params == pytest.approx(PAPER_PARAMS[name], rel=0.025)


def test_features_and_head_outputs_per_level():
    model = sdk.models.build_model("rtmdet_nano", num_classes=4).eval()
    with torch.no_grad():
        features = model.backbone(torch.zeros(2, 3, 96, 160))
        outputs = model.head(list(features.values()))
    assert [tuple(f.shape) for f in features.values()] == [(2, 64, 12, 20), (2, 64, 6, 10), (2, 64, 3, 5)]
    n = 12 * 20 + 6 * 10 + 3 * 5
    assert outputs["cls_logits"].shape == (2, n, 4) and outputs["bbox_regression"].shape == (2, n, 4)
    assert (outputs["bbox_regression"] > 0).all()  # distances through exp


def test_head_shares_its_3x3_convs_and_keeps_batchnorm_per_level():
    head = sdk.models.build_model("rtmdet_nano", num_classes=4).head
    keys = head.state_dict().keys()
    assert len([k for k in keys if k.startswith("cls_convs.")]) == 2  # one weight per layer, all levels
    assert len([k for k in keys if k.startswith("cls_norms.") and k.endswith(".weight")]) == 3 * 2
    assert len(head.rtm_cls) == len(head.rtm_reg) == 3


def _points(*xy):
    return torch.tensor(xy, dtype=torch.float32)


def test_assigner_takes_the_cheapest_location_inside_the_box():
    gt = torch.tensor([[0.0, 0.0, 64.0, 64.0]])
    points = _points((32, 32), (8, 8), (100, 100))
    pred_boxes = torch.tensor([[0.0, 0.0, 64.0, 64.0], [0.0, 0.0, 16.0, 16.0], [0.0, 0.0, 64.0, 64.0]])
    logits = torch.zeros(3, 3)
    result = dynamic_soft_label_assign(
        points=points, strides=torch.full((3,), 8.0), pred_logits=logits, pred_boxes=pred_boxes,
        gt_boxes=gt, gt_labels=torch.tensor([2]),
    )  # fmt: skip
    # the IoUs of the two inside locations sum to 1 + 1/16 -> k = 1: the exact prediction;
    # the third predicts the box too but lies outside it
    assert result.matched.tolist() == [0, -1, -1]
    assert result.ious.tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize(("iou", "expected_k"), [(1.0, 13), (0.5, 6)])
def test_assigner_dynamic_k_is_the_sum_of_the_13_best_ious(iou, expected_k):
    gt = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    points = torch.stack([torch.linspace(10, 90, 20), torch.full((20,), 50.0)], dim=1)
    side = 100.0 * iou**0.5  # a box inside the gt with IoU = iou
    pred_boxes = torch.tensor([[0.0, 0.0, side, side]]).expand(20, 4)
    result = dynamic_soft_label_assign(
        points=points, strides=torch.full((20,), 8.0), pred_logits=torch.zeros(20, 2), pred_boxes=pred_boxes,
        gt_boxes=gt, gt_labels=torch.tensor([1]),
    )  # fmt: skip
    chosen = result.matched >= 0
    assert int(chosen.sum()) == expected_k
    # equal IoU and class costs: the centre prior picks the locations nearest the centre
    distance = (points[:, 0] - 50).abs()
    assert distance[chosen].max() <= distance[~chosen].min()
    assert torch.allclose(result.ious[chosen], torch.tensor(iou), atol=1e-5)


def test_assigner_gives_a_contested_location_to_its_cheapest_box():
    gts = torch.tensor([[0.0, 0.0, 40.0, 40.0], [10.0, 10.0, 50.0, 50.0]])
    points = _points((25, 25))
    pred_boxes = torch.tensor([[11.0, 11.0, 50.0, 50.0]])  # IoU 0.95 with box 1, 0.52 with box 0
    result = dynamic_soft_label_assign(
        points=points, strides=torch.tensor([8.0]), pred_logits=torch.zeros(1, 3), pred_boxes=pred_boxes,
        gt_boxes=gts, gt_labels=torch.tensor([1, 2]),
    )  # fmt: skip
    assert result.matched.tolist() == [1]


def test_assigner_without_boxes_assigns_nothing():
    result = dynamic_soft_label_assign(
        points=_points((4, 4)), strides=torch.tensor([8.0]), pred_logits=torch.zeros(1, 2),
        pred_boxes=torch.tensor([[0.0, 0.0, 8.0, 8.0]]), gt_boxes=torch.zeros(0, 4),
        gt_labels=torch.zeros(0, dtype=torch.int64),
    )  # fmt: skip
    assert result.matched.tolist() == [-1] and result.ious.tolist() == [0.0]


def test_quality_focal_loss_with_hard_targets_is_sigmoid_focal_loss():
    torch.manual_seed(0)
    logits = torch.randn(6, 4) * 2
    labels = torch.tensor([0, -1, 3, 2, -1, 1])
    one_hot = torch.zeros(6, 4)
    pos = labels >= 0
    one_hot[pos, labels[pos]] = 1.0
    ours = quality_focal_loss(logits, labels, torch.ones(6))
    reference = sigmoid_focal_loss(logits, one_hot, alpha=-1, gamma=2.0, reduction="none").sum(dim=1)
    torch.testing.assert_close(ours, reference)


def test_quality_focal_loss_soft_target_by_hand():
    logit = torch.tensor([[0.0, 0.0]])  # p = 0.5 in both columns
    loss = quality_focal_loss(logit, torch.tensor([1]), torch.tensor([0.8]))
    ln2 = torch.log(torch.tensor(2.0))
    # column 0: BCE(0.5, 0) * 0.5^2 = ln2 / 4; column 1: BCE(0.5, 0.8) * |0.8 - 0.5|^2 = ln2 * 0.09
    torch.testing.assert_close(loss, (ln2 / 4 + ln2 * 0.09).reshape(1))


def test_wiring_losses_box_loss_vanishes_on_exact_predictions_and_qfl_is_normalized_by_the_ious():
    model = sdk.models.build_model("rtmdet_nano", num_classes=3).train()
    anchors = torch.tensor([[0.0, 0.0, 8.0, 8.0], [28.0, 28.0, 36.0, 36.0]])  # points (4, 4), (32, 32)
    target = {"boxes": torch.tensor([[16.0, 16.0, 48.0, 48.0]]), "labels": torch.tensor([1])}
    distances = torch.tensor([[[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0]]])  # point 2 predicts the box
    logits = torch.zeros(1, 2, 3)
    losses = model.compute_loss([target], {"cls_logits": logits, "bbox_regression": distances}, anchors)
    assert losses["bbox_regression"].item() == pytest.approx(0.0, abs=1e-6)
    # one positive (IoU 1): QFL of its row at target 1 plus the other row's negatives, / 1
    labels = torch.tensor([-1, 1])
    expected = quality_focal_loss(logits[0], labels, torch.tensor([0.0, 1.0])).sum()
    torch.testing.assert_close(losses["classification"], expected)


def test_a_few_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = sdk.models.build_model("rtmdet_nano", num_classes=3).train()
    images = torch.randn(2, 3, 96, 96)
    targets = [
        {"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[30.0, 20.0, 80.0, 70.0], [5.0, 5.0, 30.0, 30.0]]), "labels": torch.tensor([2, 1])},
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    totals = []
    for _ in range(12):
        losses = model(images, targets)
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        totals.append(loss.item())
    assert totals[-1] < 0.7 * totals[0], totals
