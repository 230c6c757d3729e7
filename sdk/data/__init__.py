"""Datasets (COCO format), training transforms and the synthetic dataset."""
