"""Backend-independent evaluation: run any detector over a COCO dataset, score it.

Anything callable as ``detector(images: list[np.ndarray], channel_order="rgb") ->
list[Detections]`` can be evaluated: ``sdk.Detector`` on a checkpoint or an exported
model_dir (``sdk test``), or ``EagerPredictor`` around a model being trained. So a
number printed by ``sdk train`` and one printed by ``sdk test`` on the exported model
come from the same preprocessing, decoding and COCO code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

import numpy as np

from sdk.detections import Detections
from sdk.images import load_image
from sdk.postprocess import decode_outputs
from sdk.preprocess import Preprocess, content_sizes, preprocess_batch

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

# pycocotools' summary lines, in the order of ``evaluate_coco``'s keys.
METRIC_LABELS = {
    "bbox_mAP": "AP  @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
    "bbox_mAP_50": "AP  @[ IoU=0.50      | area=   all | maxDets=100 ]",
    "bbox_mAP_75": "AP  @[ IoU=0.75      | area=   all | maxDets=100 ]",
    "bbox_mAP_s": "AP  @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
    "bbox_mAP_m": "AP  @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
    "bbox_mAP_l": "AP  @[ IoU=0.50:0.95 | area= large | maxDets=100 ]",
    "bbox_AR_1": "AR  @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ]",
    "bbox_AR_10": "AR  @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ]",
    "bbox_AR_100": "AR  @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
    "bbox_AR_s": "AR  @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
    "bbox_AR_m": "AR  @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
    "bbox_AR_l": "AR  @[ IoU=0.50:0.95 | area= large | maxDets=100 ]",
}
# Instance segmentation: the same twelve numbers of the mask evaluation (iouType="segm").
METRIC_LABELS.update({key.replace("bbox_", "segm_", 1): label for key, label in list(METRIC_LABELS.items())})


class DetectorLike(Protocol):
    def __call__(self, images: list[np.ndarray], *, channel_order: str = ...) -> list[Detections]: ...


class EagerPredictor:
    """A torch detector being trained, behind the ``Detector`` calling convention.

    ``model`` takes normalized float32 [B, 3, H, W] and in eval mode returns
    torchvision-style ``list[dict(boxes, scores, labels)]``. The images take exactly
    ``Detector``'s path for a ``.pt`` checkpoint: ``sdk.images.load_image`` ->
    ``sdk.preprocess.preprocess_batch`` -> ``TorchBackend.infer`` (normalization on
    ``device``, padding to the fixed-shape contract with K = ``max_det``) ->
    ``sdk.postprocess.decode_outputs``. The model's train/eval mode is restored after
    each call.
    """

    def __init__(self, model: nn.Module, *, preprocess: Preprocess, classes: Sequence[str], max_det: int,
                 device: torch.device | str = "cpu", score_thr: float = 0.0) -> None:
        self.model = model
        self.preprocess = preprocess
        self.classes = list(classes)
        self.max_det = int(max_det)
        self.device = str(device)
        self.score_thr = score_thr

    def __call__(self, images: Sequence[Any], *, channel_order: str = "bgr") -> list[Detections]:
        from sdk.runtime.torch_backend import TorchBackend

        rgb = [load_image(img, channel_order=channel_order) for img in images]
        batch, records = preprocess_batch(rgb, self.preprocess)
        was_training = self.model.training
        backend = TorchBackend(self.model, preprocess=self.preprocess, max_det=self.max_det,
                               device=self.device, max_batch=len(rgb))
        try:
            outputs = backend.infer(batch, content_sizes(records))
        finally:
            self.model.train(was_training)
        return decode_outputs(outputs, records, self.classes, score_thr=self.score_thr)


def run_inference(detector: DetectorLike, dataset: Any, *, batch_size: int = 8,
                  indices: Sequence[int] | None = None, workers: int = 0,
                  progress: bool = True, desc: str = "eval") -> dict[int, Detections]:
    """``{image_id: Detections}`` (original-image pixels) for the dataset's images.

    ``dataset[i]`` returns ``(image (H, W, 3) uint8 RGB, target with "image_id")`` (a
    ``sdk.data.coco.CocoDetection`` without transforms); ``indices`` restricts the run
    to a subset (one rank's shard); ``workers`` decode images in parallel.
    """
    from torch.utils.data import DataLoader, Subset
    from tqdm import tqdm

    subset = Subset(dataset, list(range(len(dataset))) if indices is None else list(indices))
    loader = DataLoader(subset, batch_size=batch_size, num_workers=workers, collate_fn=list)
    results: dict[int, Detections] = {}
    with tqdm(total=len(subset), desc=desc, unit="img", disable=not progress, dynamic_ncols=True, leave=False) as bar:
        for batch in loader:
            images = [image for image, _ in batch]
            dets = detector(images, channel_order="rgb")
            for (_, target), det in zip(batch, dets):
                results[int(target["image_id"])] = det
            bar.update(len(batch))
    return results


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    detections: dict[int, Detections]


def evaluate_detector(detector: DetectorLike, ann_file: str, images_dir: str, *, batch_size: int = 8,
                      workers: int = 0, classwise: bool = False, progress: bool = True) -> EvalResult:
    """Run ``detector`` over a COCO dataset and compute the twelve COCO bbox numbers (and
    the twelve segm numbers when the detector returns masks and the dataset has them)."""
    from sdk.data.coco import CocoDetection
    from sdk.evaluation.coco_eval import evaluate_coco

    dataset = CocoDetection(ann_file, images_dir)
    detections = run_inference(detector, dataset, batch_size=batch_size, workers=workers, progress=progress)
    metrics = evaluate_coco(ann_file, detections, classwise=classwise)
    return EvalResult(metrics, detections)


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """The twelve COCO numbers as pycocotools prints them, one per line (bbox, then
    segm under a heading when there are mask metrics)."""
    lines = []
    for key, label in METRIC_LABELS.items():
        if key in metrics:
            if key == "segm_mAP":
                lines.append("mask (segm):")
            lines.append(f" {label} = {float(metrics[key]):.3f}   ({key})")
    return "\n".join(lines)
