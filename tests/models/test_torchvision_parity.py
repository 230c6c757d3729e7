"""Every torchvision-named model loads torchvision's state_dict strictly and reproduces
torchvision's detections and training losses on the same input.

torchvision's model is the reference: built by torchvision's own builder with random
weights (made informative by ``randomize_``), run with a pass-through transform.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from parity_support import assert_same_detections, assert_same_masks, randomize_, run_torchvision, torchvision_reference

import sdk.models

NUM_CLASSES = 5
# Builder keyword arguments given to torchvision's builder and to ours alike: fewer
# proposals and sampled RoIs keep the two-stage models' box heads cheap on a CPU.
_FEWER_ROIS = {"rpn_post_nms_top_n_test": 200, "rpn_post_nms_top_n_train": 300, "box_batch_size_per_image": 128}
TORCHVISION_NAMED = {
    "retinanet_resnet50_fpn": {},
    "fcos_resnet50_fpn": {},
    "fasterrcnn_resnet50_fpn": _FEWER_ROIS,
    "fasterrcnn_mobilenet_v3_large_fpn": _FEWER_ROIS,
    "maskrcnn_resnet50_fpn": _FEWER_ROIS,
    "ssdlite320_mobilenet_v3_large": {},
}
# (batch, height, width): two batches of different sizes, neither the calibration one.
# Small, so the R50 models run in seconds on a CPU.
EVAL_INPUTS = [(2, 96, 128), (1, 160, 96)]


def _images(batch: int, height: int, width: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=list(TORCHVISION_NAMED))
def pair(request):
    """(name, torchvision model, our model with the torchvision state_dict), both eval."""
    name = request.param
    torch.manual_seed(0)
    kwargs = TORCHVISION_NAMED[name]
    reference = torchvision_reference(name, num_classes=NUM_CLASSES, **kwargs)
    randomize_(reference, _images(2, 128, 128, seed=1), seed=2)
    ours = sdk.models.build_model(name, num_classes=NUM_CLASSES, **kwargs)
    ours.load_state_dict(reference.state_dict(), strict=True)
    return name, reference.eval(), ours.eval()


def test_registry_names_torchvision_builder():
    for name in TORCHVISION_NAMED:
        assert sdk.models.get_model_spec(name).torchvision_name == name


@pytest.mark.parametrize("shape", EVAL_INPUTS, ids=lambda s: "x".join(map(str, s)))
def test_eval_detections_match_torchvision(pair, shape):
    name, reference, ours = pair
    images = _images(*shape, seed=3)
    with torch.no_grad():
        expected = run_torchvision(reference, images)
        actual = ours(images)
    assert_same_detections(actual, expected, min_dets=20)
    if "masks" in expected[0]:
        assert_same_masks(actual, expected)


@pytest.mark.parametrize("pair", ["ssdlite320_mobilenet_v3_large"], indirect=True)
def test_parity_check_detects_a_changed_weight(pair):
    """The comparison above is sensitive: one perturbed weight breaks it."""
    name, reference, ours = pair
    changed = copy.deepcopy(ours)
    with torch.no_grad():
        next(p for n, p in changed.named_parameters() if n.startswith("backbone")).mul_(1.5)
    images = _images(*EVAL_INPUTS[0], seed=3)
    with torch.no_grad():
        expected = run_torchvision(reference, images)
        actual = changed(images)
    with pytest.raises(AssertionError):
        assert_same_detections(actual, expected, min_dets=20)


def test_training_losses_match_torchvision(pair):
    name, reference, ours = copy.deepcopy(pair)
    images = _images(2, 128, 160, seed=4)
    targets = [
        {
            "boxes": torch.tensor([[10.0, 20.0, 90.0, 120.0], [100.0, 30.0, 150.0, 70.0]]),
            "labels": torch.tensor([1, 3]),
        },
        {"boxes": torch.tensor([[40.0, 40.0, 80.0, 70.0]]), "labels": torch.tensor([4])},
    ]
    for target in targets:  # instance masks (Mask R-CNN's mask loss; the others ignore them)
        masks = torch.zeros((len(target["boxes"]), *images.shape[-2:]), dtype=torch.uint8)
        for mask, (x1, y1, x2, y2) in zip(masks, target["boxes"].int().tolist()):
            mask[y1 + 5 : y2 - 3, x1 + 2 : (x1 + x2) // 2] = 1  # an L inside the box, not the box
            mask[(y1 + y2) // 2 : y2 - 3, x1 + 2 : x2 - 4] = 1
        target["masks"] = masks
    reference.train()
    ours.train()
    torch.manual_seed(5)
    expected = run_torchvision(reference, images, copy.deepcopy(targets))
    torch.manual_seed(5)
    # torchvision's training transform draws one random number per image (its min_size
    # choice) before the model samples proposals; draw them too so both samplers see
    # the same stream.
    torch.empty(images.shape[0]).uniform_()
    actual = ours(images, copy.deepcopy(targets))
    assert actual.keys() == expected.keys()
    for key in expected:
        assert torch.isfinite(actual[key])
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-4, atol=1e-5, msg=f"{name} loss {key}")


# two images whose short side is 96: torchvision's transform (min 96, max 160) leaves them
# unresized and pads the batch to 160 x 160, as the SDK's keep_ratio batches do
CONTENT_SIZES = [(96, 150), (130, 96)]


@pytest.mark.parametrize("pair", [n for n in TORCHVISION_NAMED if not n.startswith("ssdlite")], indirect=True)
def test_padded_batch_with_image_sizes_matches_torchvision(pair):
    """torchvision's batching: a list of differently sized images, each zero-padded
    (after normalizing) to the batch's /32 size and its boxes clipped to itself. The
    SDK's eager model given ``image_sizes``, and its dynamic-shape DeployModule, give
    torchvision's detections whatever the padding held before."""
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    from sdk.models.deploy import build_deploy_module
    from sdk.preprocess import Preprocess

    name, reference, ours = pair
    generator = torch.Generator().manual_seed(6)
    images = [torch.randn(3, h, w, generator=generator) for h, w in CONTENT_SIZES]
    batch = torch.randn(2, 3, 160, 160, generator=generator) * 5  # garbage padding: must not matter
    for i, image in enumerate(images):
        batch[i, :, : image.shape[1], : image.shape[2]] = image
    sizes = torch.tensor(CONTENT_SIZES)
    # left in training mode, as run_torchvision's: no mask pasting, boxes already in input pixels
    reference.transform = GeneralizedRCNNTransform(min_size=96, max_size=160, image_mean=[0.0] * 3,
                                                   image_std=[1.0] * 3)
    dynamic = Preprocess(mode="keep_ratio", size=(96, 160), mean=(0.0,) * 3, std=(1.0,) * 3, normalize_in_graph=False)
    heads = getattr(ours, "roi_heads", ours)  # the thresholds torchvision's builder set
    postprocess = {"score_thr": heads.score_thresh, "iou_thr": heads.nms_thresh, "max_det": heads.detections_per_img}
    deploy = build_deploy_module(ours, preprocess=dynamic, postprocess=postprocess)
    with torch.no_grad():
        expected = reference(images)
        actual = ours(batch, image_sizes=sizes)
        exported = {k: v.numpy() for k, v in deploy(batch, sizes)._asdict().items()}
    assert_same_detections(actual, expected, min_dets=10)
    if "masks" in expected[0]:
        assert_same_masks(actual, expected)
    # the dynamic-shape DeployModule: as many detections with the same scores (its boxes equal
    # the eager model's: tests/models/deploy/test_dynamic_shape.py; random weights tie many
    # scores here, and which of tied boxes NMS keeps is an implementation detail)
    for b, ref in enumerate(expected):
        n = int(exported["num_dets"][b, 0])
        assert n == ref["boxes"].shape[0] >= 10
        np.testing.assert_allclose(np.sort(exported["scores"][b, :n]), np.sort(ref["scores"].numpy()), rtol=1e-5,
                                   atol=1e-5)
