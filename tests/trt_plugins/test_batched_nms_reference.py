"""``batched_nms_reference`` against torchvision, plus its contract (shapes, ranking, padding)."""

from __future__ import annotations

import pytest
import torch
import torchvision

from sdk.trt_plugins.batched_nms import batched_nms_reference


def _torchvision_per_image(boxes, scores, score_threshold, iou_threshold, max_det, pre_nms_top_k, class_agnostic):
    """What a torchvision detector's post-processing does, one image at a time."""
    results = []
    for image_boxes, image_scores in zip(boxes, scores):
        num_classes = image_scores.shape[1]
        flat = image_scores.reshape(-1)
        idx = torch.where(flat > score_threshold)[0]
        order = torch.sort(flat[idx], descending=True, stable=True).indices
        idx = idx[order[:pre_nms_top_k] if pre_nms_top_k > 0 else order]
        labels = idx % num_classes
        cand = image_boxes[idx // num_classes, labels] if image_boxes.dim() == 3 else image_boxes[idx // num_classes]
        if class_agnostic:
            keep = torchvision.ops.nms(cand, flat[idx], iou_threshold)
        else:
            keep = torchvision.ops.batched_nms(cand, flat[idx], labels, iou_threshold)
        keep = keep[:max_det]
        results.append((cand[keep], flat[idx][keep], labels[keep]))
    return results


def test_reference_matches_torchvision(nms_config, nms_dataset, make_nms_inputs):
    boxes, scores = make_nms_inputs(nms_config, nms_dataset, batch=3)
    num, out_boxes, out_scores, out_labels = batched_nms_reference(boxes, scores, *nms_config.op_args())
    expected = _torchvision_per_image(boxes, scores, *nms_config.op_args())
    for b, (e_boxes, e_scores, e_labels) in enumerate(expected):
        n = int(num[b, 0])
        assert n == len(e_scores)
        torch.testing.assert_close(out_scores[b, :n], e_scores)
        torch.testing.assert_close(out_boxes[b, :n], e_boxes)
        assert torch.equal(out_labels[b, :n].long(), e_labels)
    if nms_dataset == "empty":
        assert int(num.sum()) == 0


def test_reference_contract(nms_config, nms_dataset, make_nms_inputs):
    boxes, scores = make_nms_inputs(nms_config, nms_dataset, batch=2)
    num, out_boxes, out_scores, out_labels = batched_nms_reference(boxes, scores, *nms_config.op_args())
    k = nms_config.max_det
    assert (num.shape, out_boxes.shape, out_scores.shape, out_labels.shape) == ((2, 1), (2, k, 4), (2, k), (2, k))
    assert (num.dtype, out_boxes.dtype, out_scores.dtype, out_labels.dtype) == (
        torch.int32, torch.float32, torch.float32, torch.int32,
    )
    for b in range(2):
        n = int(num[b, 0])
        assert 0 <= n <= k
        assert torch.all(out_scores[b, :n] > nms_config.score_threshold)
        assert torch.all(out_scores[b, :n][1:] <= out_scores[b, :n][:-1]), "scores not descending"
        assert torch.all((out_labels[b, :n] >= 0) & (out_labels[b, :n] < nms_config.classes))
        assert not out_boxes[b, n:].any() and not out_scores[b, n:].any() and not out_labels[b, n:].any()


def test_ties_rank_lower_flat_index_first():
    # one box repeated; scores [N=2, C=2] all equal: flat order (0,0) (0,1) (1,0) (1,1)
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]]])
    scores = torch.full((1, 2, 2), 0.5)
    num, _, _, labels = batched_nms_reference(boxes, scores, 0.1, 0.5, 4, class_agnostic=True)
    assert num.item() == 1 and labels[0, 0].item() == 0  # candidate (0, 0) suppresses the rest
    num, _, _, labels = batched_nms_reference(boxes, scores, 0.1, 0.5, 4)
    assert num.item() == 2 and labels[0, :2].tolist() == [0, 1]  # one per class, class 0 first
    num, _, _, labels = batched_nms_reference(boxes, scores, 0.1, 0.5, 4, pre_nms_top_k=1)
    assert num.item() == 1 and labels[0, 0].item() == 0


def test_iou_and_score_thresholds_are_strict():
    # IoU of these two boxes is exactly 0.5; the second score equals the threshold
    boxes = torch.tensor([[[0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0]]])
    scores = torch.tensor([[[0.9], [0.8], [0.25]]])
    num, _, out_scores, _ = batched_nms_reference(boxes, scores, 0.25, 0.5, 5)
    assert num.item() == 2 and out_scores[0, :2].tolist() == pytest.approx([0.9, 0.8])


def test_half_precision_inputs_give_float32_outputs(nms_config, make_nms_inputs):
    boxes, scores = make_nms_inputs(nms_config, "random", batch=2)
    half = batched_nms_reference(boxes.half(), scores.half(), *nms_config.op_args())
    full = batched_nms_reference(boxes.half().float(), scores.half().float(), *nms_config.op_args())
    assert [t.dtype for t in half] == [torch.int32, torch.float32, torch.float32, torch.int32]
    for a, b in zip(half, full):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "boxes_shape, scores_shape, max_det",
    [
        ((2, 5, 4), (2, 5), 10),  # scores not [B, N, C]
        ((2, 5, 3), (2, 5, 2), 10),  # boxes not [.., 4]
        ((2, 4, 4), (2, 5, 2), 10),  # N mismatch
        ((2, 5, 3, 4), (2, 5, 2), 10),  # per-class boxes with the wrong C
        ((2, 5, 4), (2, 5, 2), 0),  # max_det < 1
    ],
)
def test_rejects_bad_inputs(boxes_shape, scores_shape, max_det):
    with pytest.raises(ValueError):
        batched_nms_reference(torch.zeros(boxes_shape), torch.zeros(scores_shape), 0.1, 0.5, max_det)
