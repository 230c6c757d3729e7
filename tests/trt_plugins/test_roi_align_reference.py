"""``multilevel_roi_align_reference`` against torchvision's ``MultiScaleRoIAlign``."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops.poolers import LevelMapper

from sdk.trt_plugins.multilevel_roi_align import assign_levels, multilevel_roi_align_reference

SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
NAMES = ["p2", "p3", "p4", "p5"]


def _torchvision(rois, features, output_size, sampling_ratio):
    image_size = features[0].shape[-1] * 4  # P2 has stride 4
    pooler = MultiScaleRoIAlign(NAMES, output_size, sampling_ratio)
    pooled = pooler(OrderedDict(zip(NAMES, features)), list(rois), [(image_size, image_size)] * rois.shape[0])
    return pooled.reshape(rois.shape[0], rois.shape[1], *pooled.shape[1:])


@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_matches_torchvision_multiscale_roi_align(sampling_ratio, roi_dataset, make_roi_inputs):
    rois, features = make_roi_inputs(roi_dataset, batch=3)
    actual = multilevel_roi_align_reference(rois, features, [7, 7], sampling_ratio, False, SCALES)
    expected = _torchvision(rois, features, 7, sampling_ratio)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


def test_aligned_uses_roi_align_half_pixel(make_roi_inputs):
    rois, features = make_roi_inputs("levels", batch=2)
    actual = multilevel_roi_align_reference(rois, features, [5, 4], 0, True, SCALES)
    levels = assign_levels(rois, SCALES)
    for b in range(2):
        for r in range(rois.shape[1]):
            level = int(levels[b, r])
            box = torch.cat([torch.zeros(1), rois[b, r]])[None]
            expected = roi_align(features[level][b : b + 1], box, (5, 4), SCALES[level], 0, aligned=True)
            torch.testing.assert_close(actual[b, r], expected[0], atol=1e-6, rtol=0)


def test_levels_dataset_covers_every_fpn_level(make_roi_inputs):
    rois, _ = make_roi_inputs("levels", batch=3)
    levels = assign_levels(rois, SCALES)
    assert set(levels.unique().tolist()) == {0, 1, 2, 3}
    expected = LevelMapper(2, 5)([rois.reshape(-1, 4)]).reshape(levels.shape)
    assert torch.equal(levels, expected)


def test_canonical_scale_moves_levels():
    rois = torch.tensor([[[0.0, 0.0, 112.0, 112.0], [0.0, 0.0, 224.0, 224.0]]])
    assert assign_levels(rois, SCALES).tolist() == [[1, 2]]  # P3, P4 (112 px -> level 3)
    assert assign_levels(rois, SCALES, canonical_scale=112).tolist() == [[2, 3]]


def test_half_precision_features(make_roi_inputs):
    rois, features = make_roi_inputs("levels", batch=2)
    half = multilevel_roi_align_reference(rois, [f.half() for f in features], [7, 7], 2, False, SCALES)
    full = multilevel_roi_align_reference(rois, [f.half().float() for f in features], [7, 7], 2, False, SCALES)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), full, atol=2e-3, rtol=1e-3)


@pytest.mark.parametrize(
    "rois_shape, feature_shapes, scales, output_size",
    [
        ((2, 3, 5), [(2, 4, 8, 8)], [1 / 4], [7, 7]),  # rois not [B, R, 4]
        ((2, 3, 4), [(2, 4, 8, 8), (2, 4, 4, 4)], [1 / 4], [7, 7]),  # one scale short
        ((2, 3, 4), [(2, 4, 8, 8), (2, 5, 4, 4)], [1 / 4, 1 / 8], [7, 7]),  # channel mismatch
        ((2, 3, 4), [(1, 4, 8, 8)], [1 / 4], [7, 7]),  # batch mismatch
        ((2, 3, 4), [(2, 4, 8, 8), (2, 4, 4, 4)], [1 / 4, 1 / 16], [7, 7]),  # skipped level
        ((2, 3, 4), [(2, 4, 8, 8)], [0.3], [7, 7]),  # not a power of two
        ((2, 3, 4), [(2, 4, 8, 8)], [1 / 4], [7]),  # output size not (oh, ow)
    ],
)
def test_rejects_bad_inputs(rois_shape, feature_shapes, scales, output_size):
    features = [torch.zeros(s) for s in feature_shapes]
    with pytest.raises(ValueError):
        multilevel_roi_align_reference(torch.zeros(rois_shape), features, output_size, 2, False, scales)
