"""Eager PyTorch backend: runs a ``.pt`` checkpoint through the detection contract.

The reference every exported artifact is compared with: the same ``sdk.preprocess``
batch goes in, and the model's torchvision-style ``list[dict]`` comes out padded to
the fixed-shape contract (docs/architecture.md, contract 2), so ``Detector`` decodes
eager and exported outputs with one code path. Imports torch (only this backend).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from sdk.errors import BackendUnavailableError, require
from sdk.postprocess import pack_detections as pack_contract
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
        require("torch", extra="torch", purpose="Running a .pt checkpoint")
        self.device = _torch_device(device)
        self.model = model.eval().to(self.device)
        self.max_det = int(max_det)
        self.min_batch, self.max_batch = 1, int(max_batch)
        self.input_dtype = np.dtype(np.uint8 if preprocess.normalize_in_graph else np.float32)
        from sdk.models.inputs import ImageNormalizer

        self._normalize = ImageNormalizer(preprocess).to(self.device)  # as the exported graphs
        # a varying-shape record: torchvision's batching, as its dynamic-shape graphs do it
        # (for an sdk.models detector: a user's own module may not take image_sizes)
        takes_sizes = "image_sizes" in inspect.signature(self.model.forward).parameters
        self._content_aware = preprocess.static_shape is None and takes_sizes

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

    def infer(self, batch: np.ndarray, image_sizes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Run ``batch`` [B, 3, H, W] (uint8 or normalized float32); returns contract 2.
        ``image_sizes`` (``Backend.infer``) counts for a varying-shape record (keep_ratio
        without a canvas): the model zeroes the padding and clips to each image's content,
        as the dynamic-shape graphs do."""
        import torch

        from sdk.runtime.base import sizes_input

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            x = self._normalize(x) if x.dtype == torch.uint8 else x.float()
            if self._content_aware and image_sizes is not None:
                detections = self.model(x, image_sizes=torch.from_numpy(sizes_input(batch, image_sizes)).to(self.device))
            else:
                detections = self.model(x)
        return pack_detections(detections, max_det=self.max_det)


def pack_detections(detections: Sequence[dict[str, Any]], *, max_det: int) -> dict[str, np.ndarray]:
    """Torchvision-style ``list[dict(boxes, scores, labels[, masks])]`` (tensors or arrays)
    -> contract 2 (``sdk.postprocess.pack_detections``: K = ``max_det`` best per image);
    Mask R-CNN's ``masks`` [N, 1, M, M] become ``masks`` float32 [B, K, M, M]."""
    masks = [_numpy(d["masks"]) for d in detections] if detections and "masks" in detections[0] else None
    return pack_contract([(_numpy(d["boxes"]), _numpy(d["scores"]), _numpy(d["labels"])) for d in detections],
                         max_det=max_det, masks=masks)


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
