"""Single-launch Triton kernel of ``sdk::multilevel_roi_align``: the op's CUDA
implementation and the TensorRT plugin's ahead-of-time kernel (one kernel, no workspace).

One launch for all RoIs of all images and all levels: program ``(roi, channel block)``
assigns its RoI's FPN level itself (torchvision's ``LevelMapper``:
``floor(k0 + log2(sqrt(area) / s0) + 1e-6)`` clamped to the maps, IEEE division; a NaN
size, from ``x2 < x1`` xor ``y2 < y1``, matches no level and pools zeros), branches once
to that level's feature map and computes a ``[BLOCK_C, oh * ow]`` tile: for every bin,
the mean of ``grid_h x grid_w`` bilinear samples (``sampling_ratio``, or
``ceil(roi_size / output_size)`` when adaptive), following torchvision's CPU kernel
(``aligned`` half-pixel shift, the ``>= 1`` RoI size clamp when not aligned, zero
outside ``[-1, size]``, edge clamping). Math in float32; output in the features' dtype.

Arguments in TensorRT's AOT order: inputs (``rois`` float32 [B, R, 4] xyxy input
pixels, ``MAPS`` feature maps [B, C, H_l, W_l]), int32 scalars (R, C, then H_l, W_l per
map, from shape expressions), output ([B, R, C, oh, ow]). The attributes are
compile-time constants: the level range (from ``spatial_scales``: level ``l`` has scale
``2 ** -(K_MIN + l)``), canonical scale and level, sampling ratio, ``aligned``, output
size. Up to ``MAPS`` = 4 feature maps (unused ones repeat the first).

Runs on CPU tensors under ``TRITON_INTERPRET=1`` (tests). ``benchmark`` times it
against the torchvision reference on a GPU.
"""

from __future__ import annotations

from typing import Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

from .reference import check_roi_align_inputs, level_range, multilevel_roi_align_reference

MAPS = 4
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
    rois_ptr,  # float32 [B * R, 4]
    f0, f1, f2, f3,  # feature maps [B, C, H_l, W_l] (unused ones repeat f0)
    rois_per_image,
    channels,
    h0, w0, h1, w1, h2, w2, h3, w3,
    out_ptr,  # [B * R, C, OH, OW] features' dtype
    K_MIN: tl.constexpr,
    NUM_LEVELS: tl.constexpr,
    CANONICAL_SCALE: tl.constexpr,
    CANONICAL_LEVEL: tl.constexpr,
    SAMPLING_RATIO: tl.constexpr,
    ALIGNED: tl.constexpr,
    OH: tl.constexpr,
    OW: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    roi, channel_block = tl.program_id(0), tl.program_id(1)
    image = roi // rois_per_image
    x1 = tl.load(rois_ptr + roi * 4 + 0)
    y1 = tl.load(rois_ptr + roi * 4 + 1)
    x2 = tl.load(rois_ptr + roi * 4 + 2)
    y2 = tl.load(rois_ptr + roi * 4 + 3)
    # torchvision's LevelMapper in float32; area < 0 is its NaN size: no level, zeros
    area = (x2 - x1) * (y2 - y1)
    # IEEE sqrt and division as torch (tl.sqrt and / are approximate on NVIDIA GPUs)
    raw = tl.floor(CANONICAL_LEVEL + tl.log2(tl.div_rn(tl.sqrt_rn(tl.maximum(area, 0.0)), CANONICAL_SCALE * 1.0)) + 1e-6)
    k = tl.minimum(tl.maximum(raw, K_MIN * 1.0), (K_MIN + NUM_LEVELS - 1) * 1.0)
    level = tl.where(area >= 0.0, k.to(tl.int32) - K_MIN, -1)
    height = tl.where(level == 0, h0, tl.where(level == 1, h1, tl.where(level == 2, h2, h3)))
    width = tl.where(level == 0, w0, tl.where(level == 1, w1, tl.where(level == 2, w2, w3)))
    scale = tl.div_rn(1.0, (1 << (K_MIN + tl.maximum(level, 0))).to(tl.float32))  # 2 ** -k, exact
    offset = 0.5 if ALIGNED else 0.0
    start_x = x1 * scale - offset
    start_y = y1 * scale - offset
    roi_w = x2 * scale - offset - start_x
    roi_h = y2 * scale - offset - start_y
    if not ALIGNED:  # legacy behaviour: RoIs at least one feature pixel wide
        roi_w = tl.maximum(roi_w, 1.0)
        roi_h = tl.maximum(roi_h, 1.0)
    bin_h = tl.div_rn(roi_h, OH * 1.0)
    bin_w = tl.div_rn(roi_w, OW * 1.0)
    if SAMPLING_RATIO > 0:
        grid_h = SAMPLING_RATIO + 0 * level
        grid_w = SAMPLING_RATIO + 0 * level
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
    out = out_ptr + roi.to(tl.int64) * channels * OH * OW + channel[:, None] * OH * OW + bins[None, :]
    tl.store(out, tl.div_rn(acc, count).to(out_ptr.dtype.element_ty), mask=channel_ok[:, None] & bin_ok[None, :])


def kernel_constants(
    output_size: Sequence[int], sampling_ratio: int, aligned: bool, spatial_scales: Sequence[float],
    canonical_scale: int = 224, canonical_level: int = 4,
) -> dict:
    """The kernel's compile-time constants for the op's attributes."""
    k_min, k_max = level_range(spatial_scales)
    out_h, out_w = (int(v) for v in output_size)
    return {
        "K_MIN": k_min, "NUM_LEVELS": k_max - k_min + 1, "CANONICAL_SCALE": int(canonical_scale),
        "CANONICAL_LEVEL": int(canonical_level), "SAMPLING_RATIO": max(int(sampling_ratio), 0),
        "ALIGNED": bool(aligned), "OH": out_h, "OW": out_w, "BLOCK_C": BLOCK_C,
        "BLOCK_P": triton.next_power_of_2(out_h * out_w),
    }


def signature(dtype: str) -> dict[str, str]:
    """Runtime arguments in order (inputs, int32 scalars, output) for feature dtype ``"fp32"``/``"fp16"``."""
    return {
        "rois_ptr": "*fp32", **{f"f{i}": f"*{dtype}" for i in range(MAPS)},
        "rois_per_image": "i32", "channels": "i32", **{f"{d}{i}": "i32" for i in range(MAPS) for d in "hw"},
        "out_ptr": f"*{dtype}",
    }


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
    """Same contract as ``reference.multilevel_roi_align_reference`` (up to ``MAPS`` maps)."""
    check_roi_align_inputs(rois, features, output_size, spatial_scales)
    if len(features) > MAPS:
        raise ValueError(f"the Triton kernel supports up to {MAPS} feature maps, got {len(features)}")
    if len({f.dtype for f in features}) != 1:
        raise ValueError(f"all feature maps must share one dtype, got {[f.dtype for f in features]}")
    batch, num_rois = rois.shape[:2]
    channels, (out_h, out_w) = features[0].shape[1], output_size
    out = torch.empty((batch * num_rois, channels, out_h, out_w), dtype=features[0].dtype, device=rois.device)
    if out.numel() == 0:
        return out.reshape(batch, num_rois, channels, out_h, out_w)
    maps = [f.contiguous() for f in features]
    maps += [maps[0]] * (MAPS - len(maps))
    sizes = [int(d) for f in maps for d in f.shape[-2:]]
    constants = kernel_constants(output_size, sampling_ratio, aligned, spatial_scales, canonical_scale,
                                 canonical_level)
    _roi_align_kernel[(batch * num_rois, triton.cdiv(channels, BLOCK_C))](
        rois.reshape(-1, 4).float().contiguous(), *maps, num_rois, channels, *sizes, out, **constants,
    )
    return out.reshape(batch, num_rois, channels, out_h, out_w)


def compile_aot(
    *, arch: int, dtype: str, output_size: Sequence[int], sampling_ratio: int, aligned: bool,
    spatial_scales: Sequence[float], canonical_scale: int = 224, canonical_level: int = 4,
):
    """``_roi_align_kernel`` for ``sm_<arch>`` as a TensorRT AOT plugin kernel
    (``sdk.trt_plugins._triton_aot.AotKernel``); no GPU needed. Launch: grid
    (B * R, ceil(C / BLOCK_C)), int32 scalars R, C, H_l, W_l."""
    from .._triton_aot import aot_kernel

    constants = kernel_constants(output_size, sampling_ratio, aligned, spatial_scales, canonical_scale,
                                 canonical_level)
    return aot_kernel(_roi_align_kernel, signature(dtype), constants, arch=arch)


def compile_kernels(
    *,
    arch: int = 90,
    dtypes: Sequence[str] = ("fp32", "fp16"),
    output_size: Sequence[int] = (7, 7),
    spatial_scales: Sequence[float] = (1 / 4, 1 / 8, 1 / 16, 1 / 32),
) -> dict:
    """Compile the kernel ahead of time for an NVIDIA GPU (``sm_<arch>``); no GPU needed.

    One variant per feature dtype (``"fp32"``/``"fp16"``) and ``aligned`` (Faster R-CNN's
    sampling ratio 2); returns ``{name: AotKernel}``, e.g. for a CI check.
    """
    kernels = {}
    for dtype in dtypes:
        for aligned in (False, True):
            name = f"roi_align_{dtype}{'_aligned' if aligned else ''}"
            kernels[name] = compile_aot(arch=arch, dtype=dtype, output_size=output_size, sampling_ratio=2,
                                        aligned=aligned, spatial_scales=spatial_scales)
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
