"""Datasets (COCO format), training transforms and the synthetic dataset.

- ``sdk.data.coco``: ``CocoDetection`` (torch-free; labels mapped to categories by name).
- ``sdk.data.transforms``: train / eval transforms ending in the ``sdk.preprocess``
  placement, and ``collate_detection`` (needs torch and torchvision).
- ``sdk.data.synthetic``: ``generate_synthetic_coco`` and ``SYNTH_CLASSES``, drawn by
  ``sdk.data.shapes``.
- ``sdk.data.image_folder``: a COCO file for a folder of unlabeled images.

Submodules are imported explicitly so that reading a dataset does not import torch.
"""
