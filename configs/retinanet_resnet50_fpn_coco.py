"""RetinaNet R50-FPN on COCO 2017, torchvision's reference recipe (26 epochs, total batch 16).

    sdk train configs/retinanet_resnet50_fpn_coco.py              # 1 process
    torchrun --nproc_per_node 8 -m sdk.cli.main train configs/retinanet_resnet50_fpn_coco.py
"""

from sdk.config import Config, DataConfig, ModelConfig, RuntimeConfig, ScheduleConfig

config = Config(
    model=ModelConfig(name="retinanet_resnet50_fpn"),
    data=DataConfig.coco("data/coco", batch_size=2, workers=4),
    schedule=ScheduleConfig(
        optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4, epochs=26, lr_schedule="step",
        steps=(16, 22), gamma=0.1, warmup_iters=1000, warmup_factor=0.001, base_batch_size=16,
    ),
    runtime=RuntimeConfig(work_dir="work_dirs/retinanet_resnet50_fpn_coco", log_interval=50),
)
