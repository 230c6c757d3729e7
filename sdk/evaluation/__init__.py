"""COCO-style evaluation (pycocotools): ``sdk.evaluation.coco_eval.evaluate_coco``."""
