"""The single-launch ``sdk::multilevel_roi_align`` kernel (CUDA op and TensorRT AOT
plugin; FPN level assignment inside the kernel) against the reference.

CPU runs use Triton's interpreter (``TRITON_INTERPRET=1``, set by ``make test``; the
tests skip without it); the ``gpu`` test runs the registered CUDA kernel of the op.
"""

from __future__ import annotations

import pytest
import torch

from sdk.trt_plugins.multilevel_roi_align import multilevel_roi_align_reference

# zero-area RoIs: log2(0) = -inf goes to the finest level, as in torchvision
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero encountered in log2:RuntimeWarning")

ROIS = 8  # per image (the degenerate cases fill 7): keeps interpreter runs to about a second


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_triton_matches_reference(triton_interpreter, roi_config, roi_dataset, make_roi_inputs, dtype):
    from sdk.trt_plugins.multilevel_roi_align.triton_kernel import multilevel_roi_align_triton

    rois, features = make_roi_inputs(roi_dataset, batch=2, rois=ROIS)
    features = [f.to(dtype) for f in features]
    actual = multilevel_roi_align_triton(rois, features, *roi_config.op_args())
    expected = multilevel_roi_align_reference(rois, features, *roi_config.op_args())
    assert actual.dtype == dtype and actual.shape == expected.shape
    tol = 1e-5 if dtype == torch.float32 else 1e-3
    torch.testing.assert_close(actual, expected, atol=tol, rtol=tol)


def test_triton_three_levels_and_channel_blocks(triton_interpreter, make_roi_inputs):
    # 20 channels: two channel blocks, the second partial; P3..P5 only
    from sdk.trt_plugins.multilevel_roi_align.triton_kernel import multilevel_roi_align_triton

    rois, features = make_roi_inputs("levels", batch=1, rois=4, channels=20)
    args = ([3, 3], 2, False, [1 / 8, 1 / 16, 1 / 32])
    actual = multilevel_roi_align_triton(rois, features[1:], *args)
    torch.testing.assert_close(actual, multilevel_roi_align_reference(rois, features[1:], *args), atol=1e-5, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cuda_op_runs_triton_kernel(roi_config, make_roi_inputs, dtype):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    rois, features = make_roi_inputs("levels", batch=2, rois=16, channels=20)
    features = [f.to(dtype) for f in features]
    actual = torch.ops.sdk.multilevel_roi_align(rois.cuda(), [f.cuda() for f in features], *roi_config.op_args())
    expected = multilevel_roi_align_reference(rois, features, *roi_config.op_args())
    tol = 1e-5 if dtype == torch.float32 else 2e-3
    torch.testing.assert_close(actual.cpu(), expected, atol=tol, rtol=tol)
