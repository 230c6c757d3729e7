"""The quickstart: a tiny detector trained from scratch on the synthetic shapes dataset.

``sdk quickstart`` generates the dataset with ``synthetic`` below into
``OUT/data`` and points the ``data.*`` paths there; ``sdk train`` on this file uses the
paths as written (``make quickstart`` output). Tuned so the whole quickstart (data,
training, evaluation) finishes in under 10 minutes on a 2-core CPU with
bbox mAP@[.5:.95] >= 0.5 on the synthetic val split.
"""

from sdk.config import Config, DataConfig, ModelConfig, RuntimeConfig, ScheduleConfig
from sdk.preprocess import Preprocess

SIZE = 256

# sdk.data.synthetic.generate_synthetic_coco keyword arguments (scale matches SIZE).
synthetic = dict(
    num_train=800,
    num_val=100,
    image_size=SIZE,
    seed=0,
    size_jitter=0.2,
    object_size=(28.0, 110.0),
    clutter=0.3,
)

config = Config(
    model=ModelConfig(name="fcos_tiny"),
    data=DataConfig(
        train_ann="runs/quickstart/data/annotations/train.json",
        train_images="runs/quickstart/data/images",
        val_ann="runs/quickstart/data/annotations/val.json",
        val_images="runs/quickstart/data/images",
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
        epochs=12,
        warmup_iters=100,
        lr_schedule="cosine",
        min_lr_ratio=0.05,
        grad_clip=10.0,
        base_batch_size=8,
        ema=True,
        ema_decay=0.999,
        ema_tau=200.0,
    ),
    runtime=RuntimeConfig(work_dir="runs/quickstart/train", val_interval=2, log_interval=10, seed=0),
)
