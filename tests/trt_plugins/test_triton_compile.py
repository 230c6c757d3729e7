"""The Triton kernels compile for real GPU targets (sm_80, sm_90), no GPU needed.

The interpreter (the CPU tests) does not type-check kernels the way the compiler does,
so this is the CPU-only CI's guard that the CUDA path builds, and that the NMS plugin's
AOT kernel is what TensorRT launches: PTX for the engine's SM whose entry takes exactly
the plugin's inputs, int32 scalars and outputs. Runs in a subprocess: kernels imported
under ``TRITON_INTERPRET=1`` cannot be compiled.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import re, sys
from sdk.trt_plugins.batched_nms.single_launch import SIGNATURE, compile_aot
from sdk.trt_plugins.multilevel_roi_align.triton_kernel import compile_kernels as roi_kernels
arch = int(sys.argv[1])
for agnostic in (False, True):
    k = compile_aot(arch=arch, num_cand=4096, score_threshold=0.05, iou_threshold=0.5, max_det=100,
                    class_agnostic=agnostic)
    entry = re.search(r"\\.entry " + k.name + r"\\((.*?)\\)", k.ptx, re.S).group(1)
    assert f".target sm_{arch}" in k.ptx and entry.count(".param") == len(SIGNATURE), entry
    assert k.block_threads == 256 and k.shared_mem >= 0
    print("nms_agnostic" if agnostic else "nms")
for name, kernel in roi_kernels(arch=arch).items():
    assert f".target sm_{arch}" in kernel.ptx and kernel.ptx.count(".param") >= 15, name
    print(name)
"""


@pytest.mark.parametrize("arch", [80, 90])
def test_kernels_compile_for_sm(arch):
    pytest.importorskip("triton.backends.nvidia", reason="Triton's NVIDIA backend is not installed")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(arch)], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.split() == [
        "nms", "nms_agnostic",
        "roi_align_fp32", "roi_align_fp32_aligned", "roi_align_fp16", "roi_align_fp16_aligned",
    ]


def test_hidden_scratch_params_are_stripped_only_when_unused():
    from sdk.trt_plugins._triton_aot import strip_hidden_params

    ptx = (".visible .entry k(\\n\\t.param .u64 k_param_0,\\n\\t.param .u32 k_param_1,\\n\\t.param .u64 k_param_2\\n)\\n"
           "{\\n\\tld.param.b64 %rd1, [k_param_0];\\n\\tld.param.b32 %r1, [k_param_1];\\n}\\n")
    stripped = strip_hidden_params(ptx, "k", 2)
    assert "k_param_2" not in stripped and "k_param_1];" in stripped
    with pytest.raises(RuntimeError, match="reads its hidden parameters"):
        strip_hidden_params(ptx, "k", 1)
