"""``sdk::batched_nms``."""
