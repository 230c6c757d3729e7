"""COCO-style evaluation (pycocotools)."""
