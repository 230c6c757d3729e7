"""Triton implementation of ``sdk::multilevel_roi_align`` (the op's CUDA kernel).

One launch for all RoIs of all images and all levels: program ``(roi, channel block)``
reads its RoI's level (computed in torch with the reference's ``assign_levels``, so
both pick identical levels), branches once to that level's feature map and computes
a ``[BLOCK_C, oh * ow]`` tile: for every bin, the mean of ``grid_h x grid_w`` bilinear
samples (``sampling_ratio``, or ``ceil(roi_size / output_size)`` when adaptive),
following torchvision's CPU kernel (``aligned`` half-pixel shift, the ``>= 1`` RoI
size clamp when not aligned, zero outside ``[-1, size]``, edge clamping). Math in
float32; output in the features' dtype. Up to ``MAX_LEVELS`` feature maps.

Runs on CPU tensors under ``TRITON_INTERPRET=1`` (tests). ``benchmark`` times it
against the torchvision reference on a GPU.
"""

from __future__ import annotations

from typing import Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

from .._triton_aot import compile_for_cuda
from .reference import assign_levels, check_roi_align_inputs, multilevel_roi_align_reference

MAX_LEVELS = 6
BLOCK_C = 16


@triton.jit
def _pool_roi(
    feat_ptr, height, width, channels, image, channel, channel_ok,
    start_y, start_x, bin_h, bin_w, grid_h, grid_w, bins, bin_ok,
    OW: tl.constexpr,
):
    """Sum of the bilinear samples of every bin: [BLOCK_C, BLOCK_P] float32."""
    base = feat_ptr + image.to(tl.int64) * channels * height * width
    chan_off = channel[:, None].to(tl.int64) * height * width
    load_ok = channel_ok[:, None] & bin_ok[None, :]
    bin_y = (bins // OW).to(tl.float32)
    bin_x = (bins % OW).to(tl.float32)
    acc = tl.zeros([channel.shape[0], bins.shape[0]], dtype=tl.float32)
    for iy in range(grid_h):
        y = start_y + bin_y * bin_h + tl.div_rn((iy + 0.5) * bin_h, grid_h.to(tl.float32))
        y_out = (y < -1.0) | (y > height)  # sample outside the map: contributes 0
        y = tl.maximum(y, 0.0)
        y_low = y.to(tl.int32)
        y_edge = y_low >= height - 1  # clamp to the last row
        y_low = tl.where(y_edge, height - 1, y_low)
        ly = tl.where(y_edge, 0.0, y - y_low.to(tl.float32))
        hy = 1.0 - ly
        row_low = base + chan_off + (y_low * width)[None, :]
        row_high = base + chan_off + (tl.where(y_edge, y_low, y_low + 1) * width)[None, :]
        for ix in range(grid_w):
            x = start_x + bin_x * bin_w + tl.div_rn((ix + 0.5) * bin_w, grid_w.to(tl.float32))
            ok = load_ok & ~(y_out | (x < -1.0) | (x > width))[None, :]
            x = tl.maximum(x, 0.0)
            x_low = x.to(tl.int32)
            x_edge = x_low >= width - 1
            x_low = tl.where(x_edge, width - 1, x_low)
            lx = tl.where(x_edge, 0.0, x - x_low.to(tl.float32))
            col_low = x_low[None, :]
            col_high = tl.where(x_edge, x_low, x_low + 1)[None, :]
            v1 = tl.load(row_low + col_low, mask=ok, other=0.0).to(tl.float32)
            v2 = tl.load(row_low + col_high, mask=ok, other=0.0).to(tl.float32)
            v3 = tl.load(row_high + col_low, mask=ok, other=0.0).to(tl.float32)
            v4 = tl.load(row_high + col_high, mask=ok, other=0.0).to(tl.float32)
            hx = 1.0 - lx
            acc += (hy * hx)[None, :] * v1 + (hy * lx)[None, :] * v2 + (ly * hx)[None, :] * v3 + (ly * lx)[None, :] * v4
    return acc


@triton.jit
def _roi_align_kernel(
    out_ptr,  # [B * R, C, OH, OW] features' dtype
    rois_ptr,  # float32 [B * R, 4]
    levels_ptr,  # int32 [B * R] index into the feature maps
    sizes_ptr,  # int32 [L, 2] (H, W) per level
    scales_ptr,  # float32 [L]
    f0, f1, f2, f3, f4, f5,  # feature maps [B, C, H_l, W_l] (unused ones repeat f0)
    rois_per_image,
    channels,
    sampling_ratio,
    ALIGNED: tl.constexpr,
    NUM_LEVELS: tl.constexpr,
    OH: tl.constexpr,
    OW: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    roi, channel_block = tl.program_id(0), tl.program_id(1)
    image = roi // rois_per_image
    level = tl.load(levels_ptr + roi)  # -1: no level (NaN size), the output stays zero
    table_row = tl.maximum(level, 0)
    height = tl.load(sizes_ptr + table_row * 2)
    width = tl.load(sizes_ptr + table_row * 2 + 1)
    scale = tl.load(scales_ptr + table_row)
    offset = 0.5 if ALIGNED else 0.0
    start_x = tl.load(rois_ptr + roi * 4 + 0) * scale - offset
    start_y = tl.load(rois_ptr + roi * 4 + 1) * scale - offset
    roi_w = tl.load(rois_ptr + roi * 4 + 2) * scale - offset - start_x
    roi_h = tl.load(rois_ptr + roi * 4 + 3) * scale - offset - start_y
    if not ALIGNED:  # legacy behaviour: RoIs at least one feature pixel wide
        roi_w = tl.maximum(roi_w, 1.0)
        roi_h = tl.maximum(roi_h, 1.0)
    bin_h = tl.div_rn(roi_h, OH * 1.0)
    bin_w = tl.div_rn(roi_w, OW * 1.0)
    if sampling_ratio > 0:
        grid_h = sampling_ratio + 0 * level
        grid_w = sampling_ratio + 0 * level
    else:
        grid_h = tl.ceil(tl.div_rn(roi_h, OH * 1.0)).to(tl.int32)
        grid_w = tl.ceil(tl.div_rn(roi_w, OW * 1.0)).to(tl.int32)
    count = tl.maximum(grid_h * grid_w, 1).to(tl.float32)

    channel = channel_block * BLOCK_C + tl.arange(0, BLOCK_C)
    bins = tl.arange(0, BLOCK_P)
    channel_ok, bin_ok = channel < channels, bins < OH * OW
    args = (
        height, width, channels, image, channel, channel_ok,
        start_y, start_x, bin_h, bin_w, grid_h, grid_w, bins, bin_ok,
    )
    acc = tl.zeros([BLOCK_C, BLOCK_P], dtype=tl.float32)
    if level == 0:
        acc = _pool_roi(f0, *args, OW=OW)
    if NUM_LEVELS > 1:
        if level == 1:
            acc = _pool_roi(f1, *args, OW=OW)
    if NUM_LEVELS > 2:
        if level == 2:
            acc = _pool_roi(f2, *args, OW=OW)
    if NUM_LEVELS > 3:
        if level == 3:
            acc = _pool_roi(f3, *args, OW=OW)
    if NUM_LEVELS > 4:
        if level == 4:
            acc = _pool_roi(f4, *args, OW=OW)
    if NUM_LEVELS > 5:
        if level == 5:
            acc = _pool_roi(f5, *args, OW=OW)
    out = out_ptr + roi.to(tl.int64) * channels * OH * OW + channel[:, None] * OH * OW + bins[None, :]
    tl.store(out, (acc / count).to(out_ptr.dtype.element_ty), mask=channel_ok[:, None] & bin_ok[None, :])


def multilevel_roi_align_triton(
    rois: Tensor,
    features: Sequence[Tensor],
    output_size: Sequence[int],
    sampling_ratio: int,
    aligned: bool,
    spatial_scales: Sequence[float],
    canonical_scale: int = 224,
    canonical_level: int = 4,
) -> Tensor:
    """Same contract as ``reference.multilevel_roi_align_reference``."""
    check_roi_align_inputs(rois, features, output_size, spatial_scales)
    if len(features) > MAX_LEVELS:
        raise ValueError(f"the Triton kernel supports up to {MAX_LEVELS} feature maps, got {len(features)}")
    if len({f.dtype for f in features}) != 1:
        raise ValueError(f"all feature maps must share one dtype, got {[f.dtype for f in features]}")
    batch, num_rois = rois.shape[:2]
    channels, (out_h, out_w) = features[0].shape[1], output_size
    device = rois.device
    out = torch.empty((batch * num_rois, channels, out_h, out_w), dtype=features[0].dtype, device=device)
    if out.numel() == 0:
        return out.reshape(batch, num_rois, channels, out_h, out_w)
    levels = assign_levels(rois, spatial_scales, canonical_scale, canonical_level).reshape(-1)
    # NaN sizes (x2 < x1) cast to arbitrary integers; the reference pools zeros for them
    levels = torch.where((levels >= 0) & (levels < len(features)), levels, -1).to(torch.int32)
    sizes = torch.tensor([f.shape[-2:] for f in features], dtype=torch.int32, device=device)
    scales = torch.tensor(list(spatial_scales), dtype=torch.float32, device=device)
    maps = [f.contiguous() for f in features]
    maps += [maps[0]] * (MAX_LEVELS - len(maps))
    _roi_align_kernel[(batch * num_rois, triton.cdiv(channels, BLOCK_C))](
        out, rois.reshape(-1, 4).float().contiguous(), levels.contiguous(), sizes, scales, *maps,
        num_rois, channels, int(sampling_ratio),
        ALIGNED=bool(aligned), NUM_LEVELS=len(features), OH=int(out_h), OW=int(out_w),
        BLOCK_C=BLOCK_C, BLOCK_P=triton.next_power_of_2(int(out_h) * int(out_w)),
    )
    return out.reshape(batch, num_rois, channels, out_h, out_w)


def compile_kernels(
    *,
    arch: int = 90,
    dtypes: Sequence[str] = ("fp32", "fp16"),
    output_size: Sequence[int] = (7, 7),
    num_levels: int = 4,
) -> dict:
    """Compile the kernel ahead of time for an NVIDIA GPU (``sm_<arch>``); no GPU needed.

    One variant per feature dtype (``"fp32"``/``"fp16"``) and ``aligned``; returns
    ``{name: triton CompiledKernel}`` (``.asm["ptx"]``, ``.asm["cubin"]``), e.g. for a
    TensorRT ``aot_impl`` or a CI check.
    """
    out_h, out_w = output_size
    kernels = {}
    for dtype in dtypes:
        for aligned in (False, True):
            signature = {
                "out_ptr": f"*{dtype}", "rois_ptr": "*fp32", "levels_ptr": "*i32", "sizes_ptr": "*i32",
                "scales_ptr": "*fp32", **{f"f{i}": f"*{dtype}" for i in range(MAX_LEVELS)},
                "rois_per_image": "i32", "channels": "i32", "sampling_ratio": "i32",
            }
            constexprs = {
                "ALIGNED": aligned, "NUM_LEVELS": num_levels, "OH": out_h, "OW": out_w,
                "BLOCK_C": BLOCK_C, "BLOCK_P": triton.next_power_of_2(out_h * out_w),
            }
            name = f"roi_align_{dtype}{'_aligned' if aligned else ''}"
            kernels[name] = compile_for_cuda(_roi_align_kernel, signature, constexprs, arch=arch)
    return kernels


def benchmark(
    *,
    batch: int = 4,
    rois_per_image: int = 1000,
    channels: int = 256,
    image_size: int = 800,
    output_size: int = 7,
    sampling_ratio: int = 2,
    aligned: bool = False,
    dtype: torch.dtype = torch.float32,
    device: str = "cuda",
    seed: int = 0,
) -> dict:
    """Median milliseconds of the Triton kernel and the torchvision reference on ``device``.

    FPN P2-P5 maps (strides 4-32) of a square ``image_size`` input, RoIs of random size
    spread over all levels. Returns ``{"triton_ms", "reference_ms", "max_abs_diff", **settings}``.
    """
    from triton.testing import do_bench

    gen = torch.Generator(device="cpu").manual_seed(seed)
    xy = torch.rand(batch, rois_per_image, 2, generator=gen) * image_size * 0.8
    wh = torch.exp(torch.rand(batch, rois_per_image, 2, generator=gen) * 6.0)
    rois = torch.cat([xy, (xy + wh).clamp(max=image_size)], -1).to(device)
    features = [
        torch.randn(batch, channels, image_size // s, image_size // s, generator=gen).to(device, dtype)
        for s in (4, 8, 16, 32)
    ]
    args = (rois, features, [output_size, output_size], sampling_ratio, aligned, [1 / 4, 1 / 8, 1 / 16, 1 / 32])
    diff = (multilevel_roi_align_triton(*args).float() - multilevel_roi_align_reference(*args).float()).abs().max()
    return {
        "triton_ms": do_bench(lambda: multilevel_roi_align_triton(*args)),
        "reference_ms": do_bench(lambda: multilevel_roi_align_reference(*args)),
        "max_abs_diff": float(diff),
        "batch": batch, "rois_per_image": rois_per_image, "channels": channels,
        "image_size": image_size, "sampling_ratio": sampling_ratio, "aligned": aligned, "dtype": str(dtype),
    }
