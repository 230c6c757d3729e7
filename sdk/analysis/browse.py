"""Ground truth drawn after the training transforms (MMDetection's ``browse_dataset.py``).

Each image goes through exactly the pipeline ``sdk train`` builds from a config
(``sdk.data.transforms.build_train_transforms``: flip, photometric distortion, scale
jitter, then the ``Preprocess`` placement; or ``build_eval_transforms`` with
``augment=False``), and its boxes are drawn on the network input it becomes: what
the model sees, at its input size, padding included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from sdk.config import Config, DataConfig
from sdk.detections import Detections


def resolve_pipeline_config(config_path: str | None, overrides: Sequence[str]) -> tuple[DataConfig, str]:
    """(the config's ``data`` section, model name); without a config, ``DataConfig()``
    defaults and ``Preprocess()``'s placement."""
    from sdk.config import apply_overrides, load_config

    cfg = load_config(config_path, overrides) if config_path else apply_overrides(Config(), overrides)
    return cfg.data, cfg.model.name


def transformed_samples(ann_file: str | Path, images_dir: str | Path | None, *, config_path: str | None = None,
                        cfg_options: Sequence[str] = (), augment: bool = True, num: int | None = None,
                        seed: int = 0, progress: bool = True) -> Iterator[tuple[str, np.ndarray, Detections]]:
    """``(file name, network input (h, w, 3) uint8 RGB, its boxes as Detections)`` of
    the first ``num`` images (all by default) after the pipeline (module docstring)."""
    import torch
    from tqdm import tqdm

    from sdk.analysis.common import open_dataset
    from sdk.data.transforms import build_eval_transforms, build_train_transforms
    from sdk.preprocess import Preprocess

    data, model_name = resolve_pipeline_config(config_path, cfg_options)
    preprocess = data.preprocess
    if preprocess is None:
        if config_path:
            from sdk.models import get_model_spec

            preprocess = get_model_spec(model_name).default_preprocess
        else:
            preprocess = Preprocess()
    if augment:
        transforms = build_train_transforms(preprocess, hflip=data.hflip, scale_jitter=data.scale_jitter,
                                            photometric=data.photometric)
    else:
        transforms = build_eval_transforms(preprocess)
    dataset = open_dataset(ann_file, images_dir)
    torch.manual_seed(seed)
    count = len(dataset) if num is None else min(num, len(dataset))
    for index in tqdm(range(count), desc="browse", unit="img", disable=not progress, leave=False):
        image, target, _record = transforms(*dataset[index])
        boxes = target["boxes"].numpy()
        gt = Detections(boxes, np.ones(len(boxes), np.float32), target["labels"].numpy(), tuple(dataset.classes))
        yield dataset.image_entry(index).file_name, np.ascontiguousarray(image.permute(1, 2, 0).numpy()), gt


def browse_dataset(ann_file: str | Path, images_dir: str | Path | None, out_dir: str | Path, *,
                   config_path: str | None = None, cfg_options: Sequence[str] = (), augment: bool = True,
                   num: int | None = None, seed: int = 0, progress: bool = True) -> list[Path]:
    """Write ``out_dir/<file stem>.jpg`` per sample of ``transformed_samples``; returns the paths."""
    import cv2

    from sdk.visualize import draw_detections

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, stems = [], set()
    for file_name, rgb, gt in transformed_samples(ann_file, images_dir, config_path=config_path,
                                                  cfg_options=cfg_options, augment=augment, num=num, seed=seed,
                                                  progress=progress):
        stem = Path(file_name).stem
        name, n = stem, 0
        while name in stems:
            n += 1
            name = f"{stem}_{n}"
        stems.add(name)
        path = out_dir / f"{name}.jpg"
        cv2.imwrite(str(path), draw_detections(rgb, gt, channel_order="rgb", show_scores=False))
        written.append(path)
    return written
