"""The Triton kernels compile for a real GPU target (sm_90), no GPU needed.

The interpreter (the CPU tests) does not type-check kernels the way the compiler does,
so this is the CPU-only CI's guard that the CUDA path builds. Runs in a subprocess:
kernels imported under ``TRITON_INTERPRET=1`` cannot be compiled.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
from sdk.trt_plugins.batched_nms.triton_kernel import compile_kernels as nms_kernels
from sdk.trt_plugins.multilevel_roi_align.triton_kernel import compile_kernels as roi_kernels
for name, kernel in {**nms_kernels(arch=90), **roi_kernels(arch=90)}.items():
    assert ".target sm_90" in kernel.asm["ptx"] and kernel.asm["cubin"], name
    print(name)
"""


def test_kernels_compile_for_sm90():
    pytest.importorskip("triton.backends.nvidia", reason="Triton's NVIDIA backend is not installed")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.split() == [
        "iou_mask", "iou_mask_agnostic", "greedy",
        "roi_align_fp32", "roi_align_fp32_aligned", "roi_align_fp16", "roi_align_fp16_aligned",
    ]
