"""SSDlite320 MobileNetV3-Large on COCO 2017, torchvision's reference recipe
(600 epochs, cosine schedule, total batch 192 = 24 x 8, weight decay 4e-5).

torchvision trains it with SSD's random-crop/expand augmentation; here the closest
knobs are scale jitter and photometric distortion.

    torchrun --nproc_per_node 8 -m sdk.cli.main train configs/ssdlite320_mobilenet_v3_large_coco.py
"""

from sdk.config import Config, DataConfig, ModelConfig, RuntimeConfig, ScheduleConfig

config = Config(
    model=ModelConfig(name="ssdlite320_mobilenet_v3_large"),
    data=DataConfig.coco("data/coco", batch_size=24, workers=8, scale_jitter=(0.5, 1.5), photometric=True),
    schedule=ScheduleConfig(
        optimizer="sgd", lr=0.15, momentum=0.9, weight_decay=4e-5, epochs=600, lr_schedule="cosine",
        min_lr_ratio=0.0, warmup_iters=1000, warmup_factor=0.001, base_batch_size=192,
    ),
    runtime=RuntimeConfig(work_dir="work_dirs/ssdlite320_mobilenet_v3_large_coco", log_interval=50, val_interval=10),
)
