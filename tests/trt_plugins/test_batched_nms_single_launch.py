"""The single-launch ``sdk::batched_nms`` kernel (CUDA op and TensorRT AOT plugin) against
the reference, under Triton's interpreter (``TRITON_INTERPRET=1``; skipped without it).

Every case of the parity suite (configs x datasets, batch 2), fp16 inputs, batch 3 with
an empty image between full ones, and more candidates than the cap (the kernel then
equals the reference with ``pre_nms_top_k`` = the cap).
"""

from __future__ import annotations

import pytest
import torch

from sdk.trt_plugins.batched_nms import batched_nms_reference


def test_matches_reference(triton_interpreter, nms_config, nms_dataset, make_nms_inputs, check_nms):
    from sdk.trt_plugins.batched_nms.single_launch import batched_nms_single_launch

    boxes, scores = make_nms_inputs(nms_config, nms_dataset, batch=2)
    check_nms(batched_nms_single_launch(boxes, scores, *nms_config.op_args()),
              batched_nms_reference(boxes, scores, *nms_config.op_args()))


def test_half_precision_inputs(triton_interpreter, nms_config, make_nms_inputs, check_nms):
    from sdk.trt_plugins.batched_nms.single_launch import batched_nms_single_launch

    boxes, scores = make_nms_inputs(nms_config, "random", batch=2, seed=7)
    boxes, scores = boxes.half(), scores.half()
    check_nms(batched_nms_single_launch(boxes, scores, *nms_config.op_args()),
              batched_nms_reference(boxes, scores, *nms_config.op_args()))


def test_empty_image_between_full_ones(triton_interpreter, all_nms_configs, make_nms_inputs, check_nms):
    from sdk.trt_plugins.batched_nms.single_launch import batched_nms_single_launch

    config = all_nms_configs[0]
    boxes, scores = make_nms_inputs(config, "random", batch=3, seed=5)
    scores[1] = 0.0  # nothing above the threshold in the middle image
    got = batched_nms_single_launch(boxes, scores, *config.op_args())
    check_nms(got, batched_nms_reference(boxes, scores, *config.op_args()))
    assert got[0][1, 0] == 0 and got[0][0, 0] > 0 and got[0][2, 0] > 0


@pytest.mark.parametrize("pre_nms_top_k", [-1, 100])
def test_more_candidates_than_the_cap(triton_interpreter, check_nms, pre_nms_top_k):
    from sdk.trt_plugins.batched_nms.single_launch import batched_nms_single_launch

    gen = torch.Generator().manual_seed(11)
    xy = torch.rand(2, 40, 2, generator=gen) * 60
    boxes = torch.round(torch.cat([xy, xy + 8 + torch.rand(2, 40, 2, generator=gen) * 30], -1) * 8) / 8
    scores = torch.rand(2, 40, 3, generator=gen)  # 120 candidates, about 90 above 0.25
    cap = 32
    got = batched_nms_single_launch(boxes, scores, 0.25, 0.5, 20, pre_nms_top_k, False, cap=cap)
    check_nms(got, batched_nms_reference(boxes, scores, 0.25, 0.5, 20, cap, False))


@pytest.mark.slow
def test_full_cap_of_4096_candidates(triton_interpreter, check_nms):
    from sdk.trt_plugins.batched_nms.single_launch import MAX_CANDIDATES, batched_nms_single_launch

    gen = torch.Generator().manual_seed(12)
    xy = torch.rand(1, 1500, 2, generator=gen) * 600
    boxes = torch.round(torch.cat([xy, xy + 8 + torch.rand(1, 1500, 2, generator=gen) * 100], -1) * 8) / 8
    scores = torch.rand(1, 1500, 4, generator=gen)  # 6000 candidates above 0: more than the cap
    got = batched_nms_single_launch(boxes, scores, 0.0, 0.5, 100)
    check_nms(got, batched_nms_reference(boxes, scores, 0.0, 0.5, 100, MAX_CANDIDATES))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cuda_op_runs_the_single_launch_kernel(nms_config, make_nms_inputs, check_nms, dtype):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    boxes, scores = make_nms_inputs(nms_config, "random", batch=4)
    boxes, scores = boxes.to(dtype), scores.to(dtype)
    actual = torch.ops.sdk.batched_nms(boxes.cuda(), scores.cuda(), *nms_config.op_args())
    check_nms([t.cpu() for t in actual], batched_nms_reference(boxes, scores, *nms_config.op_args()))
