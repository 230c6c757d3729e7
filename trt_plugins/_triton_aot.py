"""Ahead-of-time compilation of the SDK's Triton kernels for NVIDIA GPUs, without a GPU.

Used by the kernels' ``compile_kernels`` functions (CI checks that the kernels compile
beyond the interpreter; PTX/cubin for TensorRT ``aot_impl`` plugins).
"""

from __future__ import annotations

import triton


def compile_for_cuda(kernel, signature: dict[str, str], constexprs: dict, *, arch: int = 90):
    """``triton.compile`` ``kernel`` for ``sm_<arch>``; returns a ``CompiledKernel``.

    ``signature`` maps runtime argument names to Triton types (``"*fp32"``, ``"i32"``, ...);
    ``constexprs`` gives the compile-time arguments' values.
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if not isinstance(kernel, triton.runtime.JITFunction):
        raise RuntimeError(
            "ahead-of-time compilation needs real Triton kernels: import them with TRITON_INTERPRET unset"
        )
    source = ASTSource(
        fn=kernel, signature={**signature, **dict.fromkeys(constexprs, "constexpr")}, constexprs=constexprs
    )
    return triton.compile(source, target=GPUTarget("cuda", arch, 32))
