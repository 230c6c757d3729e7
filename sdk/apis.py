"""MMDetection-style helpers: ``init_detector`` and ``inference_detector``.

For users coming from MMDetection (``init_detector(config, checkpoint)``). An SDK
checkpoint and a model_dir already carry their model config, preprocessing and
classes, so the config argument is optional::

    from sdk.apis import init_detector, inference_detector
    model = init_detector("work_dirs/retinanet_tiny/latest.pt")   # or a model_dir
    dets = inference_detector(model, "demo.jpg")                  # -> Detections
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from sdk.detections import Detections
from sdk.detector import Detector
from sdk.errors import ConfigError
from sdk.images import ImageInput

log = logging.getLogger(__name__)


def init_detector(
    config_or_checkpoint: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    device: str = "cpu",
    **detector_kwargs,
) -> Detector:
    """A ``Detector`` for a checkpoint or model_dir.

    ``init_detector(ckpt_or_model_dir)`` or, MMDetection's way,
    ``init_detector(config, ckpt_or_model_dir)``; the config file is then only a
    label, since the checkpoint records the model it was trained with.
    ``detector_kwargs`` go to ``Detector`` (``score_thr``, ``batch_size``, ``backend``).
    """
    if checkpoint is None:
        if Path(config_or_checkpoint).suffix == ".py":
            raise ConfigError(
                f"{config_or_checkpoint} is a config: pass the trained checkpoint too, "
                "init_detector(config, 'work_dirs/.../latest.pt'), or a model_dir alone"
            )
        return Detector(config_or_checkpoint, device=device, **detector_kwargs)
    log.debug(
        "init_detector: using %s; the model config comes from the checkpoint, not %s", checkpoint, config_or_checkpoint
    )
    return Detector(checkpoint, device=device, **detector_kwargs)


def inference_detector(
    model: Detector, imgs: ImageInput | Sequence[ImageInput], **call_kwargs
) -> Detections | list[Detections]:
    """Run ``model`` on one image (-> ``Detections``) or a list (-> ``list[Detections]``).

    Images are paths, bytes, PIL images or numpy arrays (BGR unless
    ``channel_order="rgb"`` is passed in ``call_kwargs``).
    """
    if not isinstance(model, Detector):
        raise ConfigError(f"inference_detector needs the Detector from init_detector(), got {type(model).__name__}")
    return model(imgs, **call_kwargs)
