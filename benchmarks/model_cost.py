"""Parameters and GFLOPs of a detector, counted on its eager PyTorch model.

GFLOPs are ``torch.utils.flop_counter.FlopCounterMode`` totals for one image at the
network input size (2 FLOPs per multiply-accumulate; convolutions, matmuls and
RoIAlign-free ops it knows). A checkpoint is counted on its own model; a model_dir
on its model rebuilt from the registry at the exported shape (weights do not change
the count, except Faster R-CNN's second stage, which scales with the proposals the RPN
keeps: random weights keep the same ``rpn_post_nms_top_n_test`` bound).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def model_size_mb(model: str | os.PathLike) -> float:
    """Bytes on disk of a model_dir's files or a checkpoint file, in MB (10^6)."""
    path = Path(model)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
    return path.stat().st_size / 1e6


def count_cost(torch_model: Any, input_hw: tuple[int, int]) -> dict[str, Any]:
    """``{"parameters", "gflops", "input_hw"}`` of an eager model (float32 normalized input)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in torch_model.parameters())
    x = torch.zeros(1, 3, *input_hw)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        torch_model.eval()(x)
    return {"parameters": int(params), "gflops": counter.get_total_flops() / 1e9, "input_hw": list(input_hw)}


def checkpoint_cost(checkpoint: str | os.PathLike, input_hw: tuple[int, int]) -> dict[str, Any]:
    """Cost of an SDK checkpoint's model at ``input_hw``."""
    from sdk.checkpoint import build_model_from_checkpoint

    model, _ = build_model_from_checkpoint(checkpoint)
    return {**count_cost(model, input_hw), "source": "checkpoint"}


def model_dir_cost(model_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Cost of a model_dir's model at its exported input shape: counted on its source
    checkpoint when ``export.json`` names one that still matches the manifest's sha256,
    else on the registered model rebuilt with random weights; ``None`` when torch is
    missing, the model name is not registered, or the shape is dynamic."""
    import importlib.util
    import json

    from sdk.manifest import load_model_dir, sha256_file

    manifest = load_model_dir(model_dir, verify_files=False).manifest
    shape = manifest.preprocess.static_shape
    if shape is None:
        return None
    if importlib.util.find_spec("torch") is None:
        return None
    info_file = Path(model_dir) / "export.json"  # written by sdk.converters.export
    source = json.loads(info_file.read_text()).get("source_checkpoint") if info_file.is_file() else None
    if source and Path(source).is_file() and sha256_file(source) == manifest.source_checkpoint_sha256:
        return {**checkpoint_cost(source, tuple(shape)), "source": f"source checkpoint {source}"}
    from sdk.errors import ConfigError
    from sdk.models import build_model, get_model_spec

    try:
        spec = get_model_spec(manifest.model_name)
    except ConfigError:
        return None
    overrides = spec.postprocess_overrides(dict(manifest.postprocess))
    model = build_model(manifest.model_name, num_classes=len(manifest.classes), **overrides)
    return {**count_cost(model, tuple(shape)), "source": "registry model (random weights) at the exported shape"}
