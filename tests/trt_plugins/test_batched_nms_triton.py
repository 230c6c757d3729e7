"""The Triton ``sdk::batched_nms`` kernels against the reference.

CPU runs use Triton's interpreter (``TRITON_INTERPRET=1``, set by ``make test``; the
tests skip without it); the ``gpu`` test runs the registered CUDA kernel of the op.
"""

from __future__ import annotations

import pytest
import torch

from sdk.trt_plugins.batched_nms import batched_nms_reference


def test_triton_matches_reference(triton_interpreter, nms_config, nms_dataset, make_nms_inputs, check_nms):
    from sdk.trt_plugins.batched_nms.triton_kernel import batched_nms_triton

    boxes, scores = make_nms_inputs(nms_config, nms_dataset, batch=2)
    check_nms(
        batched_nms_triton(boxes, scores, *nms_config.op_args()),
        batched_nms_reference(boxes, scores, *nms_config.op_args()),
    )


def test_triton_half_precision_inputs(triton_interpreter, nms_config, make_nms_inputs, check_nms):
    from sdk.trt_plugins.batched_nms.triton_kernel import batched_nms_triton

    boxes, scores = make_nms_inputs(nms_config, "random", batch=2, seed=7)
    boxes, scores = boxes.half(), scores.half()
    check_nms(
        batched_nms_triton(boxes, scores, *nms_config.op_args()),
        batched_nms_reference(boxes, scores, *nms_config.op_args()),
    )


def test_triton_candidate_count_spans_several_mask_words(triton_interpreter, check_nms):
    # 70 candidates: three 32-bit words per mask row, a partial last word and row block
    from sdk.trt_plugins.batched_nms.triton_kernel import batched_nms_triton

    gen = torch.Generator().manual_seed(3)
    xy = torch.rand(1, 70, 2, generator=gen) * 30
    boxes = torch.round(torch.cat([xy, xy + 10 + torch.rand(1, 70, 2, generator=gen) * 20], -1) * 8) / 8
    scores = torch.rand(1, 70, 1, generator=gen) * 0.5 + 0.5
    args = (0.5, 0.4, 100, -1, False)
    check_nms(batched_nms_triton(boxes, scores, *args), batched_nms_reference(boxes, scores, *args))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cuda_op_runs_triton_kernel(nms_config, make_nms_inputs, check_nms, dtype):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    boxes, scores = make_nms_inputs(nms_config, "random", batch=4)
    boxes, scores = boxes.to(dtype), scores.to(dtype)
    actual = torch.ops.sdk.batched_nms(boxes.cuda(), scores.cuda(), *nms_config.op_args())
    check_nms([t.cpu() for t in actual], batched_nms_reference(boxes, scores, *nms_config.op_args()))
