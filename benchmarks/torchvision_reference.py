"""torchvision's own eager detector, run the way a torchvision user runs it.

The reference every SDK backend's speed-up is measured against. It holds the same
weights as the SDK model (the SDK's models are state-dict compatible with
torchvision's builders): torchvision's builder is called with ``weights=None`` and the
SDK state_dict is loaded into it. Timed stages::

    decode       sdk.images.load_image (the same decoder as every other row)
    preprocess   torch.from_numpy(rgb).permute(2, 0, 1).float() / 255 per image
                 (what torchvision's docs feed: a list of float 0-1 [3, H, W] tensors)
    inference    model(list_of_tensors) in inference_mode: torchvision's own
                 GeneralizedRCNNTransform (resize with min_size / max_size matching the
                 SDK record, normalize, batch-pad to /32), the network, and its
                 post-processing (decode, NMS, rescale to original pixels)
    postprocess  tensors -> sdk.Detections (numpy copies only)

Tiny SDK variants have no torchvision builder: ``torchvision_builder_kwargs`` says so.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from sdk.errors import ConfigError

# SDK override name -> torchvision builder kwarg, for the knobs torchvision's builders take.
_SHARED_KNOBS = (
    "score_thresh", "nms_thresh", "detections_per_img", "topk_candidates",
    "box_score_thresh", "box_nms_thresh", "box_detections_per_img",
    "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_test", "rpn_nms_thresh", "rpn_score_thresh",
)


def torchvision_builder_kwargs(model_name: str, meta) -> tuple[str, dict[str, Any]] | None:
    """``(torchvision builder name, kwargs)`` building torchvision's twin of the SDK
    model a checkpoint ``meta`` describes, or ``None`` when torchvision has none."""
    from sdk.models import get_model_spec

    spec = get_model_spec(model_name)
    if spec.torchvision_name is None:
        return None
    overrides = {**meta.model_overrides, **spec.postprocess_overrides(meta.postprocess)}
    kwargs: dict[str, Any] = {k: v for k, v in overrides.items() if k in _SHARED_KNOBS}
    if spec.family == "ssdlite":  # its builder fixes the 320x320 stretch and the 0.5 mean/std itself
        return spec.torchvision_name, kwargs
    pre = meta.preprocess
    short, long = (pre.size[0], pre.size[1]) if pre.mode == "keep_ratio" else (min(pre.size), max(pre.size))
    kwargs.update(min_size=int(short), max_size=int(long))
    kwargs.update(image_mean=[m / 255 for m in pre.mean], image_std=[s / 255 for s in pre.std])
    return spec.torchvision_name, kwargs


class TorchvisionPipeline:
    """torchvision's eager model with the SDK checkpoint's weights, in four stages.

    Raises ``ConfigError`` when the checkpoint's model has no torchvision builder.
    """

    def __init__(self, checkpoint: Any, *, device: str = "cpu", name: str = "torchvision eager") -> None:
        import torch
        import torchvision

        from sdk.checkpoint import load_checkpoint

        ckpt = load_checkpoint(checkpoint)
        built = torchvision_builder_kwargs(ckpt.meta.model_name, ckpt.meta)
        if built is None:
            raise ConfigError(f"torchvision has no builder for {ckpt.meta.model_name!r}")
        builder_name, kwargs = built
        builder = getattr(torchvision.models.detection, builder_name)
        model = builder(weights=None, weights_backbone=None, num_classes=ckpt.meta.num_classes, **kwargs)
        _match_batchnorm(model, ckpt.state_dict, eps=ckpt.meta.model_overrides.get("batchnorm_eps"))
        result = model.load_state_dict(ckpt.state_dict, strict=False)
        missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or result.unexpected_keys:
            raise ConfigError(
                f"the checkpoint's weights do not fit torchvision's {builder_name}: "
                f"missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}"
            )
        self.device = device
        self.torch = torch
        self.model = model.eval().to(device)
        self.classes = list(ckpt.meta.classes)
        self.name = name
        self.max_batch = 1 << 30
        self.builder_name = builder_name

    def decode(self, encoded: Sequence[Any]) -> list[np.ndarray]:
        from sdk.images import load_image

        return [load_image(item) for item in encoded]

    def preprocess(self, images: list[np.ndarray]) -> list:
        torch = self.torch
        return [torch.from_numpy(img).to(self.device).permute(2, 0, 1).float().div_(255) for img in images]

    def infer(self, prepared: list) -> list[dict]:
        with self.torch.inference_mode():
            return self.model(prepared)

    def postprocess(self, raw: list[dict], prepared: list) -> list:
        from sdk.detections import Detections

        return [
            Detections(
                d["boxes"].cpu().numpy().astype(np.float32),
                d["scores"].cpu().numpy().astype(np.float32),
                d["labels"].cpu().numpy().astype(np.int64),
                self.classes,
            )
            for d in raw
        ]

    def detect(self, images: list[np.ndarray]) -> list:
        prepared = self.preprocess(images)
        return self.postprocess(self.infer(prepared), prepared)


def _match_batchnorm(model, state_dict, *, eps: float | None) -> None:
    """Give torchvision's model the SDK model's kind of BatchNorm.

    torchvision built with ``weights=None`` uses trainable ``BatchNorm2d``; a
    checkpoint converted from published weights uses ``FrozenBatchNorm2d`` (no
    ``num_batches_tracked`` in its state_dict), as torchvision does when it loads those
    weights itself (with eps 0 for the v1 R50 weights, ``overwrite_eps``). Swapping
    keeps the reference the model a torchvision user runs.
    """
    from torch import nn
    from torchvision.ops.misc import FrozenBatchNorm2d

    if any(k.endswith("num_batches_tracked") for k in state_dict):
        return
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, child_name, FrozenBatchNorm2d(child.num_features, eps=child.eps if eps is None else eps))
