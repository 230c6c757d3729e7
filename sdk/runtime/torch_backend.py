"""Eager PyTorch backend: runs a ``.pt`` checkpoint through the detection contract.

The reference every exported artifact is compared with: the same ``sdk.preprocess``
batch goes in, and the model's torchvision-style ``list[dict]`` comes out padded to
the fixed-shape contract (docs/architecture.md, contract 2), so ``Detector`` decodes
eager and exported outputs with one code path. Imports torch (only this backend).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from sdk.errors import BackendUnavailableError, require
from sdk.preprocess import Preprocess
from sdk.runtime.base import parse_device

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from sdk.checkpoint import CheckpointMeta


class TorchBackend:
    """``infer(batch [B, 3, H, W]) -> contract dict`` with an eager detector.

    Args:
        model: an eager detector (``sdk.models``): takes normalized float32
            [B, 3, H, W] and, in eval mode, returns ``list[dict(boxes [N, 4] xyxy
            network-input pixels, scores [N], labels [N])]``.
        preprocess: the record the batch was made with; uint8 batches
            (``normalize_in_graph``) are normalized here with its mean/std.
        max_det: K of the output contract; higher-scoring detections are kept.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        max_batch: the largest batch ``Detector`` sends at once (memory bound only).
    """

    name = "torch"

    def __init__(
        self, model: torch.nn.Module, *, preprocess: Preprocess, max_det: int, device: str = "cpu", max_batch: int = 8
    ) -> None:
        torch = require("torch", extra="torch", purpose="Running a .pt checkpoint")
        self.device = _torch_device(device)
        self.model = model.eval().to(self.device)
        self.max_det = int(max_det)
        self.min_batch, self.max_batch = 1, int(max_batch)
        self.input_dtype = np.dtype(np.uint8 if preprocess.normalize_in_graph else np.float32)
        # Same arithmetic as Preprocess.normalize and the exported graphs: (x.float() - mean) / std.
        self._mean = torch.tensor(preprocess.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(preprocess.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

    @classmethod
    def from_checkpoint(
        cls, path: Any, *, device: str = "cpu", max_batch: int = 8
    ) -> tuple[TorchBackend, CheckpointMeta]:
        """Build the eager model of an SDK checkpoint; returns ``(backend, checkpoint meta)``."""
        require("torch", extra="torch", purpose="Running a .pt checkpoint")
        from sdk.checkpoint import build_model_from_checkpoint

        _torch_device(device)  # fail on a missing GPU before loading weights
        model, meta = build_model_from_checkpoint(path, device=device)
        backend = cls(
            model,
            preprocess=meta.preprocess,
            max_det=int(meta.postprocess["max_det"]),
            device=device,
            max_batch=max_batch,
        )
        return backend, meta

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run ``batch`` [B, 3, H, W] (uint8 or normalized float32); returns contract 2."""
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            x = (x.float() - self._mean) / self._std if x.dtype == torch.uint8 else x.float()
            detections = self.model(x)
        return pack_detections(detections, max_det=self.max_det)


def pack_detections(detections: Sequence[dict[str, Any]], *, max_det: int) -> dict[str, np.ndarray]:
    """Pad torchvision-style ``list[dict(boxes, scores, labels)]`` into contract 2.

    Returns ``num_dets`` int32 [B, 1], ``boxes`` float32 [B, K, 4], ``scores`` float32
    [B, K] (descending), ``labels`` int32 [B, K] with K = ``max_det``; when an image has
    more than K detections the K highest-scoring are kept. Mask R-CNN's ``masks``
    [N, 1, M, M] become ``masks`` float32 [B, K, M, M].
    """
    b = len(detections)
    out = {
        "num_dets": np.zeros((b, 1), np.int32),
        "boxes": np.zeros((b, max_det, 4), np.float32),
        "scores": np.zeros((b, max_det), np.float32),
        "labels": np.zeros((b, max_det), np.int32),
    }
    if b and "masks" in detections[0]:
        size = tuple(detections[0]["masks"].shape[-2:])
        out["masks"] = np.zeros((b, max_det, *size), np.float32)
    for i, det in enumerate(detections):
        scores = _numpy(det["scores"]).astype(np.float32).reshape(-1)
        order = np.argsort(-scores, kind="stable")[:max_det]
        n = len(order)
        out["num_dets"][i, 0] = n
        if "masks" in out:
            out["masks"][i, :n] = _numpy(det["masks"]).reshape(-1, *out["masks"].shape[2:])[order]
        out["boxes"][i, :n] = _numpy(det["boxes"]).reshape(-1, 4)[order]
        out["scores"][i, :n] = scores[order]
        out["labels"][i, :n] = _numpy(det["labels"]).reshape(-1)[order]
    return out


def _numpy(t: Any) -> np.ndarray:
    if not hasattr(t, "detach"):
        return np.asarray(t)
    t = t.detach().cpu()
    # under a caller's torch.autocast the model may return bfloat16, which numpy lacks
    return (t.float() if t.is_floating_point() else t).numpy()


def _torch_device(device: str) -> torch.device:
    import torch

    kind, index = parse_device(device)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailableError(f"device={device!r} but torch sees no CUDA GPU; use device='cpu'")
        if index >= torch.cuda.device_count():
            raise BackendUnavailableError(f"device={device!r} but torch sees {torch.cuda.device_count()} GPU(s)")
    return torch.device(f"{kind}:{index}" if kind == "cuda" else "cpu")
