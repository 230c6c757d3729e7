"""The plugins' AOT kernels launched the way TensorRT launches them (``gpu``; needs a CUDA
GPU, cuda-python and Triton's NVIDIA backend; skipped otherwise).

The PTX that ``@trtp.aot_impl`` returns, compiled for this GPU's SM, is loaded with the
CUDA driver (``cuModuleLoadData``) and launched with exactly the plugin's arguments
(inputs, int32 scalars, outputs: no Triton launcher, no hidden scratch arguments), the
grid and block of the plugin's launch parameters, on output buffers filled with garbage
(TensorRT does not clear them). Outputs must equal the reference. This is the check
that the engine-side kernels are right without TensorRT itself.

Runs in a subprocess: kernels imported under ``TRITON_INTERPRET=1`` cannot be compiled.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = r'''
import ctypes
import torch
from cuda.bindings import driver as cu

from sdk.trt_plugins.tensorrt_registration import nms_launch, roi_align_launch
from sdk.trt_plugins.batched_nms import batched_nms_reference
from sdk.trt_plugins.batched_nms.single_launch import compile_aot as nms_aot, top_candidates
from sdk.trt_plugins.multilevel_roi_align import multilevel_roi_align_reference
from sdk.trt_plugins.multilevel_roi_align.triton_kernel import BLOCK_C, compile_aot as roi_aot


def check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    assert int(err) == 0, err
    return rest[0] if len(rest) == 1 else rest


torch.cuda.init()
major, minor = torch.cuda.get_device_capability()
arch = major * 10 + minor
check(cu.cuInit(0))


def launch(kernel, launch_spec, args):
    """cuLaunchKernel of the PTX with pointers (tensors) and int32 scalars, in order."""
    module = check(cu.cuModuleLoadData(kernel.ptx.encode() + b"\0"))
    function = check(cu.cuModuleGetFunction(module, kernel.name.encode()))
    values = tuple(a.data_ptr() if isinstance(a, torch.Tensor) else int(a) for a in args)
    types = tuple(ctypes.c_void_p if isinstance(a, torch.Tensor) else ctypes.c_int32 for a in args)
    gx, gy, gz = launch_spec.grid
    stream = torch.cuda.current_stream().cuda_stream
    check(cu.cuLaunchKernel(function, gx, gy, gz, kernel.block_threads, 1, 1, kernel.shared_mem, stream,
                            (values, types), 0))
    torch.cuda.synchronize()


# NMS: candidates from the pre-NMS top-k, as the graph's TopK gives them
gen = torch.Generator().manual_seed(0)
batch, num, classes, max_det = 3, 300, 4, 50
xy = torch.rand(batch, num, 2, generator=gen) * 200
boxes = torch.cat([xy, xy + 8 + torch.rand(batch, num, 2, generator=gen) * 60], -1)
scores = torch.rand(batch, num, classes, generator=gen)
scores[1] = 0  # an empty image
for agnostic in (False, True):
    expected = batched_nms_reference(boxes, scores, 0.3, 0.5, max_det, 1000, agnostic)
    cand = [t.cuda() for t in top_candidates(boxes, scores, 1000)]
    outputs = [torch.full((batch, 1), 7, dtype=torch.int32), torch.full((batch, max_det, 4), 7.0),
               torch.full((batch, max_det), 7.0), torch.full((batch, max_det), 7, dtype=torch.int32)]
    outputs = [o.cuda() for o in outputs]
    kernel = nms_aot(arch=arch, num_cand=1000, score_threshold=0.3, iou_threshold=0.5, max_det=max_det,
                     class_agnostic=agnostic)
    spec = nms_launch(batch, 1000)
    launch(kernel, spec, [*cand, *spec.scalars, *outputs])
    for name, got, want in zip(("num_dets", "boxes", "scores", "labels"), outputs, expected):
        torch.testing.assert_close(got.cpu(), want, atol=1e-5, rtol=0, msg=name)
    print("nms", "agnostic" if agnostic else "per-class", "ok")

# RoIAlign: P2..P5, fp32 and fp16, rois on every level
size = 448
rois_xy = torch.rand(2, 40, 2, generator=gen) * 300
rois = torch.cat([rois_xy, rois_xy + 16 + torch.rand(2, 40, 2, generator=gen) * 140], -1)
scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
for dtype, name in ((torch.float32, "fp32"), (torch.float16, "fp16")):
    features = [torch.randn(2, 20, int(size * s), int(size * s), generator=gen).to(dtype) for s in scales]
    for aligned in (False, True):
        expected = multilevel_roi_align_reference(rois, features, [7, 7], 2, aligned, scales)
        out = torch.full((2, 40, 20, 7, 7), 7.0, dtype=dtype, device="cuda")
        kernel = roi_aot(arch=arch, dtype=name, output_size=[7, 7], sampling_ratio=2, aligned=aligned,
                         spatial_scales=scales)
        spec = roi_align_launch(tuple(rois.shape), [tuple(f.shape) for f in features], BLOCK_C)
        launch(kernel, spec, [rois.cuda(), *[f.cuda() for f in features], *spec.scalars, out])
        tol = 1e-5 if dtype == torch.float32 else 2e-3
        torch.testing.assert_close(out.cpu(), expected, atol=tol, rtol=tol)
        print("roi_align", name, "aligned" if aligned else "legacy", "ok")
'''


@pytest.mark.gpu
def test_aot_kernels_run_as_tensorrt_launches_them():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("cuda.bindings.driver", reason="needs cuda-python (pip install 'sdk-detect[gpu]')")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count(" ok") == 6, result.stdout
