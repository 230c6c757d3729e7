"""Reduced-precision DeployModules: the network in float16 / bfloat16, the rest float32.

    deploy = build_deploy_module(model, preprocess=..., postprocess=...)
    deploy = with_network_dtype(deploy, torch.float16)   # then torch.onnx.export it

Each DeployModule names its network submodules in ``NETWORK_MODULES`` (backbone,
neck, heads: the convolutions and matmuls). Those are replaced by ``NetworkInDtype``
wrappers holding a copy of the submodule in the reduced dtype, which cast their
floating inputs to it and their floating outputs back to float32. Everything else
(input normalization, anchor decoding, clipping, score thresholds, NMS and RoIAlign)
never sees a reduced dtype, so the exported graph has explicit ``Cast`` nodes exactly
at the network's boundaries.

Why here and not on the ONNX graph (onnxconverter-common's ``convert_float_to_float16``):
that converter decides by op type, so the box decoding (``Exp``, ``Mul``, ``Add``)
would turn float16 too, and keeping it float32 needs a node list found by graph
analysis. In torch the boundary is a module boundary, the same for every family and
every flavor, and the eager copy runs the exact dtype the graph will (used by tests).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

#: DeployModule attribute names that hold network submodules, in every family.
NETWORK_MODULES = ("backbone", "head", "rpn_head", "box_head", "box_predictor", "mask_head", "mask_predictor")

REDUCED_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class NetworkInDtype(nn.Module):
    """``module`` computing in ``dtype``: floating tensors in (any nesting of tuples,
    lists and dicts) are cast to ``dtype``, floating tensors out to float32.

    Args:
        module: the float32 submodule; a copy is converted, the original is untouched
            (a DeployModule shares its submodules with the eager model).
        dtype: ``torch.float16`` or ``torch.bfloat16``.
    """

    def __init__(self, module: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype
        self.module = copy.deepcopy(module).to(dtype)

    def forward(self, *args: Any) -> Any:
        return _cast_floats(self.module(*_cast_floats(args, self.dtype)), torch.float32)


def with_network_dtype(deploy: nn.Module, dtype: torch.dtype) -> nn.Module:
    """``deploy`` with each of its ``NETWORK_MODULES`` computing in ``dtype`` (in place;
    returns ``deploy``). A float32 ``dtype`` leaves it unchanged."""
    if dtype == torch.float32:
        return deploy
    if dtype not in REDUCED_DTYPES.values():
        raise ValueError(f"dtype must be torch.float16 or torch.bfloat16, got {dtype}")
    wrapped = [name for name in NETWORK_MODULES if isinstance(getattr(deploy, name, None), nn.Module)]
    if not wrapped:
        raise ValueError(f"{type(deploy).__name__} has none of the network submodules {NETWORK_MODULES}")
    for name in wrapped:
        setattr(deploy, name, NetworkInDtype(getattr(deploy, name), dtype))
    return deploy.eval()


def network_dtype_details(deploy: nn.Module) -> dict[str, Any]:
    """What ``with_network_dtype`` did to ``deploy``, for the manifest's ``precision_details``."""
    wrapped = {name: str(m.dtype).removeprefix("torch.") for name in NETWORK_MODULES
               if isinstance(m := getattr(deploy, name, None), NetworkInDtype)}
    return {
        "network_dtype": next(iter(wrapped.values()), "float32"),
        "network_modules": sorted(wrapped),
        "float32": "input normalization, box decoding and clipping, score thresholds, NMS, RoIAlign",
    }


def _cast_floats(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, dict):
        return type(value)((k, _cast_floats(v, dtype)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        cast = [_cast_floats(v, dtype) for v in value]
        return type(value)(*cast) if hasattr(value, "_fields") else type(value)(cast)
    return value
