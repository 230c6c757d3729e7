"""Random-weight tiny detectors that detect something, and contract comparisons.

Nothing is trained: ``support.random_weights`` rescales each prediction layer so its
outputs on a sample batch have a useful spread (class logits std 0.7 around -2, box
deltas std 0.3), so the models return dozens of detections per image and a comparison
cannot pass vacuously.
"""

from __future__ import annotations

import numpy as np
import torch
from support.random_weights import informative_weights_
from torch import nn

import sdk.models
from sdk.models.registry import get_model_spec
from sdk.preprocess import IMAGENET_MEAN, IMAGENET_STD

_IMAGENET_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_IMAGENET_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

CLASSES = ("__background__", "circle", "square", "triangle")


def random_detector(name: str, *, seed: int = 0, image_size: tuple[int, int] = (320, 320), **overrides) -> nn.Module:
    """``sdk.models.build_model(name)`` (4 classes) in eval mode with informative random
    weights (``support.random_weights``: class logits std 0.7 around -2)."""
    torch.manual_seed(seed)
    model = sdk.models.build_model(name, num_classes=len(CLASSES), **overrides).eval()
    generator = torch.Generator().manual_seed(seed)
    # uniform noise normalized as ImageNet-style uint8 input, like the tests' images
    if isinstance(model, sdk.models.RTMDet):
        images = _rtmdet_calibration_images(image_size, generator)
    else:
        images = (torch.randint(0, 256, (2, 3, *image_size), generator=generator).float() - 120.0) / 60.0
    return informative_weights_(model, images, generator=generator, class_std=0.7, class_bias=-2.0,
                                calibrate_head=isinstance(model, sdk.models.RTMDet))


def _rtmdet_calibration_images(image_size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """8 noise images and 8 letterboxed synthetic pictures, ImageNet-normalized like the
    tests' inputs. RTMDet's SPPF max-pools whole small maps, nearly constant within an
    image, so BatchNorm after it calibrated on 2 noise images divides the differences
    between images by a tiny spread and scores saturate on any other input."""
    from sdk.data.synthetic import synthetic_images
    from sdk.preprocess import Preprocess, preprocess_batch

    noise = torch.randint(0, 256, (8, 3, *image_size), generator=generator).float()
    letterbox = Preprocess(mode="letterbox", size=image_size, pad_value=114, normalize_in_graph=True)
    pictures = torch.from_numpy(preprocess_batch(synthetic_images(8, seed=100), letterbox)[0]).float()
    return (torch.cat([noise, pictures]) - _IMAGENET_MEAN) / _IMAGENET_STD


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
            if "masks" in ref:  # Mask R-CNN: the mask probabilities of that detection
                np.testing.assert_allclose(ours["masks"][b, j], ref["masks"][b, i], rtol=rtol, atol=atol)


TINY_MODELS = ("retinanet_tiny", "fcos_tiny", "fasterrcnn_tiny", "maskrcnn_tiny", "ssdlite_tiny", "rtmdet_nano")


def small_preprocess():
    """A non-square letterbox smaller than the tiny models' 320 (faster; checks H != W)."""
    from sdk.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

    return Preprocess(mode="letterbox", size=(224, 288), pad_value=114, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def small_keep_ratio_preprocess():
    """torchvision's short/long-side resize at a small scale (short 224, long <= 320),
    padded to /32 per image: the record of a dynamic-shape export."""
    from sdk.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

    return Preprocess(mode="keep_ratio", size=(224, 320), pad_value=114, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def save_random_checkpoint(path, name: str, *, seed: int = 0, preprocess=None):
    """Save ``random_detector(name)`` as an SDK checkpoint at ``path`` (default letterbox
    224x288, or ``preprocess``); returns ``(path, model)``."""
    from sdk.checkpoint import CheckpointMeta, save_checkpoint

    preprocess = preprocess or small_preprocess()
    model = random_detector(name, seed=seed, image_size=preprocess.static_shape or (224, 288))
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
