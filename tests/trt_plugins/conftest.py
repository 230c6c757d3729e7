"""Cases shared by the ``sdk.trt_plugins`` tests.

Parametrization by fixture name (``pytest_generate_tests``), so every test file can
ask for ``nms_config`` / ``nms_dataset`` / ``roi_config`` / ``roi_dataset`` without
importing this module. Inputs come from ``make_nms_inputs`` / ``make_roi_inputs``
fixtures (factories). Box coordinates are multiples of 1/8 pixel: the ONNX lowering's
class-offset trick then adds offsets without rounding, so every implementation sees
the same IoUs and kept sets can be compared exactly.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

import sdk.trt_plugins  # noqa: F401  (registers torch.ops.sdk.*)

IMAGE = 96  # NMS test image side (pixels)
ROI_IMAGE = 448  # RoIAlign test image side: large enough for RoIs on P2..P5
ROI_SCALES = (1 / 4, 1 / 8, 1 / 16, 1 / 32)  # P2..P5


@dataclasses.dataclass(frozen=True)
class NmsConfig:
    name: str
    num: int  # N
    classes: int  # C
    per_class_boxes: bool  # boxes [B, N, C, 4] instead of [B, N, 4]
    score_threshold: float
    iou_threshold: float
    max_det: int
    pre_nms_top_k: int = -1
    class_agnostic: bool = False

    def op_args(self) -> tuple:
        return (self.score_threshold, self.iou_threshold, self.max_det, self.pre_nms_top_k, self.class_agnostic)


NMS_CONFIGS = [
    NmsConfig("shared_truncated", 20, 3, False, 0.25, 0.5, max_det=8),
    NmsConfig("shared_topk_padded", 20, 3, False, 0.25, 0.5, max_det=40, pre_nms_top_k=16),
    NmsConfig("shared_agnostic", 20, 3, False, 0.25, 0.45, max_det=40, class_agnostic=True),
    NmsConfig("shared_agnostic_topk", 20, 3, False, 0.25, 0.5, max_det=8, pre_nms_top_k=16, class_agnostic=True),
    NmsConfig("per_class_padded", 20, 3, True, 0.25, 0.5, max_det=80),
    NmsConfig("per_class_topk", 20, 3, True, 0.25, 0.6, max_det=8, pre_nms_top_k=16),
    NmsConfig("per_class_agnostic", 20, 3, True, 0.25, 0.5, max_det=12, class_agnostic=True),
    NmsConfig("one_class", 20, 1, False, 0.25, 0.5, max_det=8),
    NmsConfig("many_classes", 4, 80, False, 0.875, 0.5, max_det=20),
]
NMS_DATASETS = ["random", "ties", "empty", "edges"]


@dataclasses.dataclass(frozen=True)
class RoiConfig:
    name: str
    sampling_ratio: int
    aligned: bool
    output_size: tuple[int, int] = (7, 7)

    def op_args(self) -> tuple:
        return (list(self.output_size), self.sampling_ratio, self.aligned, list(ROI_SCALES))


ROI_CONFIGS = [
    RoiConfig("adaptive", 0, False),
    RoiConfig("adaptive_aligned", 0, True, (6, 7)),
    RoiConfig("ratio2", 2, False),
    RoiConfig("ratio2_aligned", 2, True),
]
ROI_DATASETS = ["levels", "degenerate"]


def pytest_generate_tests(metafunc):
    cases = {
        "nms_config": (NMS_CONFIGS, [c.name for c in NMS_CONFIGS]),
        "nms_dataset": (NMS_DATASETS, NMS_DATASETS),
        "roi_config": (ROI_CONFIGS, [c.name for c in ROI_CONFIGS]),
        "roi_dataset": (ROI_DATASETS, ROI_DATASETS),
    }
    for name, (values, ids) in cases.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, values, ids=ids)


def _quantize(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x * 8) / 8


def nms_inputs(config: NmsConfig, dataset: str, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(boxes [B, N, 4] or [B, N, C, 4], scores [B, N, C]) float32 for one dataset."""
    gen = torch.Generator().manual_seed(seed)
    box_shape = (batch, config.num, config.classes) if config.per_class_boxes else (batch, config.num)
    # crowded boxes (a 40 px spread, 8..56 px sizes) so that NMS suppresses a lot
    xy = torch.rand(*box_shape, 2, generator=gen) * 40
    wh = 8 + torch.rand(*box_shape, 2, generator=gen) * 48
    scores = torch.rand(batch, config.num, config.classes, generator=gen)
    if dataset == "ties":
        # three score levels (one equal to the 0.25 threshold: must be dropped), 4-px box
        # grid and duplicated boxes, so equal scores and equal IoUs are everywhere
        scores = torch.randint(1, 4, scores.shape, generator=gen).float() / 4
        if config.classes >= 40:
            scores = torch.where(scores == 0.75, 0.9375, scores)  # some above its threshold
        xy, wh = torch.round(xy / 4) * 4, torch.round(wh / 4) * 4
        half = config.num // 2
        xy[:, half : 2 * half], wh[:, half : 2 * half] = xy[:, :half], wh[:, :half]
    elif dataset == "empty":
        scores = scores * min(c.score_threshold for c in NMS_CONFIGS) * 0.99
    elif dataset == "edges":
        xy = xy * 2.6 - IMAGE / 4  # spill over every side, then clip: boxes touch the edges
        wh = wh * 1.5
    boxes = torch.cat([xy, xy + wh], -1)
    if dataset == "edges":
        boxes = boxes.clamp(0, IMAGE)  # clipping also creates zero-area boxes on the border
    return _quantize(boxes), scores


def roi_inputs(dataset: str, batch: int, rois: int = 12, channels: int = 4, seed: int = 0):
    """(rois [B, R, 4], [P2..P5 features [B, C, H, W]]) float32 for one dataset."""
    gen = torch.Generator().manual_seed(seed)
    # sqrt(area) log-uniform in 40 .. 470 px (every level), aspect ratio 1:2 .. 2:1
    scale = torch.exp(torch.empty(batch, rois, 1).uniform_(3.7, 6.15, generator=gen))
    ratio = torch.exp(torch.empty(batch, rois, 1).uniform_(-0.7, 0.7, generator=gen))
    size = torch.cat([scale * ratio.sqrt(), scale / ratio.sqrt()], -1).clamp(max=ROI_IMAGE)
    xy = torch.rand(batch, rois, 2, generator=gen) * (ROI_IMAGE - size)
    boxes = torch.cat([xy, xy + size], -1)
    boxes[:, -1] = torch.tensor([10.0, 4.0, 474.0, 470.0])  # large enough for P5 (past the border)
    if dataset == "degenerate":
        boxes[:, 0] = torch.tensor([40.0, 40.0, 40.0, 40.0])  # zero size
        boxes[:, 1] = torch.tensor([10.0, 20.0, 10.25, 20.5])  # sub-pixel
        boxes[:, 2] = torch.tensor([-30.0, -20.0, 25.0, 30.0])  # partly outside (top-left)
        boxes[:, 3] = torch.tensor([400.0, 420.0, 470.0, 460.0])  # partly outside (bottom-right)
        boxes[:, 4] = torch.tensor([0.0, 0.0, ROI_IMAGE, ROI_IMAGE])  # whole image
        boxes[:, 5] = torch.tensor([100.0, 60.0, 100.0, 300.0])  # zero width, tall
        boxes[:, 6] = torch.tensor([200.0, 100.0, 150.0, 180.0])  # inverted (x2 < x1): no level, zeros
    features = [
        torch.randn(batch, channels, round(ROI_IMAGE * s), round(ROI_IMAGE * s), generator=gen) for s in ROI_SCALES
    ]
    return boxes, features


@pytest.fixture(scope="session")
def make_nms_inputs():
    return nms_inputs


@pytest.fixture(scope="session")
def make_roi_inputs():
    return roi_inputs


@pytest.fixture(scope="session")
def all_nms_configs():
    return list(NMS_CONFIGS)


@pytest.fixture(scope="session")
def all_roi_configs():
    return list(ROI_CONFIGS)


@pytest.fixture
def triton_interpreter():
    """Skip unless Triton kernels run in interpreter mode (``make test`` sets it)."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton kernel tests need TRITON_INTERPRET=1 (set by `make test`) to run on CPU")


def assert_nms_equal(actual, expected, *, atol: float = 1e-5) -> None:
    """Same fixed-size outputs: count, ranked boxes / scores / labels, dtypes, zero padding."""
    actual = [torch.as_tensor(a) for a in actual]
    names = ("num_dets", "boxes", "scores", "labels")
    for name, a, e in zip(names, actual, expected):
        assert a.dtype == e.dtype, f"{name}: dtype {a.dtype} != {e.dtype}"
        assert a.shape == e.shape, f"{name}: shape {tuple(a.shape)} != {tuple(e.shape)}"
    counts = actual[0].ravel().tolist(), expected[0].ravel().tolist()
    assert counts[0] == counts[1], f"num_dets {counts[0]} != {counts[1]}"
    assert torch.equal(actual[3], expected[3]), "labels differ"
    torch.testing.assert_close(actual[2], expected[2], atol=atol, rtol=0, msg="scores differ")
    torch.testing.assert_close(actual[1], expected[1], atol=atol, rtol=0, msg="boxes differ")


@pytest.fixture(scope="session")
def check_nms():
    return assert_nms_equal
