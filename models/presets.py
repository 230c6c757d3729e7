"""Default preprocessing records of the registered models (``ModelSpec.default_preprocess``)."""

from __future__ import annotations

from sdk.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

# torchvision's R50 / MobileNet FPN detectors: short side 800, long side at most 1333,
# ImageNet normalization (torchvision's image_mean/std times 255), padded to /32.
# torchvision pads with 0 after normalization, i.e. with the mean colour; 114 is the
# nearest single grey.
KEEP_RATIO_800_1333 = Preprocess(
    mode="keep_ratio", size=(800, 1333), pad_divisor=32, pad_value=114, mean=IMAGENET_MEAN, std=IMAGENET_STD
)

# torchvision's SSDlite320 maps [0, 1] to [-1, 1] (mean = std = 0.5). torchvision stretches
# images to 320x320; the SDK letterboxes (no distortion, one static shape) and pads with
# the colour that normalizes to ~0.
SSDLITE_320 = Preprocess(mode="letterbox", size=(320, 320), pad_value=128, mean=(127.5,) * 3, std=(127.5,) * 3)

# The tiny variants: 320x320 letterbox, ImageNet normalization.
TINY_320 = Preprocess(mode="letterbox", size=(320, 320), pad_value=114, mean=IMAGENET_MEAN, std=IMAGENET_STD)

# RTMDet's published sizes: 640x640 letterbox padded with 114, ImageNet normalization
# (MMDetection's BGR mean/std in RGB order).
RTMDET_640 = Preprocess(mode="letterbox", size=(640, 640), pad_value=114, mean=IMAGENET_MEAN, std=IMAGENET_STD)
