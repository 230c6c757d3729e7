"""Ahead-of-time compilation of the SDK's Triton kernels for NVIDIA GPUs, without a GPU.

``compile_for_cuda`` gives Triton's ``CompiledKernel`` (CI checks that the kernels compile
beyond the interpreter); ``aot_kernel`` gives what a TensorRT ``@trtp.aot_impl`` returns:
the kernel's name, its PTX for the engine's SM, and the block size and shared memory of
its launch.

TensorRT launches an AOT kernel with exactly its inputs, its int32 scalars and its
outputs. Triton (>= 3.3) appends hidden ``global_scratch`` / ``profile_scratch`` pointer
parameters to every kernel; a launch that passes fewer arguments than the entry declares
reads past the argument array. ``strip_hidden_params`` removes those declarations from
the PTX, which is only sound when the kernel asks for no scratch memory and never reads
them; both are checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import triton


def compile_for_cuda(kernel, signature: dict[str, str], constexprs: dict, *, arch: int = 90, num_warps: int = 4):
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
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})


@dataclass(frozen=True)
class AotKernel:
    """A kernel as a TensorRT AOT plugin takes it: ``ptx`` text, entry ``name``, threads
    per block (``num_warps * 32``) and dynamic ``shared_mem`` bytes."""

    name: str
    ptx: str
    block_threads: int
    shared_mem: int


def strip_hidden_params(ptx: str, name: str, num_params: int) -> str:
    """The PTX with entry ``name``'s parameters past the first ``num_params`` removed.

    Raises ``RuntimeError`` if the kernel body reads one of them.
    """
    entry = re.search(rf"\.entry {re.escape(name)}\((.*?)\)", ptx, re.S)
    if entry is None:
        raise RuntimeError(f"no entry {name!r} in the PTX")
    params = [p.strip() for p in entry.group(1).split(",")]
    hidden = [p.split()[-1] for p in params[num_params:]]
    body = ptx[entry.end():]
    used = [h for h in hidden if re.search(rf"\[{re.escape(h)}\]", body)]
    if used:
        raise RuntimeError(f"kernel {name} reads its hidden parameters {used}: it cannot run as a TensorRT AOT plugin")
    kept = ",\n\t".join(params[:num_params])
    return ptx[:entry.start(1)] + "\n\t" + kept + "\n" + ptx[entry.end(1):]


def aot_kernel(kernel, signature: dict[str, str], constexprs: dict, *, arch: int, num_warps: int = 4) -> AotKernel:
    """Compile ``kernel`` for ``sm_<arch>`` as a TensorRT AOT plugin kernel (no GPU needed).

    ``signature`` must list the arguments in TensorRT's order: inputs, int32 scalars, outputs.
    """
    compiled = compile_for_cuda(kernel, signature, constexprs, arch=arch, num_warps=num_warps)
    meta = compiled.metadata
    scratch = {k: getattr(meta, k, 0) or 0 for k in ("global_scratch_size", "profile_scratch_size")}
    if any(scratch.values()):
        raise RuntimeError(f"kernel {meta.name} needs scratch memory {scratch}; an AOT plugin gets no workspace")
    ptx = strip_hidden_params(compiled.asm["ptx"], meta.name, len(signature))
    return AotKernel(meta.name, ptx, meta.num_warps * 32, meta.shared)
