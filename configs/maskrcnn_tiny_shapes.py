"""A tiny Mask R-CNN trained from scratch on the synthetic shapes with instance masks.

The README's instance segmentation figures (eager and ONNX Runtime segm mAP from
``sdk test``) come from this config. Make the data first (exact RLE masks, the
quickstart's easy setting) with::

    sdk data synth --out runs/maskrcnn/data --train 600 --val 100 --size 256 --objects 2 6 \\
        --object-size 20 64 --clutter 0 --empty-fraction 0

(``synthetic`` below holds the same parameters for ``generate_synthetic_coco``), then
``nice -n 10 sdk train configs/maskrcnn_tiny_shapes.py``. Kept short for a shared
2-core CPU: 6 epochs of 75 iterations of 8 images.
"""

from sdk.config import Config, DataConfig, ModelConfig, RuntimeConfig, ScheduleConfig
from sdk.preprocess import Preprocess

SIZE = 256

synthetic = dict(
    num_train=600,
    num_val=100,
    image_size=SIZE,
    seed=0,
    objects_per_image=(2, 6),
    object_size=(20.0, 64.0),
    clutter=0.0,
    empty_fraction=0.0,
    segmentation="rle",
)

config = Config(
    model=ModelConfig(name="maskrcnn_tiny"),
    data=DataConfig(
        train_ann="runs/maskrcnn/data/annotations/train.json",
        train_images="runs/maskrcnn/data/images",
        val_ann="runs/maskrcnn/data/annotations/val.json",
        val_images="runs/maskrcnn/data/images",
        batch_size=8,
        val_batch_size=8,
        workers=1,
        preprocess=Preprocess(mode="letterbox", size=(SIZE, SIZE)),
        hflip=0.5,
        scale_jitter=None,
        photometric=False,
        filter_empty=True,
    ),
    schedule=ScheduleConfig(
        optimizer="adamw",
        lr=2e-3,
        weight_decay=0.05,
        epochs=6,
        warmup_iters=60,
        lr_schedule="cosine",
        min_lr_ratio=0.05,
        grad_clip=10.0,
        base_batch_size=8,
        ema=True,
        ema_decay=0.998,
        ema_tau=100.0,
    ),
    runtime=RuntimeConfig(work_dir="runs/maskrcnn/train", val_interval=6, log_interval=10, seed=0),
)
