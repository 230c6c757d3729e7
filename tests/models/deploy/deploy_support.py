"""Random-weight tiny detectors that detect something, and contract comparisons.

Nothing is trained: each prediction layer is rescaled so its outputs on a sample
batch have a useful spread (class logits std 0.7 around -2, box deltas std 0.3), so
the models return dozens of detections per image and a comparison cannot pass
vacuously.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import nn

import sdk.models
from sdk.models.registry import get_model_spec
from sdk.preprocess import IMAGENET_MEAN, IMAGENET_STD

_CLASS_LAYER = re.compile(r"(cls_logits|cls_score|bbox_ctrness|classification_head\.module_list\.\d+\.1|rtm_cls\.\d+)$")
_BOX_LAYER = re.compile(r"(bbox_reg|bbox_pred|regression_head\.module_list\.\d+\.1|rtm_reg\.\d+)$")

_IMAGENET_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_IMAGENET_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

CLASSES = ("__background__", "circle", "square", "triangle")


def random_detector(name: str, *, seed: int = 0, image_size: tuple[int, int] = (320, 320), **overrides) -> nn.Module:
    """``sdk.models.build_model(name)`` (4 classes) in eval mode with informative random weights."""
    torch.manual_seed(seed)
    model = sdk.models.build_model(name, num_classes=len(CLASSES), **overrides).eval()
    generator = torch.Generator().manual_seed(seed)
    # uniform noise normalized as ImageNet-style uint8 input, like the tests' images
    if isinstance(model, sdk.models.RTMDet):
        images = _rtmdet_calibration_images(image_size, generator)
    else:
        images = (torch.randint(0, 256, (2, 3, *image_size), generator=generator).float() - 120.0) / 60.0
    _calibrate_batchnorm(model, images, generator)
    for _ in range(2 if hasattr(model, "rpn") else 1):  # RoI inputs depend on the RPN
        _rescale_prediction_layers(model, images)
    return model


def _rtmdet_calibration_images(image_size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """8 noise images and 8 letterboxed synthetic pictures, ImageNet-normalized like the
    tests' inputs. RTMDet's SPPF max-pools whole small maps, nearly constant within an
    image, so BatchNorm after it calibrated on 2 noise images divides the differences
    between images by a tiny spread and scores saturate on any other input."""
    from sdk.engine.verify import synthetic_images
    from sdk.preprocess import Preprocess, preprocess_batch

    noise = torch.randint(0, 256, (8, 3, *image_size), generator=generator).float()
    letterbox = Preprocess(mode="letterbox", size=image_size, pad_value=114, normalize_in_graph=True)
    pictures = torch.from_numpy(preprocess_batch(synthetic_images(8, seed=100), letterbox)[0]).float()
    return (torch.cat([noise, pictures]) - _IMAGENET_MEAN) / _IMAGENET_STD


def _calibrate_batchnorm(model: nn.Module, images: torch.Tensor, generator: torch.Generator) -> None:
    """Random BatchNorm affine parameters and running statistics taken from ``images``
    (as after training): without it, deep random nets (SSDlite's normal init) output
    ~1e-20 features and every score ties."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return
    with torch.no_grad():
        for norm in norms:
            norm.weight.copy_(torch.rand(norm.weight.shape, generator=generator) + 0.5)
            norm.bias.copy_(torch.rand(norm.bias.shape, generator=generator) * 0.4 - 0.2)
            norm.momentum = 1.0  # running statistics := this batch's
        features = model.backbone.train()(images)
        if isinstance(model, sdk.models.RTMDet):  # BatchNorm in the head too, after near-zero-init convs
            model.head.train()(list(features.values()))
        for norm in norms:
            norm.momentum = 0.1
    model.eval()


def _rescale_prediction_layers(model: nn.Module, images: torch.Tensor) -> None:
    layers = {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and (_CLASS_LAYER.search(name) or _BOX_LAYER.search(name))
    }
    outputs: dict[str, list[torch.Tensor]] = {}
    hooks = [
        m.register_forward_hook(lambda mod, i, o, name=name: outputs.setdefault(name, []).append(o.flatten()))
        for name, m in layers.items()
    ]
    with torch.no_grad():
        for m in layers.values():
            m.bias.zero_()
        model(images)
        for hook in hooks:
            hook.remove()
        for name, m in layers.items():
            is_class = bool(_CLASS_LAYER.search(name))
            std = torch.cat(outputs[name]).std().clamp_min(1e-12)
            m.weight.mul_((0.7 if is_class else 0.3) / std)
            m.bias.fill_(-2.0 if is_class else 0.0)


def default_postprocess(name: str) -> dict:
    return get_model_spec(name).default_postprocess()


def eager_contract(model: nn.Module, images: torch.Tensor, *, max_det: int) -> dict[str, np.ndarray]:
    """The eager model's detections on normalized float ``images``, padded to contract 2."""
    from sdk.runtime.torch_backend import pack_detections

    with torch.no_grad():
        return pack_detections(model(images), max_det=max_det)


def assert_same_contract(
    ours: dict[str, np.ndarray], ref: dict[str, np.ndarray], *, atol: float = 1e-3, rtol: float = 1e-4,
    score_atol: float = 1e-5, score_rtol: float = 1e-5, min_dets: int = 1,
) -> None:
    """Equal num_dets and (sorted) scores; and for every reference row whose score is
    isolated (no other within twice the score tolerance), the row of ``ours`` with the
    nearest score has the same label and box (within tolerance). Rows tied in score are
    compared by score only: which of equal-score boxes NMS keeps, and in which order,
    is an implementation detail (torchvision's sort is not stable)."""
    np.testing.assert_array_equal(ours["num_dets"], ref["num_dets"])
    assert int(ref["num_dets"].min()) >= min_dets, f"reference has too few detections: {ref['num_dets'].ravel()}"
    for b in range(ref["num_dets"].shape[0]):
        n = int(ref["num_dets"][b, 0])
        ref_scores, our_scores = ref["scores"][b, :n], ours["scores"][b, :n]
        np.testing.assert_allclose(np.sort(our_scores), np.sort(ref_scores), rtol=score_rtol, atol=score_atol)
        tol = score_atol + score_rtol * ref_scores
        gaps = np.abs(ref_scores[:, None] - ref_scores[None, :]) + np.eye(n) * 1e9
        isolated = np.where(gaps.min(axis=1) > 2 * tol)[0] if n > 1 else np.arange(n)
        assert isolated.size > n // 2, "mostly tied scores: the comparison would say little"
        for i in isolated:
            j = int(np.argmin(np.abs(our_scores - ref_scores[i])))
            assert ours["labels"][b, j] == ref["labels"][b, i], f"image {b}, score {ref_scores[i]}: labels differ"
            np.testing.assert_allclose(ours["boxes"][b, j], ref["boxes"][b, i], rtol=rtol, atol=atol)


TINY_MODELS = ("retinanet_tiny", "fcos_tiny", "fasterrcnn_tiny", "ssdlite_tiny", "rtmdet_nano")


def small_preprocess():
    """A non-square letterbox smaller than the tiny models' 320 (faster; checks H != W)."""
    from sdk.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

    return Preprocess(mode="letterbox", size=(224, 288), pad_value=114, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def save_random_checkpoint(path, name: str, *, seed: int = 0):
    """Save ``random_detector(name)`` as an SDK checkpoint at ``path`` (letterbox 224x288);
    returns ``(path, model)``."""
    from sdk.checkpoint import CheckpointMeta, save_checkpoint

    preprocess = small_preprocess()
    model = random_detector(name, seed=seed, image_size=preprocess.static_shape)
    meta = CheckpointMeta(
        model_name=name,
        num_classes=len(CLASSES),
        classes=CLASSES,
        preprocess=preprocess,
        postprocess=default_postprocess(name),
    )
    return save_checkpoint(path, meta=meta, state_dict=model.state_dict()), model


def detections_as_contract(detections) -> dict[str, np.ndarray]:
    """``list[Detections]`` -> contract-2 arrays (K = the most detections of any image)."""
    k = max(1, max(len(d) for d in detections))
    out = {
        "num_dets": np.array([[len(d)] for d in detections], np.int32),
        "boxes": np.zeros((len(detections), k, 4), np.float32),
        "scores": np.zeros((len(detections), k), np.float32),
        "labels": np.zeros((len(detections), k), np.int32),
    }
    for i, d in enumerate(detections):
        out["boxes"][i, : len(d)], out["scores"][i, : len(d)], out["labels"][i, : len(d)] = d.boxes, d.scores, d.labels
    return out
